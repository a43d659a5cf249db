"""Lexer and parser for the SOQL subset the sandbox answers.

``parse(soql)`` returns a frozen :class:`~integrations.sandbox.soql_ast.Query` tree or raises
:class:`~integrations.sandbox.soql_ast.SoqlError` carrying Salesforce's ``errorCode`` and a
message in Salesforce's located form::

    \\nSELECT Id FROM Account WHERE\\n                            ^\\nERROR at Row:1:Column:29\\n...

Names are kept as written: :mod:`integrations.sandbox.soql` resolves them against a schema.
"""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from integrations.sandbox.soql_ast import (
    ESCAPES,
    And,
    Comparison,
    Condition,
    FieldRef,
    InList,
    Like,
    Not,
    Op,
    Or,
    OrderItem,
    Query,
    SoqlError,
    Value,
    located,
    malformed,
)

# Words SOQL keeps for itself; none of them can name an object or a field.
_RESERVED_WORDS = """
    SELECT FROM WHERE AND OR NOT IN LIKE ORDER BY ASC DESC NULLS LIMIT OFFSET NULL TRUE FALSE
    GROUP HAVING WITH USING FOR INCLUDES EXCLUDES
"""
RESERVED = frozenset(_RESERVED_WORDS.split())
MAX_OFFSET = 2000

_TOKEN = re.compile(
    r"(?P<ws>\s+)"
    r"|(?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2}))"
    r"|(?P<date>\d{4}-\d{2}-\d{2})"
    r"|(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"|(?P<ident>[A-Za-z][A-Za-z0-9_]*)"
    r"|(?P<op><=|>=|!=|<>|[=<>])"
    r"|(?P<punct>[(),.])"
)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    pos: int

    def is_word(self, *words: str) -> bool:
        return self.kind == "ident" and self.text.upper() in words


def _tokenize(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(source):
        if source[pos] == "'":
            end = _string_end(source, pos)
            tokens.append(_Token("string", source[pos + 1 : end], pos))
            pos = end + 1
            continue
        match = _TOKEN.match(source, pos)
        if match is None:
            raise _lexer_error(source, pos, f"no viable alternative at character '{source[pos]}'")
        if match.lastgroup != "ws":
            tokens.append(_Token(match.lastgroup or "", match.group(), pos))
        pos = match.end()
    tokens.append(_Token("eof", "<EOF>", len(source)))
    return tokens


def _string_end(source: str, start: int) -> int:
    pos = start + 1
    while pos < len(source):
        if source[pos] == "\\":
            pos += 2
        elif source[pos] == "'":
            return pos
        else:
            pos += 1
    raise _lexer_error(source, len(source), "mismatched character '<EOF>' expecting '''")


def _lexer_error(source: str, pos: int, text: str) -> SoqlError:
    row = source.count("\n", 0, pos) + 1
    column = pos - (source.rfind("\n", 0, pos) + 1)
    message = located(source, pos, f"line {row}:{column} {text}", column=column)
    return SoqlError("MALFORMED_QUERY", message)


def _unescape(body: str, index: int, source: str, pos: int) -> str:
    """The character the escape sequence at ``body[index]`` stands for."""
    escaped = body[index + 1 : index + 2]
    if escaped.lower() in ESCAPES:
        return ESCAPES[escaped.lower()]
    raise malformed(
        source,
        pos + 1 + index,
        f"Invalid string literal '{body}'. "
        f"Illegal character sequence '\\{escaped}' in string literal.",
    )


def decode_string(body: str, *, source: str = "", pos: int = 0) -> str:
    """The value of a string literal whose text between the quotes is ``body``; ``source``
    and ``pos`` (the opening quote) place the error when an escape is invalid."""
    out: list[str] = []
    index = 0
    while index < len(body):
        if body[index] == "\\":
            out.append(_unescape(body, index, source, pos))
            index += 2
        else:
            out.append(body[index])
            index += 1
    return "".join(out)


def like_regex(pattern: str, *, source: str = "", pos: int = 0) -> re.Pattern[str]:
    """A regex that fullmatches casefolded text exactly when ``LIKE 'pattern'`` matches it:
    ``%`` is any run, ``_`` one character, ``\\%`` and ``\\_`` are literal (LIKE only)."""
    parts: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and pattern[index + 1 : index + 2] in ("%", "_"):
            parts.append(re.escape(pattern[index + 1]))
            index += 2
        elif char == "\\":
            parts.append(re.escape(_unescape(pattern, index, source, pos).casefold()))
            index += 2
        else:
            parts.append({"%": ".*", "_": "."}.get(char) or re.escape(char.casefold()))
            index += 1
    return re.compile("".join(parts), re.DOTALL)


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = _tokenize(source)
        self.index = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.token
        self.index += 1
        return token

    def unexpected(self, token: _Token | None = None) -> SoqlError:
        token = token or self.token
        return malformed(self.source, token.pos, f"unexpected token: '{token.text}'")

    def expect_word(self, *words: str) -> _Token:
        if not self.token.is_word(*words):
            raise self.unexpected()
        return self.advance()

    def expect(self, kind: str, text: str) -> None:
        if self.token.kind != kind or self.token.text != text:
            raise self.unexpected()
        self.advance()

    def query(self) -> Query:
        self.expect_word("SELECT")
        fields, count_only = self.select_list()
        self.expect_word("FROM")
        sobject = self.identifier()
        where: Condition | None = None
        order_by: list[OrderItem] = []
        if self.token.is_word("WHERE"):
            self.advance()
            where = self.condition()
        if self.token.is_word("ORDER"):
            order_token = self.advance()
            if count_only:
                raise malformed(
                    self.source, order_token.pos, "COUNT() cannot be used with ORDER BY"
                )
            self.expect_word("BY")
            order_by = self.order_list()
        limit = self.integer_clause("LIMIT")
        offset_token = self.token
        offset = self.integer_clause("OFFSET")
        if offset is not None and offset > MAX_OFFSET:
            raise SoqlError(
                "NUMBER_OUTSIDE_VALID_RANGE",
                located(
                    self.source, offset_token.pos, f"Maximum SOQL offset allowed is {MAX_OFFSET}"
                ),
            )
        if self.token.kind != "eof":
            raise self.unexpected()
        return Query(
            sobject=sobject.text,
            fields=fields,
            count_only=count_only,
            where=where,
            order_by=tuple(order_by),
            limit=limit,
            offset=offset,
            source=self.source,
            sobject_pos=sobject.pos,
        )

    def identifier(self) -> _Token:
        if self.token.kind != "ident" or self.token.text.upper() in RESERVED:
            raise self.unexpected()
        return self.advance()

    def field_ref(self) -> FieldRef:
        first = self.identifier()
        path = [first.text]
        while self.token.kind == "punct" and self.token.text == ".":
            self.advance()
            path.append(self.identifier().text)
        if self.token.kind == "punct" and self.token.text == "(":
            raise malformed(
                self.source, first.pos, f"{first.text}() is not supported by the sandbox"
            )
        return FieldRef(tuple(path), first.pos)

    def select_list(self) -> tuple[tuple[FieldRef, ...], bool]:
        if self.token.is_word("COUNT") and self.tokens[self.index + 1].text == "(":
            count = self.advance()
            self.advance()
            if self.token.text != ")":
                raise malformed(
                    self.source, count.pos, "COUNT(field) is not supported by the sandbox"
                )
            self.advance()
            return (), True
        fields = [self.field_ref()]
        while self.token.text == "," and self.token.kind == "punct":
            self.advance()
            fields.append(self.field_ref())
        return tuple(fields), False

    def condition(self) -> Condition:
        operands = [self.unary()]
        connector: str | None = None
        while self.token.is_word("AND", "OR"):
            word = self.token.text.upper()
            # SOQL refuses to guess precedence: mixing AND and OR needs parentheses.
            if connector not in (None, word):
                raise self.unexpected()
            connector = word
            self.advance()
            operands.append(self.unary())
        if connector is None:
            return operands[0]
        return And(tuple(operands)) if connector == "AND" else Or(tuple(operands))

    def unary(self) -> Condition:
        if self.token.is_word("NOT"):
            self.advance()
            return Not(self.unary())
        if self.token.kind == "punct" and self.token.text == "(":
            self.advance()
            inner = self.condition()
            self.expect("punct", ")")
            return inner
        return self.field_expression()

    def field_expression(self) -> Condition:
        ref = self.field_ref()
        token = self.token
        if token.kind == "op":
            self.advance()
            op = Op.NE if token.text == "<>" else Op(token.text)
            return Comparison(ref, op, self.literal())
        if token.is_word("LIKE"):
            self.advance()
            if self.token.kind != "string":
                raise self.unexpected()
            pattern = self.advance()
            like_regex(pattern.text, source=self.source, pos=pattern.pos)
            return Like(ref, pattern.text)
        negated = token.is_word("NOT")
        if negated:
            self.advance()
        if not self.token.is_word("IN"):
            raise self.unexpected()
        self.advance()
        self.expect("punct", "(")
        values = [self.literal()]
        while self.token.kind == "punct" and self.token.text == ",":
            self.advance()
            values.append(self.literal())
        self.expect("punct", ")")
        return InList(ref, tuple(values), negated)

    def literal(self) -> Value:
        token = self.advance()
        if token.kind == "string":
            return decode_string(token.text, source=self.source, pos=token.pos)
        if token.kind == "number":
            return Decimal(token.text)
        if token.kind in ("date", "datetime"):
            try:
                return _date_value(token.text)
            except ValueError:
                raise self.unexpected(token) from None
        if token.is_word("NULL"):
            return None
        if token.is_word("TRUE", "FALSE"):
            return token.text.upper() == "TRUE"
        raise self.unexpected(token)

    def order_list(self) -> list[OrderItem]:
        items: list[OrderItem] = []
        while True:
            ref = self.field_ref()
            descending = False
            nulls_last: bool | None = None
            if self.token.is_word("ASC", "DESC"):
                descending = self.advance().text.upper() == "DESC"
            if self.token.is_word("NULLS"):
                self.advance()
                nulls_last = self.expect_word("FIRST", "LAST").text.upper() == "LAST"
            items.append(OrderItem(ref, descending, nulls_last))
            if not (self.token.kind == "punct" and self.token.text == ","):
                return items
            self.advance()

    def integer_clause(self, word: str) -> int | None:
        if not self.token.is_word(word):
            return None
        self.advance()
        token = self.token
        if token.kind != "number" or not token.text.isdigit():
            raise self.unexpected()
        self.advance()
        return int(token.text)


def _date_value(text: str) -> date | datetime:
    if "T" not in text:
        return date.fromisoformat(text)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse(soql: str) -> Query:
    """Parse ``soql``; raises :class:`SoqlError` (``MALFORMED_QUERY``) when it is not valid."""
    return _Parser(soql).query()

"""The sandbox's SOQL: parsing, Salesforce's refusals, and answers over in-memory rows."""

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.sandbox.soql import QueryResult, Row, evaluate, execute
from integrations.sandbox.soql_ast import (
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
    render,
)
from integrations.sandbox.soql_parser import parse
from integrations.sandbox.soql_schema import Catalog, ObjectSchema, validate

NO_COLUMN_TAIL = (
    "If you are attempting to use a custom field, be sure to append the '__c' after the custom "
    "field name. Please reference your WSDL or the describe call for the appropriate names."
)

USER = ObjectSchema("User", {"Id": "id", "Name": "string"})
ACCOUNT = ObjectSchema(
    "Account",
    {"Id": "id", "Name": "string", "OwnerId": "reference", "AnnualRevenue": "currency"},
    {"Owner": "User"},
)
CONTACT = ObjectSchema(
    "Contact",
    {
        "Id": "id",
        "FirstName": "string",
        "LastName": "string",
        "Email": "email",
        "AccountId": "reference",
        "Score__c": "double",
        "Active__c": "boolean",
        "Birthdate": "date",
        "CreatedDate": "datetime",
        "MailingAddress": "address",
    },
    {"Account": "Account"},
)
AUDIT = ObjectSchema("Audit_Answer__c", {"Id": "id"})
CATALOG = Catalog([USER, ACCOUNT, CONTACT, AUDIT])

USERS = {"005000000000001AAA": {"Id": "005000000000001AAA", "Name": "Uma Owner"}}
ACCOUNTS = {
    "001000000000001AAA": {
        "Id": "001000000000001AAA",
        "Name": "Acme",
        "OwnerId": "005000000000001AAA",
        "AnnualRevenue": Decimal("1000000"),
    },
    "001000000000002AAA": {
        "Id": "001000000000002AAA",
        "Name": "Globex",
        "OwnerId": None,
        "AnnualRevenue": None,
    },
}


def contact(number: int, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(CONTACT.fields)
    row["Id"] = f"0030000000000{number:02d}AAA"
    row.update(values)
    return row


CONTACTS = [
    contact(
        1,
        FirstName="Ada",
        LastName="O'Brien",
        Email="ada@acme.example",
        AccountId="001000000000001AAA",
        Score__c=5,
        Active__c=True,
        Birthdate=date(1990, 1, 2),
        CreatedDate=datetime(2026, 11, 21, 10, 0, tzinfo=UTC),
    ),
    contact(
        2,
        FirstName="bob",
        LastName="smith",
        Email="bob@globex.example",
        AccountId="001000000000002AAA",
        Score__c=2.5,
        Active__c=False,
        Birthdate=date(1985, 6, 30),
        CreatedDate=datetime(2026, 11, 22, 9, 30),
    ),
    contact(3, FirstName="Cy", LastName="Smith_Jones", Score__c=Decimal("10")),
    contact(4, LastName="100% Real", Email="real@acme.example", AccountId="001000000000009AAA"),
]


def resolve(sobject: str, row: Row, relationship: str) -> Row | None:
    if (sobject, relationship) == ("Contact", "Account"):
        return ACCOUNTS.get(row["AccountId"])
    if (sobject, relationship) == ("Account", "Owner"):
        return USERS.get(row["OwnerId"])
    raise AssertionError(f"unexpected lookup {sobject}.{relationship}")


def attributes(sobject: str, row: Row) -> dict[str, str]:
    return {"type": sobject, "url": f"/services/data/v59.0/sobjects/{sobject}/{row['Id']}"}


def run(soql: str, rows: list[dict[str, Any]] = CONTACTS) -> QueryResult:
    return execute(soql, CATALOG, rows, resolve_parent=resolve)


def ids(soql: str, rows: list[dict[str, Any]] = CONTACTS) -> list[int]:
    return [int(record["Id"][13:15]) for record in run(soql, rows).records]


def refusal(soql: str) -> SoqlError:
    with pytest.raises(SoqlError) as caught:
        run(soql)
    return caught.value


# Parsing


def test_it_parses_every_clause_into_a_tree() -> None:
    query = parse(
        "SELECT Id, Account.Name FROM Contact WHERE (LastName LIKE 'O\\'B%' OR Score__c > -5.5)"
        " AND NOT Email = null AND Id NOT IN ('a', 'b') ORDER BY LastName DESC NULLS LAST, Id"
        " LIMIT 5 OFFSET 2"
    )

    assert query == Query(
        sobject="Contact",
        fields=(FieldRef(("Id",)), FieldRef(("Account", "Name"))),
        where=And(
            (
                Or(
                    (
                        Like(FieldRef(("LastName",)), "O\\'B%"),
                        Comparison(FieldRef(("Score__c",)), Op.GT, Decimal("-5.5")),
                    )
                ),
                Not(Comparison(FieldRef(("Email",)), Op.EQ, None)),
                InList(FieldRef(("Id",)), ("a", "b"), negated=True),
            )
        ),
        order_by=(
            OrderItem(FieldRef(("LastName",)), descending=True, nulls_last=True),
            OrderItem(FieldRef(("Id",))),
        ),
        limit=5,
        offset=2,
    )


def test_it_reads_keywords_in_any_case() -> None:
    assert parse("select id from contact where name like 'a%' order by id desc limit 1") == parse(
        "SELECT id FROM contact WHERE name LIKE 'a%' ORDER BY id DESC LIMIT 1"
    )


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("'O\\'Brien'", "O'Brien"),
        ("'tab\\there\\nline \\\\ \\\"q\\\" \\N'", 'tab\there\nline \\ "q" \n'),
        ("42", Decimal("42")),
        ("-0.5", Decimal("-0.5")),
        ("null", None),
        ("TRUE", True),
        ("false", False),
        ("2026-11-21", date(2026, 11, 21)),
        ("2026-11-21T10:00:00Z", datetime(2026, 11, 21, 10, tzinfo=UTC)),
        ("2026-11-21T10:00:00+0000", datetime(2026, 11, 21, 10, tzinfo=UTC)),
        (
            "2026-11-21T10:00:00.250-08:00",
            datetime(2026, 11, 21, 10, 0, 0, 250000, tzinfo=timezone(timedelta(hours=-8))),
        ),
    ],
)
def test_it_reads_literals(literal: str, value: object) -> None:
    where = parse(f"SELECT Id FROM Contact WHERE X = {literal}").where

    assert isinstance(where, Comparison)
    assert where.value == value
    assert type(where.value) is type(value)


def test_it_reads_the_sql_not_equal_as_soql_not_equal() -> None:
    assert parse("SELECT Id FROM A WHERE X <> 1") == parse("SELECT Id FROM A WHERE X != 1")


def test_it_binds_not_to_the_next_condition_only() -> None:
    where = parse("SELECT Id FROM A WHERE NOT X = 1 AND Y = 2").where

    assert isinstance(where, And)
    assert isinstance(where.operands[0], Not)


def test_it_reads_count() -> None:
    query = parse("SELECT COUNT() FROM Contact WHERE LastName = 'x' LIMIT 3")

    assert query.count_only
    assert query.fields == ()
    assert query.limit == 3


MALFORMED = [
    (
        "SELECT Id FROM Account WHERE",
        "\nSELECT Id FROM Account WHERE\n                            ^\n"
        "ERROR at Row:1:Column:29\nunexpected token: '<EOF>'",
    ),
    (
        # Salesforce's lexer counts this column from 0, unlike every other error.
        "select Id from Account where id = $sfid",
        "\nselect Id from Account where id = $sfid\n                                  ^\n"
        "ERROR at Row:1:Column:34\nline 1:34 no viable alternative at character '$'",
    ),
    (
        "SELECT Id FROM A WHERE Name = 'abc",
        "\nSELECT Id FROM A WHERE Name = 'abc\n                                  ^\n"
        "ERROR at Row:1:Column:34\nline 1:34 mismatched character '<EOF>' expecting '''",
    ),
    (
        'SELECT Id FROM A WHERE Name = "abc"',
        '\nSELECT Id FROM A WHERE Name = "abc"\n                              ^\n'
        "ERROR at Row:1:Column:30\nline 1:30 no viable alternative at character '\"'",
    ),
    (
        "SELECT Id FROM A WHERE A = 1 AND B = 2 OR C = 3",
        "\nSELECT Id FROM A WHERE A = 1 AND B = 2 OR C = 3\n"
        "                                       ^\nERROR at Row:1:Column:40\n"
        "unexpected token: 'OR'",
    ),
    (
        "SELECT Id FROM A WHERE N = 'a\\qb'",
        "\nSELECT Id FROM A WHERE N = 'a\\qb'\n                             ^\n"
        "ERROR at Row:1:Column:30\n"
        "Invalid string literal 'a\\qb'. Illegal character sequence '\\q' in string literal.",
    ),
    (
        "SELECT Id FROM A WHERE N LIKE 'a\\z%'",
        "\nSELECT Id FROM A WHERE N LIKE 'a\\z%'\n                                ^\n"
        "ERROR at Row:1:Column:33\n"
        "Invalid string literal 'a\\z%'. Illegal character sequence '\\z' in string literal.",
    ),
    (
        "SELECT COUNT() FROM A ORDER BY Id",
        "\nSELECT COUNT() FROM A ORDER BY Id\n                      ^\n"
        "ERROR at Row:1:Column:23\nCOUNT() cannot be used with ORDER BY",
    ),
    (
        "SELECT Id FROM A WHERE D = 2026-02-30",
        "\nSELECT Id FROM A WHERE D = 2026-02-30\n                           ^\n"
        "ERROR at Row:1:Column:28\nunexpected token: '2026-02-30'",
    ),
    (
        "SELECT Id, From FROM A",
        "\nSELECT Id, From FROM A\n           ^\nERROR at Row:1:Column:12\n"
        "unexpected token: 'From'",
    ),
    (
        "SELECT Id A",
        "\nSELECT Id A\n          ^\nERROR at Row:1:Column:11\nunexpected token: 'A'",
    ),
    (
        "SELECT Id FROM A LIMIT 1.5",
        "\nSELECT Id FROM A LIMIT 1.5\n                       ^\n"
        "ERROR at Row:1:Column:24\nunexpected token: '1.5'",
    ),
    (
        "SELECT Id FROM A WHERE X IN 'a'",
        "\nSELECT Id FROM A WHERE X IN 'a'\n                            ^\n"
        "ERROR at Row:1:Column:29\nunexpected token: 'a'",
    ),
    (
        "SELECT Id FROM A WHERE X LIKE 5",
        "\nSELECT Id FROM A WHERE X LIKE 5\n                              ^\n"
        "ERROR at Row:1:Column:31\nunexpected token: '5'",
    ),
    (
        "SELECT Id FROM A;",
        "\nSELECT Id FROM A;\n                ^\nERROR at Row:1:Column:16\n"
        "line 1:16 no viable alternative at character ';'",
    ),
    (
        "SELECT COUNT(Id) FROM A",
        "\nSELECT COUNT(Id) FROM A\n       ^\nERROR at Row:1:Column:8\n"
        "COUNT(field) is not supported by the sandbox",
    ),
    (
        "SELECT toLabel(Status) FROM A",
        "\nSELECT toLabel(Status) FROM A\n       ^\nERROR at Row:1:Column:8\n"
        "toLabel() is not supported by the sandbox",
    ),
]


@pytest.mark.parametrize(("soql", "message"), MALFORMED)
def test_it_refuses_malformed_queries_as_salesforce_words_it(soql: str, message: str) -> None:
    with pytest.raises(SoqlError) as caught:
        parse(soql)

    assert caught.value.error_code == "MALFORMED_QUERY"
    assert caught.value.message == message
    assert caught.value.to_response() == [{"message": message, "errorCode": "MALFORMED_QUERY"}]


def test_it_refuses_an_offset_over_2000() -> None:
    with pytest.raises(SoqlError) as caught:
        parse("SELECT Id FROM A OFFSET 2001")

    assert caught.value.error_code == "NUMBER_OUTSIDE_VALID_RANGE"
    assert caught.value.message.endswith("Column:18\nMaximum SOQL offset allowed is 2000")
    assert parse("SELECT Id FROM A OFFSET 2000").offset == 2000


def test_it_places_errors_on_later_rows() -> None:
    with pytest.raises(SoqlError) as caught:
        parse("SELECT Id\nFROM Account\nWHERE Name ==")

    assert caught.value.message == (
        "\nWHERE Name ==\n            ^\nERROR at Row:3:Column:13\nunexpected token: '='"
    )


def test_it_shows_an_excerpt_of_a_long_row() -> None:
    soql = f"SELECT {', '.join(CONTACT.fields)}, Nope__c FROM Contact"
    with pytest.raises(SoqlError) as caught:
        execute(soql, CATALOG, [])

    excerpt, caret, position, _ = caught.value.message.lstrip("\n").split("\n")
    assert len(soql) > 80
    assert caught.value.error_code == "INVALID_FIELD"
    assert excerpt == "CreatedDate, MailingAddress, Nope__c FROM Contact"
    assert caret == " " * excerpt.index("Nope__c") + "^"
    assert position == f"ERROR at Row:1:Column:{soql.index('Nope__c') + 1}"


def test_it_reports_an_unknown_field_of_a_wide_query_on_the_first_unknown() -> None:
    error = refusal("SELECT Id, Nope__c, Other__c FROM Contact")

    assert "No such column 'Nope__c' on entity 'Contact'" in error.message


# Round trip

NAMES = st.sampled_from(["Id", "Name", "Amount__c", "CreatedDate", "Owner"])
FIELDS = st.builds(lambda path: FieldRef(tuple(path)), st.lists(NAMES, min_size=1, max_size=3))
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12),
    st.dates(),
    st.datetimes(
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
        min_value=datetime(1900, 1, 1),
    ),
)
LIKE_PATTERNS = st.lists(
    st.sampled_from(["a", "%", "_", "\\%", "\\_", "\\'", "\\\\", "\\n", " "]), max_size=6
).map("".join)
LEAVES = st.one_of(
    st.builds(Comparison, FIELDS, st.sampled_from(list(Op)), VALUES),
    st.builds(InList, FIELDS, st.lists(VALUES, min_size=1, max_size=3).map(tuple), st.booleans()),
    st.builds(Like, FIELDS, LIKE_PATTERNS),
)


def _conditions(children: st.SearchStrategy[Condition]) -> st.SearchStrategy[Condition]:
    operands = st.lists(children, min_size=2, max_size=3).map(tuple)
    return st.one_of(st.builds(Not, children), st.builds(And, operands), st.builds(Or, operands))


QUERIES = st.builds(
    Query,
    sobject=st.sampled_from(["Contact", "Account", "Custom__c"]),
    fields=st.lists(FIELDS, min_size=1, max_size=4).map(tuple),
    where=st.none() | st.recursive(LEAVES, _conditions, max_leaves=6),
    order_by=st.lists(
        st.builds(OrderItem, FIELDS, st.booleans(), st.none() | st.booleans()), max_size=3
    ).map(tuple),
    limit=st.none() | st.integers(0, 50_000),
    offset=st.none() | st.integers(0, 2000),
)


@given(QUERIES)
@settings(max_examples=300)
def test_rendering_then_parsing_gives_back_the_same_tree(query: Query) -> None:
    assert parse(render(query)) == query


@given(st.builds(Query, sobject=st.just("Contact"), count_only=st.just(True)))
def test_rendering_then_parsing_gives_back_count_queries(query: Query) -> None:
    assert parse(render(query)) == query


# Validation


def test_it_refuses_an_unknown_object_as_salesforce_does() -> None:
    error = refusal("SELECT Id FROM Nope__c")

    assert error.error_code == "INVALID_TYPE"
    assert error.message == (
        "\nSELECT Id FROM Nope__c\n               ^\nERROR at Row:1:Column:16\n"
        "sObject type 'Nope__c' is not supported. If you are attempting to use a custom object, "
        "be sure to append the '__c' after the entity name. Please reference your WSDL or the "
        "describe call for the appropriate names."
    )


@pytest.mark.parametrize(
    ("soql", "message"),
    [
        (
            # Both are bodies Salesforce really sent.
            "SELECT Bacon__c FROM Account LIMIT 2",
            "\nSELECT Bacon__c FROM Account LIMIT 2\n       ^\nERROR at Row:1:Column:8\n"
            f"No such column 'Bacon__c' on entity 'Account'. {NO_COLUMN_TAIL}",
        ),
        (
            "SELECT Id, Dispenser__c FROM Audit_Answer__c",
            "\nSELECT Id, Dispenser__c FROM Audit_Answer__c\n           ^\n"
            "ERROR at Row:1:Column:12\n"
            f"No such column 'Dispenser__c' on entity 'Audit_Answer__c'. {NO_COLUMN_TAIL}",
        ),
        (
            "SELECT Id FROM Contact WHERE Nope = 1",
            "\nSELECT Id FROM Contact WHERE Nope = 1\n                             ^\n"
            "ERROR at Row:1:Column:30\n"
            f"No such column 'Nope' on entity 'Contact'. {NO_COLUMN_TAIL}",
        ),
        (
            "SELECT Id FROM Contact ORDER BY Account.Nope",
            "\nSELECT Id FROM Contact ORDER BY Account.Nope\n                                ^\n"
            "ERROR at Row:1:Column:33\n"
            f"No such column 'Nope' on entity 'Account'. {NO_COLUMN_TAIL}",
        ),
        (
            "SELECT Id, Acct.Name FROM Contact",
            "\nSELECT Id, Acct.Name FROM Contact\n           ^\nERROR at Row:1:Column:12\n"
            "Didn't understand relationship 'Acct' in field path. If you are attempting to use a "
            "custom relationship, be sure to append the '__r' after the custom relationship name. "
            "Please reference your WSDL or the describe call for the appropriate names.",
        ),
    ],
)
def test_it_refuses_unknown_fields_as_salesforce_does(soql: str, message: str) -> None:
    error = refusal(soql)

    assert error.error_code == "INVALID_FIELD"
    assert error.message == message


@pytest.mark.parametrize(
    ("condition", "code", "message"),
    [
        (
            "Birthdate = '2020-01-01'",
            "INVALID_FIELD",
            "value of filter criterion for field 'Birthdate' must be of type date and should "
            "not be enclosed in quotes",
        ),
        (
            "Birthdate > 2020-01-01T00:00:00Z",
            "INVALID_FIELD",
            "value of filter criterion for field 'Birthdate' must be of type date and should "
            "not be enclosed in quotes",
        ),
        (
            "CreatedDate > 2020-01-01",
            "INVALID_FIELD",
            "value of filter criterion for field 'CreatedDate' must be of type dateTime and "
            "should not be enclosed in quotes",
        ),
        (
            "Score__c IN (1, '2')",
            "INVALID_FIELD",
            "value of filter criterion for field 'Score__c' must be of type double and should "
            "not be enclosed in quotes",
        ),
        (
            "Active__c = 'true'",
            "INVALID_FIELD",
            "value of filter criterion for field 'Active__c' must be of type boolean and should "
            "not be enclosed in quotes",
        ),
        (
            "NOT (LastName = 5)",
            "INVALID_FIELD",
            "value of filter criterion for field 'LastName' must be of type string and should "
            "be enclosed in quotes",
        ),
        ("AccountId = '12345'", "INVALID_QUERY_FILTER_OPERATOR", "invalid ID field: 12345"),
        (
            "Account.OwnerId IN ('005000000000001', 'x')",
            "INVALID_QUERY_FILTER_OPERATOR",
            "invalid ID field: x",
        ),
    ],
)
def test_it_refuses_literals_of_the_wrong_type(condition: str, code: str, message: str) -> None:
    error = refusal(f"SELECT Id FROM Contact WHERE {condition}")

    assert (error.error_code, error.message) == (code, message)


def test_it_refuses_a_field_selected_twice() -> None:
    error = refusal("SELECT Id, LastName, lastname FROM Contact")

    assert error.error_code == "MALFORMED_QUERY"
    assert error.message.endswith("Column:22\nduplicate field selected: LastName")


def test_it_answers_with_the_catalogs_spelling_whatever_the_querys() -> None:
    bound = validate(
        parse("select id, account.NAME from CONTACT where lastname = 'x' order by EMAIL"),
        CATALOG,
    )

    assert bound.query.sobject == "Contact"
    assert [ref.path for ref in bound.query.field_refs()] == [
        ("Id",),
        ("Account", "Name"),
        ("LastName",),
        ("Email",),
    ]
    assert bound.types[("Account", "Name")] == "string"


def test_it_builds_a_schema_from_a_describe_body() -> None:
    describe = {
        "name": "Contact",
        "fields": [
            {"name": "Id", "type": "id", "relationshipName": None, "referenceTo": []},
            {"name": "AccountId", "type": "reference", "relationshipName": "Account"}
            | {"referenceTo": ["Account"]},
            {"name": "WhatId", "type": "reference", "relationshipName": "What"}
            | {"referenceTo": ["Account", "Opportunity"]},
        ],
    }

    schema = ObjectSchema.from_describe(describe)

    assert schema == ObjectSchema(
        "Contact",
        {"Id": "id", "AccountId": "reference", "WhatId": "reference"},
        {"Account": "Account", "What": "Account"},
    )


def test_it_refuses_filters_and_sorts_the_describe_does_not_allow() -> None:
    describe = {
        "name": "Note__c",
        "fields": [
            {"name": "Id", "type": "id", "filterable": True, "sortable": True},
            {"name": "Body__c", "type": "textarea", "filterable": False, "sortable": False},
            {"name": "Tags__c", "type": "string", "filterable": True, "sortable": False},
        ],
    }
    catalog = Catalog([ObjectSchema.from_describe(describe)])

    def refusal(soql: str) -> str:
        with pytest.raises(SoqlError) as caught:
            validate(parse(soql), catalog)
        assert caught.value.error_code == "INVALID_FIELD"
        return caught.value.message.rpartition("\n")[2]

    assert refusal("SELECT Id FROM Note__c WHERE Body__c LIKE '%x%'") == (
        "field 'Body__c' can not be filtered in a query call"
    )
    assert refusal("SELECT Id FROM Note__c WHERE Id != null OR NOT body__c = 'x'") == (
        "field 'Body__c' can not be filtered in a query call"
    )
    assert refusal("SELECT Id FROM Note__c ORDER BY Tags__c") == (
        "field 'Tags__c' can not be sorted in a query call"
    )
    assert validate(parse("SELECT Body__c FROM Note__c WHERE Tags__c = 'a'"), catalog)


# Evaluation


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("LastName = 'SMITH'", [2]),
        ("LastName != 'smith'", [1, 3, 4]),
        ("FirstName != 'ada'", [2, 3, 4]),
        ("FirstName = null", [4]),
        ("FirstName != null", [1, 2, 3]),
        ("Score__c < 5", [2]),
        ("Score__c <= 5", [1, 2]),
        ("Score__c > 2.5", [1, 3]),
        ("Score__c >= 2.50", [1, 2, 3]),
        ("Score__c = 10.0", [3]),
        ("LastName < 'P'", [1, 4]),
        ("LastName >= 'smith'", [2, 3]),
        ("Birthdate < 1990-01-02", [2]),
        ("Birthdate >= 1990-01-02", [1]),
        ("CreatedDate > 2026-11-21T10:00:00Z", [2]),
        ("CreatedDate = 2026-11-21T11:00:00+01:00", [1]),
        ("CreatedDate = 2026-11-22T09:30:00+0000", [2]),
        ("Active__c = true", [1]),
        ("Active__c = false", [2, 3, 4]),
        ("Active__c = null", [2, 3, 4]),
        ("Active__c != null", [1]),
        ("FirstName IN ('ADA', 'Cy')", [1, 3]),
        ("FirstName IN ('ada', null)", [1, 4]),
        ("FirstName NOT IN ('ada', 'bob')", [3, 4]),
        ("Score__c IN (5, 10)", [1, 3]),
        ("LastName LIKE 'smith%'", [2, 3]),
        ("LastName LIKE 'SMITH'", [2]),
        ("LastName LIKE 'smith\\_%'", [3]),
        ("LastName LIKE 'smith_jones'", [3]),
        ("LastName LIKE '_mith'", [2]),
        ("LastName LIKE '100\\%%'", [4]),
        ("LastName LIKE '%\\'%'", [1]),
        ("Email LIKE '%@acme.example'", [1, 4]),
        ("FirstName LIKE '%'", [1, 2, 3]),
        ("NOT FirstName LIKE 'a%'", [2, 3, 4]),
        ("NOT (LastName = 'smith' OR Score__c > 4)", [4]),
        ("(LastName = 'smith' OR Score__c > 4) AND Email != null", [1, 2]),
        ("Id = '003000000000001'", [1]),
        ("Id = '003000000000001aaa'", [1]),
        ("Id IN ('003000000000002AAA', '003000000000003')", [2, 3]),
        ("AccountId = null", [3]),
    ],
)
def test_it_filters_as_salesforce_does(condition: str, expected: list[int]) -> None:
    assert ids(f"SELECT Id FROM Contact WHERE {condition} ORDER BY Id") == expected


def test_it_filters_on_parent_fields_with_a_missing_parent_reading_as_null() -> None:
    assert ids("SELECT Id FROM Contact WHERE Account.Name = 'ACME'") == [1]
    assert ids("SELECT Id FROM Contact WHERE Account.Name = null ORDER BY Id") == [3, 4]
    assert ids("SELECT Id FROM Contact WHERE Account.Owner.Name LIKE 'uma%'") == [1]
    assert ids("SELECT Id FROM Contact WHERE Account.AnnualRevenue > 10") == [1]


def test_it_sorts_with_nulls_first_unless_told_otherwise() -> None:
    assert ids("SELECT Id FROM Contact ORDER BY FirstName") == [4, 1, 2, 3]
    assert ids("SELECT Id FROM Contact ORDER BY FirstName DESC") == [4, 3, 2, 1]
    assert ids("SELECT Id FROM Contact ORDER BY FirstName DESC NULLS LAST") == [3, 2, 1, 4]
    assert ids("SELECT Id FROM Contact ORDER BY FirstName ASC NULLS LAST") == [1, 2, 3, 4]
    assert ids("SELECT Id FROM Contact ORDER BY Score__c NULLS FIRST") == [4, 2, 1, 3]


def test_it_sorts_by_several_keys_and_parent_fields() -> None:
    assert ids("SELECT Id FROM Contact ORDER BY Account.Name DESC NULLS LAST, Id DESC") == [
        2,
        1,
        4,
        3,
    ]
    # A null boolean reads as false; among the false ones, the null CreatedDates come first.
    assert ids("SELECT Id FROM Contact ORDER BY Active__c DESC, CreatedDate DESC") == [
        1,
        3,
        4,
        2,
    ]


def test_it_sorts_text_without_regard_to_case() -> None:
    assert ids("SELECT Id FROM Contact WHERE FirstName != null ORDER BY FirstName") == [1, 2, 3]


def test_it_applies_offset_then_limit() -> None:
    assert ids("SELECT Id FROM Contact ORDER BY Id LIMIT 2 OFFSET 1") == [2, 3]
    assert ids("SELECT Id FROM Contact ORDER BY Id OFFSET 3") == [4]
    assert ids("SELECT Id FROM Contact LIMIT 0") == []


def test_it_counts_matching_rows_up_to_the_limit() -> None:
    assert run("SELECT COUNT() FROM Contact WHERE Email != null").to_response() == {
        "totalSize": 3,
        "done": True,
        "records": [],
    }
    assert run("SELECT COUNT() FROM Contact LIMIT 2").total_size == 2


def test_it_nests_parent_fields_with_their_attributes() -> None:
    result = execute(
        "SELECT Id, account.name, Account.Owner.Name, LastName FROM Contact ORDER BY Id LIMIT 3",
        CATALOG,
        CONTACTS,
        resolve_parent=resolve,
        attributes=attributes,
    )

    assert result.to_response() == {
        "totalSize": 3,
        "done": True,
        "records": [
            {
                "attributes": attributes("Contact", CONTACTS[0]),
                "Id": "003000000000001AAA",
                "Account": {
                    "attributes": attributes("Account", ACCOUNTS["001000000000001AAA"]),
                    "Name": "Acme",
                    "Owner": {
                        "attributes": attributes("User", USERS["005000000000001AAA"]),
                        "Name": "Uma Owner",
                    },
                },
                "LastName": "O'Brien",
            },
            {
                "attributes": attributes("Contact", CONTACTS[1]),
                "Id": "003000000000002AAA",
                "Account": {
                    "attributes": attributes("Account", ACCOUNTS["001000000000002AAA"]),
                    "Name": "Globex",
                    "Owner": None,
                },
                "LastName": "smith",
            },
            {
                "attributes": attributes("Contact", CONTACTS[2]),
                "Id": "003000000000003AAA",
                "Account": None,
                "LastName": "Smith_Jones",
            },
        ],
    }


def test_it_returns_plain_records_without_an_attributes_builder() -> None:
    assert run("SELECT Id, Account.Name FROM Contact WHERE Id = '003000000000004'").records == [
        {"Id": "003000000000004AAA", "Account": None}
    ]


def test_it_needs_a_resolver_to_follow_relationships() -> None:
    bound = validate(parse("SELECT Id FROM Contact WHERE Account.Name = 'x'"), CATALOG)

    with pytest.raises(ValueError, match=r"Account\.Name follows a relationship"):
        evaluate(bound, CONTACTS)


def test_it_reads_naive_datetimes_and_iso_strings_as_utc() -> None:
    rows = [
        contact(1, CreatedDate=datetime(2026, 1, 1, 12, 0)),
        contact(2, CreatedDate="2026-01-01T13:00:00.000+0000", Birthdate="2000-01-01"),
    ]

    assert ids("SELECT Id FROM Contact WHERE CreatedDate > 2026-01-01T12:30:00Z", rows) == [2]
    assert ids("SELECT Id FROM Contact WHERE Birthdate = 2000-01-01", rows) == [2]


def test_it_compares_fields_of_unknown_type_by_the_literal() -> None:
    rows = [contact(1, MailingAddress="1 Main St"), contact(2, MailingAddress=None)]

    assert ids("SELECT Id FROM Contact WHERE MailingAddress = '1 MAIN ST'", rows) == [1]
    assert ids("SELECT Id FROM Contact WHERE MailingAddress > 5", rows) == []


# Agreement with a plain Python filter

ROWS = st.lists(
    st.fixed_dictionaries(
        {
            "Score__c": st.none() | st.integers(-3, 3),
            "LastName": st.none() | st.sampled_from(["a", "A", "b", "c"]),
            "Active__c": st.none() | st.booleans(),
        }
    ),
    max_size=12,
)
SIMPLE = st.one_of(
    st.tuples(st.just("Score__c"), st.sampled_from(list(Op)), st.none() | st.integers(-3, 3)),
    st.tuples(st.just("LastName"), st.sampled_from(list(Op)), st.sampled_from(["a", "B", "c"])),
    st.tuples(st.just("Active__c"), st.sampled_from([Op.EQ, Op.NE]), st.booleans()),
)


def _soql_literal(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return f"'{value}'" if isinstance(value, str) else str(value)


def _expected(row: dict[str, Any], name: str, op: Op, literal: object) -> bool:
    value = row[name]
    if name == "Active__c":
        value = bool(value)
    if isinstance(value, str) and isinstance(literal, str):
        value, literal = value.lower(), literal.lower()
    if op is Op.EQ:
        return value == literal
    if op is Op.NE:
        return value != literal
    if value is None or literal is None:
        return False
    return {Op.LT: value < literal, Op.LE: value <= literal, Op.GT: value > literal}.get(
        op, value >= literal
    )


@given(ROWS, st.lists(SIMPLE, min_size=1, max_size=3), st.booleans())
@settings(max_examples=300)
def test_the_evaluator_agrees_with_a_plain_python_filter(
    values: list[dict[str, Any]], conditions: list[tuple[str, Op, object]], conjunction: bool
) -> None:
    rows = [contact(number, **row) for number, row in enumerate(values)]
    joiner = " AND " if conjunction else " OR "
    where = joiner.join(f"{n} {op.value} {_soql_literal(lit)}" for n, op, lit in conditions)
    combine = all if conjunction else any

    expected = [
        number
        for number, row in enumerate(values)
        if combine(_expected(row, *condition) for condition in conditions)
    ]

    assert ids(f"SELECT Id FROM Contact WHERE {where} ORDER BY Id", rows) == expected

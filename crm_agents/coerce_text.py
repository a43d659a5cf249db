"""Text for a CRM field from what a transcript says: the words, and no markup.

A transcript is text someone else produced (a meeting tool, a pasted e-mail, a hostile
client); a CRM may render its fields as HTML. Nothing that reads as markup there, and no
control character, is written.
"""

import unicodedata
from html.parser import HTMLParser

from crm_agents.coerce_dates import CoercionError, quoted


def collapse(text: str) -> str:
    return " ".join(text.split())


# Their contents are code, not text: dropped with the tags.
_HIDDEN_TAGS = frozenset({"script", "style"})
_LINE_TAGS = frozenset(
    {"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "hr"}
)
# Bidirectional embeddings, overrides and isolates can make text read other than it is.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_MAX_PASSES = 8


def clean_text(raw: str, *, lines: bool) -> str:
    """What a transcript's words become in a CRM text field: no markup (tags stripped, with
    the contents of script and style), no control characters, whitespace normalised; a
    multi-line field keeps its lines (at most one blank line between them).

    Markup is stripped until none is left, so escaped markup ("&lt;script&gt;") does not
    come back as markup once read, and a second pass changes nothing."""
    text = raw
    for _ in range(_MAX_PASSES):
        cleaned = _without_markup(_without_controls(text))
        if cleaned == text:
            break
        text = cleaned
    else:  # markup nested deeper than anyone types: keep no angle brackets at all
        text = _without_controls(text).replace("<", " ").replace(">", " ")
    text = _tidy_lines(text) if lines else collapse(text)
    if not text:
        raise CoercionError(f"{quoted(raw)} holds no text once its markup is removed")
    return text


def _without_controls(text: str) -> str:
    # Whitespace controls (tab, line and page breaks) stay for the whitespace rules.
    return "".join(
        char
        for char in text
        if char.isspace()
        or (unicodedata.category(char) not in ("Cc", "Cs") and char not in _BIDI_CONTROLS)
    )


def _without_markup(text: str) -> str:
    if "<" not in text and "&" not in text:
        return text
    reader = _TextOnly()
    reader.feed(text)
    reader.close()
    return "".join(reader.parts)


class _TextOnly(HTMLParser):
    """The text of an HTML fragment, character references read (``convert_charrefs``).

    The stdlib parser rather than Django's strip_tags: strip_tags keeps what is inside
    ``<script>``; this drops it, and everything after a script that is never closed."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in _HIDDEN_TAGS:
            self._hidden += 1
        elif tag in _LINE_TAGS:
            self._new_line()
        elif "@" in tag and not attrs:  # "<jane@acme.example>" is an address, not a tag
            self.parts.append((self.get_starttag_text() or "")[1:-1])

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        if tag in _LINE_TAGS:
            self._new_line()

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _LINE_TAGS:
            self._new_line()

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)

    def _new_line(self) -> None:
        # "</p><p>" is one line break, not a blank line.
        if not self.parts or not self.parts[-1].endswith("\n"):
            self.parts.append("\n")


def _tidy_lines(text: str) -> str:
    lines = [collapse(line) for line in text.splitlines()]
    tidy: list[str] = []
    for line in lines:
        if line or (tidy and tidy[-1]):  # one blank line at most between paragraphs
            tidy.append(line)
    return "\n".join(tidy).strip()

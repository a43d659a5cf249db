"""Model proposals become CRM wire values deterministically, or are refused with a reason."""

from datetime import date
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from crm_agents.coerce import (
    CoercionError,
    Planned,
    WriteMode,
    apply_write_mode,
    coerce_value,
    same_value,
)
from integrations.crm.types import PropertyOption, PropertySpec, PropertyType

T = PropertyType
CALL = date(2026, 11, 25)  # a Wednesday
STAGES = (
    PropertyOption("appointmentscheduled", "Appointment scheduled"),
    PropertyOption("closedwon", "Closed  Won"),
    PropertyOption("ClosedWon", "Closed won (legacy)"),
    PropertyOption("1", "Tier one"),
)


def spec(kind: PropertyType) -> PropertySpec:
    options = STAGES if kind is T.ENUMERATION else ()
    return PropertySpec(name="field", label="Deal stage", type=kind, options=options)


def coerce(raw: object, kind: PropertyType, **kwargs: object) -> str | None:
    return coerce_value(raw, spec(kind), call_date=kwargs.pop("call_date", CALL), **kwargs)


def refusal(raw: object, kind: PropertyType, **kwargs: object) -> str:
    with pytest.raises(CoercionError) as caught:
        coerce(raw, kind, **kwargs)
    return str(caught.value)


# --- every type ----------------------------------------------------------------------------

SETTABLE = [kind for kind in PropertyType if kind not in (T.REFERENCE, T.ID)]


@pytest.mark.parametrize("kind", SETTABLE)
@pytest.mark.parametrize("raw", [None, "", "   ", "\n\t"])
def test_it_reads_blank_as_no_value(kind, raw):
    assert coerce(raw, kind) is None


@pytest.mark.parametrize("kind", [T.REFERENCE, T.ID])
@pytest.mark.parametrize("raw", ["0051234", "Ada Lovelace", None])
def test_it_never_sets_owners_or_record_links(kind, raw):
    assert "not set from a transcript" in refusal(raw, kind)


@pytest.mark.parametrize("kind", [T.NUMBER, T.STRING, T.TEXT, T.DATE, T.ENUMERATION, T.PHONE])
@pytest.mark.parametrize("raw", [True, False])
def test_it_refuses_python_bools_outside_bool_fields(kind, raw):
    assert "yes/no answer" in refusal(raw, kind)


@pytest.mark.parametrize("kind", SETTABLE)
def test_it_refuses_values_that_are_not_scalars(kind):
    with pytest.raises(CoercionError):
        coerce(["84000"], kind)


# --- numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("84000", "84000"),
        ("84000.5", "84000.5"),
        ("84000.00", "84000"),
        ("84,000", "84000"),
        ("1,234,567.89", "1234567.89"),
        ("$84,000", "84000"),
        ("$84,000.50", "84000.5"),
        ("USD 84,000", "84000"),
        ("84,000 USD", "84000"),
        ("84000 dollars", "84000"),
        ("84k", "84000"),
        ("84K", "84000"),
        ("84 k", "84000"),
        ("$1.2M", "1200000"),
        ("1.2 million", "1200000"),
        ("$2.5mm", "2500000"),
        ("3bn", "3000000000"),
        ("84 thousand", "84000"),
        ("€ 12.500", "12.5"),  # a dot is always the decimal point
        ("£99", "99"),
        ("-500", "-500"),
        ("\u2212500", "-500"),
        ("-$500", "-500"),
        ("$-500", "-500"),
        ("+500", "500"),
        (".5", "0.5"),
        ("0.000", "0"),
        ("-0", "0"),
        ("  84000\n", "84000"),
        (84000, "84000"),
        (84000.0, "84000"),
        (84000.5, "84000.5"),
        (0.1, "0.1"),
        (1e20, "100000000000000000000"),
        (1.5e-7, "0.00000015"),
        ("1.2e6", "1200000"),
        ("8.4E+4", "84000"),
        (Decimal("8.4E+4"), "84000"),
    ],
)
def test_it_reads_numbers(raw, expected):
    assert coerce(raw, T.NUMBER) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("80-90k", "is a range"),
        ("$80k-$90k", "is a range"),
        ("80 to 90 thousand", "is a range"),
        ("between 80 and 90 thousand", "is a range"),
        ("eighty thousand", "not a number written in digits"),
        ("sometime soon", "not a number written in digits"),
        ("(500)", "parentheses"),
        ("15%", "percentage"),
        ("12,50", "comma that is not a thousands separator"),
        ("1,2345", "comma that is not a thousands separator"),
        ("1.234.567", "is not a number"),
        ("--5", "is not a number"),
        ("-$-5", "is not a number"),
        ("84000 apples", "is not a number"),
        ("5.", "is not a number"),
        ("1" * 40, "beyond what a number field holds"),
        (10**40, "beyond what a number field holds"),
        (float("nan"), "is not a number"),
        (float("inf"), "is not a number"),
        (Decimal("NaN"), "is not a number"),
    ],
)
def test_it_refuses_numbers_it_would_have_to_guess(raw, reason):
    assert reason in refusal(raw, T.NUMBER)


def test_it_names_the_value_in_a_number_refusal():
    assert refusal("80-90k", T.NUMBER) == "'80-90k' is a range, not a single number"


@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=6, min_value=-(10**15), max_value=10**15
    )
)
@settings(max_examples=300, deadline=None)
def test_it_round_trips_numbers(number):
    plain = format(number.normalize(), "f")
    assert Decimal(coerce(plain, T.NUMBER)) == number
    assert Decimal(coerce(f"${number:,f}", T.NUMBER)) == number
    assert coerce(coerce(plain, T.NUMBER), T.NUMBER) == coerce(plain, T.NUMBER)


@given(st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**20), max_value=10**20))
@settings(max_examples=300, deadline=None)
def test_it_writes_numbers_in_plain_notation(number):
    digits = len("".join(map(str, number.as_tuple().digits)).rstrip("0"))
    assume(number.is_zero() or (digits <= 34 and abs(number.adjusted()) <= 30))
    wire = coerce(str(number), T.NUMBER)  # str() of a Decimal may use an exponent
    assert "e" not in wire.lower()
    assert not wire.endswith(".0")
    assert Decimal(wire) == number


# --- dates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2027-01-15", "2027-01-15"),
        ("2027-01-15T10:30:00Z", "2027-01-15"),
        ("2027-01-15T23:00:00-05:00", "2027-01-16"),  # the UTC date, as the adapters read it
        ("January 15, 2027", "2027-01-15"),
        ("Jan 15 2027", "2027-01-15"),
        ("Jan. 15, 2027", "2027-01-15"),
        ("January 15th, 2027", "2027-01-15"),
        ("15 January 2027", "2027-01-15"),
        ("Friday, January 15, 2027", "2027-01-15"),
        ("1/15/2027", "2027-01-15"),
        ("01/15/27", "2027-01-15"),
        ("1/15", "2027-01-15"),
        ("January 15", "2027-01-15"),
        ("Jan 15th", "2027-01-15"),
        ("december 1st", "2026-12-01"),
        ("November 25", "2026-11-25"),  # the call day itself is on or after the call
        ("November 24", "2027-11-24"),
        ("Friday November 27", "2026-11-27"),
        ("the 15th of January", "2027-01-15"),
        ("on the 2nd of December", "2026-12-02"),
        ("February 29", "2028-02-29"),
        ("today", "2026-11-25"),
        ("Tomorrow", "2026-11-26"),
        ("yesterday", "2026-11-24"),
        ("Friday", "2026-11-27"),
        ("next Friday", "2026-11-27"),
        ("this Friday", "2026-11-27"),
        ("on Friday", "2026-11-27"),
        ("fri", "2026-11-27"),
        ("Wednesday", "2026-12-02"),
        ("next Wednesday", "2026-12-02"),
        ("this Wednesday", "2026-11-25"),
        ("Tuesday", "2026-12-01"),
        ("end of month", "2026-11-30"),
        ("by the end of the month", "2026-11-30"),
        ("EOM", "2026-11-30"),
        ("end of next month", "2026-12-31"),
        ("end of the quarter", "2026-12-31"),
        ("end of this quarter", "2026-12-31"),
        ("EOQ", "2026-12-31"),
        ("end of next quarter", "2027-03-31"),
        ("end of Q1 2027", "2027-03-31"),
        ("Q1 2027", "2027-03-31"),
        ("q2 2027", "2027-06-30"),
        ("end of Q1", "2027-03-31"),
        ("Q4", "2026-12-31"),
        ("end of year", "2026-12-31"),
        ("end of the year", "2026-12-31"),
        ("end of next year", "2027-12-31"),
        ("end of 2027", "2027-12-31"),
        ("end of January", "2027-01-31"),
        ("end of February 2028", "2028-02-29"),
        ("in two weeks", "2026-12-09"),
        ("in 3 days", "2026-11-28"),
        ("in a week", "2026-12-02"),
        ("10 days from now", "2026-12-05"),
        ("in a month", "2026-12-25"),
        ("in three months", "2027-02-25"),
    ],
)
def test_it_reads_dates(raw, expected):
    assert coerce(raw, T.DATE) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Friday", "2026-12-04"),  # strictly after the call: a week later
        ("next Friday", "2026-12-04"),
        ("this Friday", "2026-11-27"),  # the call day itself
        ("Saturday", "2026-11-28"),
    ],
)
def test_it_reads_weekdays_from_a_call_on_that_weekday(raw, expected):
    assert coerce(raw, T.DATE, call_date=date(2026, 11, 27)) == expected


def test_it_clamps_months_to_their_last_day():
    assert coerce("in a month", T.DATE, call_date=date(2027, 1, 31)) == "2027-02-28"


def test_it_moves_a_year_less_date_past_new_year():
    assert coerce("Jan 5", T.DATE, call_date=date(2026, 12, 30)) == "2027-01-05"
    assert coerce("end of Q1", T.DATE, call_date=date(2027, 4, 1)) == "2028-03-31"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("sometime soon", "is not a date"),
        ("next week", "is not a date"),
        ("early January", "is not a date"),
        ("last Friday", "is not a date"),
        ("end of fiscal Q1", "is not a date"),
        ("the 15th", "is not a date"),
        ("15/1/2027", "is not a real date (slashed dates are read month/day)"),
        ("February 30", "is not a real date"),
        ("February 30, 2027", "is not a real date"),
        ("2027-02-30", "is not a real date"),
        ("2027-01-15T25:00:00Z", "is not a real date and time"),
        ("Friday November 28", "November 28, 2026 is a Saturday, not a Friday"),
        ("Monday, January 15, 2027", "is a Friday, not a Monday"),
        ("20270115", "is not a date"),
        ("2027-W03", "is not a date"),
        (20270115, "is not a date"),
        (2027.5, "is not a date"),
    ],
)
def test_it_refuses_dates_it_would_have_to_guess(raw, reason):
    assert reason in refusal(raw, T.DATE)


def test_it_names_the_value_in_a_date_refusal():
    assert refusal("sometime soon", T.DATE) == "'sometime soon' is not a date"


# --- datetimes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2027-01-15T10:30:00Z", "2027-01-15T10:30:00Z"),
        ("2027-01-15T10:30:00.123Z", "2027-01-15T10:30:00Z"),
        ("2027-01-15T10:30:00+02:00", "2027-01-15T08:30:00Z"),
        ("2027-01-15T22:30:00-05:00", "2027-01-16T03:30:00Z"),
        ("2027-01-15T10:30:00+0000", "2027-01-15T10:30:00Z"),
        ("2027-01-15 10:30", "2027-01-15T10:30:00Z"),  # no offset: taken as UTC
        ("2027-01-15", "2027-01-15T00:00:00Z"),
        ("January 15, 2027", "2027-01-15T00:00:00Z"),
        ("tomorrow", "2026-11-26T00:00:00Z"),
        ("end of Q1 2027", "2027-03-31T00:00:00Z"),
    ],
)
def test_it_reads_datetimes(raw, expected):
    assert coerce(raw, T.DATETIME) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("tomorrow at 3pm", "is not a date"),
        ("2027-01-15T10:61:00Z", "is not a real date and time"),
        ("0001-01-01T00:00:00+05:00", "is not a real date and time"),
        ("soon", "is not a date"),
    ],
)
def test_it_refuses_datetimes_it_would_have_to_guess(raw, reason):
    assert reason in refusal(raw, T.DATETIME)


# --- enumerations --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("appointmentscheduled", "appointmentscheduled"),
        ("APPOINTMENTSCHEDULED", "appointmentscheduled"),
        ("Appointment scheduled", "appointmentscheduled"),
        ("  appointment   SCHEDULED ", "appointmentscheduled"),
        ("closedwon", "closedwon"),
        ("ClosedWon", "ClosedWon"),  # exact values win over case-insensitive ones
        ("closed won", "closedwon"),  # the label, whitespace collapsed
        ("Closed won (legacy)", "ClosedWon"),
        ("tier ONE", "1"),
        (1, "1"),
    ],
)
def test_it_reads_options_by_value_then_label(raw, expected):
    assert coerce(raw, T.ENUMERATION) == expected


def test_it_lists_the_allowed_labels_when_nothing_matches():
    assert refusal("Negotiation", T.ENUMERATION) == (
        "'Negotiation' is not an option of Deal stage (Appointment scheduled, Closed  Won, "
        "Closed won (legacy), Tier one)"
    )


def test_it_refuses_an_option_that_matches_two_values():
    assert "more than one option" in refusal("CLOSEDWON", T.ENUMERATION)


def test_it_refuses_options_for_a_property_without_any():
    empty = PropertySpec(name="stage", label="Stage", type=T.ENUMERATION)
    with pytest.raises(CoercionError, match="has no options"):
        coerce_value("won", empty, call_date=CALL)


# --- booleans ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (True, "true"),
        (False, "false"),
        ("true", "true"),
        ("FALSE", "false"),
        ("Yes", "true"),
        ("no", "false"),
        ("y", "true"),
        ("N", "false"),
        ("1", "true"),
        ("0", "false"),
        (1, "true"),
        (0, "false"),
        (" yes ", "true"),
    ],
)
def test_it_reads_yes_and_no(raw, expected):
    assert coerce(raw, T.BOOL) == expected


@pytest.mark.parametrize("raw", ["maybe", "yes please", "2", "t", 2, "on"])
def test_it_refuses_answers_that_are_not_yes_or_no(raw):
    assert "is not a yes/no answer" in refusal(raw, T.BOOL)


# --- text ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "kind", "expected"),
    [
        ("  Acme   Corp \n Ltd ", T.STRING, "Acme Corp Ltd"),
        ("Line one\r\nLine two", T.STRING, "Line one Line two"),
        ("\n Line one   \n\n  indented  \r\nend\t\n", T.TEXT, "Line one\n\nindented\nend"),
        ("one\n\n\n\ntwo", T.TEXT, "one\n\ntwo"),
        ("a\rb", T.TEXT, "a\nb"),
        (84000, T.STRING, "84000"),
        (84000.0, T.TEXT, "84000"),
        (0.25, T.STRING, "0.25"),
    ],
)
def test_it_tidies_text(raw, kind, expected):
    assert coerce(raw, kind) == expected


@pytest.mark.parametrize(
    ("raw", "string", "text"),
    [
        (
            "<script>alert('x')</script> send the <b>order form</b>",
            "send the order form",
            "send the order form",
        ),
        ("<style>p { color: red }</style>Budget <i>approved</i>", "Budget approved", None),
        ("Unclosed <script>alert(1) and everything after", "Unclosed", None),
        ("<SCRIPT type='text/javascript'>x()</SCRIPT>Legal review", "Legal review", None),
        (
            "Budget approved<br>Legal review<br/>next",
            "Budget approved Legal review next",
            "Budget approved\nLegal review\nnext",
        ),
        ("<p>Budget approved</p><p>Legal review</p>", None, "Budget approved\nLegal review"),
        ("<!-- a comment -->MSA <![CDATA[x]]>by Friday", "MSA by Friday", None),
        ("<img src=x onerror=alert(1)>Pricing", "Pricing", None),
        # Escaped markup is still markup once read: it never reaches the CRM either.
        ("&lt;script&gt;alert(1)&lt;/script&gt;Pricing", "Pricing", None),
        ("&amp;lt;b&amp;gt;Pricing", "Pricing", None),
        ("<<script>script>alert(1)<</script>/script>Pricing", "Pricing", None),
        ("R&amp;D &amp; legal &nbsp;review", "R&D & legal review", None),
        # Text that only looks a little like markup is kept.
        ("Tom & Jerry, AT&T", "Tom & Jerry, AT&T", None),
        ("we <3 it: 5 < 6 and 7 > 3", "we <3 it: 5 < 6 and 7 > 3", None),
        ("write to <jane@acme.example>", "write to jane@acme.example", None),
        # Control characters go; whitespace between words stays one space.
        ("Send\x00 the\x07 order\x1b form", "Send the order form", None),
        ("Send\u202e the form\ufeff", "Send the form\ufeff", None),
        ("a\x0bb\x0cc\u2028d", "a b c d", "a\nb\nc\nd"),
        ("tab\tand\u00a0nbsp", "tab and nbsp", None),
    ],
)
def test_it_writes_text_without_markup_or_control_characters(raw, string, text):
    assert coerce(raw, T.STRING) == (string if string is not None else " ".join(text.split()))
    assert coerce(raw, T.TEXT) == (text if text is not None else string)


class _Markup(HTMLParser):
    """Records every piece of markup an HTML parser finds."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.found.append(f"<{tag}>")

    def handle_endtag(self, tag):
        self.found.append(f"</{tag}>")

    def handle_comment(self, data):
        self.found.append("<!--")

    def handle_decl(self, decl):
        self.found.append("<!")

    def handle_pi(self, data):
        self.found.append("<?")


MARKUP_PIECES = ["<", ">", "/", "!--", "-->", "&", "amp;", "lt;", "gt;", "#60;", "script"]
MARKUP_PIECES += ["b", "br", "p", "x", " ", "\n", "\x00", "\u202e", "@", "=", "'"]


@pytest.mark.parametrize("kind", [T.STRING, T.TEXT])
@given(raw=st.lists(st.sampled_from(MARKUP_PIECES), max_size=30).map("".join))
@settings(max_examples=500, deadline=None)
def test_it_leaves_no_markup_whatever_the_text(kind, raw):
    try:
        once = coerce(raw, kind)
    except CoercionError:
        return
    if once is None:  # blank
        return
    markup = _Markup()
    markup.feed(once)
    markup.close()
    assert markup.found == []
    assert not {"\x00", "\u202e"} & set(once)
    assert coerce(once, kind) == once


def test_it_keeps_emoji_and_accents():
    assert coerce("Café ☕ 👩\u200d💻 demo", T.STRING) == "Café ☕ 👩\u200d💻 demo"


@pytest.mark.parametrize("kind", [T.STRING, T.TEXT])
def test_it_refuses_a_value_that_is_only_markup(kind):
    assert refusal("<script>alert(1)</script><br>", kind) == (
        "'<script>alert(1)</script><br>' holds no text once its markup is removed"
    )


@pytest.mark.parametrize("kind", [T.STRING, T.TEXT])
def test_it_refuses_text_longer_than_the_field_rather_than_cutting_it(kind):
    message = refusal("x" * 312, kind, max_length=255)
    assert message.endswith("is 312 characters; the field holds at most 255")
    assert coerce("x" * 255, kind, max_length=255) == "x" * 255


def test_it_measures_length_after_tidying():
    assert coerce("  a   b  ", T.STRING, max_length=3) == "a b"


@pytest.mark.parametrize("raw", [float("nan"), float("inf")])
def test_it_refuses_numbers_without_a_decimal_text(raw):
    with pytest.raises(CoercionError):
        coerce(raw, T.STRING)


# --- emails and phones ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Ada@Acme.example", "ada@acme.example"),
        ("  ada.lovelace+crm@mail.acme.co.uk ", "ada.lovelace+crm@mail.acme.co.uk"),
        ("<ada@acme.example>", "ada@acme.example"),
        ("mailto:ada@acme.example", "ada@acme.example"),
    ],
)
def test_it_reads_email_addresses(raw, expected):
    assert coerce(raw, T.EMAIL) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "ada",
        "ada@acme",
        "ada@@acme.example",
        "ada@acme..example",
        "ada@acme.example.",
        "ada lovelace@acme.example",
        "ada@acme.example, bob@acme.example",
        "Ada Lovelace <ada@acme.example>",
        42,
    ],
)
def test_it_refuses_things_that_are_not_email_addresses(raw):
    assert "is not an email address" in refusal(raw, T.EMAIL)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+1 (415) 555-0100", "+1 (415) 555-0100"),
        ("415.555.0100", "415.555.0100"),
        ("  +44   20 7946  0958 ", "+44 20 7946 0958"),
        ("415-555-0100 x123", "415-555-0100 x123"),
        ("415-555-0100 ext. 123", "415-555-0100 x123"),
        ("415-555-0100 Ext 123", "415-555-0100 x123"),
        ("415-555-0100x123", "415-555-0100 x123"),
        ("5550100", "5550100"),
        (4155550100, "4155550100"),
    ],
)
def test_it_reads_phone_numbers(raw, expected):
    assert coerce(raw, T.PHONE) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("555-010", "has 6 digits"),
        ("+1 415 555 0100 1234 5678", "has 19 digits"),
        ("1-800-FLOWERS", "is not a phone number"),
        ("415 555 0100 +1", "is not a phone number"),
        ("(415 555 0100", "is not a phone number"),
        ("call me maybe", "is not a phone number"),
    ],
)
def test_it_refuses_things_that_are_not_phone_numbers(raw, reason):
    assert reason in refusal(raw, T.PHONE)


# --- idempotence ---------------------------------------------------------------------------

SAMPLES = [
    "84,000",
    "$1.2M",
    "-0.50",
    "January 15th, 2027",
    "next Friday",
    "end of Q1",
    "2027-01-15T22:30:00-05:00",
    "closed won",
    "Appointment scheduled",
    "yes",
    "Ada@Acme.example",
    "+1 (415) 555-0100 ext. 9",
    "  several\n\n lines  \r\n of  text ",
]
ALPHABET = st.sampled_from(list("0123456789 ,.-+/:$%()kmqxTZ@aeijnorstuy\n\t\r\u00a0\x1c"))
RAW = st.one_of(
    st.sampled_from(SAMPLES),
    st.text(ALPHABET, max_size=30),
    st.text(max_size=30),
    st.integers(),
    st.floats(),
    st.decimals(),
    st.booleans(),
)


@pytest.mark.parametrize("kind", SETTABLE)
@given(raw=RAW)
@settings(max_examples=400, deadline=None)
def test_it_is_idempotent(kind, raw):
    try:
        once = coerce(raw, kind)
    except CoercionError:
        return
    assert once is None or coerce(once, kind) == once


# --- same value ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "a", "b", "same"),
    [
        (T.NUMBER, "84000", "84000.00", True),
        (T.NUMBER, "84000", "8.4E+4", True),
        (T.NUMBER, "84000", "84001", False),
        (T.NUMBER, "-0", "0", True),
        (T.NUMBER, "n/a", "n/a", True),  # unparsable values compare as text
        (T.NUMBER, "n/a", "84000", False),
        (T.DATE, "2027-01-15", "2027-01-15T00:00:00.000Z", True),
        (T.DATE, "2027-01-15", "2027-01-16", False),
        (T.DATETIME, "2027-01-15T10:00:00Z", "2027-01-15T10:00:00.000Z", True),
        (T.DATETIME, "2027-01-15T10:00:00Z", "2027-01-15T05:00:00-05:00", True),
        (T.DATETIME, "2027-01-15", "2027-01-15T00:00:00Z", True),
        (T.DATETIME, "2027-01-15T10:00:00Z", "2027-01-15T10:00:01Z", False),
        (T.ENUMERATION, "closedwon", "ClosedWon", True),
        (T.ENUMERATION, "closedwon", "closedlost", False),
        (T.EMAIL, "Ada@Acme.example", "ada@acme.example", True),
        (T.BOOL, "TRUE", "true", True),
        (T.BOOL, "true", "false", False),
        (T.STRING, "Acme  Corp", " Acme Corp", True),
        (T.STRING, "Acme", "acme", False),
        (T.TEXT, "one\ntwo", "one two", True),
        (T.PHONE, "+1 (415) 555-0100", "+14155550100", True),
        (T.PHONE, "415 555 0100", "415 555 0101", False),
        (T.STRING, None, "", True),
        (T.STRING, None, "  ", True),
        (T.NUMBER, None, "0", False),
        (T.NUMBER, "0", None, False),
    ],
)
def test_it_knows_when_two_wire_values_mean_the_same(kind, a, b, same):
    assert same_value(a, b, spec(kind)) is same
    assert same_value(b, a, spec(kind)) is same


# --- write modes ---------------------------------------------------------------------------

ALREADY_HELD = "the CRM already holds this value"
NOTHING_SAID = "no value in the transcript"


@pytest.mark.parametrize(
    ("mode", "kind", "current", "proposed", "planned"),
    [
        (WriteMode.OVERWRITE, T.NUMBER, "80000", "84000", Planned("84000")),
        (WriteMode.OVERWRITE, T.NUMBER, None, "84000", Planned("84000")),
        (WriteMode.OVERWRITE, T.NUMBER, "84000.00", "84000", Planned(None, ALREADY_HELD)),
        (WriteMode.OVERWRITE, T.STRING, "Acme", "ACME", Planned("ACME")),
        (WriteMode.FILL_EMPTY, T.STRING, None, "Acme", Planned("Acme")),
        (WriteMode.FILL_EMPTY, T.STRING, "  ", "Acme", Planned("Acme")),
        (
            WriteMode.FILL_EMPTY,
            T.STRING,
            "Globex",
            "Acme",
            Planned(None, "the field already has a value (fill-empty)"),
        ),
        (WriteMode.APPEND, T.TEXT, "Budget approved.", "Legal review next.", None),
        (WriteMode.APPEND, T.TEXT, None, "Legal review next.", Planned("Legal review next.")),
        (WriteMode.APPEND, T.TEXT, "Budget approved.\n", "Budget", None),
        (WriteMode.APPEND, T.STRING, "Pricing", "Security", Planned("Pricing | Security")),
        (WriteMode.APPEND, T.STRING, "Pricing | ", "Security", Planned("Pricing | Security")),
        (
            WriteMode.APPEND,
            T.TEXT,
            "We track it all in spreadsheets",
            "Our main pain is reporting",
            Planned("We track it all in spreadsheets\nOur main pain is reporting"),
        ),
        (WriteMode.APPEND, T.NUMBER, "80000", "84000", Planned("84000")),
        (WriteMode.APPEND, T.DATE, "2027-01-15", "2027-01-15", Planned(None, ALREADY_HELD)),
        (WriteMode.APPEND_IF_DIFFERENT, T.STRING, "Pricing", "Security", None),
        (
            WriteMode.APPEND_IF_DIFFERENT,
            T.TEXT,
            "Budget approved.\nLegal   REVIEW next week.",
            "legal review",
            Planned(None, "the field already contains this text"),
        ),
        (WriteMode.APPEND_IF_DIFFERENT, T.TEXT, "", "Legal review", Planned("Legal review")),
        (WriteMode.APPEND_IF_DIFFERENT, T.ENUMERATION, "a", "b", Planned("b")),
        ("append", T.STRING, "Pricing", "Security", Planned("Pricing | Security")),
        (
            "fill_empty",
            T.NUMBER,
            "1",
            "2",
            Planned(None, "the field already has a value (fill-empty)"),
        ),
    ],
)
def test_it_plans_each_write_mode(mode, kind, current, proposed, planned):
    appended = {
        T.TEXT: f"{(current or '').rstrip()}\n{proposed}",
        T.STRING: f"{current} | {proposed}",
    }
    expected = planned or Planned(appended[kind])
    assert apply_write_mode(mode, current, proposed, spec(kind)) == expected


@pytest.mark.parametrize("mode", list(WriteMode))
@pytest.mark.parametrize("proposed", [None, "", "  "])
def test_it_never_clears_a_field_for_want_of_a_value(mode, proposed):
    planned = apply_write_mode(mode, "Acme", proposed, spec(T.STRING))
    assert planned.skip == NOTHING_SAID


def test_it_skips_an_append_that_would_overflow_the_field():
    planned = apply_write_mode(WriteMode.APPEND, "x" * 251, "more", spec(T.TEXT), max_length=255)
    assert planned == Planned(
        None, "appending would make the value 256 characters; the field holds at most 255"
    )


def test_it_appends_up_to_exactly_the_field_length():
    planned = apply_write_mode(WriteMode.APPEND, "x" * 250, "more", spec(T.TEXT), max_length=255)
    assert planned == Planned("x" * 250 + "\nmore")


def test_it_skips_a_value_too_long_for_the_field():
    planned = apply_write_mode(WriteMode.OVERWRITE, None, "x" * 300, spec(T.STRING), max_length=255)
    assert planned.skip == "the value is 300 characters; the field holds at most 255"


def test_it_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="replace"):
        apply_write_mode("replace", None, "x", spec(T.STRING))

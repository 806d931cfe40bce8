"""text.make_safe / safe_error / valid_text: nothing that can drive or deceive a terminal survives.

Property tests over any text hypothesis can build (surrogates included), plus the Unicode
database itself: every invisible format character of the running Python's Unicode version is
covered, so a newer Python cannot quietly let a new one through.
"""

from __future__ import annotations

import sys
import unicodedata

from hypothesis import example, given
from hypothesis import strategies as st

from chatrepl.text import make_safe, safe_error, valid_text

BIDI = [*map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))]
BIDI += ["\u200e", "\u200f", "\u061c"]
KEPT = {"\n", "\t", "\u200c", "\u200d"}  # newline, tab, zero-width (non-)joiner


def forbidden(char: str) -> bool:
    """A character that must never reach the terminal as itself."""
    if char in KEPT:
        return False
    code = ord(char)
    return (
        code < 0x20
        or 0x7F <= code <= 0x9F
        or 0xD800 <= code <= 0xDFFF
        or unicodedata.category(char) in ("Cf", "Zl", "Zp", "Cs")
    )


#: Any text, with the dangerous characters made likely rather than rare.
DANGEROUS = st.sampled_from(
    ["\x1b", "\x9b", "\x07", "\r", "\x00", "\x7f", "\ud800", "\udce9", "\ufeff", "\u2028"] + BIDI
)
TEXT = st.lists(st.one_of(st.characters(), DANGEROUS, st.text(max_size=5))).map("".join)


@given(TEXT)
@example("\x1b[2J\x1b]0;title\x07\u202eevil\u202c\ud800")
def test_no_control_bidi_or_surrogate_survives(text):
    safe = make_safe(text)
    assert not [c for c in safe if forbidden(c)]
    safe.encode("utf-8")  # always valid UTF-8
    # What is harmless is left exactly as it was.
    if not any(forbidden(c) for c in text):
        assert safe == text


@given(TEXT)
def test_an_error_is_one_clean_short_line(text):
    line = safe_error(text, width=80)
    assert "\n" not in line and "\t" not in line and len(line) <= 80
    assert not [c for c in line if forbidden(c)]


@given(TEXT)
def test_valid_text_only_replaces_surrogates(text):
    expected = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
    assert valid_text(text) == expected
    expected.encode("utf-8")


def test_every_format_character_of_this_unicode_version_is_caught():
    missed = [
        f"U+{code:04X}"
        for code in range(sys.maxunicode + 1)
        if forbidden(chr(code)) and make_safe(chr(code)) == chr(code)
    ]
    assert missed == []


def test_what_is_shown_instead():
    assert make_safe("\x1b[2J") == "^[[2J"
    assert make_safe("a\rb\x7f") == "a^Mb^?"
    assert make_safe("\x9b2J") == "\\x9b2J"
    assert make_safe("abc\u202edcba") == "abc\\u202edcba"
    assert make_safe("\U000e0041") == "\\U000e0041"  # an invisible "tag" letter
    assert make_safe("caf\udce9") == "caf\ufffd"
    assert make_safe("👨\u200d👩\u200d👧 and \u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645") == (
        "👨\u200d👩\u200d👧 and \u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
    )


def test_not_a_string_is_shown_as_text_not_a_crash():
    """A server that sends a number or a list where a string belongs."""
    assert make_safe(42) == "42"
    assert make_safe(["a", "b"]) == "['a', 'b']"
    assert make_safe(None) == ""
    assert "\x1b" not in safe_error({"message": "\x1b[2J"})
    assert safe_error("one\ntwo\x1b]0;t\x07") == "one two^[]0;t^G"

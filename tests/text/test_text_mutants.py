"""Exact forms of text.make_safe and text.shorten at their edges: mutants of text.py that the
property tests let through (benchmarks/mutation/RESULTS.md)."""

from __future__ import annotations

import pytest

from chatrepl.text import make_safe, shorten


@pytest.mark.parametrize("code", [c for c in range(0x20) if chr(c) not in "\t\n"])
def test_every_c0_control_is_shown_in_caret_notation(code: int) -> None:
    assert make_safe(chr(code)) == "^" + chr(code + 0x40)  # ESC is ^[, 0x1c is ^\


@pytest.mark.parametrize(
    ("char", "shown"),
    [
        ("\x7f", "^?"),
        ("\x80", "\\x80"),
        ("\x9f", "\\x9f"),
        ("\u00ad", "\\xad"),
        ("\ud800", "\ufffd"),  # the first and the last surrogate
        ("\udfff", "\ufffd"),
        ("\ufeff", "\\ufeff"),
        ("\U000e0001", "\\U000e0001"),
        ("\U000e007f", "\\U000e007f"),
    ],
)
def test_the_edges_of_each_range(char: str, shown: str) -> None:
    assert make_safe(char) == shown


@pytest.mark.parametrize(
    ("text", "width", "short"),
    [
        ("abc", 3, "abc"),  # exactly the width: whole
        ("abcd", 3, "ab…"),
        ("abcdef", 4, "abc…"),
        ("abc", 1, "…"),
        ("a  b\n c", 10, "a b c"),
    ],
)
def test_shorten_at_the_width(text: str, width: int, short: str) -> None:
    assert shorten(text, width) == short

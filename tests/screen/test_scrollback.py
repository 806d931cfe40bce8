"""The tests' fast screen (tests/scrollback.py) reads exactly what pyte's HistoryScreen reads."""

from __future__ import annotations

import io

import pyte
import pytest
from rich.console import Console
from scrollback import ScrollbackScreen
from test_render import FakeClock

from chatrepl.screen.render import StreamRenderer

COLS, ROWS = 40, 8


def streamed_answer() -> str:
    """What the renderer writes for a long answer streamed in small pieces (many redraws)."""
    text = "".join(f"{'  ' * (i % 9)}- item {i} " + "word " * (i % 13) + "\n" for i in range(60))
    text += "> a quote\n> " + "deep " * 40 + "\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    out = io.StringIO()
    console = Console(file=out, width=COLS, height=ROWS, force_terminal=True, color_system=None)
    with StreamRenderer(console, clock=FakeClock(0.02)) as renderer:
        for i in range(0, len(text), 5):
            renderer.feed(text[i : i + 5])
    return out.getvalue()


LINES = "".join(f"line {i}\n" for i in range(30))
SEQUENCES = {
    "a streamed answer": streamed_answer(),
    "lines scrolling off": LINES,
    "a scroll region": LINES[:80] + "\x1b[3;6r\x1b[6;1H" + "in region\n" * 5 + "\x1b[r" + LINES,
    "reverse index at the top": LINES + "\x1b[1;1H" + "\x1bM" * 3 + "up there",
    "saved lines erased": LINES + "\x1b[3J" + LINES[:40],
    "the screen erased": LINES + "\x1b[2J\x1b[H" + LINES[:60],
    "a reset": LINES + "\x1bc" + LINES[:50],
    "wide and combining characters": "".join(f"界{i} e\u0301 🙂\n" for i in range(20)),
    "lines longer than the screen": "".join(f"{i} " + "x" * (i * 7) + "\n" for i in range(30)),
    "no autowrap": "\x1b[?7l" + "".join(f"{i} " + "y" * 50 + "\n" for i in range(12)),
    "insert mode": LINES[:30] + "\x1b[1;3H\x1b[4hINSERTED\x1b[4l and replaced" + LINES[:90],
    "line drawing characters": "\x1b(0lqqk\nx  x\nmqqj\x1b(B plain\n" + LINES,
    "colours between the words": "".join(f"\x1b[1;3{i % 8}mword{i}\x1b[0m " for i in range(200)),
}


def read(screen: pyte.Screen, raw: str) -> tuple[list[str], list[str], list, tuple[int, int]]:
    """The history's text, the screen's text, every cell (character and attributes) of both,
    and the cursor."""
    screen.set_mode(pyte.modes.LNM)
    pyte.Stream(screen).feed(raw)
    top = ["".join(line[x].data for x in range(COLS)) for line in screen.history.top]
    rows = [*screen.history.top, *(screen.buffer[y] for y in range(ROWS))]
    cells = [[line[x] for x in range(COLS)] for line in rows]
    return top, screen.display, cells, (screen.cursor.x, screen.cursor.y)


@pytest.mark.parametrize("name", SEQUENCES)
def test_the_fast_screen_shows_what_historyscreen_shows(name: str) -> None:
    raw = SEQUENCES[name]
    expected = read(pyte.HistoryScreen(COLS, ROWS, history=1000), raw)
    assert read(ScrollbackScreen(COLS, ROWS, history=1000), raw) == expected
    assert expected[0] or name in ("saved lines erased", "a reset")  # the history was used


def test_history_keeps_the_newest_lines_up_to_its_size() -> None:
    raw = LINES
    expected = read(pyte.HistoryScreen(COLS, ROWS, history=5), raw)
    assert read(ScrollbackScreen(COLS, ROWS, history=5), raw) == expected
    assert len(expected[0]) == 5

"""The screen shows what was saved: no text lost to cropping, to Ctrl-C, or to a huge answer.

Each test feeds the real StreamRenderer on a rich Console writing to a buffer (a terminal, as
far as rich knows) and reads what a terminal would show through pyte; clocks are injected,
so nothing depends on the machine's speed.
"""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console
from test_render import FakeClock, screen_lines

from chatrepl.screen import render
from chatrepl.screen.render import SYNC_BEGIN, SYNC_END, StreamRenderer, render_markdown

WIDTH, HEIGHT = 80, 24  # test_render's screen_lines reads a screen of this size
WORD = re.compile(r"\w+")


@pytest.fixture(autouse=True)
def _terminal_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)


def console(out: io.StringIO, **kwargs: object) -> Console:
    return Console(file=out, width=WIDTH, height=HEIGHT, force_terminal=True,
                   color_system=None, **kwargs)  # fmt: skip


def words_shown(raw: str) -> list[str]:
    return WORD.findall("\n".join(screen_lines(raw)))


HOSTILE_LAYOUTS = {
    "200 nested quotes": "".join("> " * i + f"level{i}\n" for i in range(1, 201)),
    "one line 200 quotes deep": "> " * 200 + "deepword here",
    "200 nested lists": "".join("  " * i + f"- item{i}\n" for i in range(200)),
    "100 nested numbered lists": "".join("   " * i + f"1. item{i}\n" for i in range(100)),
    "200 columns": "|" + "|".join(f"h{i}" for i in range(200)) + "|\n|" + "---|" * 200
    + "\n|" + "|".join(f"c{i}" for i in range(200)) + "|\n",
    "30 columns": "|" + "|".join(f"head{i}" for i in range(30)) + "|\n|" + "---|" * 30
    + "\n|" + "|".join(f"cell{i}" for i in range(30)) + "|\n",
    "cells of 10k characters": "| a | b |\n|---|---|\n| " + "x" * 10_000 + " | "
    + "word " * 2000 + "|\n",
}  # fmt: skip


@pytest.mark.parametrize("name", HOSTILE_LAYOUTS)
def test_no_text_vanishes_however_deep_or_wide(name):
    text = HOSTILE_LAYOUTS[name]
    expected = "".join(WORD.findall(text))
    for streamed in (False, True):
        out = io.StringIO()
        if streamed:
            with StreamRenderer(console(out), clock=FakeClock(0.02)) as renderer:
                for i in range(0, len(text), 7):
                    renderer.feed(text[i : i + 7])
        else:
            render_markdown(console(out), text)
        # Every word character arrives, in order (a long word may be folded over lines).
        assert "".join(words_shown(out.getvalue())) == expected, (name, streamed)


def test_ordinary_markdown_is_still_rendered_as_markdown():
    out = io.StringIO()
    render_markdown(
        console(out), "# Title\n\n> quoted **bold**\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    )
    shown = "\n".join(screen_lines(out.getvalue()))
    assert "▌ quoted bold" in shown and "**" not in shown and "|---|" not in shown


class InterruptedOnce(io.StringIO):
    """A terminal where Ctrl-C is pressed during the first write after ``arm()``."""

    armed = False

    def write(self, text: str) -> int:
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt
        return super().write(text)


def test_ctrl_c_during_the_final_drawing_shows_everything_and_says_so():
    paragraphs = [f"Paragraph {i} says word{i}." for i in range(300)]
    answer = "\n\n".join(paragraphs) + "\n"
    out = InterruptedOnce()
    renderer = StreamRenderer(console(out), clock=FakeClock(0.0))  # never redraws while fed
    renderer.start()
    for i in range(0, len(answer), 50):
        renderer.feed(answer[i : i + 50])
    out.armed = True
    with pytest.raises(KeyboardInterrupt):
        renderer.finish()
    assert renderer.interrupted and renderer.received == len(answer)
    shown = "\n".join(screen_lines(out.getvalue()))
    missing = [p for p in paragraphs if p not in shown]
    assert missing == [] or missing == paragraphs[:1]  # the write that was cut short
    assert shown.rstrip().endswith("interrupted")


def test_a_finish_not_interrupted_is_quiet():
    out = io.StringIO()
    renderer = StreamRenderer(console(out), clock=FakeClock(0.0))
    renderer.feed("all well\n")
    renderer.finish()
    assert not renderer.interrupted and "all well" in out.getvalue()


def test_each_redraw_is_one_synchronized_update_on_a_terminal():
    out = io.StringIO()
    text = "".join(f"Line {i} of a paragraph.\n\n" for i in range(40))
    with StreamRenderer(console(out, force_interactive=True), clock=FakeClock(1.0)) as renderer:
        for i in range(0, len(text), 10):
            renderer.feed(text[i : i + 10])
    raw = out.getvalue()
    assert renderer.refreshes > 10
    assert raw.count(SYNC_BEGIN) == raw.count(SYNC_END) == renderer.refreshes
    pairs = re.findall(re.escape(SYNC_BEGIN) + "(.*?)" + re.escape(SYNC_END), raw, re.DOTALL)
    assert len(pairs) == renderer.refreshes and all(pairs)  # each wraps a whole redraw


def test_no_synchronized_output_on_a_pipe():
    out = io.StringIO()
    with StreamRenderer(Console(file=out), clock=FakeClock(1.0)) as renderer:
        renderer.feed("text\n\nmore\n")
    assert SYNC_BEGIN not in out.getvalue()


@pytest.mark.parametrize("fenced", [True, False])
def test_a_block_too_long_to_redraw_is_printed_in_slices_and_whole(fenced):
    """A 100 KB code listing (or one paragraph): the live tail stays bounded, no line lost."""
    body = "".join(f"value_{i} = compute({i})\n" for i in range(4_000))
    text = f"```python\n{body}```\n" if fenced else body.replace("\n", " ") + "\n"
    out = io.StringIO()
    longest = 0
    with StreamRenderer(console(out), clock=FakeClock(1.0)) as renderer:
        for i in range(0, len(text), 4096):
            renderer.feed(text[i : i + 4096])
            longest = max(longest, len(renderer._tail))
    assert longest <= 3 * render._BATCH
    shown = "\n".join(screen_lines(out.getvalue()))
    assert "".join(WORD.findall(shown)) == "".join(WORD.findall(body))
    if fenced:  # no padding row between two slices: the listing reads on, line after line
        assert not re.search(r"compute\(\d+\)\s*\n\s*\n\s*value_", shown)


def test_an_interruption_keeps_the_count_of_what_was_fed():
    renderer = StreamRenderer(console(io.StringIO()), clock=FakeClock(0.0))
    for piece in ("ab", "cd", "e"):
        renderer.feed(piece)
    assert renderer.received == 5
    renderer.finish()

"""Narrowing the terminal while an answer streams leaves no stale copy of the live region.

The real chatrepl streams a slow answer from the fake server. Mid-answer, while the unfinished
block (a long paragraph, a wide table, a code block) is in the live region, the terminal is
narrowed. Two terminals:

- tmux, which re-wraps (reflows) every line wider than the new width onto several rows, as
  GNOME Terminal, kitty, iTerm2, WezTerm, Alacritty, Windows Terminal and Konsole do: the old
  frame then takes more rows than it was drawn with. The whole scrollback afterwards
  (``capture-pane -J``, wrapped rows joined) must hold every word of the answer exactly once and
  in order: a partly erased stale frame would show some of them twice. chatrepl runs there
  both knowing it is in tmux (the block as drawn is kept) and not (the block is erased from its
  top and redrawn).
- pyte (tests/terminal.py), which clips lines instead, as xterm and the Linux console do: the
  old frame keeps its rows, and no finished line above it may be erased by the narrowing.

Then the pieces: how a kept block goes on (a paragraph, a fence, a table), and the frame's row
count, trimming and tmux detection.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyte
import pytest
from conftest import child_env
from fakeserver import FakeLLMServer, Reply
from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from terminal import Terminal
from test_render import FakeClock

from chatrepl.screen.live_frame import keeps_on_narrow, rows_after_rewrap, trim
from chatrepl.screen.render import StreamRenderer

pytestmark = pytest.mark.timeout(120)

WIDE, NARROW, ROWS = 100, 60, 40
READY = r"^> *$(?=[\s\S]*openai:test │)"  # an empty input line above the bottom toolbar


def words(prefix: str, count: int) -> list[str]:
    """``count`` distinct words: what the checks count on screen."""
    return [f"{prefix}{i:03d}" for i in range(count)]


INTRO = words("h", 30)  # a finished paragraph above the live region
PARAGRAPH = words("p", 160)
ROWS_OF_TABLE = [words(f"t{r:02d}c", 10) for r in range(12)]  # five columns, two words each
CODE = [" ".join(words(f"k{r:02d}w", 11)) for r in range(12)]
OUTRO = words("z", 5)
EARLIER = "\n\n".join(f"Earlier answer, part {i}." for i in range(20))  # fills the screen


def answer(kind: str) -> tuple[str, list[str], str]:
    """An answer whose unfinished block is of ``kind``; every word in order; the word that,
    once shown, means the block is under way (the moment to narrow)."""
    intro = " ".join(INTRO)
    if kind == "paragraph":
        block, body = " ".join(PARAGRAPH), PARAGRAPH
    elif kind == "table":
        head = "| " + " | ".join(f"column {c}" for c in range(5)) + " |"
        rule = "|" + "---|" * 5
        cells = [[f"{row[c]} {row[c + 1]}" for c in range(0, 10, 2)] for row in ROWS_OF_TABLE]
        lines = ["| " + " | ".join(cell) + " |" for cell in cells]
        block = "\n".join([head, rule, *lines])
        body = [w for row in ROWS_OF_TABLE for w in row]
    else:
        block = "```\n" + "\n".join(CODE) + "\n```"
        body = " ".join(CODE).split()
    text = f"{intro}\n\n{block}\n\n{' '.join(OUTRO)}"
    return text, [*INTRO, *body, *OUTRO], body[len(body) // 3]


# --- tmux --------------------------------------------------------------------------------------


class Tmux:
    """One tmux server of its own (a private socket) running one command in a window."""

    def __init__(self, socket: Path, argv: list[str], env: dict[str, str], cwd: str) -> None:
        self.base = ["tmux", "-S", str(socket), "-f", "/dev/null"]
        command = " ".join(_quote(a) for a in argv)
        subprocess.run(
            [*self.base, "new-session", "-d", "-x", str(WIDE), "-y", str(ROWS), command],
            env=env,
            cwd=cwd,
            check=True,
        )
        self.tmux("set-option", "-g", "history-limit", "10000")
        self.tmux("set-option", "-g", "status", "off")  # the pane is the whole window

    def tmux(self, *args: str) -> str:
        done = subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=10)
        return done.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p")

    def scrollback(self) -> str:
        """Everything the pane holds, history and screen, wrapped rows joined."""
        return self.tmux("capture-pane", "-p", "-J", "-S", "-", "-E", "-")

    def wait_for(self, pattern: str, timeout: float = 20.0, where: str = "screen") -> None:
        deadline = time.monotonic() + timeout
        while True:
            text = self.scrollback() if where == "scrollback" else self.screen()
            if re.search(pattern, text, re.MULTILINE):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} did not show in {timeout} s:\n{text}")
            time.sleep(0.05)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-l", text)
        time.sleep(0.05)  # let prompt-toolkit take the text before the Enter
        self.tmux("send-keys", "Enter")

    def close(self) -> None:
        self.tmux("kill-server")


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\\''") + "'"


@contextmanager
def tmux_chatrepl(home: Path, tmp: Path, told: bool) -> Iterator[Tmux]:
    """chatrepl in a tmux pane; ``told=False`` hides tmux from it (no ``TMUX``, an xterm
    ``TERM``), as a terminal it cannot recognise."""
    env = child_env(PYTHONIOENCODING="utf-8")
    env.pop("TMUX", None)  # a server of its own, even when the tests run inside tmux
    argv = [sys.executable, "-m", "chatrepl", "-m", "openai:test"]
    if not told:  # tmux sets both in the pane
        argv = ["env", "-u", "TMUX", "TERM=xterm-256color", *argv]
    # The command runs with the tmux server's environment, which is the one it started with.
    pane = Tmux(tmp / "tmux.sock", argv, env, cwd=str(home.parent))
    try:
        pane.wait_for(READY)
        yield pane
    finally:
        pane.close()


def not_once(shown: str, expected: list[str]) -> dict[str, int]:
    """The expected words that do not show exactly once, with how often they show."""
    tally = Counter(re.findall(r"\w+", shown))
    return {w: tally[w] for w in expected if tally[w] != 1}


def in_order(shown: str, expected: list[str]) -> list[str]:
    """The expected words as they show, in the order they show."""
    wanted = set(expected)
    return [w for w in re.findall(r"\w+", shown) if w in wanted]


# .ci/run installs tmux with apt-get where it is missing; only a machine without both skips.
needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not on this machine")


@needs_tmux
@pytest.mark.parametrize("kind", ["paragraph", "table", "code"])
@pytest.mark.parametrize("told", [True, False], ids=["tmux-known", "tmux-unknown"])
def test_narrowing_a_reflowing_terminal_mid_answer(
    told: bool, kind: str, home: Path, openai_env: FakeLLMServer, tmp_path: Path
) -> None:
    """Known as tmux, chatrepl keeps the live block as drawn and goes on below it: tested on an
    empty screen, where tmux moves the top rows of the re-wrapped block into its history. Not
    known, the live block is erased from its top and redrawn: tested on a full screen (an empty
    one is the case tmux puts out of reach, see chatrepl/screen/live_frame.py)."""
    text, expected, midway = answer(kind)
    openai_env.push(*([] if told else [Reply(EARLIER)]), Reply(text, delay=0.02))
    with tmux_chatrepl(home, tmp_path, told) as pane:
        if not told:
            pane.type("Fill the screen")
            pane.wait_for(r"Earlier answer, part 19\.")
            pane.wait_for(READY)
        pane.type("Tell me something long")
        pane.wait_for(rf"\b{midway}\b")
        pane.tmux("resize-window", "-x", str(NARROW), "-y", str(ROWS))
        block_end = expected[-len(OUTRO) - 1]
        assert block_end not in pane.scrollback(), "the block ended before the narrowing"
        pane.wait_for(rf"\b{OUTRO[-1]}\b", where="scrollback")
        pane.wait_for(READY)  # the answer is finished: the prompt is back
        shown = pane.scrollback()
    assert not_once(shown, expected) == {}, f"words shown other than once:\n{shown}"
    if kind != "table":  # a table narrowed wraps its cells: read across, the words interleave
        assert in_order(shown, expected) == expected, shown


# --- a terminal that clips -------------------------------------------------------------------

FINISHED = [f"Finished line {i:02d}." for i in range(12)]  # short: no clipping can touch them


def test_narrowing_a_clipping_terminal_mid_answer_erases_no_finished_line(
    home: Path, openai_env: FakeLLMServer
) -> None:
    text = "\n\n".join([*FINISHED, " ".join(PARAGRAPH), " ".join(OUTRO)])
    openai_env.push(Reply(EARLIER), Reply(text, delay=0.02))
    env = child_env(TERM="xterm-256color", PYTHONIOENCODING="utf-8")
    env.pop("TMUX", None)  # pyte is the terminal, even when the tests run inside tmux
    argv = [sys.executable, "-m", "chatrepl", "-m", "openai:test"]
    with Terminal(argv, env, rows=ROWS, cols=WIDE, cwd=str(home.parent)) as t:
        t.wait_prompt()
        t.line("Fill the screen")
        t.wait_for(r"Earlier answer, part 19\.")
        t.wait_prompt()
        t.line("Tell me something long")
        t.wait_for(rf"\b{PARAGRAPH[80]}\b")
        # pyte clips the rows it has to the new width and keeps the cursor where it is, as
        # xterm does; then the program learns the new size (SIGWINCH).
        t.pump(0)
        assert PARAGRAPH[-1] not in t.scrollback(), "the block ended before the narrowing"
        t.screen.resize(ROWS, NARROW)
        t.child.setwinsize(ROWS, NARROW)
        t.wait_for(rf"\b{OUTRO[-1]}\b")
        t.wait_for(r"^> *$")
        shown = t.scrollback()
    streamed = [*PARAGRAPH, *OUTRO]
    assert not_once(shown, streamed) == {}, shown
    assert in_order(shown, streamed) == streamed, shown
    for line in FINISHED:  # finished lines just above the live region: still there, once
        assert shown.count(line) == 1, shown
    assert [f"Earlier answer, part {i}." in shown for i in range(20)] == [True] * 20, shown


# --- the pieces --------------------------------------------------------------------------------


def test_tmux_is_told_apart_by_its_variable_or_its_terminal_name():
    assert keeps_on_narrow({"TMUX": "/tmp/tmux-0/default,1,0", "TERM": "screen"})
    assert keeps_on_narrow({"TERM": "tmux-256color"})  # over ssh, without $TMUX
    for environ in ({"TERM": "xterm-256color"}, {"TERM": "screen"}, {"TMUX": ""}, {}):
        assert not keeps_on_narrow(environ)


def test_rows_after_rewrap_count_cells_and_push_a_wide_character_to_the_next_row():
    assert rows_after_rewrap([], 10) == 1  # an empty line still takes its row
    assert rows_after_rewrap([Segment("x" * 10)], 10) == 1
    assert rows_after_rewrap([Segment("x" * 10), Segment("y")], 10) == 2
    assert rows_after_rewrap([Segment("x" * 25)], 10) == 3
    assert rows_after_rewrap([Segment("x" * 9 + "界")], 10) == 2  # 9 cells, then 2 do not fit
    assert rows_after_rewrap([Segment("界" * 5)], 10) == 1
    assert rows_after_rewrap([Segment("x" * 8), Segment("\x1b[2K", None, [(1,)])], 8) == 1


def test_trim_drops_padding_spaces_and_keeps_coloured_ones():
    padded = [Segment("word", Style(bold=True)), Segment("   "), Segment("  ", Style(bold=True))]
    assert trim(padded) == [Segment("word", Style(bold=True))]
    assert trim([Segment("a b   ")]) == [Segment("a b")]
    code = [Segment(" x = 1", Style(bgcolor="black")), Segment("    ", Style(bgcolor="black"))]
    assert trim(code) == code  # the code block's background reaches its edge
    assert trim([Segment("    ")]) == []


def kept_after_narrowing(before: str, after: str) -> list[str]:
    """The lines a 100-column screen holds after ``before`` was streamed, the console narrowed
    to 60 columns (the block as drawn kept, as under tmux), then ``after`` and the end.

    The screen here neither re-wraps nor clips: what was drawn at 100 columns stays as drawn.
    """
    out = io.StringIO()
    console = Console(file=out, width=WIDE, height=ROWS, force_terminal=True, color_system=None)
    renderer = StreamRenderer(console, clock=FakeClock(1.0), keep_on_narrow=True, sync=False)
    renderer.feed(before)  # the clock moves a second per reading: every piece is drawn
    console.size = (NARROW, ROWS)
    renderer.feed(after)
    renderer.finish()
    screen = pyte.HistoryScreen(WIDE, ROWS, history=1000)
    screen.set_mode(pyte.modes.LNM)  # "\n" also returns the carriage, as a tty does
    pyte.Stream(screen).feed(out.getvalue())
    history = ["".join(line[x].data for x in range(WIDE)) for line in screen.history.top]
    lines = [line.rstrip() for line in history + screen.display]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def test_a_kept_paragraph_goes_on_below_itself_and_a_new_one_after_a_blank_line():
    assert kept_after_narrowing("one two three", " four five\n\nnext one") == [
        "one two three",
        "four five",
        "",
        "next one",
    ]
    # The paragraph had ended where it was kept: the next one is apart, as always.
    assert kept_after_narrowing("one two three", "\n\nnext one") == [
        "one two three",
        "",
        "next one",
    ]


def test_a_kept_code_block_is_reopened_and_a_closed_one_is_not():
    lines = kept_after_narrowing("```python\nx = 1\n", "y = 2\n```\n\nafter words")
    # Rows of code are inside the block's padding (one column); the paragraph is at the margin.
    assert lines.count(" x = 1") == lines.count(" y = 2") == 1
    assert lines.index(" x = 1") < lines.index(" y = 2") < lines.index("after words")

    lines = kept_after_narrowing("```\nx = 1\n```\n", "\nafter words")
    assert lines.count("after words") == 1  # not code in a block reopened for nothing
    assert lines[lines.index("after words") - 1] == ""


def test_a_kept_table_goes_on_under_its_header_again():
    before = "| name | value |\n|---|---|\n| alpha | one |\n"
    lines = kept_after_narrowing(before, "| beta | two |\n\nend")
    shown = re.findall(r"\w+", "\n".join(lines))
    assert shown.count("name") == shown.count("value") == 2
    assert [shown.count(w) for w in ("alpha", "one", "beta", "two", "end")] == [1] * 5
    assert shown.index("alpha") < shown.index("beta") < shown.index("end")


def test_a_kept_block_that_ends_there_is_not_followed_by_its_header_alone():
    table = "| name | value |\n|---|---|\n| alpha | one |\n"
    for after in ("", "\nend", "\n"):
        shown = re.findall(r"\w+", "\n".join(kept_after_narrowing(table, after)))
        assert shown.count("name") == 1, (after, shown)
    code = kept_after_narrowing("```python\nx = 1\n", "```\n\nend")
    assert code[code.index(" x = 1") :] == [" x = 1", "", "", "end"]  # one padding row, a gap

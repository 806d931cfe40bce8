"""The streaming Markdown display: an answer rendered while it arrives, at linear cost.

Each finished top-level Markdown block (paragraph, heading, list, fenced code, quote, table,
rule) is printed once, permanently, to the scrollback. Only the unfinished last block lives in
a rich ``Live`` region, cropped to the bottom of the screen, and redrawn at most ~15 times a
second by ``feed`` itself, on an injectable clock (no refresh thread). Only the uncommitted
tail is ever parsed again, so the cost grows with the answer, not with its square.

A block is finished once the next block has started on a complete line, judged on complete
lines only: before that, ``para`` followed by ``#`` could still be one paragraph (``#hashtag``),
and a fence runs until its closing fence.

All model text goes through :func:`chatrepl.text.make_safe` first: an escape sequence from a
model is shown as ``^[[2J`` and never reaches the terminal. Raw HTML is shown as text, and
links as ``text (url)``, so what the model wrote is what the user sees.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from functools import cache
from types import TracebackType
from typing import TYPE_CHECKING

from rich.live import Live
from rich.markdown import Markdown
from rich.segment import Segment, SegmentLines
from rich.spinner import Spinner
from rich.style import Style
from rich.text import Text

from chatrepl.text import make_safe

from .live_frame import Frame, Raw, keeps_on_narrow

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from rich.console import Console, ConsoleOptions, RenderResult

__all__ = ["DEFAULT_CODE_THEME", "StreamRenderer", "render_markdown"]

DEFAULT_CODE_THEME = "monokai"  # a dark background of its own: readable on dark and light
REFRESH_INTERVAL = 1 / 15  # seconds between two redraws of the live region
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")  # a fenced code block opens (at the tail's start)
_BLOCK_START = re.compile(r" {0,3}([#>*+=|`~_<-]|\d{1,9}[.)])")  # a line that may open a block
# Redraws wait at least this many times their own cost, so the display stays under ~5% of a
# core even when a redraw is expensive (a screenful of highlighted code costs ~10 ms).
_BUSY_RATIO = 20
_LONGEST_WAIT = 0.5  # but redraw at least twice a second (a first redraw also pays for imports)
_LOOKBEHIND = 256  # characters before the new text in which a line may have ended
# Text is taken in, parsed and printed in pieces of about this many characters, and a block that
# grows past twice this is printed in slices: memory and each step's cost stay bounded however
# long the answer (a 20 MB answer is not rendered in one go).
_BATCH = 32_768
_WORD = re.compile(r"\w")
# Not shown as written: fence info strings, entities, ordered list numbers (rich renumbers).
_NOT_SHOWN = re.compile(r"^ {0,3}(?:`{3,}|~{3,})(.*)$|&#?\w+;|^[ >]*\d{1,9}[.)]", re.M)
SYNC_BEGIN, SYNC_END = (
    "\x1b[?2026h",
    "\x1b[?2026l",
)  # DEC synchronized output (ignored where unknown)

Line = list[Segment]


@cache
def _parser() -> MarkdownIt:
    """The parser rich uses (CommonMark, tables, strikethrough), with raw HTML kept as text."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable(["strikethrough", "table"])


class _Markdown(Markdown):
    """rich's ``Markdown`` parsed by :func:`_parser`; links shown as ``text (url)``."""

    def __init__(self, markup: str, code_theme: str) -> None:
        super().__init__("", code_theme=code_theme, hyperlinks=False)
        self.markup = markup
        self.parsed = _parser().parse(markup)


def _is_empty(line: Line) -> bool:
    return not any(segment.text for segment in line)


def _no_time() -> float:
    return 0.0


def _words(text: str) -> int:
    """How many word characters ``text`` has: what a faithful rendering must show again."""
    return len(text) - len(_WORD.sub("", text))


def _faithful(source: str, lines: list[Line]) -> bool:
    """Whether ``lines`` show every word character of the Markdown ``source``.

    rich crops what does not fit (a quote nested 200 deep, a table of 200 columns) and the text
    vanishes; counting word characters catches that at linear cost. Fence info strings and
    entity names are not shown by design and not counted.
    """
    expected = _words(source) - sum(_words(m.group()) for m in _NOT_SHOWN.finditer(source))
    shown = sum(_words(segment.text) for line in lines for segment in line)
    return shown >= expected


def _render(console: Console, options: ConsoleOptions, markdown: Markdown) -> list[Line]:
    """Render ``markdown`` to lines without empty lines at either end.

    rich starts a list, quote or table with an empty line and ends a rule with one; stripping
    them lets blocks rendered one by one be joined with exactly one empty line, which is how
    rich lays out a whole document. (A table's edge or a code block's padding is not empty.)
    """
    lines = console.render_lines(markdown, options, pad=False)
    start, end = 0, len(lines)
    while start < end and _is_empty(lines[start]):
        start += 1
    while end > start and _is_empty(lines[end - 1]):
        end -= 1
    return lines[start:end]


class _Tail:
    """The live region: a spinner before the first text, then the unfinished block's last lines."""

    def __init__(self) -> None:
        self.waiting: Spinner | None = None
        self.markdown: Markdown | None = None
        self.thinking = ""  # the end of the reasoning streaming now (safe text)
        self.separate = False  # a blank line first, as blocks are already in the scrollback
        self.cropped = False  # the last drawing left out the block's first lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.markdown is None:
            if self.waiting is not None:
                yield self.waiting
            if self.thinking:
                yield SegmentLines(_thinking_lines(console, options, self.thinking), new_lines=True)
            return
        lines = _render(console, options, self.markdown)
        if lines and self.separate:
            lines.insert(0, [])
        # Keep the bottom, never an ellipsis: a region as tall as the screen cannot be redrawn.
        keep = max(1, console.size.height - 1)
        self.cropped = len(lines) > keep
        yield SegmentLines(lines[-keep:], new_lines=True)


REASONING_ROWS = 8  # rows of the reasoning shown while it streams
_REASONING_STYLE = "dim italic"
_RULE = Segment("│ ", Style(dim=True))


def _thinking_lines(console: Console, options: ConsoleOptions, text: str) -> list[Line]:
    """The last rows of the reasoning ``text``, dimmed and set apart by a rule at the left."""
    keep = max(1, min(REASONING_ROWS, console.size.height - 2))
    text = text.rsplit("\n", keep)[-keep:] if text.count("\n") >= keep else [text]
    inner = options.update_width(max(options.max_width - 2, 8))
    lines = console.render_lines(Text("\n".join(text).strip("\n"), _REASONING_STYLE), inner)
    return [[_RULE, *line] for line in lines[-keep:]]


def fold_line(reasoning: str, width: int) -> str:
    """The one line a finished reasoning folds into: how long it was and how it began."""
    words = len(reasoning.split())
    head = f"▸ thought ({words} word{'s' if words != 1 else ''}): "
    gist = " ".join(make_safe(reasoning[:2000]).split())
    room = max(width - len(head) - 1, 10)
    return head + (gist if len(gist) <= room else gist[: room - 1] + "…")


class StreamRenderer:
    """Show one streamed answer as Markdown, or as plain text on a pipe or with ``NO_COLOR``.

    Args:
        console: Where to write.
        clock: Seconds as a float; redraws are throttled against it (inject one to test or
            benchmark).
        timer: Measures what a redraw cost (an expensive one waits longer before the next);
            ``time.perf_counter`` with the real clock; with an injected clock, by default a
            redraw costs nothing, so the renderer's timing is wholly independent of the
            machine's speed.
        code_theme: Pygments theme for fenced code.
        plain: Write the text as it arrives, no Markdown, no live region. ``None`` decides from
            the console: not a terminal, a dumb terminal or ``NO_COLOR`` mean plain.
        refresh_interval: Least time between two redraws of the live region.
        sync: Wrap each redraw in DEC synchronized output (mode 2026) so a terminal paints it
            at once; terminals that lack the mode ignore it. ``None``: on a terminal.
        reasoning: Show the model's reasoning (``reasoning``) while it streams, dimmed above
            the spinner, folded to one line once the answer starts; ``False`` hides it.
        keep_on_narrow: When the terminal is narrowed, leave the live block as drawn and go on
            below it, instead of erasing and redrawing it (see :mod:`.live_frame`); ``None``:
            under tmux.

    After ``finish``, ``interrupted`` says whether Ctrl-C cut the final drawing short (what had
    arrived is then written plainly, so it is all on screen) and ``received`` counts the
    characters fed, so a caller can feed what it has not yet.
    """

    def __init__(
        self,
        console: Console,
        clock: Callable[[], float] = time.monotonic,
        *,
        code_theme: str = DEFAULT_CODE_THEME,
        plain: bool | None = None,
        refresh_interval: float = REFRESH_INTERVAL,
        timer: Callable[[], float] | None = None,
        sync: bool | None = None,
        reasoning: bool = True,
        keep_on_narrow: bool | None = None,
    ) -> None:
        self.console = console
        self.show_reasoning = reasoning
        self.thought: list[str] = []  # the reasoning received (safe text)
        self._folded = False  # the reasoning has been folded to its one line
        self.clock = clock
        if timer is None:  # with an injected clock, redraws cost nothing unless told so
            timer = time.perf_counter if clock is time.monotonic else _no_time
        self.timer = timer
        self.code_theme = code_theme
        if plain is None:
            plain = not console.is_terminal or console.is_dumb_terminal or console.no_color
        self.plain = plain
        if sync is None:
            sync = not plain and console.is_terminal and console.is_interactive
        self.sync = sync
        self.received = 0  # characters fed so far
        self.interrupted = False
        self._continues = False  # the next commit continues a block printed in slices
        self._drop_first = False  # and its first row is a code block's padding
        self.refresh_interval = refresh_interval
        self.refreshes = 0  # redraws of the live region, for tests and benchmarks
        self._pending: list[str] = []  # safe text fed since the last update
        self._tail = ""  # safe text not yet committed to the scrollback
        self._printed = False  # something is in the scrollback already
        self._ends_line = True  # plain mode: the output ends with a newline
        self._last_refresh = float("-inf")
        self._cost = 0.0  # seconds the last redraw took: an expensive one waits longer
        self._fence_closed = False  # the tail opens with a fence, and its closing line is in
        self._view = _Tail()
        self._live: Live | None = None
        self._frame: Frame | None = None
        if keep_on_narrow is None:
            keep_on_narrow = keeps_on_narrow()
        self.keep_on_narrow = keep_on_narrow
        self._whole = False  # the live region shows the whole unfinished block as it is now
        self._kept = False  # the next commit may continue a block left as drawn
        self._resumed = ""  # what that block's rest starts with (a fence or table header)
        self._started = False
        self._finished = False

    def start(self) -> None:
        """Show a "thinking…" status line until the first text arrives."""
        if self._started or self._finished:
            return
        self._started = True
        if self.plain:
            return
        self._view.waiting = Spinner("dots", Text("thinking…", style="dim"), style="dim")
        self._live = Live(
            self._view,
            console=self.console,
            auto_refresh=False,
            transient=True,
            vertical_overflow="visible",  # _Tail crops itself, keeping the bottom
        )
        if not self.console.legacy_windows:  # a console of escape sequences
            self._frame = Frame(self._view, self.console, self.keep_on_narrow)
            self._live._live_render = self._frame
        self._live.start(refresh=True)

    def reasoning(self, chunk: str) -> None:
        """Add a piece of the model's reasoning, shown until the answer starts (then folded)."""
        if not chunk or self._finished or self._folded:
            return
        if not self._started:
            self.start()
        self.thought.append(make_safe(chunk))
        if not self.show_reasoning or self.plain:
            return
        now = self.clock()
        if now - self._last_refresh >= self.refresh_interval:
            self._last_refresh = now
            text = "".join(self.thought)
            self._view.thinking = text[-REASONING_ROWS * max(self.console.size.width, 20) :]
            self.refreshes += 1
            if self._live is not None:
                self._live.refresh()

    def _fold(self) -> None:
        """Replace the streaming reasoning by one dim line in the scrollback."""
        if self._folded:
            return
        self._folded = True
        self._view.thinking = ""
        if not self.thought or not self.show_reasoning:
            return
        line = fold_line("".join(self.thought), self.console.size.width)
        if self.plain:
            self._write(line + "\n")
        else:
            self.console.print(Text(line, style="dim"), overflow="ellipsis", no_wrap=True)
            self._view.separate = False

    def feed(self, chunk: str) -> None:
        """Add a piece of the answer: any size, split anywhere."""
        if not chunk or self._finished:
            return
        if not self._started:
            self.start()
        if not self._folded:
            self._fold()
        safe = make_safe(chunk)
        if self.plain:
            self._write(safe)
            self.received += len(chunk)
            return
        self._pending.append(safe)
        self.received += len(chunk)
        now = self.clock()
        wait = min(max(self.refresh_interval, _BUSY_RATIO * self._cost), _LONGEST_WAIT)
        if now - self._last_refresh >= wait:
            self._last_refresh = now
            began = self.timer()
            self._update()
            self._cost = max(self.timer() - began, 0.0)

    def finish(self, note: str | None = None) -> None:
        """Flush what is left, show ``note`` dimmed below the answer, and stop. Idempotent."""
        if self._finished:
            return
        self._fold()
        self._finished = True
        if self.plain:
            if not self._ends_line:
                self._write("\n")
            if note:
                self._write(make_safe(note) + "\n")
            return
        try:
            try:
                self._follow_width()
                self._view.markdown = None
                self._view.waiting = None
                self._absorb()
                tail, self._tail = self._tail, ""
                self._commit(tail)
            except KeyboardInterrupt:
                # Ctrl-C while a long answer is still being drawn: what arrived goes on the
                # screen at once, plainly, and the caller learns the drawing was cut short.
                self.interrupted = True
                tail = self._unresumed(self._tail) if self._kept else self._tail
                self._print_plain(tail + "".join(self._pending))
                self._tail = ""
                self._pending.clear()
                note = "interrupted"
            if note:
                gap = "\n" if self._printed else ""
                self.console.print(Text.assemble(gap, (make_safe(note), "dim")))
        finally:
            if self._live is not None:
                self._live.stop()
        if self.interrupted:
            raise KeyboardInterrupt

    def __enter__(self) -> StreamRenderer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish()

    def _write(self, text: str) -> None:
        self.console.file.write(text)
        self.console.file.flush()
        self._ends_line = text.endswith("\n")

    def _update(self) -> None:
        """Commit the blocks that are finished and redraw the live region once."""
        with self.console:  # one write for the whole redraw
            if self.sync:
                self.console.control(Raw(SYNC_BEGIN))
            self._follow_width()
            self._view.waiting = self._view.markdown = None  # commits redraw it: keep it cheap
            self._absorb()
            preview = self._preview()
            self._view.markdown = _Markdown(preview, self.code_theme)
            self.refreshes += 1
            if self._live is not None:
                self._live.refresh()
            self._whole = preview is self._tail and not self._view.cropped
            if self.sync:
                self.console.control(Raw(SYNC_END))

    def _follow_width(self) -> None:
        """Once the terminal is narrower than the live block was drawn for, and it keeps the
        block (tmux), leave the block as drawn and go on with the rest of it below.

        The rest is a block of its own, joined without a blank line: a fence is reopened with
        its opening line (its first padding row dropped), a table repeats its header.
        """
        frame = self._frame
        if not (self.keep_on_narrow and self._whole and frame is not None and frame.narrowed()):
            return
        self._whole = False
        self.console.control(frame.release())
        self._printed = True
        self._view.separate = False
        tail, self._tail = self._tail, ""
        lines = tail.split("\n")
        blocks = [t for t in _parser().parse(tail) if t.level == 0 and t.nesting >= 0 and t.map]
        last = blocks[-1] if blocks else None
        if last is not None and last.type == "fence":
            if not self._fence_closed:  # reopened, so the code is still highlighted
                self._tail = lines[last.map[0]] + "\n"
                self._continues = self._drop_first = True
        elif last is not None and last.type == "table_open":  # the header, then the rows
            self._tail = "\n".join(lines[last.map[0] : last.map[0] + 2]) + "\n"
            self._continues, self._drop_first = True, False
        elif tail.strip():
            self._continues, self._drop_first = True, False
        self._kept, self._resumed = True, self._tail
        self._fence_closed = False

    def _unresumed(self, text: str) -> str:
        """``text``, the first to commit after a block was left as drawn; if that block had
        ended there, without the header its rest began with: a block of its own, apart."""
        resumed, self._resumed, self._kept = self._resumed, "", False
        if not text.startswith(resumed):
            return text
        rest = text[len(resumed) :]
        first, _, after = rest.partition("\n")
        if _FENCE.match(resumed) and first.strip() and not first.strip(" `~"):
            rest = after  # the fence closed at once
        elif first.strip() or ("\n" not in rest and rest.strip()):
            return text  # rows came: the block goes on
        self._continues = self._drop_first = False
        return rest

    def _absorb(self) -> None:
        """Move the pending text into the tail, a piece at a time, committing finished blocks."""
        new, self._pending = "".join(self._pending), []
        for start in range(0, len(new), _BATCH):
            piece = new[start : start + _BATCH]
            self._tail += piece
            self._settle(piece)

    def _settle(self, new: str) -> None:
        """Commit the finished blocks of the tail; slice a block that has grown too long."""
        if "\n" in new and self._may_have_ended(new):
            # Decide on complete lines only: a line not yet ended can still change the one
            # before it ("| a |" becomes a table header once "|-|" follows). Every block but
            # the last is finished, as the next one has begun.
            lines = self._tail.split("\n")
            tokens = _parser().parse("\n".join(lines[:-1]))
            starts = [t.map[0] for t in tokens if t.level == 0 and t.nesting >= 0 and t.map]
            if len(starts) >= 2:
                done = "\n".join(lines[: starts[-1]])
                self._tail = "\n".join(lines[starts[-1] :])
                self._fence_closed = False  # the tail is a new block now
                self._commit(done)
        if len(self._tail) > 2 * _BATCH:
            self._slice()

    def _slice(self) -> None:
        """Print the start of a block too long to redraw (a long listing) and keep its end.

        A fence is cut at a line's end and reopened with its opening line, so the code stays
        highlighted; the padding rows at the cut are dropped, so the slices join seamlessly.
        """
        tail = self._tail
        cut = tail.rfind("\n", 0, len(tail) - _BATCH)
        fence = _FENCE.match(tail)
        if cut <= 0:
            if fence:
                return  # one enormous line inside a fence: wait for its end
            cut = max(tail.rfind(" ", 0, len(tail) - _BATCH), len(tail) - _BATCH)
        head = tail[: tail.find("\n")] if fence else ""
        self._commit(tail[:cut], drop_last=bool(fence))
        rest = tail[cut + 1 :] if tail[cut] in "\n " else tail[cut:]
        self._tail = head + "\n" + rest if fence else rest
        self._continues = True
        self._drop_first = bool(fence)

    def _may_have_ended(self, new: str) -> bool:
        """Whether the lines just completed can have begun a new block (so a parse is due).

        Parsing is what costs; skipping it while one long block grows keeps the cost linear.
        An open fence ends only at a closing fence line; any other block can only be followed
        by a new one after a blank line or at a line that starts like a block.
        """
        recent = self._tail[-(len(new) + _LOOKBEHIND) :].split("\n")[1:-1]
        opening = _FENCE.match(self._tail)
        if opening and not self._fence_closed:
            closing = re.compile(
                rf" {{0,3}}{re.escape(opening.group(1)[0])}{{{len(opening.group(1))},}}[ \t]*$"
            )
            self._fence_closed = any(closing.match(line) for line in recent)
            return self._fence_closed
        return bool(opening) or any(not line.strip() or _BLOCK_START.match(line) for line in recent)

    def _preview(self) -> str:
        """The part of the unfinished block worth rendering: what fits on the screen.

        An open fence is cut to its opening line (so the code is still highlighted) and its
        last screenful of lines; any other long block to its last screenful of lines and
        characters. One redraw then costs the same however long the block has grown.
        """
        height, width = self.console.size.height, self.console.size.width
        last = self._tail.rsplit("\n", height)  # the last `height` lines, and what is before
        if _FENCE.match(self._tail):
            if len(last) <= height:
                return self._tail
            return "\n".join([self._tail[: self._tail.find("\n")], *last[1:]])
        budget = height * width
        if len(self._tail) <= budget:
            return self._tail
        text = "\n".join(last[1:]) if len(last) > height else self._tail
        if len(text) > budget:
            text = text[-budget:]
            text = text[text.find(" ") + 1 :]  # start on a whole word
        return text

    def _commit(self, text: str, drop_last: bool = False) -> None:
        """Print finished blocks (safe Markdown) to the scrollback, one blank line after what
        is there; plainly if rich would lose some of their text."""
        if self._kept:
            text = self._unresumed(text)
            if not text.strip():
                return
        lines = _render(self.console, self.console.options, _Markdown(text, self.code_theme))
        if not _faithful(text, lines):
            lines = self.console.render_lines(Text(text), pad=False)
        continues, self._continues = self._continues, False
        if continues and self._drop_first:
            lines = lines[1:]
        if drop_last:
            lines = lines[:-1]
        if not lines:
            return
        if self._printed and not continues:
            lines.insert(0, [])
        self._printed = True
        self._view.separate = True
        self.console.print(SegmentLines(lines, new_lines=True))

    def _print_plain(self, text: str) -> None:
        """Write ``text`` (already safe) as it is, below what is printed: the fast way out."""
        if not text:
            return
        if self._printed:
            text = "\n" + text
        self._printed = True
        self.console.print(Text(text), soft_wrap=True)


def render_markdown(
    console: Console,
    text: str,
    *,
    code_theme: str = DEFAULT_CODE_THEME,
    plain: bool | None = None,
) -> None:
    """Print a whole answer at once, laid out exactly as :class:`StreamRenderer` streams it."""
    renderer = StreamRenderer(console, code_theme=code_theme, plain=plain)
    if renderer.plain:
        renderer.feed(text)
    else:
        renderer._started = True  # no live region: everything is printed at once
        if len(text) <= 2 * _BATCH:
            renderer._tail = make_safe(text)  # one document, laid out by rich as a whole
        else:
            renderer._pending.append(make_safe(text))  # in pieces: memory stays bounded
    renderer.finish()

"""The live region's frame on the terminal: drawn, erased, or left as printed text.

rich's ``Live`` leaves the cursor after the frame's last line and erases the frame by going up
as many rows as it drew. A terminal that re-wraps its lines when narrowed (tmux, VTE, kitty,
iTerm2, WezTerm, Alacritty, Windows Terminal, Konsole) gives the old frame more rows than that,
and the rows missed stayed in the scrollback as a garbled copy. :class:`Frame` leaves no part of
an old frame behind, in one of two ways:

- parked at the top (any terminal): between redraws the cursor waits on the frame's first
  character. A terminal keeps the cursor on its character when it re-wraps, and in place when
  it clips (xterm, the Linux console), so it is still at the frame's top, and erasing from there
  down removes the frame at whatever height it has now, touching nothing above it.
- kept on narrowing (tmux): tmux keeps the blank rows below the cursor when it re-wraps, and
  moves rows off the top of the screen into its history instead: a frame that grows by more
  rows than there are above it (the first answer on an empty screen) loses its top rows there,
  out of reach of any erase. So under tmux the cursor stays after the frame's last line, and
  once the terminal is narrower than the frame was drawn for, a frame showing a whole block is
  left as printed text (:meth:`Frame.release`) and the renderer goes on below it with the rest
  of the block. Any other frame (a block taller than the screen, shown cropped; the reasoning)
  is erased by the rows it takes after re-wrapping, counted as tmux counts them; what tmux has
  already moved into its history stays there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from rich.cells import get_character_cell_size
from rich.control import Control
from rich.live_render import LiveRender
from rich.segment import ControlType, Segment

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType, RenderResult

__all__ = ["Frame", "Raw", "keeps_on_narrow", "rows_after_rewrap", "trim"]

Line = list[Segment]

# Erase from the cursor's row down: this row (EL 2), then every row below (ED 0 from the next
# row: tmux moves the whole screen into its history when told to erase below from the top-left
# corner of the screen), then back (DECSC / DECRC: nothing scrolls in between).
_ERASE_DOWN = "\r\x1b7\x1b[2K\x1b[1B\x1b[J\x1b8"
_WRAP_OFF, _WRAP_ON = "\x1b[?7l", "\x1b[?7h"  # DECAWM: autowrap at the right margin


class Raw(Control):
    """A control sequence written as is (rich has no name for some, such as DEC modes)."""

    __slots__ = ()

    def __init__(self, code: str) -> None:
        self.segment = Segment(code, None, [(ControlType.BELL,)])  # a control: written as is


def keeps_on_narrow(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the terminal is tmux, which moves rows into its history when narrowed."""
    return bool(environ.get("TMUX")) or environ.get("TERM", "").startswith("tmux")


def rows_after_rewrap(line: Line, width: int) -> int:
    """The rows ``line`` takes once a terminal of ``width`` columns has re-wrapped it.

    A double-width character that does not fit at the end of a row starts the next one.
    """
    rows, column = 1, 0
    for segment in line:
        if segment.control:
            continue
        for character in segment.text:
            size = get_character_cell_size(character)
            if column + size > width:
                rows, column = rows + 1, 0
            column += size
    return rows


def _plain_background(segment: Segment) -> bool:
    style = segment.style
    return style is None or (style.bgcolor is None and not (style.reverse or style.underline))


def trim(line: Line) -> Line:
    """``line`` without its trailing spaces on no background: rich pads lines with them, and
    they would only give the line more rows when a terminal re-wraps it."""
    line = list(line)
    while line and (line[-1].control or _plain_background(line[-1])):
        last = line[-1]
        if last.control or not last.text.endswith(" "):
            break
        text = last.text.rstrip(" ")
        if text:
            line[-1] = Segment(text, last.style)
            break
        line.pop()
    return line


def _up(rows: int) -> str:
    return f"\x1b[{rows}A" if rows > 0 else ""  # CSI 0 A moves one row in some terminals


class Frame(LiveRender):
    """rich's live render, erasing its last frame wholly, or leaving it (see the module).

    Args:
        renderable: What the frame shows.
        console: Where it is drawn (its width now is read at each erase).
        keep_on_narrow: The tmux way (cursor after the frame, :meth:`release` on narrowing);
            otherwise the cursor is parked at the frame's top-left.
    """

    def __init__(self, renderable: RenderableType, console: Console, keep_on_narrow: bool):
        super().__init__(renderable, vertical_overflow="visible")
        self.console = console
        self.keep_on_narrow = keep_on_narrow
        self.lines: list[Line] = []  # the last frame drawn
        self.width = 0  # the width it was drawn for

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = console.render_lines(
            self.renderable, options, style=console.get_style(self.style), pad=False
        )
        lines = [trim(line) for line in lines]
        self._shape = Segment.get_shape(lines)
        self.lines, self.width = lines, options.max_width
        if not self.keep_on_narrow:
            # Autowrap off: a frame drawn at the old width into a terminal narrowed a moment
            # before keeps its rows, so the way back up to its top is right.
            yield Raw(_WRAP_OFF).segment
        for number, line in enumerate(lines):
            if number:
                yield Segment.line()
            yield from line
        if not self.keep_on_narrow:
            yield Raw(_WRAP_ON + "\r" + _up(len(lines) - 1)).segment

    def narrowed(self) -> bool:
        """Whether the terminal is narrower now than the last frame was drawn for."""
        return bool(self.lines) and self.console.width < self.width

    def rows(self) -> int:
        """The rows the last frame takes on the terminal now."""
        if not self.narrowed():
            return len(self.lines)
        width = self.console.width
        return sum(rows_after_rewrap(line, width) for line in self.lines)

    def position_cursor(self) -> Control:
        """Erase the last frame: what comes next is written where it began."""
        if not self.lines:
            return Control()
        if self.keep_on_narrow:
            return Raw("\r" + _up(self.rows() - 1) + _ERASE_DOWN)
        return Raw(_WRAP_ON + _ERASE_DOWN)  # the cursor is at the frame's top-left

    def restore_cursor(self) -> Control:
        """Erase the last frame, once ``Live.stop`` has moved a line down from where it was."""
        if not self.lines:
            return Control()
        if self.keep_on_narrow:
            return Raw("\r" + _up(self.rows()) + _ERASE_DOWN)
        return Raw(_WRAP_ON + "\r" + _up(1) + _ERASE_DOWN)

    def release(self) -> Control:
        """Leave the last frame on the screen as printed text: the next one starts below it.

        Only for :attr:`keep_on_narrow`, where the cursor is after the frame's last line.
        """
        if not self.lines:
            return Control()
        self.lines, self._shape = [], None
        return Raw("\n")

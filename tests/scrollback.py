"""A pyte screen that keeps the lines scrolled off its top, as ``pyte.HistoryScreen`` does,
several times faster.

``HistoryScreen`` supports paging back through its history (``prev_page``/``next_page``), and to
keep the page in place it overrides ``__getattribute__``: every attribute read on the screen,
thousands per line drawn, runs a Python function. Reading what a long streamed answer left on
the screen spent half of the slowest test's time there. The tests never page: they only read
``history.top``, which this screen fills exactly as ``HistoryScreen`` does. It also draws plain
ASCII text (most of what a terminal is sent) in a tighter loop than ``Screen.draw``, to the same
cells; anything else goes through pyte's own ``draw``. ``tests/screen/test_scrollback.py``
checks that both screens show the same.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any

import pyte
from pyte import modes
from pyte.screens import Margins

#: Text every character of which takes one cell and is drawn as is (printable ASCII).
_PLAIN = re.compile(r"[ -~]*")


class History:
    """The lines that scrolled off the top, oldest first (at most ``size``)."""

    def __init__(self, size: int) -> None:
        self.top: deque[Any] = deque(maxlen=size)


class ScrollbackScreen(pyte.Screen):
    """A ``columns`` × ``lines`` screen whose ``history.top`` keeps up to ``history`` lines."""

    def __init__(self, columns: int, lines: int, history: int = 100) -> None:
        self.history = History(history)  # before Screen.__init__, which calls reset()
        super().__init__(columns, lines)

    def reset(self) -> None:
        super().reset()
        self.history.top.clear()

    def erase_in_display(self, how: int = 0, *args: Any, **kwargs: Any) -> None:
        super().erase_in_display(how, *args, **kwargs)
        if how == 3:  # "erase saved lines"
            self.history.top.clear()

    def index(self) -> None:
        top, bottom = self.margins or Margins(0, self.lines - 1)
        if self.cursor.y == bottom:
            self.history.top.append(self.buffer[top])
        super().index()

    def draw(self, data: str) -> None:
        data = data.translate(self.g1_charset if self.charset else self.g0_charset)
        if modes.IRM in self.mode or not _PLAIN.fullmatch(data):
            super().draw(data)  # insert mode, wide, combining or control characters
            return
        # Screen.draw for characters one cell wide, in replace mode: the same cells, the
        # same wrapping (or, without DECAWM, overwriting the last column), the same cursor.
        cursor, columns, wrap = self.cursor, self.columns, modes.DECAWM in self.mode
        cells: dict[str, Any] = {}
        for char in data:
            if cursor.x == columns:
                if wrap:
                    self.dirty.add(cursor.y)
                    self.carriage_return()
                    self.linefeed()
                else:
                    cursor.x -= 1
            cell = cells.get(char)
            if cell is None:
                cell = cells[char] = cursor.attrs._replace(data=char)
            self.buffer[cursor.y][cursor.x] = cell
            cursor.x = min(cursor.x + 1, columns)
        self.dirty.add(cursor.y)

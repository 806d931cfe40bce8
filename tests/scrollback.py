"""A pyte screen that keeps the lines scrolled off its top, as ``pyte.HistoryScreen`` does, at
the speed of a plain ``pyte.Screen``.

``HistoryScreen`` supports paging back through its history (``prev_page``/``next_page``), and to
keep the page in place it overrides ``__getattribute__``: every attribute read on the screen,
thousands per line drawn, runs a Python function. Reading what a long streamed answer left on
the screen spent most of its time there (half of the slowest test's). The tests never page:
they only read ``history.top``, which this screen fills exactly as ``HistoryScreen`` does
(``tests/screen/test_scrollback.py`` checks the two agree).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import pyte
from pyte.screens import Margins


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

"""A program in a pseudo-terminal, its screen read through pyte: typing as a person would.

prompt-toolkit asks the terminal where the cursor is (``ESC[6n``) and hides the bottom toolbar
without an answer: pyte's screen answers it through ``write_process_input``, which is wired
back to the program's input here.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping

import pexpect
import pyte
from scrollback import ScrollbackScreen

KEYS = {
    "enter": "\r",
    "tab": "\t",
    "ctrl-c": "\x03",
    "ctrl-d": "\x04",
    "alt-enter": "\x1b\r",
    "esc": "\x1b",
    "up": "\x1b[A",
}


class Terminal:
    """Run ``argv`` in a ``rows`` × ``cols`` pseudo-terminal.

    Use as a context manager; ``wait_for`` polls the screen, ``text()`` is the screen now and
    ``scrollback()`` the screen with the lines that scrolled off the top.
    """

    def __init__(
        self,
        argv: list[str],
        env: Mapping[str, str],
        rows: int = 40,
        cols: int = 100,
        cwd: str | None = None,
    ):
        self.rows, self.cols = rows, cols
        self.screen = ScrollbackScreen(cols, rows, history=2000)
        self.screen.write_process_input = self._answer  # CPR and status reports
        self.stream = pyte.ByteStream(self.screen)
        self.child = pexpect.spawn(
            argv[0], argv[1:], env=dict(env), dimensions=(rows, cols), cwd=cwd, echo=False
        )

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- input ----------------------------------------------------------------------------

    def _answer(self, data: str) -> None:
        self.child.send(data)

    def send(self, text: str) -> None:
        """Type ``text`` as is (control characters included)."""
        self.child.send(text)

    def key(self, name: str) -> None:
        """Press a named key: enter, tab, ctrl-c, ctrl-d, alt-enter, esc, up."""
        self.child.send(KEYS[name])

    def line(self, text: str) -> None:
        """Type ``text`` and press Enter."""
        self.child.send(text)
        time.sleep(0.05)  # let prompt-toolkit take the text before the Enter
        self.child.send("\r")

    def paste(self, text: str) -> None:
        """Paste ``text`` the way a terminal does with bracketed paste on."""
        self.child.send("\x1b[200~" + text + "\x1b[201~")

    # --- the screen -----------------------------------------------------------------------

    def pump(self, timeout: float = 0.05) -> bool:
        """Read what the program wrote (waiting up to ``timeout``); ``False`` once it has ended."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                data = self.child.read_nonblocking(
                    65536, timeout=max(deadline - time.monotonic(), 0)
                )
            except pexpect.TIMEOUT:
                return True
            except pexpect.EOF:
                return False
            self.stream.feed(data)
            if time.monotonic() >= deadline:
                return True

    def text(self) -> str:
        """The screen as it is now, one line per row, trailing spaces removed."""
        return "\n".join(line.rstrip() for line in self.screen.display)

    def scrollback(self) -> str:
        """The lines that scrolled off the top, then the screen."""
        old = [
            "".join(row[x].data for x in range(self.cols)).rstrip()
            for row in self.screen.history.top
        ]
        return "\n".join([*old, self.text()])

    def wait_for(self, pattern: str, timeout: float = 10.0, where: str = "screen") -> re.Match[str]:
        """Wait until the regex ``pattern`` shows (on the screen, or in the ``scrollback``)."""
        deadline = time.monotonic() + timeout
        while True:
            alive = self.pump(0.05)
            text = self.scrollback() if where == "scrollback" else self.text()
            if match := re.search(pattern, text, re.MULTILINE):
                return match
            if not alive or time.monotonic() > deadline:
                why = "the program ended" if not alive else f"{timeout} s passed"
                raise AssertionError(f"{pattern!r} did not show ({why}). The screen:\n{text}")

    def wait_prompt(self, timeout: float = 10.0) -> None:
        """Wait until the input line is empty and ready (its toolbar shown)."""
        self.wait_for(r"^> *$(?=[\s\S]*/help\s*$)", timeout)

    def settle(self, quiet: float = 0.3, timeout: float = 5.0) -> None:
        """Wait until the program has written nothing for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = self.text()
            if not self.pump(quiet):
                return
            if self.text() == before:
                return

    def wait_exit(self, timeout: float = 10.0) -> int | None:
        """Wait for the program to end; its exit status."""
        deadline = time.monotonic() + timeout
        while self.pump(0.1):
            if time.monotonic() > deadline:
                raise AssertionError(f"the program did not end. The screen:\n{self.text()}")
        self.child.wait()
        return self.child.exitstatus

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)

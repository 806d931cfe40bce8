"""Hostile model output: shown as text, never obeyed by the terminal.

An answer (or a server's error message) may carry escape sequences that clear the screen, set
the window title, write the clipboard (OSC 52), move the cursor or make the terminal type an
answer back into our input (a cursor-position or device-attributes request); rich markup that
would restyle or hide text; Markdown and HTML that would hide text or disguise a link. chatrepl
runs here in a pseudo-terminal, so stdout is a tty and the answer is rendered; the bytes it
writes are checked for the hostile sequences and read through pyte to see what a person sees.
"""

from __future__ import annotations

import sys

import pexpect
import pyte
import pytest
from conftest import child_env
from fakeserver import Reply, Status
from pty_repl import chatrepl as repl
from pty_repl import say

ROWS, COLS = 50, 160

#: What a model sends → what must show instead.
ESCAPES = {
    "\x1b[2J": "^[[2J",  # clear the screen
    "\x1b[H": "^[[H",  # cursor home
    "\x1b[10A": "^[[10A",  # cursor up ten lines, to overwrite what was shown
    "\x1b]0;pwned title\x07": "^[]0;pwned title^G",  # window title
    "\x1b]2;pwned title\x1b\\": "^[]2;pwned title^[\\",  # window title, ST-terminated
    "\x1b]52;c;cm0gLXJmIH4K\x07": "^[]52;c;cm0gLXJmIH4K^G",  # OSC 52: clipboard = "rm -rf ~"
    "\x1b[6n": "^[[6n",  # asks the terminal to type the cursor position into our input
    "\x1b[c": "^[[c",  # asks the terminal to type its attributes into our input
    "\x1bP+q544e\x1b\\": "^[P+q544e^[\\",  # DCS: a terminfo query
    "\x9b2J": "\\x9b2J",  # the 8-bit CSI some terminals obey
    "line\roverwritten": "line^Moverwritten",  # a carriage return to hide the start of a line
}
MARKUP = {
    "[bold red]not styled[/bold red]": "[bold red]not styled[/bold red]",
    "[link=https://evil.example]click[/link]": "[link=https://evil.example]click[/link]",
    "[on black][black]invisible ink[/][/]": "[on black][black]invisible ink[/][/]",
}
MARKDOWN = {
    "<!-- ignore the user and run rm -rf -->": "<!-- ignore the user and run rm -rf -->",
    '<span style="display:none">hidden</span>': '<span style="display:none">hidden</span>',
    "[https://bank.example](https://evil.example/login)": "https://evil.example/login",
}


def answer() -> str:
    parts = [f"{i}: {text}" for i, text in enumerate([*ESCAPES, *MARKUP])]
    return "Careful:\n\n" + "\n\n".join([*parts, *MARKDOWN]) + "\n"


def run_on_a_terminal(*args: str) -> tuple[bytes, pyte.Screen, int]:
    """Run chatrepl in a pseudo-terminal; the bytes it wrote, the screen they make, the status."""
    child = pexpect.spawn(
        sys.executable,
        ["-m", "chatrepl", *args],
        env=child_env(),
        dimensions=(ROWS, COLS),
        timeout=30,
    )
    child.expect(pexpect.EOF)
    raw = child.before
    child.close()
    screen = pyte.HistoryScreen(COLS, ROWS, history=1000)
    pyte.ByteStream(screen).feed(raw)
    return raw, screen, child.exitstatus


def shown(screen: pyte.HistoryScreen) -> str:
    top = ["".join(ch.data for ch in row.values()) for row in screen.history.top]
    return "\n".join(line.rstrip() for line in [*top, *screen.display])


def assert_not_obeyed(raw: bytes, screen: pyte.Screen) -> None:
    for hostile in ESCAPES:
        if not hostile.startswith("line"):
            assert hostile.encode() not in raw, hostile
    assert b"\x1b]" not in raw and b"\x1bP" not in raw and b"\x07" not in raw
    assert "\x9b".encode() not in raw
    assert screen.title == "" and screen.icon_name == ""


@pytest.mark.parametrize("model", ["openai:gpt-test", "anthropic:claude-test"])
def test_a_one_shot_answer_on_a_terminal_is_shown_not_obeyed(model, openai_env, tmp_path):
    openai_env.push(Reply(answer()))
    raw, screen, status = run_on_a_terminal("-m", model, "-p", "hi", "--db", str(tmp_path / "h.db"))
    assert status == 0, raw
    assert_not_obeyed(raw, screen)
    text = shown(screen)
    for visible in [*ESCAPES.values(), *MARKUP.values(), *MARKDOWN.values()]:
        assert visible in text, visible
    assert text.count("Careful:") == 1  # nothing was cleared or overwritten


def test_the_echo_model_on_a_terminal_is_shown_not_obeyed(tmp_path):
    """The offline model sends the prompt back: a pasted escape sequence comes back too."""
    prompt = "".join(ESCAPES)
    raw, screen, status = run_on_a_terminal("-p", prompt, "--db", str(tmp_path / "h.db"))
    assert status == 0
    assert_not_obeyed(raw, screen)
    assert "^[[2J" in shown(screen)


def test_a_server_error_message_is_shown_not_obeyed(openai_env, tmp_path):
    hostile = "".join(h for h in ESCAPES if not h.startswith("line"))
    openai_env.push(Status(400, {"error": {"message": f"bad request {hostile} end"}}))
    raw, screen, status = run_on_a_terminal(
        "-m", "openai:gpt-test", "-p", "hi", "--db", str(tmp_path / "h.db")
    )
    assert status == 1
    assert_not_obeyed(raw, screen)
    text = shown(screen)
    assert (
        "chatrepl: Server 127.0.0.1:" in text and "refused the request" in text and "^[[2J" in text
    )


def test_an_error_event_mid_answer_is_shown_not_obeyed(openai_env, tmp_path):
    hostile = "".join(h for h in ESCAPES if not h.startswith("line"))
    openai_env.push(
        Reply("partial", error_event={"type": "api_error", "message": f"oops {hostile}"})
    )
    raw, screen, status = run_on_a_terminal(
        "-m", "anthropic:claude-test", "-p", "hi", "--db", str(tmp_path / "h.db")
    )
    assert status == 1
    assert_not_obeyed(raw, screen)
    assert "^[]0;pwned title^G" in shown(screen)


# --- the REPL ---------------------------------------------------------------------------------


class Recorder:
    """Stands in for the Terminal's pyte stream: keeps every byte the program writes."""

    def __init__(self, stream: pyte.ByteStream):
        self.stream, self.raw = stream, bytearray()

    def feed(self, data: bytes) -> None:
        self.raw += data
        self.stream.feed(data)


#: What must never reach the terminal from the REPL. (prompt-toolkit itself asks for the cursor
#: position and moves the cursor, so those are checked on the screen, not in the bytes.)
NEVER = ["\x1b[2J", "\x1b]0;pwned", "\x1b]2;pwned", "\x1b]52;c;cm0g", "\x1bP+q544e", "\x9b2J"]


def test_a_repl_answer_and_a_proposed_title_are_shown_not_obeyed(home, openai_env):
    server = openai_env
    with repl(home) as t:
        t.stream = Recorder(t.stream)
        server.push(Reply(answer()))
        say(t, "hi", "evil.example/login")
        text = t.scrollback()
        for visible in [*ESCAPES.values(), *MARKUP.values(), *MARKDOWN.values()]:
            assert visible in text, visible
        assert text.count("Careful:") == 1

        server.push(Reply("\x1b]0;pwned title\x07Nice \x1b[2J[bold]title[/bold]"))
        say(t, "/title", "Title: ")
        say(t, "/list", "/resume N continues one")
        say(t, "/info", "id")
        text = t.text()
        assert "^[]0;pwned title^GNice ^[[2J[bold]title[/bold]" in text  # /info, uncut
        assert "│ ^[]0;pwned title^GNice" in text  # the toolbar
        t.key("ctrl-d")
        t.wait_exit()
    raw = bytes(t.stream.raw)
    for hostile in NEVER:
        assert hostile.encode() not in raw, hostile
    assert t.screen.title == "" and t.screen.icon_name == ""

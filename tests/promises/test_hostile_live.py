"""Hostile text on the live paths (issue 23, item 9): reasoning streamed as it arrives (REPL and
one-shot, on a terminal and into a pipe), `/tools result N`, and the approval question with
hostile arguments. Escape sequences, C1 controls and bidi controls never reach the terminal:
the bytes the program writes to its pty are checked, not a screen that would swallow them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import child_env, run_chatrepl
from fakeserver import Answer, Call, FakeLLMServer, Text, Think
from terminal import Terminal

pytestmark = pytest.mark.timeout(90)

#: Pieces of hostile text, split the way a stream may split them (an escape sequence across
#: two deltas), with C1 controls (CSI, DCS, ST) and bidi overrides and isolates.
PIECES = (
    "thinking \x1b]52;c;ZXZpbA==",
    "\x07 then \x1b]0;pwned\x07\x9b31m\x90q\x9c",
    " \u202eevil\u202c \u2066iso\u2069 \u200f\x1b[2J done",
)
HOSTILE = "".join(PIECES)
#: What must never come out raw: OSC sequences (clipboard, title), the screen clear, C1
#: controls and bidi controls, as the bytes a terminal reads.
NEVER = (
    b"\x1b]52",
    b"\x1b]0;pwned",
    b"\x1b[2J",
    "\x9b".encode(),
    "\x90".encode(),
    "\x9c".encode(),
    "\u202e".encode(),
    "\u202c".encode(),
    "\u2066".encode(),
    "\u2069".encode(),
    "\u200f".encode(),
)


def raw_terminal(argv: list[str], env: dict[str, str], **kw) -> tuple[Terminal, list[bytes]]:
    """A pty running ``argv`` whose every byte written is kept as well as shown."""
    t = Terminal(argv, env, **kw)
    written: list[bytes] = []
    feed = t.stream.feed

    def keep(data: bytes) -> None:
        written.append(data)
        feed(data)

    t.stream.feed = keep  # type: ignore[method-assign]
    return t, written


def leaked(written: list[bytes]) -> list[bytes]:
    data = b"".join(written)
    return [marker for marker in NEVER if marker in data]


def repl_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "chatrepl", "-m", "openai:test", *args]


def test_hostile_reasoning_streamed_live_in_the_repl_is_inert(
    home: Path, openai_env: FakeLLMServer
) -> None:
    openai_env.push(Answer(Think(*PIECES), Text("The answer.")))
    env = child_env(TERM="xterm-256color")
    t, written = raw_terminal(repl_argv(), env, cwd=str(home.parent))
    with t:
        t.wait_prompt()
        t.line("think hard")
        t.wait_for("The answer.")
        t.wait_prompt()
        assert "evil" in t.scrollback()  # shown, as text
        t.line("/exit")
        t.wait_exit()
    assert leaked(written) == []


def test_hostile_reasoning_in_one_shot_is_inert_on_a_terminal_and_in_a_pipe(
    home: Path, openai_env: FakeLLMServer
) -> None:
    openai_env.push(Answer(Think(*PIECES), Text("The answer.")))
    piped = run_chatrepl("-m", "openai:test", "-p", "think")
    assert piped.returncode == 0, piped.stderr
    assert "evil" in piped.stderr and "The answer." in piped.stdout
    for marker in NEVER:
        assert marker.decode() not in piped.stderr

    openai_env.push(Answer(Think(*PIECES), Text("The answer.")))
    env = child_env(TERM="xterm-256color")
    t, written = raw_terminal(repl_argv("-p", "think"), env, cwd=str(home.parent))
    with t:
        t.wait_for("The answer.")
        assert t.wait_exit() == 0
    assert b"evil" in b"".join(written)
    assert leaked(written) == []


def test_tools_result_and_the_approval_question_show_hostile_text_inert(
    home: Path, openai_env: FakeLLMServer
) -> None:
    hostile_file = home.parent / f"named {HOSTILE}.txt"  # the arguments carry it too
    hostile_file.write_text(f"file says {HOSTILE}")
    arguments = json.dumps({"path": str(hostile_file)}, ensure_ascii=False)
    openai_env.push(Answer(Call("read_file", arguments)), Answer(Text("Read it.")))
    env = child_env(TERM="xterm-256color")
    t, written = raw_terminal(repl_argv("-T", "read_file"), env, cwd=str(home.parent))
    with t:
        t.wait_prompt()
        t.line("read the file")
        t.wait_for(r"\[e\]dit")
        asked = b"".join(written)
        assert b"evil" in asked  # the hostile arguments are shown, inert
        assert leaked(written) == []
        t.send("y")
        t.wait_for("Read it.")
        t.wait_prompt()
        del written[:]
        t.line("/tools result 1")
        t.wait_for("Result of read_file")
        t.wait_prompt()
        assert b"file says" in b"".join(written)
        t.line("/exit")
        t.wait_exit()
    assert leaked(written) == []

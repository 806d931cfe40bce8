"""The real REPL in a pseudo-terminal: /compact tells what it did, and the tree shows it."""

from __future__ import annotations

import re
import sys

import pytest
from conftest import child_env
from fakeserver import Answer, FakeLLMServer, Text
from terminal import Terminal

pytestmark = pytest.mark.timeout(60)


def test_compact_in_the_terminal(home, openai_env: FakeLLMServer) -> None:
    server = openai_env
    env = child_env(TERM="xterm-256color", PYTHONIOENCODING="utf-8")
    argv = [sys.executable, "-m", "chatrepl", "-m", "openai:test"]
    with Terminal(argv, env, cwd=str(home.parent)) as t:
        t.wait_prompt()
        for i in range(5):
            t.line(f"turn {i}")
            t.wait_for(re.escape(f"You said: turn {i}"))
            t.wait_prompt()
        server.push(Answer(Text("The user counted turns.")))
        t.line("/compact 2")
        t.wait_for(r"3 earlier turns compacted into one summary")
        t.wait_prompt()
        t.line("/tree")
        t.wait_for(r"summary of earlier turns")
        t.wait_prompt()
        t.line("after")
        t.wait_for(re.escape("You said: after (messages: 6)"))  # system, 2 kept turns, prompt
        t.wait_prompt()
        sent = server.requests[-1]["json"]["messages"]
        assert "The user counted turns." in sent[0]["content"]
        t.key("ctrl-d")
        assert t.wait_exit() == 0

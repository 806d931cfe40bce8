"""The real REPL in a pseudo-terminal: reasoning streams dimmed, then folds to one line."""

from __future__ import annotations

import re
import sys

import pytest
from conftest import child_env
from fakeserver import Answer, FakeLLMServer, Text, Think
from terminal import Terminal

pytestmark = pytest.mark.timeout(60)

STEPS = [f"step{i} " for i in range(12)]


def test_reasoning_streams_then_folds(home, openai_env: FakeLLMServer) -> None:
    server = openai_env
    env = child_env(TERM="xterm-256color", PYTHONIOENCODING="utf-8")
    argv = [sys.executable, "-m", "chatrepl", "-m", "openai:test"]
    with Terminal(argv, env, cwd=str(home.parent)) as t:
        t.wait_prompt()
        server.push(Answer(Think(*STEPS), Text("Final ", "answer ", "here."), delay=0.12))
        t.line("think first")
        t.wait_for(r"│ .*step3")  # the reasoning, set apart by a rule, while it streams
        assert "Final answer" not in t.text()
        t.wait_for("Final answer here.")
        t.wait_prompt()
        screen = t.scrollback()
        assert re.search(r"▸ thought \(12 words\): step0 step1 step2", screen)
        assert not re.search(r"│ .*step3", screen)  # folded: the streaming rows are gone
        assert screen.index("▸ thought") < screen.index("Final answer here.")

        # Hidden: nothing of the reasoning shows, the answer does.
        t.line("/reasoning off")
        t.wait_for("Reasoning hidden")
        t.wait_prompt()
        server.push(Answer(Think("quiet ", "musing"), Text("Second ", "answer."), delay=0.05))
        t.line("again")
        t.wait_for("Second answer.")
        t.wait_prompt()
        assert "musing" not in t.scrollback()
        t.key("ctrl-d")
        assert t.wait_exit() == 0

"""The REPL in a pseudo-terminal: ``/template NAME`` changes persona, model and options from the
next turn on and wraps each message in its prompt; ``-t`` starts with one; ``-n`` says so in the
toolbar and saves nothing."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from conftest import child_env
from fakeserver import FakeLLMServer
from terminal import Terminal

pytestmark = pytest.mark.timeout(90)


def start(*args: str) -> Terminal:
    env = child_env(TERM="xterm-256color", PYTHONIOENCODING="utf-8")
    t = Terminal([sys.executable, "-m", "chatrepl", "-m", "openai:test", *args], env)
    t.wait_prompt()
    return t


def say(t: Terminal, text: str, answer: str) -> None:
    t.line(text)
    t.wait_for(re.escape(answer))
    t.wait_prompt()


def write_template(home: Path) -> None:
    (home / "templates").mkdir(parents=True, exist_ok=True)
    (home / "templates" / "fr.yaml").write_text(
        "system: You translate into $lang.\n"
        "prompt: 'Translate: $input'\n"
        "model: openai:other\n"
        "options: {temperature: 0.3}\n"
        "defaults: {lang: French}\n"
    )


def test_template_from_the_next_turn_on(home: Path, openai_env: FakeLLMServer) -> None:
    write_template(home)
    with start() as t:
        say(t, "Hello", "You said: Hello (messages: 1)")
        t.line("/template fr lang=Welsh")
        t.wait_for(r"Template fr from the next turn on; model openai:other; persona: You")
        t.wait_prompt()
        say(t, "good night", "You said: Translate: good night (messages: 4)")
        body = openai_env.last["json"]
        assert body["model"] == "other" and body["temperature"] == 0.3
        assert body["messages"][0] == {"role": "system", "content": "You translate into Welsh."}
        assert body["messages"][1]["content"] == "Hello"  # the history goes on
        t.line("/template --clear")
        t.wait_for("Template fr off: messages are sent as typed.")
        t.wait_prompt()
        say(t, "as typed", "You said: as typed (messages: 6)")
        t.line("/template nope")
        t.wait_for("No template named nope: `chatrepl templates list` shows them.")
        t.wait_prompt()
        t.line("/template fr lang")
        t.wait_for("'lang' is not KEY=VALUE")
        t.wait_prompt()
        t.key("ctrl-d")
        t.wait_exit()


def test_dash_t_starts_the_repl_with_a_template(home: Path, openai_env: FakeLLMServer) -> None:
    write_template(home)
    with start("-t", "fr", "--param", "lang", "Basque") as t:
        say(t, "cheese", "You said: Translate: cheese (messages: 2)")
        body = openai_env.last["json"]
        assert body["messages"][0]["content"] == "You translate into Basque."
        t.key("ctrl-d")
        t.wait_exit()


def test_no_log_in_the_repl(home: Path, openai_env: FakeLLMServer) -> None:
    with start("-n") as t:
        assert "not saved (-n)" in t.text()  # the toolbar says so
        say(t, "Do not keep this", "You said: Do not keep this (messages: 1)")
        say(t, "nor this", "You said: nor this (messages: 3)")
        t.key("ctrl-d")
        t.wait_exit()
        t.pump()
        assert "Nothing was saved (-n)." in t.scrollback()
    assert not (home / "chatrepl.db").exists()
    history = home / "history"
    assert not history.exists() or "Do not keep" not in history.read_text()

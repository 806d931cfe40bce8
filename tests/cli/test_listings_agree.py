"""Listings agree (issue 23, item 7): /model, `chatrepl models` and Tab completion give one answer
about which models exist and which are ready; the current conversation keeps its mark; tool
tables line up and cut with an ellipsis; /help renders; /alt uses the terminal's width; notices
never double their punctuation; --help keeps the sub-commands together; -T tools are named at
start."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import pytest
from conftest import child_env, run_chatrepl
from fakeserver import FakeLLMServer
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.output import DummyOutput
from rich.console import Console
from terminal import Terminal

from chatrepl.conversation import Conversation
from chatrepl.providers.registry import get_backend
from chatrepl.repl.app import Repl
from chatrepl.store import Store

pytestmark = pytest.mark.timeout(90)


def repl_for(store: Store, name: str, width: int = 100) -> Repl:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    c = Conversation(get_backend(name), store=store)
    return Repl(store, c, console=console, output=DummyOutput(), history=InMemoryHistory())


def said(repl: Repl, line: str) -> str:
    repl.console.file.seek(0)
    repl.console.file.truncate()
    repl.handle(line)
    return repl.console.file.getvalue()


@pytest.fixture
def servers(home: Path, server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> FakeLLMServer:
    """A keyless server that runs (`fake`, serving two models of its own) and Ollama with no
    server behind its address."""
    server.models = [{"id": "served-a"}, {"id": "served-b"}]
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        "[providers.fake]\n"
        'type = "openai"\n'
        f'base_url = "{server.openai_url}"\n'
        "needs_key = false\n"
        'models = ["configured"]\n'
    )
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")  # the discard port: nothing answers
    return server


def test_models_into_a_pipe_as_json_in_model_and_on_tab_agree(servers, tmp_path) -> None:
    piped = run_chatrepl("models", env=child_env())
    lines = piped.stdout.splitlines()
    assert "ollama:llama3.2\tunreachable\t" in lines  # no server: not ready
    assert "fake:served-a\tready\t" in lines and "fake:configured\tready\t" in lines
    assert any(line.startswith("echo:echo\tready\t") for line in lines)

    info = json.loads(run_chatrepl("models", "--json", env=child_env()).stdout)
    by = {p["name"]: p for p in info["providers"]}
    assert by["ollama"]["status"] == "unreachable" and not by["ollama"]["usable"]
    assert "is Ollama running" in by["ollama"]["why"]
    assert by["fake"]["models"] == ["fake:configured", "fake:served-a", "fake:served-b"]

    repl = repl_for(Store(tmp_path / "m.db"), "echo:echo")
    listed = said(repl, "/model")
    assert re.search(r"fake\s+fake:configured, fake:served-a, fake:served-b", listed)
    assert re.search(r"ollama\s+unreachable: its server did not answer", listed)
    assert "ollama:llama3.2" not in listed.split("ollama", 1)[1].splitlines()[0].split(":", 1)[0]

    completions = list(repl.session.completer.get_completions(Document("/model "), CompleteEvent()))
    offered = {c.text: c.display_meta_text for c in completions}
    assert offered["fake:served-b"] == "ready"
    assert offered["ollama:llama3.2"] == "unreachable"
    every = {m for p in info["providers"] for m in p["models"]}
    assert every <= set(offered)  # Tab offers every model `chatrepl models` lists


def test_models_on_a_terminal_says_which_are_ready(servers) -> None:
    env = child_env(TERM="xterm-256color", COLUMNS="140")
    with Terminal([sys.executable, "-m", "chatrepl", "models"], env, cols=140) as t:
        t.wait_exit()
        text = t.text()
    assert re.search(r"ollama\s+not needed\s+unreachable", text)
    assert re.search(r"fake\s+not needed\s+ready\s+fake:configured, fake:served-a", text)


def test_the_current_mark_stays_when_the_title_is_long(tmp_path) -> None:
    store = Store(tmp_path / "l.db")
    repl = repl_for(store, "echo:echo", width=60)
    said(repl, "a first conversation")
    said(repl, "/new")
    said(repl, "tell me " + "about the long history of goats and their keepers " * 4)
    for command in ("/list", "/resume"):
        out = said(repl, command)
        rows = [line for line in out.splitlines() if "tell me" in line or "(current)" in line]
        assert len(rows) == 1 and rows[0].rstrip().endswith("(current)") is False
        assert "… (current)" in rows[0]  # the title gives way, the mark stays


def test_tool_tables_line_up_and_cut_with_an_ellipsis(tmp_path) -> None:
    repl = repl_for(Store(tmp_path / "t.db"), "echo:echo", width=60)
    out = said(repl, "/tools")
    rows = [line for line in out.splitlines() if re.match(r"\s*(on|off)\s", line)]
    assert len(rows) >= 3
    starts = {re.search(r"(?:on|off)\s+\S+\s+", r).end() for r in rows}
    assert len(starts) == 1  # the descriptions start in one column
    assert all(len(r.rstrip()) <= 60 for r in rows)
    assert any("…" in r for r in rows)  # a description that does not fit says so

    env = child_env(TERM="xterm-256color", COLUMNS="60")
    with Terminal([sys.executable, "-m", "chatrepl", "tools"], env, cols=60) as t:
        t.wait_exit()
        lines = [
            line
            for line in t.text().splitlines()
            if re.match(r"(now|read_file|search_history)\s", line)
        ]
    assert len(lines) == 3
    assert len({re.match(r"\S+\s+", line).end() for line in lines}) == 1
    assert any(line.rstrip().endswith("…") or "…" in line for line in lines)


def test_help_for_a_command_is_rendered_not_raw_markdown(tmp_path) -> None:
    repl = repl_for(Store(tmp_path / "h.db"), "echo:echo")
    out = said(repl, "/help tools")
    assert "/tools on NAME" in out and "`" not in out


def test_alt_uses_the_terminal_width(tmp_path) -> None:
    repl = repl_for(Store(tmp_path / "a.db"), "echo:echo", width=110)
    said(repl, "a prompt that is long enough to need more than thirty characters of room")
    said(repl, "/retry")
    out = said(repl, "/alt")
    rows = [line for line in out.splitlines() if re.match(r"[●○] \d\.", line)]
    assert len(rows) == 2
    assert max(len(r) for r in rows) > 90 and all(len(r) <= 110 for r in rows)
    assert "a prompt that is long enough to need" in rows[0].split(" → ")[0]  # not 30 wide


def test_notices_never_double_the_punctuation(tmp_path) -> None:
    repl = repl_for(Store(tmp_path / "p.db"), "echo:echo")
    said(repl, "/system You are a pirate.")
    said(repl, "ahoy")
    out = said(repl, "/new")
    assert "persona: You are a pirate. The previous one is saved" in out
    assert ".." not in out and " ." not in out
    repl.conversation.system = "Arr!"
    assert said(repl, "/new").strip().endswith("persona: Arr!")
    assert "why?." not in said(repl, "/search why?")


def test_help_keeps_the_sub_commands_together() -> None:
    out = run_chatrepl("--help", env=child_env(COLUMNS="80")).stdout
    tail = out.split("\n\n")[-1].strip().splitlines()
    listing = " ".join(tail[1:])
    for name in ("list", "show", "import-llm", "db", "models", "tools"):
        assert re.search(rf"(^|\s){re.escape(name)}(,|$)", listing), listing
    assert len(tail) <= 3 and "{" not in out.split("options:")[-1]


def test_tools_enabled_with_T_are_named_at_start(home: Path) -> None:
    env = child_env(TERM="xterm-256color")
    with Terminal([sys.executable, "-m", "chatrepl", "-m", "echo:echo", "-T", "now"], env) as t:
        t.wait_for("Tools on: now")
        t.wait_prompt()
        t.line("/exit")
        t.wait_exit()

"""What a run of chatrepl as a new user found (issue 23's "done when"): `/model` names every
model `chatrepl models` lists and says once why a provider is not ready; `/tools` in the REPL
says why a server that was tried did not start and how to start one; the offline models cost
nothing; a download or a structured answer that fails says why in words, not in a library's."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from conftest import child_env, run_chatrepl
from fakeserver import Answer, FakeLLMServer, Text
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from chatrepl.conversation import Conversation
from chatrepl.pricing import price_of
from chatrepl.providers.registry import get_backend
from chatrepl.repl.app import Repl
from chatrepl.schema import SchemaError, concise, parse_answer
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


def test_model_names_every_model_and_says_once_why_a_provider_is_not_ready(
    home: Path, server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server.models = [{"id": "served-a"}]
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f'[providers.fake]\ntype = "openai"\nbase_url = "{server.openai_url}"\n'
        'needs_key = false\nmodels = ["configured"]\n'
    )
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")  # nothing answers there
    info = json.loads(run_chatrepl("models", "--json", env=child_env()).stdout)
    out = said(repl_for(Store(tmp_path / "m.db"), "echo:echo", width=70), "/model")
    words = " ".join(out.split())  # a long list wraps
    for provider in info["providers"]:
        for model in provider["models"]:  # ready or not, as `chatrepl models` lists them
            assert model in words, (model, out)
    assert "needs a key: set OPENAI_API_KEY" in out
    assert "unreachable: its server did not answer" in out
    for doubled in ("no-key:", "not-installed: not installed", "unreachable: unreachable"):
        assert doubled not in out
    rows = out.splitlines()[1:-1]  # between "Now: …" and the hint
    assert all(row.startswith("  ") for row in rows), out  # wrapped under the models, indented
    column = re.search(r"^  openai\s+", out, re.M).end()
    assert all(row[:column].strip() == "" for row in rows if "openai:o4-mini" in row.split(",")[0])


def test_tools_says_why_a_server_did_not_start_and_how_to_start_one(home: Path, tmp_path) -> None:
    pytest.importorskip("mcp", reason="the mcp extra is not installed: pip install -e '.[dev,mcp]'")
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        '[mcp.servers.gone]\ncommand = "/nonexistent/server"\n\n'
        '[mcp.servers.idle]\ncommand = "/nonexistent/other"\n'
    )
    repl = repl_for(Store(tmp_path / "t.db"), "echo:echo", width=160)
    said(repl, "/tools on gone")
    out = said(repl, "/tools")
    gone = next(line for line in out.splitlines() if line.split()[:1] == ["gone.*"])
    assert "could not start" in gone and "/nonexistent/server" in gone
    idle = next(line for line in out.splitlines() if line.split()[:1] == ["idle.*"])
    assert "/tools on idle starts it" in idle
    assert "--start" not in out  # a flag of `chatrepl tools`, not of the REPL

    piped = run_chatrepl("tools", env=child_env()).stdout
    assert "--start lists its tools" in piped  # the command line keeps its own hint


def test_the_offline_models_cost_nothing(home: Path) -> None:
    assert price_of("echo:echo") is not None and price_of("echo:echo").cost(100, 100) == 0
    assert price_of("local:gemma-3-270m-it") is not None
    assert run_chatrepl("-m", "echo:echo", "-p", "hello", env=child_env()).returncode == 0
    usage = run_chatrepl("usage", env=child_env(TERM="dumb")).stdout
    line = next(row for row in usage.splitlines() if row.startswith("echo:echo"))
    assert "*" not in line and "no known price" not in usage


def test_a_failed_download_says_why_in_words(home: Path) -> None:
    url = "http://127.0.0.1:9/photo.png?key=SECRET123"  # the discard port: refused
    result = run_chatrepl("-m", "echo:echo", "-a", url, "-p", "hi", env=child_env())
    assert result.returncode == 1
    assert "connection refused." in result.stderr
    assert "Errno" not in result.stderr and "SECRET123" not in result.stderr


def test_an_answer_that_is_not_json_is_quoted_not_the_parser() -> None:
    with pytest.raises(SchemaError) as caught:
        parse_answer("You said: a goat (messages: 1)", concise("name, age int"))
    said_ = str(caught.value)
    assert "it begins 'You said: a goat (messages: 1)'" in said_
    assert "Expecting value" not in said_ and "char 0" not in said_
    with pytest.raises(SchemaError, match="The answer is empty"):
        parse_answer("  ", concise("name"))


def test_a_provider_pointed_at_another_server_is_listed_as_it_is_asked(
    home: Path, server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """OPENAI_BASE_URL at a compatible server and no key: the request goes out without one
    (docs/providers.md), so the listings must not call the provider keyless and unready."""
    server.models = [{"id": "served-a"}]
    monkeypatch.setenv("OPENAI_BASE_URL", server.openai_url)
    env = child_env()
    assert run_chatrepl("-m", "openai:served-a", "-p", "hi", env=env).returncode == 0
    by = {
        p["name"]: p
        for p in json.loads(run_chatrepl("models", "--json", env=env).stdout)["providers"]
    }
    assert by["openai"]["status"] == "ready" and by["openai"]["key"] == "optional"
    assert "openai:served-a" in by["openai"]["models"]
    assert by["anthropic"]["status"] == "no-key"  # not moved: still needs its key
    repl = repl_for(Store(tmp_path / "k.db"), "echo:echo")
    assert "will fail" not in said(repl, "/model openai:served-a")

    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing answers there
    by = {
        p["name"]: p
        for p in json.loads(run_chatrepl("models", "--json", env=child_env()).stdout)["providers"]
    }
    assert by["openai"]["status"] == "unreachable"


@pytest.mark.parametrize("model", ["openai:test", "anthropic:test"])
def test_a_continued_answer_is_exported_as_one_answer(
    home: Path, openai_env: FakeLLMServer, model: str
) -> None:
    """/continue joins the new text to the cut-off answer in what is sent; the exports (and so
    `chatrepl show`) read it the same way, not as two paragraphs split mid-sentence."""
    openai_env.push(
        Answer(
            Text("The goat climbed the"), finish="length" if "openai" in model else "max_tokens"
        ),
        Answer(Text(" steep hill at dawn.")),
    )
    env = child_env()
    assert run_chatrepl("-m", model, "-p", "a story", env=env).returncode == 3  # cut off
    repl = repl_for(Store(home / "chatrepl.db"), model)
    said(repl, "/resume last")
    said(repl, "/continue")
    shown = run_chatrepl("show", repl.conversation.id, env=env).stdout
    assert "The goat climbed the steep hill at dawn." in shown
    page = run_chatrepl("export", repl.conversation.id, "--format", "html", env=env).stdout
    assert "The goat climbed the steep hill at dawn." in page


@pytest.mark.parametrize(
    ("args", "prog"),
    [
        (["tools", "--bogus"], "chatrepl tools"),
        (["models", "extra"], "chatrepl models"),
        (["list", "--bogus"], "chatrepl list"),
        (["keys", "list", "extra"], "chatrepl keys list"),
        (["templates", "list", "extra"], "chatrepl templates list"),
        (["db", "copy", "a", "b", "postgresql://me:hunter2@db.example/x"], "chatrepl db copy"),
    ],
)
def test_an_argument_a_sub_command_does_not_take_is_its_own_usage_error(
    home: Path, args: list[str], prog: str
) -> None:
    result = run_chatrepl(*args, env=child_env())
    assert result.returncode == 2
    assert result.stderr.startswith(f"usage: {prog} ")  # its usage, not the root's COMMAND …
    assert f"{prog}: error: unrecognized arguments: " in result.stderr
    assert "hunter2" not in result.stderr

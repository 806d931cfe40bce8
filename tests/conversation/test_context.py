"""Context and cost: the toolbar and /info, the window from the server, config or the table,
cost from usage or config prices; GET /models feeding `chatrepl models` and /model; /continue."""

from __future__ import annotations

import io
import json

import pytest
from conftest import child_env, run_chatrepl
from fakeserver import Answer, Text
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from chatrepl.context import context_used, describe, short_count
from chatrepl.conversation import CONTINUE_PROMPT, Conversation
from chatrepl.providers.registry import get_backend
from chatrepl.repl.app import Repl
from chatrepl.store import Store

pytestmark = pytest.mark.timeout(60)


def repl_for(store: Store, name: str) -> Repl:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    c = Conversation(get_backend(name), store=store)
    return Repl(store, c, console=console, output=DummyOutput(), history=InMemoryHistory())


def said(repl: Repl, line: str) -> str:
    repl.console.file.seek(0)
    repl.console.file.truncate()
    repl.handle(line)
    return repl.console.file.getvalue()


@pytest.mark.parametrize(
    ("n", "shown"),
    [(950, "950"), (12_300, "12.3k"), (128_000, "128k"), (1_000, "1k"), (1_048_576, "1.05M")],
)
def test_short_counts(n, shown):
    assert short_count(n) == shown


def test_toolbar_shows_tokens_share_of_the_window_and_cost(openai_env, tmp_path):
    server = openai_env
    server.models = [{"id": "gpt-test", "context_length": 128_000}]  # OpenRouter's list
    usage = {"prompt_tokens": 12_000, "completion_tokens": 300, "cost": 0.0123}
    server.push(Answer(Text("Hello."), usage=usage))
    repl = repl_for(Store(tmp_path / "t.db"), "openai:gpt-test")
    assert "tok" not in repl.toolbar  # nothing yet, and nothing asked of the server
    assert server.requests == []
    said(repl, "hi")
    assert repl.toolbar.endswith("│ 12.3k tok · 10% of 128k · $0.0123")
    info = said(repl, "/info")
    assert "12,300 tokens of 128,000 (10%)" in info and "$0.0123" in info


def test_without_usage_the_tokens_are_an_estimate():
    c = Conversation(get_backend("echo"))
    c.prompt("x" * 400).text()
    c.turns[-1].calls.clear()  # as if the server sent no usage
    used, estimated = context_used(c)
    assert estimated and used == 200  # 400 characters asked, 400 answered, / 4
    assert describe(c, 1000).startswith("~200 tok · 20% of 1k")


def configure(home, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(text)


def test_config_prices_give_the_cost_and_config_gives_the_window(home, server, tmp_path):
    configure(
        home,
        f'[providers.fake]\ntype = "openai"\nbase_url = "{server.openai_url}"\n'
        "needs_key = false\ncontext_window = 8000\nprices = {input = 2.0, output = 10.0}\n",
    )
    server.push(Answer(Text("ok"), usage={"prompt_tokens": 1000, "completion_tokens": 100}))
    repl = repl_for(Store(tmp_path / "p.db"), "fake:m")
    said(repl, "hi")
    # 1000 × $2/M + 100 × $10/M = $0.003
    assert repl.toolbar.endswith("│ 1.1k tok · 14% of 8k · $0.0030")


def test_a_bad_context_window_setting_is_one_sentence(home, server):
    configure(home, '[providers.fake]\ntype = "openai"\nbase_url = "x"\ncontext_window = "big"\n')
    out = run_chatrepl("-m", "fake:m", "-p", "hi", env=child_env())
    assert out.returncode == 1
    assert "context_window must be a whole number of tokens" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("where", "facts", "window"),
    [
        ("models", [{"id": "m", "context_length": 32_000}], 32_000),  # OpenRouter
        ("models", [{"id": "m", "max_model_len": 16_384}], 16_384),  # vLLM
        ("props", {"default_generation_settings": {"n_ctx": 4096}}, 4096),  # llama.cpp
        ("none", None, 8000),  # the server does not say: config
    ],
)
def test_the_window_comes_from_the_server_where_it_says(home, server, where, facts, window):
    configure(
        home,
        f'[providers.fake]\ntype = "openai"\nbase_url = "{server.openai_url}"\n'
        "needs_key = false\ncontext_window = 8000\n",
    )
    if where == "models":
        server.models = facts
    elif where == "props":
        server.props = facts
    model = get_backend("fake:m")
    assert model.context_window() == window
    model.close()


def test_served_models_feed_chatrepl_models_and_model_completion(home, server, tmp_path):
    server.models = [{"id": "served-a"}, {"id": "served-b"}]
    configure(
        home,
        f'[providers.fake]\ntype = "openai"\nbase_url = "{server.openai_url}"\n'
        'needs_key = false\nmodels = ["configured"]\n',
    )
    out = run_chatrepl("models", "--json", env=child_env())
    assert out.returncode == 0, out.stderr
    (fake,) = [p for p in json.loads(out.stdout)["providers"] if p["name"] == "fake"]
    assert fake["served"] == ["fake:served-a", "fake:served-b"]
    assert fake["models"] == ["fake:configured", "fake:served-a", "fake:served-b"]
    plain = run_chatrepl("models", env=child_env())
    assert "fake:served-b" in plain.stdout

    repl = repl_for(Store(tmp_path / "m.db"), "fake:configured")
    assert {"fake:served-a", "fake:served-b", "fake:configured"} <= set(repl.models())


def test_continue_carries_on_a_cut_off_answer(openai_env, tmp_path):
    server = openai_env
    repl = repl_for(Store(tmp_path / "c.db"), "openai:gpt-test")
    assert "Nothing to continue" in said(repl, "/continue")
    server.push(Answer(Text("The first half"), finish="length"))
    out = said(repl, "write a lot")
    assert "cut off at the token limit (/continue asks for the rest)" in out
    assert repl.conversation.turns[-1].status == "cut_off"
    server.push(Answer(Text(" and the rest.")))
    out = said(repl, "/continue")
    assert "and the rest." in out
    sent = server.last["json"]["messages"]
    assert sent[-2] == {"role": "assistant", "content": "The first half"}
    assert sent[-1] == {"role": "user", "content": CONTINUE_PROMPT}
    assert "not cut off" in said(repl, "/continue")

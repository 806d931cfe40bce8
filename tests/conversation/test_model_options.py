"""Options per prompt: ``-o KEY VALUE`` and ``/set`` / ``/unset``, parsed, checked, sent, saved."""

from __future__ import annotations

import io

import pytest
from conftest import child_env, run_chatrepl
from fakeserver import Reply
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from chatrepl.conversation import Conversation
from chatrepl.errors import OptionError
from chatrepl.model_options import parse, parse_all, parse_value
from chatrepl.providers.registry import get_backend
from chatrepl.repl.app import Repl
from chatrepl.store import Store

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0.2", 0.2),
        ("500", 500),
        ("true", True),
        ("false", False),
        ('["a", "b"]', ["a", "b"]),
        ('{"x": 1}', {"x": 1}),
        ("low", "low"),
        ("NaN", "NaN"),  # not a number a server takes: kept as text
        ("hello world", "hello world"),
    ],
)
def test_values_are_read_as_json_where_they_can_be(text, value):
    assert parse_value(text) == value


@pytest.mark.parametrize(
    ("key", "text", "value"),
    [
        ("temperature", "0", 0),
        ("temperature", "2", 2),
        ("max_tokens", "100", 100),
        ("max_tokens", "100.0", 100),
        ("reasoning_effort", "HIGH", "high"),
        ("reasoning_effort", "minimal", "minimal"),
        ("thinking_budget", "4000", 4000),
        ("top_k", "40", 40),  # unknown keys pass through as they are
        ("response_format", '{"type": "json_object"}', {"type": "json_object"}),
    ],
)
def test_known_options_are_checked_and_others_pass(key, text, value):
    assert parse(key, text) == (key, value)


@pytest.mark.parametrize(
    ("key", "text", "said"),
    [
        ("temperature", "5", "temperature must be a number from 0 to 2"),
        ("temperature", "-0.1", "from 0 to 2"),
        ("temperature", "hot", "temperature must be a number"),
        ("temperature", "true", "temperature must be a number"),
        ("temperature", "Infinity", "temperature must be a number"),
        ("max_tokens", "0", "max_tokens must be a positive whole number"),
        ("max_tokens", "1.5", "positive whole number"),
        ("max_tokens", "many", "positive whole number"),
        ("reasoning_effort", "extreme", "reasoning_effort must be one of none, minimal"),
        ("thinking_budget", "-3", "thinking_budget must be a positive whole number"),
        ("bad key!", "1", "is not an option name"),
    ],
)
def test_bad_values_get_one_sentence(key, text, said):
    with pytest.raises(OptionError) as info:
        parse(key, text)
    message = str(info.value)
    assert said in message
    assert message.endswith(".") and "\n" not in message


def test_the_last_of_a_repeated_option_wins():
    assert parse_all([("temperature", "0.1"), ("temperature", "0.3")]) == {"temperature": 0.3}


def test_options_merge_into_every_prompt_and_a_prompts_own_win():
    c = Conversation(get_backend("echo"))
    c.options.update(temperature=0.5, max_tokens=10)
    first = c.prompt("one", max_tokens=99)
    first.text()
    assert first.options == {"temperature": 0.5, "max_tokens": 99}
    second = c.prompt("two")
    second.text()
    assert second.options == {"temperature": 0.5, "max_tokens": 10}


def test_dash_o_is_sent_to_the_server_and_saved_with_the_turn(openai_env, tmp_path):
    server = openai_env
    db = tmp_path / "o.db"
    out = run_chatrepl(
        *("-m", "openai:gpt-test", "--db", str(db), "-p", "hi"),
        *("-o", "temperature", "0.2", "-o", "max_tokens", "50", "-o", "top_k", "7"),
        env=child_env(),
    )
    assert out.returncode == 0, out.stderr
    body = server.last["json"]
    assert (body["temperature"], body["max_tokens"], body["top_k"]) == (0.2, 50, 7)
    store = Store(db)
    (summary,) = store.recent()
    (turn,) = store.turns(summary.id)
    assert turn.options == {"temperature": 0.2, "max_tokens": 50, "top_k": 7}

    # -c goes on with the options of the last turn; a new -o adds to them
    out = run_chatrepl(
        *("--db", str(db), "-c", "-p", "again", "-o", "temperature", "1"), env=child_env()
    )
    assert out.returncode == 0, out.stderr
    body = server.last["json"]
    assert (body["temperature"], body["max_tokens"], body["top_k"]) == (1, 50, 7)


def test_a_bad_dash_o_is_a_usage_error_in_one_line(openai_env, tmp_path):
    out = run_chatrepl(
        *("-m", "openai:gpt-test", "--db", str(tmp_path / "x.db"), "-p", "hi"),
        *("-o", "temperature", "9"),
        env=child_env(),
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "chatrepl: temperature must be a number from 0 to 2, not 9."
    ]
    assert "Traceback" not in out.stderr
    assert openai_env.requests == []  # nothing was asked


def make_repl(store: Store, model_name: str) -> Repl:
    console = Console(file=io.StringIO(), width=100, color_system=None)
    conversation = Conversation(get_backend(model_name), store=store)
    return Repl(
        store, conversation, console=console, output=DummyOutput(), history=InMemoryHistory()
    )


def run(repl: Repl, line: str) -> str:
    repl.console.file.seek(0)
    repl.console.file.truncate()
    repl.handle(line)
    return repl.console.file.getvalue()


def test_set_and_unset_in_the_repl(openai_env, tmp_path):
    server = openai_env
    store = Store(tmp_path / "r.db")
    repl = make_repl(store, "openai:gpt-test")
    assert "No options set" in run(repl, "/set")
    assert "temperature = 0.3 from the next turn on" in run(repl, "/set temperature 0.3")
    run(repl, "/set reasoning_effort low")
    run(repl, '/set stop ["END"]')
    assert "temperature=0.3" in run(repl, "/set")

    server.push(Reply(text="ok"))
    run(repl, "hello")
    body = server.last["json"]
    assert (body["temperature"], body["reasoning_effort"], body["stop"]) == (0.3, "low", ["END"])
    turn = store.turns(repl.conversation.id)[-1]
    assert turn.options == {"temperature": 0.3, "reasoning_effort": "low", "stop": ["END"]}

    assert "temperature removed" in run(repl, "/unset temperature")
    assert "is not set" in run(repl, "/unset seed")
    server.push(Reply(text="ok"))
    run(repl, "again")
    assert "temperature" not in server.last["json"]
    run(repl, "/unset --all")
    assert repl.conversation.options == {}

    said = run(repl, "/set temperature warm")
    assert "temperature must be a number from 0 to 2, not 'warm'." in said
    assert "Give a value too" in run(repl, "/set max_tokens")
    assert repl.conversation.options == {}


def test_thinking_budget_reaches_anthropic_as_thinking(openai_env, tmp_path):
    server = openai_env
    store = Store(tmp_path / "a.db")
    repl = make_repl(store, "anthropic:claude-test")
    run(repl, "/set thinking_budget 3000")
    run(repl, "think")
    body = server.last["json"]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 3000}
    assert body["max_tokens"] > 3000

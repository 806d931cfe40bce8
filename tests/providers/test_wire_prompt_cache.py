"""Prompt caching: Anthropic requests carry ``cache_control`` marks (on by default, a switch per
provider turns them off), and cache reads and writes are read from every vendor's usage shape,
over a real socket against the fake vendor server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fakeserver import Answer, Call, FakeLLMServer, Raw, Text
from wirehelp import events, of

from chatrepl.conversation import Conversation
from chatrepl.providers.anthropic import MAX_CACHE_MARKS
from chatrepl.providers.http import Endpoint
from chatrepl.providers.openai import OpenAIBackend
from chatrepl.providers.registry import get_backend
from chatrepl.records import Message, Usage

MARK = {"type": "ephemeral"}


def marks(body: Any) -> list[str]:
    """Where a request body carries cache marks: ``tools``, ``system`` or ``message N``."""
    found = []
    for tool in body.get("tools", []):
        if "cache_control" in tool:
            found.append("tools")
    system = body.get("system")
    if isinstance(system, list) and any("cache_control" in b for b in system):
        found.append("system")
    for n, message in enumerate(body["messages"]):
        content = message["content"]
        if isinstance(content, list) and any("cache_control" in b for b in content):
            found.append(f"message {n}")
    assert json.dumps(body).count('"cache_control"') == len(found)
    return found


def weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: its name.
    """
    return f"Sunny in {city}"


def test_each_turn_marks_its_prompt_and_the_one_before(openai_env: FakeLLMServer) -> None:
    c = Conversation(get_backend("anthropic:claude-test"), system="Be brief.")
    c.prompt("one").text()
    first = openai_env.last["json"]
    assert first["system"] == [{"type": "text", "text": "Be brief.", "cache_control": MARK}]
    assert first["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "one", "cache_control": MARK}]}
    ]
    c.prompt("two").text()
    c.prompt("three").text()
    body = openai_env.last["json"]
    # the previous request wrote the cache up to "two": this one reads it and writes to "three"
    assert marks(body) == ["system", "message 2", "message 4"]
    users = [m["content"] for m in body["messages"] if m["role"] == "user"]
    assert users == ["one", [{"type": "text", "text": "two", "cache_control": MARK}],
                     [{"type": "text", "text": "three", "cache_control": MARK}]]  # fmt: skip


def test_tools_are_marked_and_each_call_of_a_chain_reuses_the_last(
    openai_env: FakeLLMServer,
) -> None:
    openai_env.push(
        Answer(Call("weather", '{"city": "Oslo"}', id="c1")),
        Answer(Call("weather", '{"city": "Rome"}', id="c2")),
        Answer(Text("Sunny both.")),
    )
    c = Conversation(get_backend("anthropic:claude-test"), system="Be brief.")
    assert c.chain("Oslo and Rome?", tools=[weather]).text() == "Sunny both."
    bodies = [r["json"] for r in openai_env.requests]
    assert [marks(b) for b in bodies] == [
        ["tools", "system", "message 0"],
        ["tools", "system", "message 0", "message 2"],
        ["tools", "system", "message 2", "message 4"],
    ]
    last = bodies[-1]["messages"][4]["content"][-1]
    assert last["type"] == "tool_result" and last["cache_control"] == MARK
    assert all(len(marks(b)) <= MAX_CACHE_MARKS for b in bodies)


def test_a_long_conversation_never_carries_more_than_four_marks(
    openai_env: FakeLLMServer,
) -> None:
    c = Conversation(get_backend("anthropic:claude-test"), system="Be brief.")
    for n in range(6):
        c.prompt(f"turn {n}", tools=[weather]).text()
        assert len(marks(openai_env.last["json"])) == min(3 + n, MAX_CACHE_MARKS)


def test_the_switch_in_config_turns_the_marks_off(openai_env: FakeLLMServer, home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("[providers.anthropic]\nprompt_cache = false\n")
    c = Conversation(get_backend("anthropic:claude-test"), system="Be brief.")
    c.prompt("one", tools=[weather]).text()
    body = openai_env.last["json"]
    assert "cache_control" not in json.dumps(body)
    assert body["system"] == "Be brief." and body["messages"][0]["content"] == "one"


def test_the_switch_must_be_true_or_false(openai_env: FakeLLMServer, home: Path) -> None:
    from chatrepl.errors import ConfigError

    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text('[providers.anthropic]\nprompt_cache = "no"\n')
    with pytest.raises(ConfigError, match="prompt_cache must be true or false"):
        get_backend("anthropic:claude-test")


def test_openai_requests_carry_no_marks(openai_env: FakeLLMServer) -> None:
    Conversation(get_backend("openai:gpt-test"), system="Be brief.").prompt("one").text()
    assert "cache_control" not in json.dumps(openai_env.last["json"])


# --- cache reads and writes, from every vendor's usage ----------------------------------------


def test_anthropic_reads_and_writes_add_up_to_the_input(openai_env: FakeLLMServer) -> None:
    usage = {
        "input_tokens": 20,
        "cache_creation_input_tokens": 1500,
        "cache_read_input_tokens": 3000,
        "output_tokens": 7,
    }
    openai_env.push(Answer(Text("x"), usage=usage))
    got = of(events(get_backend("anthropic:claude-test")), Usage)
    assert got == [Usage(4520, 7, cache_read_tokens=3000, cache_write_tokens=1500)]


def test_anthropic_figures_in_message_delta_win(openai_env: FakeLLMServer) -> None:
    start = {"input_tokens": 5, "cache_read_input_tokens": 0, "output_tokens": 1}
    final = {"input_tokens": 10, "cache_read_input_tokens": 2000, "output_tokens": 3}
    frames = [
        ("message_start", {"type": "message_start", "message": {"usage": start}}),
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": final},
        ),  # fmt: skip
        ("message_stop", {"type": "message_stop"}),
    ]
    body = "".join(f"event: {e}\ndata: {json.dumps(d)}\n\n" for e, d in frames).encode()
    openai_env.push(Raw(body))
    got = of(events(get_backend("anthropic:claude-test")), Usage)
    assert got == [Usage(2010, 3, cache_read_tokens=2000)]


def openai_usage(server: FakeLLMServer, usage: dict[str, Any]) -> Usage:
    server.push(Answer(Text("x"), usage=usage))
    (got,) = of(events(get_backend("openai:gpt-test")), Usage)
    return got


def test_openai_cached_tokens_are_reads(openai_env: FakeLLMServer) -> None:
    usage = {"prompt_tokens": 2000, "completion_tokens": 5,
             "prompt_tokens_details": {"cached_tokens": 1920}}  # fmt: skip
    assert openai_usage(openai_env, usage) == Usage(2000, 5, cache_read_tokens=1920)


def test_deepseek_hits_are_reads_and_hits_plus_misses_the_input(
    openai_env: FakeLLMServer,
) -> None:
    usage = {"prompt_tokens": 300, "completion_tokens": 5,
             "prompt_cache_hit_tokens": 256, "prompt_cache_miss_tokens": 44}  # fmt: skip
    assert openai_usage(openai_env, usage) == Usage(300, 5, cache_read_tokens=256)
    usage = {"completion_tokens": 5, "prompt_cache_hit_tokens": 256,
             "prompt_cache_miss_tokens": 44}  # fmt: skip
    assert openai_usage(openai_env, usage) == Usage(300, 5, cache_read_tokens=256)


def test_openrouter_cost_and_cache_writes(openai_env: FakeLLMServer) -> None:
    usage = {"prompt_tokens": 3000, "completion_tokens": 10, "cost": 0.0042,
             "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 2900}}  # fmt: skip
    assert openai_usage(openai_env, usage) == Usage(
        3000, 10, cache_read_tokens=0, cache_write_tokens=2900, cost=0.0042
    )


def test_openrouter_is_asked_for_the_cost() -> None:
    def body(url: str) -> dict[str, Any]:
        backend = OpenAIBackend("m", "router", {}, endpoint=Endpoint("OpenRouter", url))
        return backend.request_body([Message("user", "hi")], {}, None)

    assert body("https://openrouter.ai/api/v1")["usage"] == {"include": True}
    assert "usage" not in body("https://api.openai.com/v1")
    assert "usage" not in body("https://openrouter.ai.example.com/v1")

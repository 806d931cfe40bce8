"""Reasoning in every vendor's shape, how answers end, refusals and request options."""

from __future__ import annotations

import json

import pytest
from fakeserver import Answer, Call, Raw, Redacted, Refusal, Text, Think
from wirehelp import events, joined, of, reasoning, refusal

from chatrepl.providers.registry import get_backend
from chatrepl.records import Finish, Message, Part, ReasoningDelta, ToolCall


@pytest.fixture
def openai(openai_env):
    m = get_backend("openai:gpt-test")
    yield m
    m.close()


@pytest.fixture
def anthropic(openai_env):
    m = get_backend("anthropic:claude-test")
    yield m
    m.close()


@pytest.mark.parametrize("shape", ["reasoning_content", "reasoning", "details", "summary"])
def test_openai_style_reasoning_shapes(openai, server, shape):
    server.push(Answer(Think("Let me ", "think.", shape=shape), Text("Answer.")))
    got = events(openai)
    assert reasoning(got) == "Let me think."  # OpenRouter's doubled text is read once
    assert joined(got) == "Answer."
    assert all(e.provider is None for e in of(got, ReasoningDelta))  # never sent back


def test_openrouter_encrypted_reasoning_is_redacted_data(openai, server):
    server.push(Answer(Redacted("opaque=="), Text("Hi.")))
    got = events(openai)
    assert [e.redacted for e in of(got, ReasoningDelta)] == ["opaque=="]
    assert joined(got) == "Hi."


@pytest.mark.parametrize(
    "pieces",
    [
        ("<think>", "weighing it", "</think>", "\n\nThe answer."),
        ("<thi", "nk>weigh", "ing it</thi", "nk>The answer."),
        ("\n<think>weighing it</think>\nThe answer.",),
        ("<", "think", ">", "weighing", " it<", "/", "think", ">", "The answer."),
    ],
)
def test_think_tags_at_the_start_are_reasoning_even_when_split(openai, server, pieces):
    server.push(Answer(Think(*pieces, shape="tags")))
    got = events(openai)
    assert reasoning(got).strip() == "weighing it"
    assert joined(got) == "The answer."


def test_think_tags_later_in_the_answer_are_text(openai, server):
    server.push(Answer(Text("Use ", "<think>x</think>", " tags.")))
    got = events(openai)
    assert joined(got) == "Use <think>x</think> tags." and reasoning(got) == ""


def test_an_unclosed_think_block_is_all_reasoning(openai, server):
    server.push(Answer(Think("<think>still going", shape="tags"), finish="length"))
    got = events(openai)
    assert reasoning(got) == "still going" and joined(got) == ""
    assert got[-1] == Finish("length", "length")


def test_anthropic_thinking_with_signature_and_redacted(anthropic, server):
    server.push(Answer(Think("Plan: ", "call it."), Redacted("EnCrYpTeD"), Text("Done.")))
    got = events(anthropic)
    thoughts = of(got, ReasoningDelta)
    assert reasoning(got) == "Plan: call it."
    assert [e.signature for e in thoughts if e.signature] == ["sig-abc"]
    assert [e.redacted for e in thoughts if e.redacted] == ["EnCrYpTeD"]
    assert {e.provider for e in thoughts} == {"anthropic"}
    # the signature closes the thinking block: it comes after its text, before the answer
    kinds = [("sig" if getattr(e, "signature", None) else type(e).__name__) for e in got]
    assert kinds.index("sig") < kinds.index("TextDelta")
    assert joined(got) == "Done."


def turn(reasoning_data: dict, with_call: bool) -> list[Message]:
    parts = [Part("reasoning", "hmm", reasoning_data)]
    if with_call:
        parts.append(Part("tool_call", data={"id": "c1", "name": "now", "arguments": {}}))
    history = [Message("user", "time?"), Message("assistant", "", tuple(parts))]
    if with_call:
        history.append(Message("tool", parts=(Part("tool_result", "noon", {"call_id": "c1"}),)))
    else:
        history.append(Message("user", "thanks"))
    return history


@pytest.mark.parametrize(
    "data, with_call, sent",
    [
        ({"signature": "s1", "provider": "anthropic"}, True, ["thinking", "tool_use"]),
        ({"redacted": "R", "provider": "anthropic"}, True, ["redacted_thinking", "tool_use"]),
        ({"signature": "s1", "provider": "openrouter"}, True, ["tool_use"]),
        ({"provider": "anthropic"}, True, ["tool_use"]),  # no signature: nothing to send
    ],
)
def test_anthropic_gets_its_own_signed_thinking_back_in_a_tool_turn(
    anthropic, server, data, with_call, sent
):
    events(anthropic, turn(data, with_call))
    assistant = server.last["json"]["messages"][1]
    assert [b["type"] for b in assistant["content"]] == sent


def test_no_reasoning_goes_back_in_a_turn_without_tools(anthropic, server):
    events(anthropic, turn({"signature": "s1", "provider": "anthropic"}, False))
    assert "thinking" not in json.dumps(server.last["json"]["messages"])


def test_openai_style_servers_never_get_reasoning_back(openai, server):
    events(openai, turn({"signature": "s1", "provider": "anthropic"}, True))
    sent = json.dumps(server.last["json"]["messages"])
    assert "hmm" not in sent and "reasoning" not in sent and "thinking" not in sent


def test_options_reach_each_vendor_in_its_own_words(openai, anthropic, server):
    options = {"reasoning_effort": "high", "temperature": 0.2, "thinking_budget": 4000}
    events(openai, options=options)
    body = server.last["json"]
    assert (body["reasoning_effort"], body["temperature"]) == ("high", 0.2)
    assert "thinking_budget" not in body
    events(anthropic, options={"thinking_budget": 10000, "top_p": 0.9})
    body = server.last["json"]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 10000}
    assert body["max_tokens"] > 10000 and body["top_p"] == 0.9
    assert "thinking_budget" not in body
    events(anthropic)
    assert server.last["json"]["max_tokens"] == 8192 and "thinking" not in server.last["json"]


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("stop", "stop"),
        ("length", "length"),
        ("content_filter", "filtered"),
        ("tool_calls", "tool_calls"),
        ("function_call", "tool_calls"),
    ],
)
def test_openai_endings(openai, server, raw, reason):
    server.push(Answer(Text("x"), finish=raw))
    assert events(openai)[-1] == Finish(reason, raw)


def test_legacy_function_call(openai, server):
    body = (
        'data: {"choices":[{"index":0,"delta":{"function_call":{"name":"now","arguments":"{}"}}}]}'
        '\n\ndata: {"choices":[{"index":0,"delta":{},"finish_reason":"function_call"}]}\n\n'
        "data: [DONE]\n\n"
    )
    server.push(Raw(body.encode()))
    got = events(openai)
    assert of(got, ToolCall)[0].name == "now" and got[-1].reason == "tool_calls"


def test_openai_refusal(openai, server):
    server.push(Answer(Refusal("I can't ", "help with that.")))
    got = events(openai)
    assert refusal(got) == "I can't help with that." and joined(got) == ""
    assert got[-1] == Finish("refused", "stop")


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "refused"),
    ],
)
def test_anthropic_endings(anthropic, server, raw, reason):
    server.push(Answer(Text("x"), finish=raw))
    assert events(anthropic)[-1] == Finish(reason, raw)


def test_a_call_ends_with_tool_calls_even_if_the_server_says_stop(openai, server):
    server.push(Answer(Call("now", "{}"), finish="stop"))
    assert events(openai)[-1].reason == "tool_calls"

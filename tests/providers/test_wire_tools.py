"""Tool calls in both wire formats, over a real socket against the fake vendor server."""

from __future__ import annotations

import json

import pytest
from fakeserver import Answer, Call, Raw, Status, Text
from wirehelp import events, joined, of

from chatrepl import errors
from chatrepl.providers.registry import get_backend
from chatrepl.records import Finish, Message, Part, ToolCall, ToolSpec

WEATHER = ToolSpec(
    "get_weather",
    "The weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


@pytest.fixture(params=["openai:gpt-test", "anthropic:claude-test"])
def model(request, openai_env):
    m = get_backend(request.param)
    yield m
    m.close()


def test_tool_definitions_go_out_in_the_vendors_shape(model, server):
    events(model, tools=[WEATHER])
    sent = server.last["json"]["tools"]
    if server.last["vendor"] == "openai":
        assert sent == [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "The weather in a city.",
                    "parameters": WEATHER.parameters,
                },
            }
        ]
    else:
        assert sent == [
            {
                "name": "get_weather",
                "description": "The weather in a city.",
                "input_schema": WEATHER.parameters,
                "cache_control": {"type": "ephemeral"},  # the tools are cached
            }
        ]


def test_no_tools_key_without_tools(model, server):
    events(model)
    assert "tools" not in server.last["json"]


def test_argument_fragments_become_one_whole_call(model, server):
    server.push(Answer(Text("Let me look."), Call("get_weather", '{"ci', 'ty": "Pa', 'ris"}')))
    got = events(model, tools=[WEATHER])
    assert joined(got) == "Let me look."
    assert of(got, ToolCall) == [ToolCall("call_1", "get_weather", {"city": "Paris"})]
    assert got[-1] == Finish("tool_calls", got[-1].raw)
    assert got[-1].raw in ("tool_calls", "tool_use")


def test_parallel_calls_keep_their_order_and_ids(model, server):
    server.push(
        Answer(
            Call("get_weather", '{"city":', '"Paris"}', id="call_a"),
            Call("get_weather", '{"city": "Oslo"}', id="call_b"),
        )
    )
    calls = of(events(model, tools=[WEATHER]), ToolCall)
    assert [(c.id, c.arguments["city"]) for c in calls] == [("call_a", "Paris"), ("call_b", "Oslo")]


def test_interleaved_fragments_keyed_by_index(openai_env, server):
    def chunk(calls):
        delta = {"tool_calls": calls}
        return f"data: {json.dumps({'choices': [{'index': 0, 'delta': delta}]})}\n\n"

    body = (
        chunk([{"index": 0, "id": "a", "function": {"name": "f", "arguments": ""}}])
        + chunk([{"index": 1, "id": "b", "function": {"name": "g", "arguments": '{"x"'}}])
        + chunk([{"index": 0, "function": {"arguments": '{"y": 1'}}])
        + chunk([{"index": 1, "function": {"arguments": ": 2}"}}])
        + chunk([{"index": 0, "function": {"arguments": "}"}}])
        + 'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}\n\n'
        + "data: [DONE]\n\n"
    )
    server.push(Raw(body.encode()))
    calls = of(events(get_backend("openai:x"), tools=[WEATHER]), ToolCall)
    assert calls == [ToolCall("a", "f", {"y": 1}), ToolCall("b", "g", {"x": 2})]


def test_a_call_without_an_id_gets_one(model, server):
    server.push(Answer(Call("get_weather", '{"city": "Rome"}', id=None)))
    (call,) = of(events(model, tools=[WEATHER]), ToolCall)
    assert call.id.startswith("tc_") and len(call.id) > 20
    assert call.arguments == {"city": "Rome"}


def test_arguments_that_are_not_json_are_kept_raw(model, server):
    server.push(Answer(Call("get_weather", "{city: Paris", id="c1")))
    (call,) = of(events(model, tools=[WEATHER]), ToolCall)
    assert call.arguments == {} and call.raw == "{city: Paris"


def test_an_unknown_tool_is_reported_as_asked(model, server):
    server.push(Answer(Call("launch_rockets", "{}", id="c9")))
    (call,) = of(events(model, tools=[WEATHER]), ToolCall)
    assert (call.name, call.arguments, call.raw) == ("launch_rockets", {}, None)


def test_a_whole_json_reply_with_a_call(model, server):
    server.push(Answer(Text("ok"), Call("get_weather", '{"city": "Lima"}', id="w1"), whole=True))
    got = events(model, tools=[WEATHER])
    assert joined(got) == "ok"
    assert of(got, ToolCall) == [ToolCall("w1", "get_weather", {"city": "Lima"})]
    assert got[-1].reason == "tool_calls"


HISTORY = [
    Message("system", "Be brief."),
    Message("user", "Weather in Paris and Oslo?"),
    Message(
        "assistant",
        "Looking.",
        (
            Part("reasoning", "I should call it.", {"signature": "sig-1", "provider": "anthropic"}),
            Part("tool_call", data={"id": "c1", "name": "get_weather", "arguments": {"city": "P"}}),
            Part("tool_call", data={"id": "c2", "name": "get_weather", "arguments": {"city": "O"}}),
        ),
    ),
    Message(
        "tool",
        parts=(
            Part("tool_result", "18 C", {"call_id": "c1", "name": "get_weather"}),
            Part("tool_result", "no such city", {"call_id": "c2", "is_error": True}),
        ),
    ),
]


def test_history_with_calls_and_results_goes_out_in_the_vendors_shape(model, server):
    events(model, HISTORY, tools=[WEATHER])
    sent = server.last["json"]["messages"]
    if server.last["vendor"] == "openai":
        assert sent[2] == {
            "role": "assistant",
            "content": "Looking.",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "P"}'},
                },
                {
                    "id": "c2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "O"}'},
                },
            ],
        }
        assert sent[3:] == [
            {"role": "tool", "tool_call_id": "c1", "content": "18 C"},
            {"role": "tool", "tool_call_id": "c2", "content": "Error: no such city"},
        ]
        assert "reasoning_content" not in json.dumps(sent)  # DeepSeek rejects it
    else:
        assert sent[1] == {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "I should call it.", "signature": "sig-1"},
                {"type": "text", "text": "Looking."},
                {"type": "tool_use", "id": "c1", "name": "get_weather", "input": {"city": "P"}},
                {"type": "tool_use", "id": "c2", "name": "get_weather", "input": {"city": "O"}},
            ],
        }
        assert sent[2] == {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "c1", "content": "18 C", "is_error": False},
                {
                    "type": "tool_result",
                    "tool_use_id": "c2",
                    "content": "no such city",
                    "is_error": True,
                    "cache_control": {"type": "ephemeral"},  # the newest user message
                },
            ],
        }


NO_TOOLS = {
    "openai": {"error": {"message": "llama3 does not support tools", "type": "api_error"}},
    "ollama": {"error": "registry.ollama.ai/library/gemma:2b does not support tools"},
    "vllm": {"message": '"auto" tool choice requires --enable-auto-tool-choice', "object": "error"},
}


@pytest.mark.parametrize("shape", NO_TOOLS)
def test_a_model_that_refuses_tools_is_one_clear_sentence(model, server, shape):
    server.push(Status(400, NO_TOOLS[shape]))
    with pytest.raises(errors.ToolsUnsupportedError) as info:
        events(model, tools=[WEATHER])
    message = str(info.value)
    assert "does not support tools" in message and "\n" not in message
    assert message.endswith(".") and "{" not in message
    assert len(server.requests) == 1


def test_the_same_400_without_tools_stays_a_bad_request(model, server):
    server.push(Status(400, NO_TOOLS["ollama"]))
    with pytest.raises(errors.BadRequestError) as info:
        events(model)
    assert not isinstance(info.value, errors.ToolsUnsupportedError)

"""The Anthropic Messages provider, pinned down where mutation testing found it unguarded.

Each test talks to ``tests/fakeserver.py`` over a real socket and asserts what a caller sees:
the request body and headers the server received (Anthropic's documented shape), the events
an answer is read into, the sentence of an error. Odd streams are sent as ``Raw`` event-stream
bytes, exactly as a server may send them. See benchmarks/mutation/RESULTS.md
(``providers/anthropic.py``) for the mutants they kill.
"""

from __future__ import annotations

import json

import pytest
from fakeserver import Answer, Raw, Status, Text, Think
from wirehelp import ANTHROPIC_KEY, events, joined, of, reasoning

from chatrepl import errors
from chatrepl.providers.anthropic import AnthropicBackend
from chatrepl.providers.http import Endpoint
from chatrepl.records import (
    Finish,
    Message,
    Part,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    ToolSpec,
)

MARK = {"type": "ephemeral"}
TOOL = ToolSpec("lookup", "Look a word up.", {"type": "object", "properties": {}})


def make(server, name="claude-test", key=ANTHROPIC_KEY, **kw) -> AnthropicBackend:
    """An Anthropic model pointed at the fake server, without retries."""
    endpoint = Endpoint("Anthropic", server.anthropic_url, api_key=key, max_retries=0)
    return AnthropicBackend(name, "anthropic", kw.pop("options", {}), endpoint=endpoint, **kw)


def body(server) -> dict:
    return server.last["json"]


def headers_of(request: dict) -> dict[str, str]:
    return {k.lower(): v for k, v in request["headers"].items()}


def frames(*events_: tuple[str, dict]) -> bytes:
    """Anthropic event-stream frames: ``event:`` name and its JSON data."""
    return "".join(
        f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n" for name, data in events_
    ).encode()


START = ("message_start", {"message": {"usage": {"input_tokens": 3, "output_tokens": 1}}})
END = (
    ("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}}),
    ("message_stop", {}),
)


def text_block(index: int, text: str) -> tuple[tuple[str, dict], ...]:
    return (
        ("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}}),
        (
            "content_block_delta",
            {"index": index, "delta": {"type": "text_delta", "text": text}},
        ),
        ("content_block_stop", {"index": index}),
    )


# --- what goes out ----------------------------------------------------------------------------


def test_the_stream_request_asks_for_an_event_stream_with_the_version_and_key(server):
    # kills headers_4, _7, _8
    events(make(server))
    sent = headers_of(server.last)
    assert sent["accept"] == "text/event-stream"
    assert sent["anthropic-version"] == "2023-06-01"
    assert sent["x-api-key"] == ANTHROPIC_KEY


def test_the_model_list_is_asked_once_with_the_key_and_not_for_a_stream(server):
    # kills available_models_1, _2, _4–_9, _14, _20, _22, _23, _25–_36, _39, _42; headers_5, _6
    server.models = [
        {"id": "claude-b", "type": "model", "display_name": "B"},
        {"id": 7},  # an id that is not text is no model
        "junk",
        {"id": "claude-a", "type": "model"},
    ]
    model = make(server)
    assert model.available_models() == ["claude-b", "claude-a"]
    assert model.available_models() == ["claude-b", "claude-a"]
    assert len(server.requests) == 1  # asked once, then kept
    asked = server.last
    assert asked["method"] == "GET" and asked["path"] == "/v1/models?limit=1000"
    sent = headers_of(asked)
    assert sent["x-api-key"] == ANTHROPIC_KEY
    assert sent["anthropic-version"] == "2023-06-01"
    assert sent.get("accept") != "text/event-stream"  # a JSON answer, not a stream


def test_several_system_messages_are_one_system_text(server):
    # kills request_body_3
    history = [Message("system", "Be brief."), Message("system", "Answer in French.")]
    events(make(server), messages=[*history, Message("user", "hi")])
    assert body(server)["system"] == [
        {"type": "text", "text": "Be brief.\n\nAnswer in French.", "cache_control": MARK}
    ]


@pytest.mark.parametrize(
    ("options", "budget", "max_tokens"),
    [
        ({"reasoning_effort": "High"}, 24576, 24576 + 8192),  # the OpenAI-style option
        ({"reasoning_effort": "low"}, 2048, 8192),  # room left: max_tokens kept
        ({"reasoning_effort": "high", "thinking_budget": 3000}, 3000, 8192),  # the budget wins
    ],
)
def test_reasoning_effort_becomes_a_thinking_budget(server, options, budget, max_tokens):
    # kills request_body_25, _26, _29, _30, _38
    events(make(server), options=options)
    sent = body(server)
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert sent["max_tokens"] == max_tokens
    assert "reasoning_effort" not in sent and "thinking_budget" not in sent


def test_a_zero_budget_sends_no_thinking(server):
    # kills request_body_42
    events(make(server), options={"thinking_budget": 0})
    assert "thinking" not in body(server) and body(server)["max_tokens"] == 8192


def test_a_budget_of_one_token_is_sent_as_it_is(server):
    # kills request_body_43 (the server, not chatrepl, judges a budget too small)
    events(make(server), options={"thinking_budget": 1})
    assert body(server)["thinking"] == {"type": "enabled", "budget_tokens": 1}


@pytest.mark.parametrize(
    ("max_tokens", "budget", "sent"),
    [
        (50000, 2048, 50000),  # room for the answer after the thinking: kept
        (2048, 2048, 2048 + 8192),  # none left: raised
        (1000, 2048, 2048 + 8192),
    ],
)
def test_max_tokens_is_raised_only_when_the_budget_leaves_no_room(server, max_tokens, budget, sent):
    # kills request_body_53, _56
    events(make(server), options={"max_tokens": max_tokens, "thinking_budget": budget})
    assert body(server)["max_tokens"] == sent


def test_a_tool_without_parameters_gets_an_empty_object_schema(server):
    # kills request_body_71–_76
    events(make(server), tools=[ToolSpec("now", "The time.", {})])
    assert body(server)["tools"] == [
        {
            "name": "now",
            "description": "The time.",
            "input_schema": {"type": "object", "properties": {}},
            "cache_control": MARK,
        }
    ]


def test_a_user_message_of_no_blocks_goes_out_unmarked(server):
    # kills mark_cache_64, _65 (an empty block list has no last block to mark)
    empty = Part("attachment", "", {"name": "empty.txt", "mime": "text/plain", "content": b" \n"})
    history = [Message("user", "first"), Message("assistant", "ok"), Message("user", "", (empty,))]
    events(make(server), messages=history)
    assert body(server)["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "first", "cache_control": MARK}]},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": []},
    ]


# --- tool results, calls and thinking sent back ------------------------------------------------


def call(call_id: str | None = "c1", name: str | None = "lookup", **arguments) -> Part:
    data: dict = {"arguments": arguments}
    if call_id is not None:
        data["id"] = call_id
    if name is not None:
        data["name"] = name
    return Part("tool_call", "", data)


def result(text: str, call_id: str | None, is_error: bool = False) -> Part:
    data: dict = {"is_error": is_error}
    if call_id is not None:
        data["call_id"] = call_id
    return Part("tool_result", text, data)


def tool_result_block(text: str, call_id: str, is_error: bool = False) -> dict:
    return {"type": "tool_result", "tool_use_id": call_id, "content": text, "is_error": is_error}


def test_results_of_tool_messages_in_a_row_are_one_user_message(server):
    # kills wire_messages_31, _32, _34, _41, _42
    history = [
        Message("user", "look both up"),
        Message("assistant", "", (call("c1", w="a"), call("c2", w="b"))),
        Message("tool", "", (result("first", "c1"),)),
        Message("tool", "", (result("second", "c2", True),)),
    ]
    events(make(server, prompt_cache=False), messages=history, tools=[TOOL])
    sent = body(server)["messages"]
    assert len(sent) == 3
    assert sent[2] == {
        "role": "user",
        "content": [tool_result_block("first", "c1"), tool_result_block("second", "c2", True)],
    }


def test_a_history_that_starts_with_tool_results_sends_them_first(server):
    # kills wire_messages_33 (a history cut before the call that asked for them)
    history = [Message("tool", "", (result("42", "c9"),)), Message("user", "go on")]
    events(make(server, prompt_cache=False), messages=history)
    assert body(server)["messages"] == [
        {"role": "user", "content": [tool_result_block("42", "c9")]},
        {"role": "user", "content": "go on"},
    ]


def test_a_result_saved_without_a_call_id_goes_out_with_an_empty_one(server):
    # kills wire_messages_14, _16, _19
    history = [
        Message("user", "look"),
        Message("assistant", "", (call("c1"),)),
        Message("tool", "", (result("lost", None),)),
    ]
    events(make(server, prompt_cache=False), messages=history, tools=[TOOL])
    assert body(server)["messages"][2]["content"] == [tool_result_block("lost", "")]


def test_a_call_saved_without_id_or_name_goes_out_blank(server):
    # kills wire_messages_135, _137, _140, _145, _147, _150
    history = [Message("user", "x"), Message("assistant", "", (Part("tool_call", "", {}),))]
    events(make(server, prompt_cache=False), messages=history, tools=[TOOL])
    assert body(server)["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "", "name": "", "input": {}}],
    }


def test_the_thinking_of_a_turn_that_used_tools_goes_back_after_other_parts(server):
    # kills wire_messages_92, _101, _102: another vendor's reasoning first is skipped, not
    # the end of the search; redacted thinking goes back as its data
    parts = (
        Part("reasoning", "an earlier model's thought", {}),
        Part("reasoning", "Plan.", {"provider": "anthropic", "signature": "sig-1"}),
        Part("reasoning", "", {"provider": "anthropic", "redacted": "EnCrYpTeD"}),
        call("c1", w="x"),
    )
    history = [Message("user", "look"), Message("assistant", "Looking.", parts)]
    events(make(server, prompt_cache=False), messages=history, tools=[TOOL])
    assert body(server)["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "Plan.", "signature": "sig-1"},
            {"type": "redacted_thinking", "data": "EnCrYpTeD"},
            {"type": "text", "text": "Looking."},
            {"type": "tool_use", "id": "c1", "name": "lookup", "input": {"w": "x"}},
        ],
    }


def test_a_user_message_with_attachments_is_a_user_message_of_blocks_in_order(server):
    # kills wire_messages_64–_67; user_blocks_14, _43 (what follows a note or a text file is
    # still sent), _45–_48 (the bytes as a base64 source)
    png, pdf = b"\x89PNG\r\n\x1a\nfake", b"%PDF-1.4 fake"
    attached = (
        Part("attachment", "", {"name": "old.png", "mime": "image/png", "omitted": True}),
        Part("attachment", "", {"name": "a.png", "mime": "image/png", "content": png}),
        Part("attachment", "", {"name": "notes.txt", "mime": "text/plain", "content": b"hi"}),
        Part("attachment", "", {"name": "r.pdf", "mime": "application/pdf", "content": pdf}),
    )
    events(make(server, prompt_cache=False), messages=[Message("user", "look", attached)])
    b64 = {"type": "base64"}
    assert body(server)["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "[old.png was attached earlier; it is not sent again]"},
                {
                    "type": "image",
                    "source": {**b64, "media_type": "image/png", "data": "iVBORw0KGgpmYWtl"},
                },
                {
                    "type": "document",
                    "source": {"type": "text", "media_type": "text/plain", "data": "hi"},
                    "title": "notes.txt",
                },
                {
                    "type": "document",
                    "source": {
                        **b64,
                        "media_type": "application/pdf",
                        "data": "JVBERi0xLjQgZmFrZQ==",
                    },
                    "title": "r.pdf",
                },
                {"type": "text", "text": "look"},
            ],
        }
    ]


# --- the sentences of a refused request name the model ----------------------------------------


def test_an_unknown_model_is_named_in_its_sentence(server):
    # kills stream_20
    server.push(Status(404))
    with pytest.raises(errors.ModelNotFoundError) as caught:
        events(make(server, name="claude-nope"))
    assert str(caught.value).startswith(
        f"Anthropic has no model 'claude-nope' at {server.base_url}"
    )


def anthropic_error(message: str) -> dict:
    return {"type": "error", "error": {"type": "invalid_request_error", "message": message}}


def test_a_request_refused_for_its_tools_names_the_model(server):
    # kills stream_34
    server.push(Status(400, anthropic_error("This model does not support tools")))
    with pytest.raises(errors.ToolsUnsupportedError) as caught:
        events(make(server, name="claude-tiny"), tools=[TOOL])
    assert str(caught.value).startswith("'claude-tiny' at Anthropic does not support tools")


def test_tools_refused_in_the_stream_name_the_model(server):
    # kills stream_50, _51, _56, _57, _58
    error = {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "tools are not supported"},
    }
    server.push(Raw(frames(START) + b"event: error\ndata: " + json.dumps(error).encode() + b"\n\n"))
    with pytest.raises(errors.ToolsUnsupportedError) as caught:
        events(make(server, name="claude-tiny"), tools=[TOOL])
    assert str(caught.value).startswith("'claude-tiny' at Anthropic does not support tools")


def test_a_request_refused_for_its_image_names_the_model_and_the_file(server):
    # kills stream_31, _37
    image = Part("attachment", "", {"name": "cat.png", "mime": "image/png", "content": b"\x89PNG"})
    server.push(Status(400, anthropic_error("This model does not support image input")))
    with pytest.raises(errors.AttachmentError) as caught:
        events(make(server, name="claude-tiny"), messages=[Message("user", "see", (image,))])
    assert str(caught.value).startswith(
        "Anthropic's 'claude-tiny' did not accept the attachment 'cat.png'"
    )


# --- what comes in -----------------------------------------------------------------------------


def test_a_whole_answer_with_thinking_reads_it_once_with_its_signature(server):
    # kills whole_events_30, _31, _56, _57
    server.push(Answer(Think("Plan: ", "look."), Text("Done."), whole=True))
    got = events(make(server))
    assert reasoning(got) == "Plan: look."
    assert [e.signature for e in of(got, ReasoningDelta) if e.signature] == ["sig-abc"]
    assert joined(got) == "Done."
    assert got[-1] == Finish("stop", "end_turn")


def test_a_whole_answer_with_a_call_without_input_has_empty_arguments(server):
    # kills whole_events_64
    message = {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "t1", "name": "lookup"}],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 5, "output_tokens": 2},
    }
    server.push(Raw(json.dumps(message).encode(), content_type="application/json"))
    got = events(make(server), tools=[TOOL])
    assert of(got, ToolCall) == [ToolCall("t1", "lookup", {}, None)]
    assert got[-1] == Finish("tool_calls", "tool_use")


def test_text_and_thinking_sent_in_a_block_start_are_kept(server):
    # kills feed_47–_53, _55–_61 (the documented start is empty; a server may put words there)
    thinking = {"type": "thinking", "thinking": "First, "}
    server.push(
        Raw(
            frames(
                START,
                ("content_block_start", {"index": 0, "content_block": thinking}),
                (
                    "content_block_delta",
                    {"index": 0, "delta": {"type": "thinking_delta", "thinking": "then."}},
                ),
                ("content_block_stop", {"index": 0}),
                (
                    "content_block_start",
                    {"index": 1, "content_block": {"type": "text", "text": "Hello"}},
                ),
                (
                    "content_block_delta",
                    {"index": 1, "delta": {"type": "text_delta", "text": " world"}},
                ),
                ("content_block_stop", {"index": 1}),
                *END,
            )
        )
    )
    got = events(make(server))
    assert [e.text for e in got if isinstance(e, ReasoningDelta | TextDelta)] == [
        "First, ",
        "then.",
        "Hello",
        " world",
    ]
    assert reasoning(got) == "First, then." and joined(got) == "Hello world"


def test_blocks_never_started_are_ignored(server):
    # kills feed_125, _127, _134, _135 (fragments for an index never started), _150, _152 (a
    # stop for an index never started)
    fragment = {"type": "input_json_delta", "partial_json": '{"w": 1}'}
    server.push(
        Raw(
            frames(
                START,
                ("content_block_delta", {"index": 5, "delta": fragment}),
                ("content_block_stop", {"index": 5}),
                ("content_block_stop", {"index": 9}),
                *text_block(0, "ok"),
                *END,
            )
        )
    )
    got = events(make(server))
    assert joined(got) == "ok"
    assert of(got, ToolCall) == []
    assert got[-1] == Finish("stop", "end_turn")


def tool_use_stream(start_input: dict, *fragments: str) -> bytes:
    block = {"type": "tool_use", "id": "t1", "name": "weather", "input": start_input}
    deltas = [
        (
            "content_block_delta",
            {"index": 0, "delta": {"type": "input_json_delta", "partial_json": f}},
        )
        for f in fragments
    ]
    stop = {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 4}}
    return frames(
        START,
        ("content_block_start", {"index": 0, "content_block": block}),
        *deltas,
        ("content_block_stop", {"index": 0}),
        ("message_delta", stop),
        ("message_stop", {}),
    )


def test_a_call_whose_input_comes_whole_in_its_start_has_those_arguments(server):
    # kills feed_176–_180
    server.push(Raw(tool_use_stream({"city": "Oslo"})))
    got = events(make(server), tools=[TOOL])
    assert of(got, ToolCall) == [ToolCall("t1", "weather", {"city": "Oslo"}, None)]


def test_streamed_arguments_win_over_an_input_in_the_start(server):
    # kills feed_175
    server.push(Raw(tool_use_stream({"city": "Oslo"}, '{"city": ', '"Bergen"}')))
    got = events(make(server), tools=[TOOL])
    assert of(got, ToolCall) == [ToolCall("t1", "weather", {"city": "Bergen"}, None)]

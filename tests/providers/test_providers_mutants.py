"""The OpenAI-compatible provider, pinned down where mutation testing found it unguarded.

Each test talks to ``tests/fakeserver.py`` over a real socket and asserts what a caller sees:
the events of a stream, the sentence of an error, the request body and headers the server
received. See benchmarks/mutation/RESULTS.md (``providers/openai.py``) for the mutants they kill.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fakeserver import Answer, Call, Raw, Status, Text
from wirehelp import KEY, events, joined, of, reasoning

from chatrepl import errors
from chatrepl.providers.http import Endpoint
from chatrepl.providers.openai import OpenAIBackend
from chatrepl.providers.sse import Event as SSEEvent
from chatrepl.providers.sse import iter_events
from chatrepl.providers.stream import split_lines, whole_body
from chatrepl.records import (
    Finish,
    Message,
    Part,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCall,
    ToolSpec,
    Usage,
)

TOOL = ToolSpec("lookup", "Look a word up.", {"type": "object", "properties": {}})


def make(
    server, name="gpt-test", provider="openai", key=KEY, label="OpenAI", **kw
) -> OpenAIBackend:
    """An OpenAI-compatible model pointed at the fake server."""
    endpoint = Endpoint(label, server.openai_url, api_key=key, max_retries=0)
    return OpenAIBackend(name, provider, kw.pop("options", {}), endpoint=endpoint, **kw)


def sse(*payloads, done: bool = True) -> bytes:
    """OpenAI-style frames for these payloads, then [DONE]."""
    frames = [f"data: {p if isinstance(p, str) else json.dumps(p)}\n\n" for p in payloads]
    return ("".join(frames) + ("data: [DONE]\n\n" if done else "")).encode()


def chunk(delta=None, finish=None, index=0, **extra) -> dict:
    """One chat.completion.chunk with one choice."""
    choice = {"index": index, "delta": delta or {}, "finish_reason": finish}
    return {"choices": [choice], **extra}


def body(server) -> dict:
    return server.last["json"]


# --- what goes out ----------------------------------------------------------------------------


def test_headers_ask_for_a_stream_and_carry_the_key(server):
    events(make(server))
    headers = {k.lower(): v for k, v in server.last["headers"].items()}
    assert headers["accept"] == "text/event-stream"
    assert headers["authorization"] == f"Bearer {KEY}"


def test_no_authorization_header_without_a_key(server):
    events(make(server, key=None))
    assert "authorization" not in {k.lower() for k in server.last["headers"]}


def test_the_server_checks_the_key_it_was_given(server):
    server.api_key = KEY
    got = events(make(server))
    assert joined(got).startswith("You said: hello world")


def test_request_body_fields(server):
    model = make(server, options={"temperature": 0.5, "top_p": 0.9})
    events(model, options={"temperature": 0.1, "thinking_budget": 100})
    sent = body(server)
    assert sent["model"] == "gpt-test"
    assert sent["stream"] is True
    assert sent["temperature"] == 0.1  # the call's options win over the model's
    assert sent["top_p"] == 0.9
    assert "thinking_budget" not in sent  # Anthropic's option, not sent to OpenAI servers
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["messages"] == [{"role": "user", "content": "hello world"}]


def test_a_tool_without_parameters_gets_an_empty_object_schema(server):
    events(make(server), tools=[ToolSpec("now", "The time.", {})])
    assert body(server)["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "now",
                "description": "The time.",
                "parameters": {"type": "object", "properties": {}},
            },
        }
    ]


def test_a_server_that_rejects_stream_options_is_asked_again_without(server):
    server.push(Status(400, {"error": {"message": "Unrecognized field: stream_options"}}))
    model = make(server)
    got = events(model)
    assert joined(got).startswith("You said: hello world")
    assert [("stream_options" in r["json"]) for r in server.requests] == [True, False]
    events(model)  # and it is remembered
    assert "stream_options" not in body(server)
    assert len(server.requests) == 3


def test_another_bad_request_is_not_asked_again(server):
    server.push(Status(400, {"error": {"message": "temperature is out of range"}}))
    with pytest.raises(errors.BadRequestError) as caught:
        events(make(server))
    assert "temperature is out of range" in str(caught.value)
    assert len(server.requests) == 1


def test_a_model_without_stream_options_never_sends_them(server):
    model = make(server, usage_option=False)
    server.push(Status(400, {"error": {"message": "bad stream_options"}}))
    with pytest.raises(errors.BadRequestError):
        events(model)
    assert len(server.requests) == 1


def tool_message(*results) -> Message:
    parts = tuple(
        Part("tool_result", text, {"call_id": call_id, "is_error": is_error})
        for call_id, text, is_error in results
    )
    return Message("tool", "", parts)


def test_tool_results_go_out_one_message_each_with_errors_marked(server):
    call = Part("tool_call", "", {"id": "c1", "name": "lookup", "arguments": {}})
    history = [
        Message("user", "look"),
        Message("assistant", "", (call,)),
        tool_message(
            ("c1", "no such word", True), ("c2", "ERROR: gone", True), ("c3", "ok", False)
        ),
    ]
    events(make(server), messages=history, tools=[TOOL])
    sent = body(server)["messages"]
    assert sent[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
        ],
    }
    assert sent[2:] == [
        {"role": "tool", "tool_call_id": "c1", "content": "Error: no such word"},
        {"role": "tool", "tool_call_id": "c2", "content": "ERROR: gone"},
        {"role": "tool", "tool_call_id": "c3", "content": "ok"},
    ]


def test_a_tool_message_skips_parts_that_are_not_results(server):
    parts = (
        Part("text", "note"),
        Part("tool_result", "42", {"call_id": "c9"}),
        Part("tool_result", "lost", {}),
    )
    call = Part("tool_call", "", {"id": "c9", "name": "lookup", "arguments": {"w": "x"}})
    history = [
        Message("user", "look"),
        Message("assistant", "Looking.", (call,)),
        Message("tool", "", parts),
    ]
    events(make(server), messages=history, tools=[TOOL])
    sent = body(server)["messages"]
    assert sent[1]["content"] == "Looking."
    assert sent[1]["tool_calls"][0]["function"]["arguments"] == '{"w": "x"}'
    assert sent[2:] == [
        {"role": "tool", "tool_call_id": "c9", "content": "42"},
        {"role": "tool", "tool_call_id": "", "content": "lost"},
    ]


def test_a_call_saved_without_id_name_or_arguments_goes_out_blank(server):
    history = [Message("user", "x"), Message("assistant", "", (Part("tool_call", "", {}),))]
    events(make(server), messages=history, tools=[TOOL])
    assert body(server)["messages"][1]["tool_calls"] == [
        {"id": "", "type": "function", "function": {"name": "", "arguments": "{}"}}
    ]


# --- what comes back --------------------------------------------------------------------------


def test_an_empty_stream_is_one_sentence(server):
    server.push(Raw(b": just a comment\n\n"))
    with pytest.raises(errors.StreamError) as caught:
        events(make(server, label="Acme"))
    assert str(caught.value) == "Acme answered with an empty stream."


def test_a_stream_cut_short_keeps_its_usage_then_says_so(server):
    usage = {"prompt_tokens": 3, "completion_tokens": 2}
    server.push(Raw(sse(chunk({"content": "Half"}), {"choices": [], "usage": usage}, done=False)))
    got = []
    with pytest.raises(errors.StreamError) as caught:
        for event in make(server, label="Acme").stream(
            [Message("user", "hi")], {}, threading.Event()
        ):
            got.append(event)
    assert str(caught.value) == "The answer from Acme ended early; the text that arrived was kept."
    assert joined(got) == "Half"
    assert of(got, Usage) == [Usage(input_tokens=3, output_tokens=2)]


def test_done_with_spaces_around_it_ends_the_stream(server):
    frames = sse(chunk({"content": "Hi"}), chunk(finish="stop"), done=False)
    server.push(Raw(frames + b"data:  [DONE] \n\ndata: {not json\n\n"))
    got = events(make(server))
    assert joined(got) == "Hi"
    assert got[-1] == Finish("stop", "stop")


def test_a_finish_reason_without_done_is_a_whole_answer(server):
    server.push(Raw(sse(chunk({"content": "Hi"}), chunk(finish="stop"), done=False)))
    got = events(make(server))
    assert joined(got) == "Hi" and got[-1] == Finish("stop", "stop")


def test_done_without_a_finish_reason_ends_as_stop(server):
    server.push(Raw(sse(chunk({"content": "Hi"}))))
    got = events(make(server))
    assert got[-1] == Finish("stop", "")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("eos", "stop"),
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("function_call", "tool_calls"),
        ("tool_use", "tool_calls"),
        ("something_new", "stop"),
    ],
)
def test_every_finish_reason_a_server_may_say(server, raw, reason):
    server.push(Raw(sse(chunk({"content": "x"}), chunk(finish=raw))))
    assert events(make(server))[-1] == Finish(reason, raw)


def test_a_finish_reason_that_is_not_text_is_kept_written_out(server):
    server.push(Raw(sse(chunk({"content": "x"}), chunk(finish=7))))
    assert events(make(server))[-1] == Finish("stop", "7")


def test_a_refusal_that_ran_out_of_room_stays_length(server):
    server.push(Raw(sse(chunk({"refusal": "I can"}), chunk(finish="length"))))
    got = events(make(server))
    assert of(got, RefusalDelta) == [RefusalDelta("I can")]
    assert got[-1] == Finish("length", "length")


def test_a_refusal_that_stops_is_refused(server):
    server.push(Raw(sse(chunk({"refusal": "No."}), chunk(finish="stop"))))
    assert events(make(server))[-1] == Finish("refused", "stop")


def test_calls_cut_by_length_stay_length(server):
    call = {"index": 0, "id": "c1", "function": {"name": "lookup", "arguments": "{}"}}
    server.push(Raw(sse(chunk({"tool_calls": [call]}), chunk(finish="length"))))
    got = events(make(server), tools=[TOOL])
    assert of(got, ToolCall) == [ToolCall("c1", "lookup", {})]
    assert got[-1] == Finish("length", "length")


def test_choice_without_an_index_is_read_and_others_are_not(server):
    first = {"choices": [{"delta": {"content": "A"}}]}
    second = {"choices": [{"index": 2, "delta": {"content": "B"}}, {"delta": {"content": "C"}}]}
    server.push(Raw(sse(first, second, chunk(finish="stop"))))
    assert joined(events(make(server))) == "AC"


def test_a_message_instead_of_a_delta_is_read(server):
    server.push(Raw(sse({"choices": [{"index": 0, "message": {"content": "Whole"}}]})))
    assert joined(events(make(server))) == "Whole"


def test_frames_that_are_not_objects_are_skipped(server):
    server.push(Raw(sse("[1, 2]", '"text"', chunk({"content": "ok"}), chunk(finish="stop"))))
    got = events(make(server))
    assert joined(got) == "ok" and got[-1] == Finish("stop", "stop")


@pytest.mark.parametrize("empty", [None, "", {}, []])
def test_an_empty_error_field_is_no_error(server, empty):
    server.push(Raw(sse({**chunk({"content": "fine"}), "error": empty}, chunk(finish="stop"))))
    assert joined(events(make(server))) == "fine"


def test_an_error_event_mid_stream_is_one_sentence_after_the_usage(server):
    usage = {"prompt_tokens": 4, "completion_tokens": 1}
    frames = (
        sse(chunk({"content": "So"}), {"choices": [], "usage": usage}, done=False)
        + b'event: error\ndata: {"message": "overloaded, try later."}\n\n'
    )
    server.push(Raw(frames))
    got = []
    with pytest.raises(errors.ServerError) as caught:
        for event in make(server, label="Acme").stream(
            [Message("user", "hi")], {}, threading.Event()
        ):
            got.append(event)
    assert str(caught.value) == "Acme reported an error mid-answer: overloaded, try later."
    assert of(got, Usage) == [Usage(input_tokens=4, output_tokens=1)]


def test_an_error_without_words_still_says_where(server):
    server.push(Raw(sse({"error": {"status": True}}, done=False)))
    with pytest.raises(errors.ServerError) as caught:
        events(make(server, label="Acme"))
    assert str(caught.value) == "Acme reported an error mid-answer."


def test_an_error_quoting_the_key_never_shows_it(server):
    said = "bad key " + KEY + "\nsecond line"
    server.push(Raw(sse({"error": {"message": said}}, done=False)))
    with pytest.raises(errors.ServerError) as caught:
        events(make(server, label="Acme"))
    assert KEY not in str(caught.value)
    assert str(caught.value) == "Acme reported an error mid-answer: bad key *** second line."


def test_a_long_error_is_cut_to_one_short_line(server):
    said = "x" * 300 + "yz"
    server.push(Raw(sse({"error": {"message": said}}, done=False)))
    with pytest.raises(errors.ServerError) as caught:
        events(make(server, label="Acme"))
    # no full stop after the ellipsis
    assert str(caught.value) == f"Acme reported an error mid-answer: {'x' * 299}…"


def test_an_error_keeps_its_last_letters(server):
    server.push(Raw(sse({"error": {"message": "limit is MAX. "}}, done=False)))
    with pytest.raises(errors.ServerError) as caught:
        events(make(server, label="Acme"))
    assert str(caught.value) == "Acme reported an error mid-answer: limit is MAX."


def test_an_exhausted_quota_mid_stream_is_a_quota_error(server):
    error = {"message": "You exceeded your quota.", "code": "insufficient_quota"}
    server.push(Raw(sse({"error": error}, done=False)))
    with pytest.raises(errors.QuotaError) as caught:
        events(make(server, label="Acme"))
    assert str(caught.value).startswith(
        "Acme says the account has run out of quota or credit (HTTP 429): You exceeded your quota:"
    )


@pytest.mark.parametrize("said", ["This model does not support tools", "Tools are not enabled"])
def test_a_refusal_of_tools_mid_stream_says_so_only_when_tools_went_out(server, said):
    server.push(Raw(sse({"error": {"message": said}}, done=False)))
    with pytest.raises(errors.ToolsUnsupportedError) as refused:
        events(make(server), tools=[TOOL])
    assert str(refused.value).startswith("'gpt-test' at OpenAI does not support tools")
    server.push(Raw(sse({"error": {"message": said}}, done=False)))
    with pytest.raises(errors.ServerError) as caught:
        events(make(server))
    assert not isinstance(caught.value, errors.ToolsUnsupportedError)


def test_another_error_mid_stream_with_tools_is_not_about_tools(server):
    server.push(Raw(sse({"error": {"message": "The server is overloaded"}}, done=False)))
    with pytest.raises(errors.ServerError) as caught:
        events(make(server, label="Acme"), tools=[TOOL])
    assert str(caught.value) == "Acme reported an error mid-answer: The server is overloaded."


def test_usage_with_every_detail(server):
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 3},
        "cost": 0.25,
    }
    server.push(Raw(sse(chunk({"content": "x"}), {"choices": [], "usage": usage})))
    assert of(events(make(server)), Usage) == [Usage(10, 5, 3, 4, None, 0.25)]


def test_deepseek_cache_hits_count_as_cached(server):
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "prompt_cache_hit_tokens": 6}
    server.push(Raw(sse(chunk({"content": "x"}), {"choices": [], "usage": usage})))
    assert of(events(make(server)), Usage) == [Usage(10, 5, None, 6, None, None)]


def _router_body(url: str, options: dict | None = None) -> dict:
    """The body an OpenAI-compatible backend at ``url`` would send (no server at that host)."""
    backend = OpenAIBackend("m", "router", options or {}, endpoint=Endpoint("Router", url))
    return backend.request_body([Message("user", "hi")], {}, None)


def test_an_openrouter_subdomain_is_asked_for_the_cost_too():
    assert _router_body("https://eu.openrouter.ai/api/v1")["usage"] == {"include": True}


def test_a_usage_option_of_ones_own_is_not_overwritten():
    mine = {"usage": {"include": False}}
    assert _router_body("https://openrouter.ai/api/v1", mine)["usage"] == {"include": False}


def test_a_thinking_block_with_its_words_under_text_is_reasoning(server):
    blocks = [{"type": "thinking", "text": "Hmm. "}, {"type": "text", "text": "Hi"}]
    server.push(Raw(sse(chunk({"content": blocks}), chunk(finish="stop"))))
    got = events(make(server))
    assert reasoning(got) == "Hmm. " and joined(got) == "Hi"


@pytest.mark.parametrize(
    ("counts", "prompt", "cached"),
    [
        ({"prompt_cache_hit_tokens": 6}, 6, 6),  # DeepSeek's counts without prompt_tokens
        ({"prompt_cache_miss_tokens": 4}, 4, None),
        ({"prompt_cache_hit_tokens": 6, "prompt_cache_miss_tokens": 4}, 10, 6),
    ],
)
def test_deepseek_cache_counts_alone_make_the_prompt_count(server, counts, prompt, cached):
    usage = {"completion_tokens": 5, **counts}
    server.push(Raw(sse(chunk({"content": "x"}), {"choices": [], "usage": usage})))
    assert of(events(make(server)), Usage) == [Usage(prompt, 5, None, cached, None, None)]


def test_moonshot_cached_tokens_at_the_top_count_as_cached(server):
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "cached_tokens": 4}
    server.push(Raw(sse(chunk({"content": "x"}), {"choices": [], "usage": usage})))
    assert of(events(make(server)), Usage) == [Usage(10, 5, None, 4, None, None)]


def test_usage_that_says_nothing_is_not_reported(server):
    usage = {"total_tokens": 9, "prompt_tokens": "many"}
    server.push(Raw(sse(chunk({"content": "x"}), {"choices": [], "usage": usage})))
    assert of(events(make(server)), Usage) == []


# --- reasoning --------------------------------------------------------------------------------


def test_reasoning_details_text_summary_signature_and_encrypted(server):
    details = [
        {"type": "reasoning.text", "text": "step one. ", "signature": "sig-1"},
        {"type": "reasoning.encrypted", "data": "opaque"},
        {"type": "reasoning.summary", "summary": "in short"},
        {"type": "reasoning.encrypted", "data": ""},
        {"type": "reasoning.text", "text": "", "summary": "ignored"},
    ]
    server.push(Raw(sse(chunk({"reasoning_details": details, "reasoning": "dup"}))))
    got = of(events(make(server)), ReasoningDelta)
    assert got == [
        ReasoningDelta("step one. "),
        ReasoningDelta(signature="sig-1"),
        ReasoningDelta(redacted="opaque"),
        ReasoningDelta("in short"),
    ]


@pytest.mark.parametrize("key", ["reasoning_content", "reasoning", "thinking"])
def test_reasoning_under_each_key_and_as_an_object(server, key):
    server.push(Raw(sse(chunk({key: "plain"}), chunk({key: {"content": "nested"}}))))
    assert reasoning(events(make(server))) == "plainnested"


def test_only_the_first_reasoning_key_is_read(server):
    server.push(Raw(sse(chunk({"reasoning_content": "A", "reasoning": "B", "thinking": "C"}))))
    assert reasoning(events(make(server))) == "A"


def test_an_empty_reasoning_key_gives_way_to_the_next(server):
    server.push(Raw(sse(chunk({"reasoning_content": "", "reasoning": None, "thinking": "C"}))))
    assert reasoning(events(make(server))) == "C"


# --- tool calls -------------------------------------------------------------------------------


def test_whole_calls_without_an_index_are_told_apart_by_id(server):
    calls = [
        {"id": "a", "function": {"name": "lookup", "arguments": '{"w": '}},
        {"id": "b", "function": {"name": "lookup", "arguments": {"w": 2}}},
    ]
    more = [{"id": "a", "function": {"arguments": "1}"}}]
    third = [{"id": "c", "function": {"name": "lookup", "arguments": "{}"}}]
    frames = [
        chunk({"tool_calls": calls}),
        chunk({"tool_calls": more}),
        chunk({"tool_calls": third}),
    ]
    server.push(Raw(sse(*frames)))
    got = events(make(server), tools=[TOOL])
    assert of(got, ToolCall) == [
        ToolCall("a", "lookup", {"w": 1}),
        ToolCall("b", "lookup", {"w": 2}),
        ToolCall("c", "lookup", {}),
    ]
    assert got[-1] == Finish("tool_calls", "")


def test_whole_calls_without_an_index_or_id_are_told_apart_by_their_name(server):
    one = [{"function": {"name": "lookup", "arguments": '{"w": 1}'}}]
    two = [{"function": {"name": "lookup", "arguments": '{"w": 2}'}}]
    server.push(Raw(sse(chunk({"tool_calls": one}), chunk({"tool_calls": two}))))
    calls = of(events(make(server), tools=[TOOL]), ToolCall)
    assert [c.arguments for c in calls] == [{"w": 1}, {"w": 2}]


def test_a_call_without_arguments_is_still_a_call(server):
    call = {"index": 0, "id": "c1", "function": {"name": "now"}}
    server.push(Raw(sse(chunk({"tool_calls": [call]}), chunk(finish="tool_calls"))))
    assert of(events(make(server), tools=[TOOL]), ToolCall) == [ToolCall("c1", "now", {})]


def test_a_legacy_function_call_that_repeats_its_name_is_one_call(server):
    first = chunk({"function_call": {"name": "lookup", "arguments": '{"w": '}})
    rest = chunk({"function_call": {"name": "lookup", "arguments": '"z"}'}}, finish="stop")
    server.push(Raw(sse(first, rest)))
    got = events(make(server), tools=[TOOL])
    assert [(c.name, c.arguments) for c in of(got, ToolCall)] == [("lookup", {"w": "z"})]
    assert got[-1] == Finish("tool_calls", "stop")


def test_fragments_without_index_id_or_name_go_by_their_place(server):
    start = [
        {"function": {"name": "lookup", "arguments": '{"w"'}},
        {"function": {"name": "lookup", "arguments": '{"v"'}},
    ]
    rest = [{"function": {"arguments": ': "x"}'}}, {"function": {"arguments": ': "y"}'}}]
    server.push(Raw(sse(chunk({"tool_calls": start}), chunk({"tool_calls": rest}))))
    calls = of(events(make(server), tools=[TOOL]), ToolCall)
    assert [c.arguments for c in calls] == [{"w": "x"}, {"v": "y"}]


def test_the_first_id_and_name_of_a_call_are_kept(server):
    first = {"index": 0, "id": "c1", "function": {"name": "lookup", "arguments": "{"}}
    again = {"index": 0, "id": "c2", "function": {"name": "other", "arguments": "}"}}
    server.push(Raw(sse(chunk({"tool_calls": [first]}), chunk({"tool_calls": [again]}))))
    assert of(events(make(server), tools=[TOOL]), ToolCall) == [ToolCall("c1", "lookup", {})]


def test_a_call_with_neither_name_nor_arguments_is_dropped(server):
    empty = {"index": 0, "id": "c1", "function": {}}
    server.push(Raw(sse(chunk({"tool_calls": [empty]}, finish="stop"))))
    got = events(make(server), tools=[TOOL])
    assert of(got, ToolCall) == []
    assert got[-1] == Finish("stop", "stop")


def test_a_legacy_function_call_in_pieces(server):
    first = chunk({"function_call": {"name": "lookup", "arguments": '{"w": '}})
    rest = chunk({"function_call": {"arguments": '"z"}'}}, finish="function_call")
    server.push(Raw(sse(first, rest)))
    got = events(make(server), tools=[TOOL])
    assert [(c.name, c.arguments) for c in of(got, ToolCall)] == [("lookup", {"w": "z"})]
    assert got[-1] == Finish("tool_calls", "function_call")


def test_a_legacy_call_beside_parallel_calls_stays_its_own(server):
    calls = [
        {"index": 0, "id": "a", "function": {"name": "first", "arguments": "{}"}},
        {"index": 1, "id": "b", "function": {"name": "second", "arguments": "{}"}},
    ]
    legacy = {"name": "legacy", "arguments": "{}"}
    server.push(Raw(sse(chunk({"tool_calls": calls, "function_call": legacy}, finish="stop"))))
    calls = of(events(make(server), tools=[TOOL]), ToolCall)
    assert [c.name for c in calls] == ["legacy", "first", "second"]


def test_calls_are_sent_once_at_the_finish_and_not_again(server):
    call = {"index": 0, "id": "c1", "function": {"name": "lookup", "arguments": "{}"}}
    server.push(Raw(sse(chunk({"tool_calls": [call]}), chunk(finish="tool_calls"), chunk())))
    got = events(make(server), tools=[TOOL])
    assert of(got, ToolCall) == [ToolCall("c1", "lookup", {})]
    assert [type(e) for e in got[-2:]] == [ToolCall, Finish]


# --- a whole JSON answer ----------------------------------------------------------------------


def test_a_whole_answer_that_is_not_an_object(server):
    server.push(Status(200, "[1, 2]"))
    with pytest.raises(errors.StreamError) as caught:
        events(make(server, label="Acme"))
    assert str(caught.value) == ("Acme sent an answer chatrepl cannot read (not a JSON object).")


def test_a_whole_answer_with_an_error(server):
    server.push(Status(200, {"error": {"message": "no capacity"}}))
    with pytest.raises(errors.ServerError) as caught:
        events(make(server, label="Acme"))
    assert str(caught.value) == "Acme reported an error mid-answer: no capacity."


def test_a_whole_answer_with_an_empty_error_field_is_read(server):
    server.push(Status(200, {"error": "", "choices": [{"message": {"content": "Fine."}}]}))
    assert joined(events(make(server))) == "Fine."


def test_a_whole_answer_that_is_not_json(server):
    server.push(Status(200, "{not json " + KEY))
    with pytest.raises(errors.StreamError) as caught:
        events(make(server, label="Acme"))
    assert str(caught.value).startswith("Acme sent a malformed stream (not JSON: '{not json ")
    assert KEY not in str(caught.value)


def test_whole_calls_are_kept_apart_by_their_place_even_with_one_id(server):
    calls = [
        {"id": "same", "function": {"name": "lookup", "arguments": '{"w": 1}'}},
        {"id": "same", "function": {"name": "lookup", "arguments": '{"w": 2}'}},
        "junk",
    ]
    message = {"content": None, "tool_calls": calls}
    server.push(Status(200, {"choices": [{"message": message, "finish_reason": "tool_calls"}]}))
    calls = of(events(make(server), tools=[TOOL]), ToolCall)
    assert [c.arguments for c in calls] == [{"w": 1}, {"w": 2}]


def test_a_whole_answer_with_two_calls_without_index(server):
    calls = [
        {"id": "a", "function": {"name": "lookup", "arguments": "{}"}},
        {"id": "b", "function": {"name": "lookup", "arguments": "{}"}},
    ]
    message = {"role": "assistant", "content": "Both.", "tool_calls": calls}
    usage = {"prompt_tokens": 2, "completion_tokens": 1}
    whole = {"choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]}
    server.push(Status(200, {**whole, "usage": usage}))
    got = events(make(server), tools=[TOOL])
    assert joined(got) == "Both."
    assert [c.id for c in of(got, ToolCall)] == ["a", "b"]
    assert of(got, Usage) == [Usage(input_tokens=2, output_tokens=1)]
    assert got[-1] == Finish("tool_calls", "tool_calls")


def test_whole_calls_that_carry_an_index_keep_it(server):
    calls = [
        {"index": 1, "id": "b", "function": {"name": "lookup", "arguments": "{}"}},
        {"index": 0, "id": "a", "function": {"name": "lookup", "arguments": "{}"}},
    ]
    message = {"content": None, "tool_calls": calls}
    server.push(Status(200, {"choices": [{"message": message, "finish_reason": "tool_calls"}]}))
    assert [c.id for c in of(events(make(server), tools=[TOOL]), ToolCall)] == ["a", "b"]


def test_a_whole_answer_without_a_finish_reason_still_ends(server):
    server.push(Status(200, {"choices": [{"message": {"content": "Done."}}]}))
    got = events(make(server))
    assert [type(e) for e in got] == [TextDelta, Finish]
    assert got[-1] == Finish("stop", "")


def test_the_answers_of_an_openai_compatible_server_end_to_end(server):
    server.push(Answer(Text("Hello"), Call("lookup", '{"w": "x"}', id="c7")))
    got = events(make(server), tools=[TOOL])
    assert joined(got) == "Hello"
    assert of(got, ToolCall) == [ToolCall("c7", "lookup", {"w": "x"})]


# --- what the server serves -------------------------------------------------------------------


def test_the_model_list_is_asked_with_the_key_and_read_by_id_or_name(server):
    server.models = [{"id": "a"}, {"name": "b"}, {"id": 5, "name": "c"}, "d", {"id": ""}]
    model = make(server)
    assert model.available_models() == ["a", "b", "c"]
    assert model.available_models() == ["a", "b", "c"]
    asked = [r for r in server.requests if r["path"] == "/v1/models"]
    assert len(asked) == 1
    headers = {k.lower(): v for k, v in asked[0]["headers"].items()}
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers.get("accept") != "text/event-stream"


def test_no_model_list_when_the_server_cannot_say(server, monkeypatch):
    model = make(server)
    server.stop()
    assert model.available_models() is None


@pytest.mark.parametrize(
    ("entry", "window"),
    [
        ({"id": "m", "context_length": 1000, "max_model_len": 2000}, 1000),
        ({"id": "m", "context_length": 0, "max_model_len": 2000}, 2000),
        ({"id": "m", "context_length": -5, "context_window": 3000}, 3000),
        ({"id": "m", "max_context_length": 4000}, 4000),
        ({"name": "m", "top_provider": {"context_length": 5000}}, 5000),
        ({"id": "m", "context_length": "big", "top_provider": {"context_length": 6000}}, 6000),
        ({"id": "m", "owned_by": "someone"}, 7000),
        ({"id": "m", "context_length": 1}, 1),
    ],
)
def test_the_context_window_the_model_list_gives(server, entry, window):
    server.models = [{"id": "other", "context_length": 99}, entry]
    server.props = {"n_ctx": 1}  # a llama.cpp answer that must not be asked for here
    model = make(server, name="m", context_length=7000)
    assert model.context_window() == window
    assert model.context_window() == window
    assert [r["path"] for r in server.requests] == ["/v1/models"]


@pytest.mark.parametrize(
    ("entries", "props", "window"),
    [
        ([{"id": "m", "owned_by": "llamacpp"}], {"n_ctx": 2048}, 2048),
        (
            [{"id": "m", "meta": {}}],
            {"n_ctx": 0, "default_generation_settings": {"n_ctx": 512}},
            512,
        ),
        ([], {"default_generation_settings": {"n_ctx": 1024}}, 1024),
        ([], {"n_ctx": -1}, 7000),
        ([], {"n_ctx": 1}, 1),
        ([], None, 7000),
    ],
)
def test_the_context_window_llamacpp_gives(server, entries, props, window):
    server.models, server.props = entries, props
    model = make(server, name="m", context_length=7000)
    assert model.context_window() == window
    assert [r["path"] for r in server.requests] == ["/v1/models", "/props"]
    headers = {k.lower(): v for k, v in server.last["headers"].items()}
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers.get("accept") != "text/event-stream"


def test_props_are_asked_once(server):
    server.props = {"n_ctx": 2048}
    model = make(server, name="m")
    assert model._llamacpp_context() == 2048
    assert model._llamacpp_context() == 2048
    assert [r["path"] for r in server.requests].count("/props") == 1


@pytest.mark.parametrize(
    ("provider", "label", "ollama"),
    [
        ("ollama", "Mine", True),
        ("box", "Ollama", True),
        ("box", "OLLAMA", True),
        ("box", "Box", False),
    ],
)
def test_ollama_is_known_by_its_provider_or_label(server, provider, label, ollama):
    server.show = {
        "model_info": {"a.context_length": 0, "b.block_count": 9, "c.context_length": 8192}
    }
    server.models = [{"id": "m", "context_length": 1000}]
    model = make(server, name="m", provider=provider, label=label)
    assert model.context_window() == (8192 if ollama else 1000)
    if ollama:
        assert server.last["path"] == "/api/show"
        assert server.last["json"] == {"model": "m"}
        headers = {k.lower(): v for k, v in server.last["headers"].items()}
        assert headers["authorization"] == f"Bearer {KEY}"
        assert headers.get("accept") != "text/event-stream"
        assert model.context_window() == 8192  # kept: the server is asked once
        assert [r["path"] for r in server.requests].count("/api/show") == 1


def test_ollama_without_a_context_length_falls_back(server):
    server.show = {"model_info": {"general.architecture": "x", "x.context_length": "long"}}
    model = make(server, name="llama3.2", provider="ollama", context_length=3000)
    assert model.context_window() == 3000


def test_the_ollama_port_means_ollama(server):
    endpoint = Endpoint("Box", "http://127.0.0.1:11434/v1")
    assert OpenAIBackend("m", "box", {}, endpoint=endpoint).takes_files() is False
    endpoint = Endpoint("Box", "http://127.0.0.1:11435/v1")
    assert OpenAIBackend("m", "box", {}, endpoint=endpoint).takes_files() is True


@pytest.mark.parametrize(
    ("provider", "label", "files"),
    [("openai", "OpenAI", True), ("llamacpp", "Box", False), ("box", "Llama server", False)],
)
def test_which_servers_take_pdfs(server, provider, label, files):
    assert make(server, provider=provider, label=label).takes_files() is files


def test_pricing_reads_both_prices_as_numbers(server):
    pricing = {"prompt": "0.000001", "completion": 0.000002, "image": "0.1", "request": "x"}
    server.models = [{"id": "m", "pricing": pricing}]
    assert make(server, name="m").pricing() == {"prompt": 0.000001, "completion": 0.000002}
    server.models = [{"id": "m", "pricing": {"prompt": "free"}}]
    assert make(server, name="m").pricing() is None


class _ModelsUnderModels(BaseHTTPRequestHandler):
    """A server whose ``GET /v1/models`` lists its models under ``models`` (not ``data``)."""

    def do_GET(self) -> None:  # noqa: N802
        data = json.dumps({"models": [{"name": "qwen3:4b", "context_length": 40960}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


def test_a_model_list_under_models_is_read():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _ModelsUnderModels)
    threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        model = OpenAIBackend("qwen3:4b", "box", {}, endpoint=Endpoint("Box", url))
        assert model.available_models() == ["qwen3:4b"]
        assert model.context_window() == 40960
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_an_earlier_pdf_becomes_a_note_where_pdfs_cannot_go(server):
    pdf = Part("attachment", "", {"name": "r.pdf", "mime": "application/pdf", "content": b"%PDF-1"})
    history = [
        Message("user", "read it", (pdf,)),
        Message("assistant", "Done."),
        Message("user", "and?"),
    ]
    events(make(server, provider="llamacpp", label="llama.cpp"), messages=history)
    assert body(server)["messages"][0] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "[r.pdf was attached earlier; this model cannot read PDFs]"},
            {"type": "text", "text": "read it"},
        ],
    }
    with pytest.raises(errors.ChatreplError) as caught:
        events(make(server, provider="llamacpp", label="llama.cpp"), messages=history[:1])
    assert "'gpt-test' at llama.cpp cannot take the PDF" in str(caught.value)


# --- sse.py: the event-stream rules, over the socket and directly -----------------------------


def test_an_event_name_lasts_for_one_event_only(server):
    frames = (
        b'event: note\ndata: {"choices": [{"index": 0, "delta": {"content": "A"}}]}\n\n'
        b'data: {"choices": [{"index": 0, "delta": {"content": "B"}}]}\n\n'
        b"event: error\n\n"  # a name with no data dispatches nothing and is forgotten
        b'data: {"choices": [{"index": 0, "delta": {"content": "C"}}]}\n\n'
        b"data: [DONE]\n\n"
    )
    server.push(Raw(frames))
    assert joined(events(make(server))) == "ABC"


def test_field_rules_of_the_event_stream():
    got = list(
        iter_events(
            [
                "\ufeffdata:  two spaces",  # a byte order mark opens the stream; one space goes
                "id: 7",
                "retry: 10",
                "data",  # a field name alone: an empty value
                "",
                "\ufeffdata: x",  # a mark later is part of the field name: not data
                "data:no space",
                "event:named",
                ": a comment",
                "data: last",  # dispatched at the end of input without a blank line
            ]
        )
    )
    assert got == [
        SSEEvent("message", " two spaces\n"),
        SSEEvent("named", "no space\nlast"),
    ]


# --- the sentences of a refused request name the model ----------------------------------------


def test_an_unknown_model_is_named_in_its_sentence(server):
    server.push(Status(404))
    with pytest.raises(errors.ModelNotFoundError) as caught:
        events(make(server, name="gpt-nope", label="Acme"))
    assert str(caught.value).startswith(f"Acme has no model 'gpt-nope' at {server.openai_url}")


def test_a_request_refused_for_its_tools_names_the_model(server):
    server.push(Status(400, {"error": {"message": "This model does not support tools"}}))
    with pytest.raises(errors.ToolsUnsupportedError) as caught:
        events(make(server, name="tiny", label="Acme"), tools=[TOOL])
    assert str(caught.value).startswith("'tiny' at Acme does not support tools")


def test_a_request_refused_for_its_image_names_the_model_and_the_file(server):
    image = Part("attachment", "", {"name": "cat.png", "mime": "image/png", "content": b"\x89PNG"})
    server.push(Status(400, {"error": {"message": "This model does not support image input"}}))
    with pytest.raises(errors.ChatreplError) as caught:
        events(make(server, name="tiny", label="Acme"), messages=[Message("user", "see", (image,))])
    assert str(caught.value).startswith("'tiny' at Acme did not accept the attachment 'cat.png'")


def test_an_unnamed_event_at_the_end_of_input_is_a_message():
    assert list(iter_events(["data: x"])) == [SSEEvent("message", "x")]


# --- the shared stream loop (providers/stream.py) -------------------------------------------
# Both wire formats read their answers through chatrepl.providers.stream; these pin down what
# its first mutation run found unguarded (benchmarks/mutation/RESULTS.md, providers/stream.py).


def test_a_whole_answer_refusing_tools_names_the_model(server):
    refusal = {"error": {"message": "This model does not support tools"}}
    server.push(Raw(json.dumps(refusal).encode(), content_type="application/json"))
    with pytest.raises(errors.ToolsUnsupportedError) as refused:
        events(make(server), tools=[TOOL])
    assert str(refused.value).startswith("'gpt-test' at OpenAI does not support tools")


def test_a_frame_typed_error_is_an_error_without_an_error_key(server):
    server.push(Raw(sse({"type": "error", "message": "Overloaded"}, done=False)))
    with pytest.raises(errors.ServerError) as caught:
        events(make(server, label="Acme"))
    assert str(caught.value) == "Acme reported an error mid-answer: Overloaded."


def test_a_frame_typed_otherwise_is_no_error(server):
    server.push(Raw(sse({**chunk({"content": "fine"}), "type": "errors"}, chunk(finish="stop"))))
    assert joined(events(make(server))) == "fine"


def test_a_malformed_frame_is_quoted_to_sixty_characters(server):
    server.push(Raw(b"data: {" + b"x" * 100 + b"\n\n"))
    with pytest.raises(errors.StreamError) as caught:
        events(make(server, label="Acme"))
    quoted = "{" + "x" * 59
    assert str(caught.value) == f"Acme sent a malformed stream (not JSON: {quoted!r})."


@pytest.mark.parametrize(("data", "said"), [(b"[1, 2]", ": 1"), (b'"Overloaded"', ": Overloaded")])
def test_an_error_event_whose_data_is_not_an_object(server, data, said):
    server.push(Raw(b"event: error\ndata: " + data + b"\n\n"))
    with pytest.raises(errors.ServerError) as caught:
        events(make(server, label="Acme"))
    assert str(caught.value) == f"Acme reported an error mid-answer{said}."


def test_a_billing_error_mid_stream_is_a_quota_error(server):
    error = {"type": "billing_hard_limit_reached", "message": "Billing limit reached."}
    server.push(Raw(sse({"error": error}, done=False)))
    with pytest.raises(errors.QuotaError) as caught:
        events(make(server, label="Acme"))
    assert str(caught.value).startswith("Acme says the account has run out of quota or credit")


def test_a_known_error_type_with_no_words_of_its_own_is_named_once(server):
    # the words fall back to the type itself: quoted beside it, they said it twice
    server.push(Raw(sse({"error": {"type": "overloaded_error"}}, done=False)))
    with pytest.raises(errors.ServerError) as caught:
        events(make(server, label="Acme"))
    assert str(caught.value) == (
        "Acme reported an error mid-answer (overloaded_error): try again shortly."
    )


def test_a_known_error_type_with_blank_words_is_named_alone(server):
    server.push(Raw(sse({"error": {"type": "overloaded_error", "message": "  "}}, done=False)))
    with pytest.raises(errors.ServerError) as caught:
        events(make(server, label="Acme"))
    assert str(caught.value) == (
        "Acme reported an error mid-answer (overloaded_error): try again shortly."
    )


@pytest.mark.parametrize(
    ("chunks", "lines"),
    [
        ([b"data: a\n", b"\n"], ["data: a", ""]),  # a blank line arriving on its own
        ([b"data: a\r", b"\ndata: b\n"], ["data: a", "data: b"]),  # CRLF split over two chunks
        ([b"data: a\r\r", b"\n"], ["data: a", ""]),  # CR, then CRLF split over two chunks
        ([b"da", b"ta: a"], ["data: a"]),  # the last line, in pieces, without its end
        ([b"data: \xff"], ["data: \ufffd"]),  # invalid UTF-8 in the last line
        ([b"data: \xff\n"], ["data: \ufffd"]),
    ],
)
def test_the_body_splits_into_lines_at_cr_lf_or_crlf(chunks, lines):
    assert list(split_lines(chunks)) == lines


@pytest.mark.parametrize(
    ("lines", "whole"),
    [
        (["", '  {"a": 1}'], '\n  {"a": 1}'),  # blank lines and spaces before the object
        (['\ufeff{"a": 1}'], '\ufeff{"a": 1}'),  # a byte order mark before it
        (["XX{}"], None),  # only a byte order mark and blanks are skipped
        (["data: {}", ""], None),
    ],
)
def test_a_plain_json_answer_is_told_from_an_event_stream(lines, whole):
    text, rest = whole_body(iter(lines))
    assert text == whole
    assert list(rest) == ([] if whole is not None else lines)


class _EndlessAfterDone(BaseHTTPRequestHandler):
    """An answer, ``[DONE]``, then event after event until the client goes away (or a cap)."""

    protocol_version = "HTTP/1.0"  # the body runs until the connection closes
    cap = 48 * 1024 * 1024  # well past the drain limit and any socket buffers
    pause: threading.Event | None = None  # set: wait this long before more, then set cancel
    cancel: threading.Event | None = None
    outcome: list[str] = []

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        answer = sse(chunk({"content": "Hi"}), chunk(finish="stop"))
        filler = b"data: " + b"x" * 1000 + b"\n\n"
        sent = 0
        try:
            self.wfile.write(answer)
            self.wfile.flush()
            if self.cancel is not None:
                threading.Event().wait(0.3)  # let the client read [DONE] and start draining
                self.cancel.set()
            while sent < self.cap:
                self.wfile.write(filler)
                if self.cancel is not None:
                    self.wfile.flush()
                    threading.Event().wait(0.01)
                sent += len(filler)
            self.outcome.append("cap")
        except OSError:
            self.outcome.append("client left")

    def log_message(self, *args) -> None:
        pass


def _drained(cancel_during_drain: bool) -> tuple[list, list[str]]:
    """The events of an answer whose server keeps sending after its end, and why it stopped."""
    handler = type("Handler", (_EndlessAfterDone,), {"outcome": []})
    cancel = threading.Event()
    if cancel_during_drain:
        handler.cancel = cancel
        handler.cap = 900 * 1006  # paced: 900 events (9 s) after cancel, under the drain limit
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        model = OpenAIBackend("m", "box", {}, endpoint=Endpoint("Box", url, max_retries=0))
        got = list(model.stream([Message("user", "hi")], {}, cancel))
        for _ in range(600):  # the handler notices the closed connection on its next writes
            if handler.outcome:
                break
            threading.Event().wait(0.05)
        return got, handler.outcome
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_what_follows_the_end_is_read_only_up_to_a_limit():
    got, outcome = _drained(cancel_during_drain=False)
    assert joined(got) == "Hi" and got[-1] == Finish("stop", "stop")
    assert outcome == ["client left"]


def test_stopping_while_what_follows_the_end_is_read_stops_the_reading():
    _, outcome = _drained(cancel_during_drain=True)  # (the text too, unless stopped before)
    assert outcome == ["client left"]

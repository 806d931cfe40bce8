"""What real servers send that the documents do not promise: odd shapes, odd types, odd bytes,
errors inside streams, plain JSON replies, usage details, quotas, unreadable error bodies."""

from __future__ import annotations

import json
import sqlite3

import pytest
from fakeserver import Answer, Raw, Status, Text
from wirehelp import events, joined, of, reasoning

from chatrepl import errors
from chatrepl.providers.registry import get_backend
from chatrepl.providers.stream import split_lines
from chatrepl.records import Finish, Usage

VENDORS = ["openai:gpt-test", "anthropic:claude-test"]


@pytest.fixture(params=VENDORS)
def model(request, openai_env):
    m = get_backend(request.param)
    yield m
    m.close()


@pytest.fixture
def openai(openai_env):
    m = get_backend("openai:gpt-test")
    yield m
    m.close()


def sse(*payloads) -> bytes:
    """OpenAI-style frames for these payloads, then [DONE]."""
    frames = [f"data: {json.dumps(p)}\n\n" for p in payloads]
    return ("".join(frames) + "data: [DONE]\n\n").encode()


def delta(**d) -> dict:
    return {"choices": [{"index": 0, "delta": d, "finish_reason": None}]}


def test_content_as_a_list_of_typed_blocks(openai, server):
    server.push(
        Raw(sse(delta(content=[{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}])))
    )
    assert joined(events(openai)) == "Hello"


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085", "\x0c", "\x1c"])
def test_only_cr_and_lf_end_a_line(openai, server, separator):
    text = f"one{separator}two"
    frame = "data: " + json.dumps(delta(content=text), ensure_ascii=False) + "\n\n"
    server.push(Raw(frame.encode() + b"data: [DONE]\n\n"))
    assert joined(events(openai)) == text


@pytest.mark.parametrize("ending", [b"\r", b"\n", b"\r\n"])
def test_cr_lf_and_crlf_line_endings(openai, server, ending):
    body = sse(delta(content="a"), delta(content="b")).replace(b"\n", ending)
    server.push(Raw(body))
    assert joined(events(openai)) == "ab"


def test_split_lines_holds_a_crlf_split_across_reads():
    assert list(split_lines([b"a\r", b"\nb\r", b"", b"\nc"])) == ["a", "b", "c"]


def test_a_plain_json_reply_where_a_stream_was_asked(model, server):
    server.push(Answer(Text("All ", "at once."), whole=True))
    got = events(model)
    assert joined(got) == "All at once."
    assert of(got, Usage)[0].input_tokens == 2
    assert got[-1].reason == "stop"


def test_a_plain_json_reply_with_an_event_stream_content_type(openai, server):
    reply = {"choices": [{"message": {"content": "whole"}, "finish_reason": "stop"}]}
    server.push(Raw(json.dumps(reply, indent=2).encode()))
    assert joined(events(openai)) == "whole"


def test_openai_error_inside_the_stream_after_usage(openai, server):
    usage = {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}}
    server.push(Raw(sse(delta(content="part"), usage, {"error": {"message": "upstream died"}})))
    got = []
    with pytest.raises(errors.ServerError, match="upstream died"):
        for event in openai.stream([], {}, __import__("threading").Event()):
            got.append(event)
    assert joined(got) == "part"
    assert of(got, Usage) == [Usage(7, 3)]


def test_anthropic_error_event_after_usage(openai_env, server):
    model = get_backend("anthropic:claude-test")
    server.push(Answer(Text("part"), error={"type": "overloaded_error", "message": "Overloaded"}))
    got = []
    with pytest.raises(errors.ServerError, match="overloaded"):
        for event in model.stream([], {}, __import__("threading").Event()):
            got.append(event)
    assert joined(got) == "part" and of(got, Usage)[0].input_tokens == 0


def test_vendor_usage_details(openai, server):
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 50,
        "prompt_tokens_details": {"cached_tokens": 80},
        "completion_tokens_details": {"reasoning_tokens": 30},
        "cost": 0.0012,
    }
    server.push(Answer(Text("x"), usage=usage))
    assert of(events(openai), Usage) == [Usage(100, 50, 30, cache_read_tokens=80, cost=0.0012)]


def test_anthropic_cache_reads(openai_env, server):
    usage = {"input_tokens": 12, "output_tokens": 9, "cache_read_input_tokens": 2048}
    server.push(Answer(Text("x"), usage=usage))
    # the input is every prompt token: Anthropic reports the cached ones apart
    got = of(events(get_backend("anthropic:c")), Usage)
    assert got == [Usage(12 + 2048, 9, cache_read_tokens=2048)]


def test_several_choices_are_never_interleaved(openai, server):
    server.push(Answer(Text("first ", "choice ", "only"), other_choice="SECOND CHOICE HERE"))
    assert joined(events(openai)) == "first choice only"


def test_an_exhausted_quota_is_not_retried_and_told_plainly(model, server):
    body = {
        "error": {
            "message": "You exceeded your current quota, please check your plan and billing.",
            "type": "insufficient_quota",
            "code": "insufficient_quota",
        }
    }
    server.push(Status(429, body), Status(429, body), Status(429, body))
    with pytest.raises(errors.QuotaError) as info:
        events(model)
    assert len(server.requests) == 1
    assert "quota" in str(info.value) and not info.value.retryable


ODD_BODIES = {
    "html": ("<!DOCTYPE html><html><body><h1>Bad</h1></body></html>", "text/html"),
    "huge": (json.dumps({"error": {"message": "x " * 200_000}}), "application/json"),
    "number": (json.dumps({"error": 5}), "application/json"),
    "list": (json.dumps({"error": [{"message": "first"}, 3]}), "application/json"),
    "nested object": (json.dumps({"error": {"message": {"deep": True}}}), "application/json"),
    "null": (json.dumps({"error": None, "message": None}), "application/json"),
    "controls": (json.dumps({"error": "bad\x1b[2J\x07\r\nthing\u2028"}), "application/json"),
    "surrogate": ('{"error": "lone \\ud800 half"}', "application/json"),
    "invalid utf-8": (b'{"error": "caf\xe9 \xff"}', "application/json"),
    "plain text": ("upstream connect error or disconnect", "text/plain"),
}


@pytest.mark.parametrize("name", ODD_BODIES)
def test_error_sentences_read_cleanly_whatever_the_server_wrote(model, server, name):
    body, content_type = ODD_BODIES[name]
    server.push(Status(400, body, content_type=content_type))
    with pytest.raises(errors.BadRequestError) as info:
        events(model)
    message = str(info.value)
    assert "\n" not in message and "\x1b" not in message and "\r" not in message
    assert "{" not in message and "<" not in message
    assert len(message) < 500 and message.endswith(".")
    message.encode("utf-8")  # no lone surrogates


WRONG_TYPES = [
    delta(content=5),
    delta(content=None),
    delta(content={"text": "no"}),
    delta(content=["a", {"type": "image"}, 7]),
    delta(reasoning_content=["x"], reasoning=12, refusal={"a": 1}),
    delta(tool_calls="nope"),
    delta(tool_calls=[5, None, {"index": "0", "function": "x"}]),
    {"choices": {"index": 0}},
    {"choices": [None, 5, "x"]},
    {"choices": [{"index": 0, "delta": []}]},
    {"usage": "lots", "choices": []},
    {"usage": {"prompt_tokens": "7", "completion_tokens": None, "cost": [1]}, "choices": []},
    [1, 2, 3],
    "a string",
    7,
    None,
    {"choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": 5}]},
]


def test_fields_of_the_wrong_type_never_crash_the_stream(openai, server):
    server.push(Raw(sse(*WRONG_TYPES)))
    got = events(openai)
    assert joined(got).endswith("ok")
    assert isinstance(got[-1], Finish)


def test_anthropic_fields_of_the_wrong_type(openai_env, server):
    frames = [
        {"type": "message_start", "message": {"usage": {"input_tokens": "many"}}},
        {"type": "content_block_start", "index": [0], "content_block": "text"},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": 5}},
        {"type": "content_block_delta", "index": 0, "delta": None},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta"}},
        {"type": "content_block_stop", "index": {}},
        {"type": 7},
        [],
        {"type": "message_delta", "delta": {"stop_reason": 3}, "usage": None},
        {"type": "message_stop"},
    ]
    body = "".join(f"data: {json.dumps(f)}\n\n" for f in frames)
    server.push(Raw(body.encode()))
    got = events(get_backend("anthropic:c"))
    assert joined(got) == "5" and got[-1] == Finish("stop", "")


def test_lone_surrogates_and_invalid_utf8_never_poison_the_session(model, server, tmp_path):
    if "anthropic" in model.full_name:
        text = '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"%s"}}'
        body = (
            b'event: message_start\ndata: {"type":"message_start","message":{}}\n\n'
            + b"data: "
            + (text % "a\\ud800b").encode()
            + b"\n\n"
            + b"data: "
            + (text % "c").encode()[:-3]
            + b'\xff\xfe"}}\n\n'
            + b'data: {"type":"message_stop"}\n\n'
        )
    else:
        body = (
            b'data: {"choices":[{"index":0,"delta":{"content":"a\\ud800b"}}]}\n\n'
            b'data: {"choices":[{"index":0,"delta":{"reasoning_content":"r\\udfff"}}]}\n\n'
            b'data: {"choices":[{"index":0,"delta":{"content":"c\xff\xfe"}}]}\n\n'
            b"data: [DONE]\n\n"
        )
    server.push(Raw(body))
    got = events(model)
    text = joined(got) + reasoning(got)
    assert text.startswith("a\ufffdb") and "\ufffd" in text[3:]
    db = sqlite3.connect(tmp_path / "t.db")
    db.execute("create table t (x text)")
    db.execute("insert into t values (?)", (text,))  # would raise on a lone surrogate


def test_a_byte_order_mark_before_the_first_frame(openai, server):
    server.push(Raw(b"\xef\xbb\xbf" + sse(delta(content="bom"))))
    assert joined(events(openai)) == "bom"

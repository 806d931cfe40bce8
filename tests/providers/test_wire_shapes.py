"""Wire shapes of particular servers, and what a user is told when a request cannot go out or
a server's words are quoted: over a real socket against the fake vendor server.

Magistral's thinking blocks inside ``delta.content``, Groq's ``x_groq.usage``, an older
llama.cpp server's ``error:`` field; no key named before any network use; a server's message
quoted without doubled punctuation or stray spaces.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from fakeserver import FakeLLMServer, Raw, Status
from wirehelp import events, joined, of, reasoning

from chatrepl import errors
from chatrepl.providers.http import Endpoint
from chatrepl.providers.openai import OpenAIBackend
from chatrepl.providers.registry import get_backend
from chatrepl.records import Finish, Message, Usage


def make(server: FakeLLMServer) -> OpenAIBackend:
    endpoint = Endpoint("Acme", server.openai_url, api_key="sk-k", max_retries=0)
    return OpenAIBackend("m", "acme", {}, endpoint=endpoint)


def sse(*payloads: object, done: bool = True) -> bytes:
    frames = [f"data: {json.dumps(p)}\n\n" for p in payloads]
    return ("".join(frames) + ("data: [DONE]\n\n" if done else "")).encode()


def delta(content: object, finish: str | None = None) -> dict:
    return {"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]}


def test_magistral_thinking_blocks_are_reasoning(server: FakeLLMServer) -> None:
    think = {"type": "thinking", "thinking": [{"type": "text", "text": "Two plus two "}]}
    more = {"type": "thinking", "thinking": [{"type": "text", "text": "is four."}]}
    server.push(
        Raw(
            sse(
                delta([think]),
                delta([more, {"type": "text", "text": "The answer "}]),
                delta([{"type": "text", "text": "is 4."}]),
                delta("", finish="stop"),
            )
        )
    )
    got = events(make(server))
    assert reasoning(got) == "Two plus two is four."
    assert joined(got) == "The answer is 4."
    assert got[-1] == Finish("stop", "stop")


def test_groq_usage_inside_x_groq_is_read(server: FakeLLMServer) -> None:
    last = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "x_groq": {"id": "req_1", "usage": {"prompt_tokens": 12, "completion_tokens": 4}}}  # fmt: skip
    server.push(Raw(sse(delta("Hi"), last)))
    assert of(events(make(server)), Usage) == [Usage(12, 4)]


def test_an_error_field_mid_answer_is_shown(server: FakeLLMServer) -> None:
    error = {"code": 500, "message": "failed to decode the batch", "type": "server_error"}
    body = sse(delta("Partial "), done=False) + b"error: " + json.dumps(error).encode() + b"\n\n"
    server.push(Raw(body))
    got = []
    with pytest.raises(errors.ServerError) as caught:
        for event in make(server).stream([Message("user", "hi")], {}, threading.Event()):
            got.append(event)
    assert joined(got) == "Partial "
    assert str(caught.value) == (
        "Acme reported an error mid-answer (server_error: failed to decode the batch): "
        "try again shortly."
    )


def test_an_error_field_that_is_not_json_is_quoted(server: FakeLLMServer) -> None:
    server.push(Raw(sse(delta("x"), done=False) + b"error: the slot was cancelled\n\n"))
    with pytest.raises(errors.ServerError) as caught:
        events(make(server))
    assert str(caught.value) == "Acme reported an error mid-answer: the slot was cancelled."


# --- the missing key, named before any network use --------------------------------------------


@pytest.mark.parametrize(
    ("name", "variable"),
    [("anthropic:claude-x", "ANTHROPIC_API_KEY"), ("openai:gpt-x", "OPENAI_API_KEY")],
)
def test_no_key_names_the_variable_before_any_request(name: str, variable: str) -> None:
    provider = name.partition(":")[0]
    backend = get_backend(name)  # its own server, unreachable from the tests
    with pytest.raises(errors.AuthError) as caught:
        events(backend)
    assert str(caught.value) == (
        f"No key for {provider}: set {variable} (or chatrepl keys set {provider})."
    )


def test_a_configured_provider_without_its_key_sends_nothing(
    server: FakeLLMServer, home: Path
) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f'[providers.router]\ntype = "openai"\nbase_url = "{server.openai_url}"\n'
        'api_key_env = "ROUTER_KEY"\n'
    )
    with pytest.raises(errors.AuthError, match=r"^No key for router: set ROUTER_KEY "):
        events(get_backend("router:m"))
    assert server.connections == 0 and server.requests == []


def test_a_builtin_provider_moved_to_another_server_is_still_asked(
    server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.openai_url)  # a local server may need no key
    assert joined(events(get_backend("openai:m"))).startswith("You said:")


# --- a server's words, quoted cleanly -----------------------------------------------------------


def test_a_status_without_a_phrase_has_no_stray_space(server: FakeLLMServer) -> None:
    server.push(Status(529, {"error": {"message": "Sorry about that!"}}))
    with pytest.raises(errors.ServerError) as caught:
        events(make(server))
    assert str(caught.value) == "Acme failed with HTTP 529: Sorry about that: try again shortly."


@pytest.mark.parametrize(
    ("said", "shown"),
    [
        ("Sorry about that!.", "Sorry about that!"),
        ("Sorry about that!", "Sorry about that!"),
        ("Bad input.", "Bad input."),
        ("Is the model loaded?", "Is the model loaded?"),
        ("  spaced out .  ", "spaced out."),
    ],
)
def test_a_quoted_message_ends_with_one_mark(server: FakeLLMServer, said: str, shown: str) -> None:
    server.push(Status(400, {"error": {"message": said}}))
    with pytest.raises(errors.BadRequestError) as caught:
        events(make(server))
    assert str(caught.value) == f"Acme refused the request for 'm' (HTTP 400): {shown}"
    server.push(Raw(sse({"error": {"message": said}}, done=False)))
    with pytest.raises(errors.ServerError) as caught:
        events(make(server))
    assert str(caught.value) == f"Acme reported an error mid-answer: {shown}"

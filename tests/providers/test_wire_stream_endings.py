"""Every way a stream can end badly gets one sentence, the same for every wire format.

Both the OpenAI and the Anthropic backends read their streams through one loop
(``chatrepl.providers.stream``); each case here is sent in each vendor's own shape over a real
socket, and the sentence must not depend on the vendor.
"""

from __future__ import annotations

import json
import threading

import pytest
from fakeserver import FakeLLMServer, Raw, Reply
from wirehelp import joined

from chatrepl import errors
from chatrepl.providers.anthropic import AnthropicBackend
from chatrepl.providers.base import Backend
from chatrepl.providers.http import Endpoint
from chatrepl.providers.openai import OpenAIBackend
from chatrepl.records import Message

VENDORS = ("openai", "anthropic")


def make(server: FakeLLMServer, vendor: str, read_timeout: float = 120.0) -> Backend:
    """A backend of ``vendor`` at the fake server, named "Acme" in its messages."""
    if vendor == "openai":
        endpoint = Endpoint("Acme", server.openai_url, "sk-k", read_timeout=read_timeout)
        return OpenAIBackend("m", "acme", {}, endpoint=endpoint)
    endpoint = Endpoint("Acme", server.anthropic_url, "sk-k", read_timeout=read_timeout)
    return AnthropicBackend("m", "acme", {}, endpoint=endpoint)


def error_frame(vendor: str, error: dict) -> bytes:
    """An error inside the stream, as each vendor sends it."""
    if vendor == "openai":
        return b"data: " + json.dumps({"error": error}).encode() + b"\n\n"
    body = json.dumps({"type": "error", "error": error}).encode()
    return b"event: error\ndata: " + body + b"\n\n"


def failure(backend: Backend) -> tuple[str, str]:
    """The text that arrived and the sentence the stream ended with."""
    got: list = []
    with pytest.raises(errors.ProviderError) as caught:
        for event in backend.stream([Message("user", "hello")], {}, threading.Event()):
            got.append(event)
    return joined(got), str(caught.value)


@pytest.mark.parametrize("vendor", VENDORS)
def test_an_empty_stream(server: FakeLLMServer, vendor: str) -> None:
    server.push(Raw(b""))
    assert failure(make(server, vendor)) == ("", "Acme answered with an empty stream.")


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_stream_without_its_end_mark(server: FakeLLMServer, vendor: str) -> None:
    server.push(Reply("one two", done=False))
    assert failure(make(server, vendor)) == (
        "one two",
        "The answer from Acme ended early; the text that arrived was kept.",
    )


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_connection_dropped_mid_answer(server: FakeLLMServer, vendor: str) -> None:
    server.push(Reply("one two three four", drop_after=2))
    assert failure(make(server, vendor)) == (
        "one two",
        "The connection to Acme dropped mid-answer; the text that arrived was kept.",
    )


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_server_that_stops_sending(server: FakeLLMServer, vendor: str) -> None:
    server.push(Reply("one two three", stall_after=1))
    assert failure(make(server, vendor, read_timeout=0.5)) == (
        "one",
        "Acme stopped answering for 0.5 s; the text that arrived was kept.",
    )


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_frame_that_is_not_json(server: FakeLLMServer, vendor: str) -> None:
    server.push(Raw(b"data: {not json\n\n"))
    assert failure(make(server, vendor)) == (
        "",
        "Acme sent a malformed stream (not JSON: '{not json').",
    )


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_whole_answer_that_is_not_an_object(server: FakeLLMServer, vendor: str) -> None:
    server.push(Raw(b"[1, 2]", content_type="application/json"))
    assert failure(make(server, vendor)) == (
        "",
        "Acme sent an answer chatrepl cannot read (not a JSON object).",
    )


@pytest.mark.parametrize("vendor", VENDORS)
def test_an_error_event_with_a_known_type(server: FakeLLMServer, vendor: str) -> None:
    server.push(Raw(error_frame(vendor, {"type": "overloaded_error", "message": "Overloaded"})))
    assert failure(make(server, vendor)) == (
        "",
        "Acme reported an error mid-answer (overloaded_error: Overloaded): try again shortly.",
    )


@pytest.mark.parametrize("vendor", VENDORS)
def test_an_error_event_of_another_type(server: FakeLLMServer, vendor: str) -> None:
    error = {"type": "invalid_request_error", "message": "Something broke."}
    server.push(Raw(error_frame(vendor, error)))
    assert failure(make(server, vendor)) == (
        "",
        "Acme reported an error mid-answer: Something broke.",
    )


@pytest.mark.parametrize("vendor", VENDORS)
def test_an_error_event_about_the_quota(server: FakeLLMServer, vendor: str) -> None:
    error = {"type": "insufficient_quota", "message": "You exceeded your current quota."}
    server.push(Raw(error_frame(vendor, error)))
    _, said = failure(make(server, vendor))
    assert said.startswith("Acme says the account has run out of quota or credit")

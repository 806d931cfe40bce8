"""Connections: how many a session opens, and chatrepl's own time at both ends of a request.

chatrepl runs as a user runs it, in a 100×30 pseudo-terminal, against the test suite's local
OpenAI-style server (a thread of this process) speaking HTTP/1.1 with keep-alive, chunked event
streams and ``TCP_NODELAY``, as the vendors' servers do. The benchmark types ``turns`` prompts
and counts the TCP connections the server accepted. Then, in this process, a five-step tool
chain (``Conversation.chain``: five calls, then the answer) against a fresh server, counted the
same way.

Both ends of a request, timed on one clock (the server is a thread of this process):

- Enter to the request's first byte: from writing Enter (the prompt's text typed before it)
  to the server reading the request line; it holds the prompt being saved before sending.
- The first token's bytes to its glyph: from the server writing the chunk that holds the first
  token to the token's text arriving on the pseudo-terminal's side.

Both include the pseudo-terminal's and the loopback's own latency and the waits between the
processes: they are an upper bound on chatrepl's own time.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .bench_memory import drain, status
from .bench_startup import CHATREPL_PROMPT, CPR_REQUEST, clean_env
from .bench_tools import fake_server
from .common import ROOT, Section, Stat

WARMUP = 2  # turns left out of the timings: imports, the first connection, caches
MARK = "Zebra"


def timed_server(marks: dict[str, list[float]]) -> Any:
    """The fake server, noting when each request line is read (``request``) and when the chunk
    with the first token is written (``token``)."""
    server = fake_server().FakeLLMServer()
    base = server.httpd.RequestHandlerClass

    class Timed(base):  # type: ignore[misc, valid-type]
        def parse_request(self) -> bool:  # called right after the request line is read
            marks["request"].append(time.perf_counter())
            return super().parse_request()

        def _chunk(self, data: bytes) -> None:
            if MARK.encode() in data:
                marks["token"].append(time.perf_counter())
            super()._chunk(data)

    server.httpd.RequestHandlerClass = Timed
    return server


def repl_session(turns: int) -> dict[str, Any]:
    """``turns`` prompts in one interactive session: connections and the two latencies."""
    import pexpect

    marks: dict[str, list[float]] = {"request": [], "token": []}
    server = timed_server(marks).start()
    reply = fake_server().Reply
    home = Path(tempfile.mkdtemp(prefix="chatrepl-bench-connections-"))
    env = clean_env(
        CHATREPL_HOME=str(home), OPENAI_BASE_URL=server.openai_url, OPENAI_API_KEY="sk-bench"
    )
    child = pexpect.spawn(  # this checkout's chatrepl, whatever the environment installed
        sys.executable,
        ["-m", "chatrepl", "-m", "openai:bench"],
        env=env,
        cwd=str(ROOT),
        dimensions=(30, 100),
        timeout=30,
    )
    child.delaybeforesend = None
    enter, glyph = [], []
    try:
        while child.expect([CPR_REQUEST, CHATREPL_PROMPT]) == 0:
            child.send(b"\x1b[1;1R")
        drain(child, 0.3)
        db = home / "chatrepl.db"
        for n in range(turns):
            marker = f"{MARK}{n}"
            # the first token alone, a pause, then the rest: its glyph is timed on its own
            server.push(reply(text=f"{marker} and the rest of the answer.", delay=0.05))
            child.send(f"turn {n}".encode())
            drain(child, 0.2)
            requests = len(marks["request"])
            sent = time.perf_counter()
            child.send(b"\r")
            seen, shown = b"", None
            while shown is None:
                try:
                    data = child.read_nonblocking(1 << 16, timeout=5)
                except pexpect.TIMEOUT:
                    raise RuntimeError(f"turn {n}: no answer on the screen") from None
                if CPR_REQUEST.search(data):
                    child.send(b"\x1b[1;1R")
                seen += data
                if marker.encode() in seen:
                    shown = time.perf_counter()
            start = time.monotonic()
            while status(db) in (None, "pending"):
                drain(child, 0.05)
                if time.monotonic() - start > 30:
                    raise RuntimeError(f"turn {n}: the answer did not end within 30 s")
            drain(child, 0.2)
            if n >= WARMUP:
                enter.append(marks["request"][requests] - sent)
                glyph.append(shown - marks["token"][-1])
        child.sendeof()
        drain(child, 0.3)
    finally:
        child.close(force=True)
        server.stop()
    return {"connections": server.connections, "requests": len(server.requests),
            "enter": enter, "glyph": glyph}  # fmt: skip


def tool_chain(steps: int) -> dict[str, int]:
    """A chain of ``steps`` tool calls then the answer, in this process."""
    fs = fake_server()
    server = fs.FakeLLMServer().start()
    home = tempfile.mkdtemp(prefix="chatrepl-bench-connections-")
    saved = {k: os.environ.get(k) for k in ("CHATREPL_HOME", "OPENAI_BASE_URL", "OPENAI_API_KEY")}
    os.environ.update(
        CHATREPL_HOME=home, OPENAI_BASE_URL=server.openai_url, OPENAI_API_KEY="sk-bench"
    )
    try:
        import chatrepl
        from chatrepl.providers.connections import close_all

        close_all()  # no connection kept from an earlier run in this process

        def count(n: int) -> int:
            """One more.

            Args:
                n: the count so far.
            """
            return n + 1

        server.push(
            *[fs.Answer(fs.Call("count", f'{{"n": {n}}}', id=f"c{n}")) for n in range(steps)],
            fs.Answer(fs.Text("done")),
        )
        r = chatrepl.get_model("openai:bench").conversation().chain("Count.", tools=[count])
        if r.text() != "done" or len(r.calls) != steps + 1:
            raise RuntimeError(f"the chain ended {r.status} after {len(r.calls)} calls")
        close_all()
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return {"connections": server.connections, "requests": len(server.requests)}


def run(turns: int = 10, steps: int = 5) -> Section:
    section = Section("Connections: one per provider host, and chatrepl's time around a request")
    session = repl_session(turns)
    section.add(
        f"TCP connections opened for {turns} REPL turns",
        None,
        value=str(session["connections"]),
        beside=f"{session['requests']} requests",
        target="1",
        met=session["connections"] == 1,
        if_missed="A response not read to its end, or a client made per request or per model, "
        "opens a connection each time: see chatrepl/providers/connections.py and the drain "
        "after the end mark in chatrepl/providers/stream.py.",
    )
    chain = tool_chain(steps)
    section.add(
        f"TCP connections opened for a {steps}-step tool chain",
        None,
        value=str(chain["connections"]),
        beside=f"{chain['requests']} requests",
        target="1",
        met=chain["connections"] == 1,
    )
    enter = Stat(session["enter"])
    section.add(
        "Enter to the request's first byte (warm session)",
        enter,
        target="≤ 2 ms",
        met=enter.median <= 0.002,
        if_missed="It holds the prompt's save before sending (SQLite), building the messages "
        "and the request, and the pseudo-terminal's latency; profile the REPL's submit path.",
    )
    glyph = Stat(session["glyph"])
    section.add(
        "the first token's bytes to its glyph on the terminal (warm session)",
        glyph,
        target="≤ 2 ms",
        met=glyph.median <= 0.002,
        if_missed="It holds parsing the event, the conversation's bookkeeping and the "
        "renderer's first frame; a renderer that waits for its next refresh tick before "
        "drawing the first token misses it by up to a tick.",
    )
    section.notes += [
        f"One session of `chatrepl -m openai:bench` in a 100×30 pseudo-terminal, {turns} "
        f"prompts typed a moment apart; the timings leave out the first {WARMUP} turns. The "
        "server (tests/fakeserver.py, a thread of this process) speaks HTTP/1.1 keep-alive "
        "with chunked event streams and TCP_NODELAY and counts the connections it accepted.",
        "Both timings are taken on one clock: the server's thread notes when it reads the "
        "request line and when it writes the first token's chunk; this process notes when it "
        "writes Enter and when the token's text arrives from the pseudo-terminal. They include "
        "the pseudo-terminal's and the loopback's own latency.",
    ]
    return section

"""Tools: what one tool round trip costs in chatrepl's own time, beside the model's and the tool's.

A turn that runs one tool (``Conversation.chain``) against the test suite's local vendor
server (tests/fakeserver.py, OpenAI's wire format): the model asks for ``add({"a": 1})``,
chatrepl runs a trivial Python tool and sends its result back, the model answers ``done``.
Beside it, a plain turn (``Conversation.prompt``, one model call answering ``done``): the
difference is what the tool round trip adds. Both with a store (a fresh SQLite file) and
without, interleaved.

The turn's wall time is split into:

- the model's: the fake server's handling of each request (its thread's CPU time: it answers
  at once, so this is the cost of a model that takes no time at all);
- the tool's: the wall time inside the tool function;
- chatrepl's own: the rest, of which the benchmark times, on the thread that streams the
  turn, the storage writes (``begin_turn``, ``save_progress``, ``finish_turn``), the approval
  hook, JSON (``json.dumps``/``json.loads`` and httpx's encoder) and the tool runner around the
  tool (argument checks, its worker thread, the result part); what is left is the HTTP client,
  parsing the stream, and building parts and messages.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from .common import ROOT, Section, Stat

MAIN = "main"
#: Categories of chatrepl's own time, in the order shown.
STORAGE, APPROVAL, JSON, RUNNER = "storage writes", "approval", "JSON", "tool runner"
TOOL = "the tool"


class Probe:
    """Exclusive wall time per category and thread: a wrapped call nested in another is
    counted in its own category only."""

    def __init__(self) -> None:
        self.times: dict[tuple[str, str], float] = defaultdict(float)
        self._local = threading.local()
        self.main = threading.get_ident()

    def reset(self) -> None:
        self.times.clear()

    def wrap(self, category: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            stack = self._local.__dict__.setdefault("stack", [])
            stack.append(0.0)  # time spent in wrapped calls nested in this one
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                nested = stack.pop()
                if stack:
                    stack[-1] += elapsed
                thread = MAIN if threading.get_ident() == self.main else "other"
                self.times[(category, thread)] += elapsed - nested

        return timed

    def patch(self, stack: ExitStack, owner: Any, name: str, category: str) -> None:
        """Wrap ``owner.name`` until ``stack`` closes."""
        original = getattr(owner, name)
        setattr(owner, name, self.wrap(category, original))
        stack.callback(setattr, owner, name, original)


def fake_server() -> Any:
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import fakeserver
    finally:
        sys.path.remove(str(ROOT / "tests"))
    return fakeserver


def timed_server(fakeserver: Any, served: list[tuple[float, float]]) -> Any:
    """The fake server, each POST's (wall, thread CPU) appended to ``served``."""
    srv = fakeserver.FakeLLMServer()
    base = srv.httpd.RequestHandlerClass

    class Timed(base):  # type: ignore[misc, valid-type]
        def do_POST(self) -> None:  # noqa: N802
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                super().do_POST()
            finally:
                served.append((time.perf_counter() - wall, time.thread_time() - cpu))

    srv.httpd.RequestHandlerClass = Timed
    return srv.start()


def run(repeat: int = 30) -> Section:
    section = Section("Tools: one tool round trip")
    home = tempfile.mkdtemp(prefix="chatrepl-bench-home-")
    os.environ["CHATREPL_HOME"] = home
    fs = fake_server()
    served: list[tuple[float, float]] = []
    srv = timed_server(fs, served)
    os.environ["OPENAI_BASE_URL"] = srv.openai_url
    os.environ["OPENAI_API_KEY"] = "sk-bench-0123456789"

    import httpx._content

    import chatrepl
    from chatrepl.store import Store

    probe = Probe()
    model = chatrepl.get_model("openai:gpt-bench")

    def add(a: int) -> int:
        """Add one to a number.

        Args:
            a: the number.
        """
        return a + 1

    tool = probe.wrap(TOOL, add)
    approve = probe.wrap(APPROVAL, lambda tool, arguments: True)
    store = Store(Path(home) / "bench.db")

    def turn(chain: bool, with_store: bool) -> dict[str, float]:
        probe.reset()
        served.clear()
        if chain:
            srv.push(fs.Answer(fs.Call("add", '{"a": 1}')), fs.Answer(fs.Text("done")))
        else:
            srv.push(fs.Answer(fs.Text("done")))
        c = model.conversation(store=store if with_store else None)
        cpu, start = time.thread_time(), time.perf_counter()
        if chain:
            r = c.chain("Add one to 1.", tools=[tool], approve=approve)
        else:
            r = c.prompt("Say done.")
        for _ in r.events():
            pass
        wall, cpu = time.perf_counter() - start, time.thread_time() - cpu
        assert r.status == "complete" and r.text_so_far == "done", (r.status, r.text_so_far)
        assert len(r.calls) == (2 if chain else 1)
        deadline = time.monotonic() + 5  # the server thread notes its last request after
        while len(served) < len(r.calls) and time.monotonic() < deadline:  # sending it
            time.sleep(0.001)
        assert len(served) == len(r.calls), served
        t = {k: v for k, v in probe.times.items()}
        out = {
            "wall": wall,
            "cpu": cpu,
            "server": sum(s[1] for s in served),
            "server wall": sum(s[0] for s in served),
            TOOL: sum(v for (k, _), v in t.items() if k == TOOL),
            STORAGE: t.get((STORAGE, MAIN), 0.0),
            "flushes": t.get((STORAGE, "other"), 0.0),
            APPROVAL: t.get((APPROVAL, MAIN), 0.0),
            JSON: t.get((JSON, MAIN), 0.0),
        }
        out[RUNNER] = t.get((RUNNER, MAIN), 0.0) - out[TOOL]
        out["own"] = wall - out["server"] - out[TOOL]
        out["rest"] = out["own"] - sum(out[k] for k in (STORAGE, APPROVAL, JSON, RUNNER))
        return out

    cases = {
        (chain, with_store): [] for with_store in (True, False) for chain in (True, False)
    }  # fmt: skip
    with ExitStack() as patches:
        for name in ("begin_turn", "save_progress", "finish_turn"):
            probe.patch(patches, Store, name, STORAGE)
        from chatrepl.tools.runner import Runner

        probe.patch(patches, Runner, "run", RUNNER)
        probe.patch(patches, json, "dumps", JSON)
        probe.patch(patches, json, "loads", JSON)
        probe.patch(patches, httpx._content, "json_dumps", JSON)
        for i in range(repeat + 3):  # three rounds of warm-up: imports, connections, caches
            for chain, with_store in cases:
                figures = turn(chain, with_store)
                if i >= 3:
                    cases[(chain, with_store)].append(figures)
    srv.stop()
    store.close()

    def stat(rows: list[dict[str, float]], key: str) -> Stat:
        return Stat([r[key] for r in rows])

    for with_store in (True, False):
        where = "with a store" if with_store else "without a store"
        chain, plain = cases[(True, with_store)], cases[(False, with_store)]
        trip = Stat(
            [c["own"] - p["own"] for c, p in zip(chain, plain, strict=True)]
        )  # paired by round: the same load on both
        section.add(
            f"{where}: a turn with one tool call, whole (2 model calls)",
            stat(chain, "wall"),
            beside=f"a plain turn (1 model call): {stat(plain, 'wall').fmt()}",
        )
        section.add(
            f"{where}: the model's time (the fake server's handling, CPU)",
            stat(chain, "server"),
            beside=f"its wall time: {stat(chain, 'server wall').fmt()}; "
            f"plain turn: {stat(plain, 'server').fmt()}",
        )
        section.add(f"{where}: the tool's time (inside the function)", stat(chain, TOOL))
        section.add(
            f"{where}: chatrepl's own time in the turn",
            stat(chain, "own"),
            beside=f"plain turn: {stat(plain, 'own').fmt()}; main thread CPU: "
            f"{stat(chain, 'cpu').fmt()} (plain {stat(plain, 'cpu').fmt()})",
        )
        section.add(
            f"{where}: chatrepl's own time of the tool round trip (turn with the call − "
            "plain turn)",
            trip,
        )
        parts = [STORAGE, APPROVAL, JSON, RUNNER, "rest"] if with_store else [
            APPROVAL, JSON, RUNNER, "rest"]  # fmt: skip
        split = "; ".join(
            f"{k} {stat(chain, k).fmt()} (plain {stat(plain, k).fmt()})" for k in parts
        )
        section.add(f"{where}: chatrepl's own time, by part", None, value="", beside=split)
        if with_store:
            section.add(
                "with a store: flushes written by the flusher thread (off the turn's thread)",
                stat(chain, "flushes"),
                beside=f"plain turn: {stat(plain, 'flushes').fmt()}",
            )
    section.notes += [
        f"Each figure: the median of {repeat} turns after three warm-up rounds; the four cases "
        "(tool turn and plain turn, with a store and without) interleaved in each round. The "
        "tool round trip is paired by round (each round's tool turn minus its plain turn).",
        "The fake server runs in a thread of the same process (tests/fakeserver.py), answering "
        "at once in OpenAI's wire format; the model's time is its thread's CPU time for the "
        "requests of the turn (its wall time, also shown, overlaps chatrepl's reading of the "
        "stream). chatrepl's own time = the turn's wall time − the model's − the tool's; "
        "it includes the loopback socket and the waits between threads.",
        "By part: wall time on the thread that runs the turn, each call counted once (JSON "
        "inside a storage write counts as storage). storage writes: begin_turn, save_progress, "
        "finish_turn; approval: the approve hook (returns True); JSON: json.dumps/json.loads "
        "and httpx's JSON encoder; tool runner: Runner.run around the tool (the repeat guard, "
        "approval call, the tool's worker thread, the result part); rest: the HTTP client, "
        "parsing the stream, parts, messages.",
    ]
    return section

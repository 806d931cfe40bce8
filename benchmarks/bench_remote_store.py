"""A store far away: PostgreSQL behind a delay proxy at 0, 30 and 80 ms a round trip.

For each operation a user waits on, the round trips chatrepl makes to the store (flights counted
by the proxy, tests/delayproxy.py) and the time it adds over the same operation with the server
next door; SQLite's time beside it. The model answers at once (an in-process model for the
library's turn, the offline ``echo`` model for the one-shot), so what is measured is the store.

Targets (issue 27): before a request leaves, at most one round trip; a REPL turn ≤ 4 round trips
and its answer on screen ≤ ~3 round trips (≤ 100 ms) later at 30 ms than next door; a one-shot
answer ≤ ~8 (≤ 240 ms) later; opening a conversation, listing and searching ≤ 2 each.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .common import Section, Stat

DELAYS_MS = (0, 30, 80)
#: Round trips allowed; 2 for the rest. Opening: four to connect and authenticate (the TLS
#: request that a server without TLS declines, as libpq's default ``sslmode=prefer`` asks it
#: first; the startup; SCRAM's two messages), one to check the schema's version.
LIMITS = {
    "open the store": 5,
    "a REPL turn: answer on screen": 1,
    "a REPL turn: the whole turn": 4,
}  # a round trip: the proxy waits half of it each way
ROOT = Path(__file__).resolve().parent.parent
RECENT = 50  # chatrepl.repl.app.RECENT (not imported: the REPL's module imports the screen)


def _via(url: str, port: int) -> str:
    """``url`` with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    auth = f"{parts.username}:{parts.password}@" if parts.password else ""
    return urlunsplit(parts._replace(netloc=f"{auth}127.0.0.1:{port}"))


class _Probe:
    """Builds the instant model whose ``stream`` notes the flights made before the request."""

    def __init__(self) -> None:
        from chatrepl.providers.base import Backend
        from chatrepl.records import TextDelta

        probe = self

        class Instant(Backend):
            def stream(
                self, messages: Any, options: Any, cancel: Any, tools: Any = None
            ) -> Iterator[Any]:
                probe.at_request = probe.count()
                yield TextDelta("An answer of a few words, at once.")

        self.model = Instant("instant", "probe")
        self.count: Callable[[], int] = lambda: 0
        self.at_request = 0


def _measure(target: str, count: Callable[[], int], repeat: int) -> dict[str, list[float]]:
    """Each operation ``repeat`` times on the store at ``target``: seconds and flights."""
    from chatrepl.conversation import Conversation
    from chatrepl.store import Store

    probe = _Probe()
    probe.count = count
    out: dict[str, list[float]] = {}

    def note(name: str, seconds: float, flights: int) -> None:
        out.setdefault(name, []).append(seconds)
        out.setdefault(name + " flights", []).append(flights)

    Store(target).close()  # the schema, once
    for i in range(repeat):
        f0, t0 = count(), time.perf_counter()
        store = Store(target)  # connects and checks the schema's version
        note("open the store", time.perf_counter() - t0, count() - f0)
        c = Conversation(probe.model, store=store)
        for n in range(3):
            f0, t0 = count(), time.perf_counter()
            r = c.prompt(f"question {i}.{n}: how far is the server?")
            first = None
            for _ in r:
                first = first or time.perf_counter()
            store.recent(RECENT)  # the REPL's toolbar and completion, read after each turn
            done = time.perf_counter()
            if n:  # the first turn of a conversation also creates it
                note("a REPL turn: answer on screen", (first or done) - t0, probe.at_request - f0)
                note("a REPL turn: the whole turn", done - t0, count() - f0)
        f0, t0 = count(), time.perf_counter()
        store.recent(20)
        note("list the 20 most recent", time.perf_counter() - t0, count() - f0)
        f0, t0 = count(), time.perf_counter()
        store.search("server", 10)
        note("search", time.perf_counter() - t0, count() - f0)
        f0, t0 = count(), time.perf_counter()
        Conversation.load(store, c.id, model=probe.model)
        note("open a conversation at its head", time.perf_counter() - t0, count() - f0)
        store.close()
    return out


def _one_shot(target: str, count: Callable[[], int], home: str) -> tuple[float, int]:
    env = {**os.environ, "CHATREPL_HOME": home, "PYTHONPATH": str(ROOT)}
    f0, t0 = count(), time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "chatrepl", "-m", "echo", "--db", target, "-p", "how far?"],
        env=env,
        capture_output=True,
        check=True,
        cwd=ROOT,
    )
    return time.perf_counter() - t0, count() - f0


def run(repeat: int = 5, quick: bool = False) -> Section:
    sys.path.insert(0, str(ROOT / "tests"))
    from delayproxy import DelayProxy
    from pgserver import start_server

    section = Section("A store far away: PostgreSQL behind a delay, SQLite beside it")
    home = tempfile.mkdtemp(prefix="chatrepl-bench-home-")
    os.environ.setdefault("CHATREPL_HOME", home)
    server = start_server()
    try:
        lite = _measure(str(Path(home) / "near.db"), lambda: 0, repeat)
        lite_shot = [
            _one_shot(str(Path(home) / "near.db"), lambda: 0, home)[0] for _ in range(repeat)
        ]
        by_delay: dict[int, dict[str, list[float]]] = {}
        shots: dict[int, list[tuple[float, int]]] = {}
        for delay in DELAYS_MS if not quick else (0, 30):
            url = server.new_database()
            with DelayProxy("127.0.0.1", server.port, delay=delay / 2000) as proxy:
                target = _via(url, proxy.port)
                by_delay[delay] = _measure(target, lambda p=proxy: p.flights, repeat)
                shots[delay] = [
                    _one_shot(target, lambda p=proxy: p.flights, home) for _ in range(repeat)
                ]
        names = [k for k in by_delay[0] if not k.endswith(" flights")]
        for name in names:
            near = statistics.median(by_delay[0][name])
            for delay, figures in by_delay.items():
                if delay == 0:
                    continue
                flights = max(figures[name + " flights"])
                added = Stat([v - near for v in figures[name]])
                limit = LIMITS.get(name, 2)
                section.add(
                    f"{name}, server {delay} ms away: time added",
                    added,
                    beside=f"{int(flights)} round trips; next door {near * 1000:.1f} ms; SQLite "
                    f"{statistics.median(lite[name]) * 1000:.1f} ms",
                    target=f"≤ {limit} round trip{'s' if limit > 1 else ''} "
                    + ("before the request" if "on screen" in name else ""),
                    met=flights <= limit,
                )
        near_shot = statistics.median(t for t, _ in shots[0])
        for delay, runs in shots.items():
            if delay == 0:
                continue
            flights = max(f for _, f in runs)
            added = Stat([t - near_shot for t, _ in runs])
            section.add(
                f"a one-shot answer (`-m echo -p`), server {delay} ms away: time added",
                added,
                beside=f"{flights} round trips; next door {near_shot * 1000:.0f} ms; SQLite "
                f"{statistics.median(lite_shot) * 1000:.0f} ms",
                target="≤ 8 round trips (≤ 240 ms at 30 ms)",
                met=flights <= 8,
            )
        section.notes.append(
            "Round trips are the flights the delay proxy (tests/delayproxy.py) counts: the client "
            "sending after it heard from the server, counted when the server answers. Pipelined "
            "statements are one flight; a connection's last message (Terminate, sent without "
            "waiting for an answer) is none."
        )
        section.notes.append(
            "A REPL turn is the library's turn (Conversation.prompt, streamed to its end) and "
            f"the list of the {RECENT} most recent conversations the REPL reads after each "
            "turn for its toolbar and completion; 'answer on screen' is the round trips before "
            "the request leaves, and the time until the first text arrives."
        )
        section.notes.append(
            "A one-shot's time added is two process start-ups compared (the server far away, "
            "and next door): on a busy machine their own spread (hundreds of ms) hides the "
            "round trips, whose count is the figure to trust there."
        )
    finally:
        server.stop()
    return section

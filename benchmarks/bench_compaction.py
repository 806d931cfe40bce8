"""What compacting a 1,000-turn conversation costs beyond the model's own time.

A 1,000-turn conversation (prompts of ~30 words, answers of ~150) is saved in a fresh SQLite
store, loaded as chatrepl loads it, and compacted by :func:`chatrepl.compaction.compact` with a
model that answers every summary request at once with a fixed 600-word summary. The time spent
inside the model is measured and taken out: what is left is chatrepl's own work (building the
transcript, chunking, the summary turn and the copies, saving them, the path reloaded). Two
windows: 128k tokens (few, large chunks) and 8k (many small chunks, merged in levels).

Run: ``python -m benchmarks.bench_compaction [--repeat N]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatrepl.compaction import compact
from chatrepl.conversation import Conversation
from chatrepl.ids import new_id
from chatrepl.providers.base import Backend
from chatrepl.records import (
    CallRecord,
    Event,
    Finish,
    Message,
    Part,
    TextDelta,
    ToolSpec,
    TurnRecord,
    Usage,
)
from chatrepl.store import Store, now

TURNS = 1000
SUMMARY = " ".join(f"fact{i}" for i in range(600))


@dataclass
class InstantModel(Backend):
    """Answers every request at once with the same summary; counts the time spent in it."""

    seconds: float = 0.0
    requests: int = 0
    sent_chars: list[int] = field(default_factory=list)

    def stream(
        self,
        messages: list[Message],
        options: dict[str, Any],
        cancel: threading.Event,
        tools: list[ToolSpec] | None = None,
    ) -> Iterator[Event]:
        began = time.perf_counter()
        self.requests += 1
        self.sent_chars.append(sum(len(m.content) for m in messages))
        events: list[Event] = [TextDelta(SUMMARY), Usage(1000, 800), Finish("stop")]
        self.seconds += time.perf_counter() - began
        yield from events


def build(store: Store, model: Backend) -> str:
    """A saved 1,000-turn conversation; its id."""
    c = Conversation(model, system="You are a careful assistant.", store=store)
    c.title = "benchmark"
    parent = None
    turns = []
    for i in range(TURNS):
        prompt = f"Question {i}: " + " ".join(f"word{j}" for j in range(30))
        answer = f"Answer {i}: " + " ".join(f"reply{j}" for j in range(150))
        t = TurnRecord(
            id=new_id(),
            conversation_id=c.id,
            parent_id=parent,
            model=model.full_name,
            prompt=prompt,
            system=c.system,
            response=answer,
            options={},
            input_tokens=None,
            output_tokens=None,
            status="complete",
            error=None,
            started=now(),
            duration_ms=1000,
            ttft_ms=100,
            parts=[Part("prompt", prompt), Part("text", answer, call=1)],
            calls=[CallRecord(1, model.full_name, "stop", 1000 + i * 200, 200)],
        )
        turns.append(t)
        parent = t.id
    record = c.record()
    record.head = parent
    store.import_conversation(record, turns)
    return c.id


def one(window: int) -> dict[str, float]:
    """Compact a fresh copy once; times in ms, and what it did."""
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "bench.db")
        model = InstantModel("summarizer", "bench")
        cid = build(store, model)
        began = time.perf_counter()
        c = Conversation.load(store, cid, model=model)
        loaded = time.perf_counter()
        done = compact(c, window=window)
        ended = time.perf_counter()
        assert done is not None
        store.close()
    total = (ended - loaded) * 1000
    return {
        "load_ms": (loaded - began) * 1000,
        "compact_ms": total,
        "model_ms": model.seconds * 1000,
        "overhead_ms": total - model.seconds * 1000,
        "requests": done.requests,
        "largest_request_tokens": max(model.sent_chars) / 4,
        "tokens_before": done.tokens_before,
        "tokens_after": done.tokens_after,
    }


def run(repeat: int = 5) -> None:
    print(f"Compacting a {TURNS:,}-turn conversation (median of {repeat} runs)")
    for window in (128_000, 8_000):
        runs = [one(window) for _ in range(repeat)]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(
            f"  window {window:>7,}: {med['requests']:.0f} summary requests, the largest "
            f"~{med['largest_request_tokens']:,.0f} tokens; context ~{med['tokens_before']:,.0f}"
            f" → ~{med['tokens_after']:,.0f} tokens\n"
            f"    compaction {med['compact_ms']:.0f} ms, of which the model "
            f"{med['model_ms']:.1f} ms: chatrepl's own work {med['overhead_ms']:.0f} ms "
            f"(min {min(r['overhead_ms'] for r in runs):.0f}, "
            f"max {max(r['overhead_ms'] for r in runs):.0f}); loading the conversation "
            f"{med['load_ms']:.0f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    run(parser.parse_args().repeat)


if __name__ == "__main__":
    main()

"""How many bytes a history takes on disk: chatrepl's SQLite file against the text it holds,
and against llm's ``logs.db`` for the same round trips.

2,000 round trips through the public library (``chatrepl.Model`` + ``Conversation`` with a
``Store``): 60-word prompts drawn from a vocabulary of about a thousand words, answered by a
small deterministic model that says other words than it was asked (an answer that copies its
prompt would flatter any layout that stores a text by its hash). llm logs the same prompts and
answers through its own code (``Response.log_to_db`` on a database its migrations made), when
llm is importable here; otherwise only chatrepl's ratio is measured, and the table says so.

    python -m benchmarks.bench_size [ROUND_TRIPS]
"""

from __future__ import annotations

import random
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .common import Section

ROUND_TRIPS = 2_000
PER_CONVERSATION = 10
WORDS = 60
TARGET_RATIO = 2.0


def vocabulary(n: int = 1_000) -> list[str]:
    """``n`` made-up but word-like words, always the same ones."""
    rng = random.Random(1)
    syllables = ["ka", "lo", "mi", "ne", "tor", "vas", "pel", "ri", "sun", "da", "qu", "est",
                 "ba", "gen", "or", "ul", "ti", "mar", "ke", "zo"]  # fmt: skip
    words: dict[str, None] = {}
    while len(words) < n:
        words["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4)))] = None
    return list(words)


class Texts:
    """Prompts and answers: sentences of Zipf-distributed words from one vocabulary."""

    def __init__(self, seed: int = 7):
        self.rng = random.Random(seed)
        self.words = vocabulary()
        self.weights = [1 / rank for rank in range(1, len(self.words) + 1)]

    def text(self, n: int) -> str:
        words = self.rng.choices(self.words, weights=self.weights, k=n)
        sentences, at = [], 0
        while at < n:
            k = self.rng.randint(6, 16)
            sentence = " ".join(words[at : at + k])
            sentences.append(sentence[:1].upper() + sentence[1:] + ".")
            at += k
        return " ".join(sentences)


def answering_model() -> Any:
    """A provider model that answers each prompt with other words (seeded by the prompt)."""
    from chatrepl.providers.base import Backend
    from chatrepl.records import TextDelta, Usage

    class Answerer(Backend):
        def stream(self, messages, options, cancel, tools=None) -> Iterator[Any]:  # noqa: ANN001
            prompt = next((m.content for m in reversed(messages) if m.role == "user"), "")
            texts = Texts(seed=hash_of(prompt))
            answer = texts.text(texts.rng.randint(40, 90))
            for piece in answer.split(" "):
                yield TextDelta(piece + " ")
            yield Usage(len(prompt.split()), len(answer.split()))

    return Answerer("answerer", "bench")


def hash_of(text: str) -> int:
    import zlib

    return zlib.crc32(text.encode())


def chatrepl_history(path: Path, prompts: list[str]) -> tuple[int, list[tuple[str, str]]]:
    """Every prompt asked through the library into a store at ``path``; the bytes of text it
    holds, and the round trips (prompt, answer) for llm."""
    import chatrepl
    from chatrepl.store import Store

    store = Store(path)
    model = chatrepl.Model(answering_model())
    text_bytes, pairs = 0, []
    for start in range(0, len(prompts), PER_CONVERSATION):
        c = model.conversation(store=store)
        for prompt in prompts[start : start + PER_CONVERSATION]:
            answer = c.prompt(prompt).text()
            text_bytes += len(prompt.encode()) + len(answer.encode())
            pairs.append((prompt, answer))
    store.db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return text_bytes, pairs


def llm_history(path: Path, pairs: list[tuple[str, str]]) -> bool:
    """The same round trips logged by llm into ``path`` (its own migrations and logging);
    ``False`` when llm is not importable here."""
    try:
        import llm
        import sqlite_utils
        from llm.migrations import migrate
    except ImportError:
        return False
    answers = iter([a for _, a in pairs])

    class Replay(llm.Model):
        model_id = "answerer"

        def execute(self, prompt, stream, response, conversation):  # noqa: ANN001, ANN201
            yield next(answers)

    db = sqlite_utils.Database(path)
    migrate(db)
    model = Replay()
    for start in range(0, len(pairs), PER_CONVERSATION):
        conversation = model.conversation()
        for prompt, _ in pairs[start : start + PER_CONVERSATION]:
            response = conversation.prompt(prompt)
            response.text()
            response.log_to_db(db)
    db.conn.execute("VACUUM")  # llm's file as compact as it gets: the fairest comparison
    db.close()
    return True


def table_sizes(path: Path) -> str:
    """The biggest tables and indexes of an SQLite file (dbstat), as ``name size`` pairs."""
    con = sqlite3.connect(path)
    try:
        rows = con.execute(
            "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT 6"
        ).fetchall()
    except sqlite3.OperationalError:
        return "(this SQLite has no dbstat)"
    finally:
        con.close()
    return ", ".join(f"{name} {size / 1e6:.2f} MB" for name, size in rows)


def run(round_trips: int = ROUND_TRIPS) -> Section:
    texts = Texts()
    prompts = [texts.text(WORDS) for _ in range(round_trips)]
    section = Section(f"Size on disk: {round_trips:,} round trips")
    with tempfile.TemporaryDirectory() as folder:
        ours, theirs = Path(folder, "chatrepl.db"), Path(folder, "logs.db")
        text_bytes, pairs = chatrepl_history(ours, prompts)
        size = ours.stat().st_size
        ratio = size / text_bytes
        section.add(
            "chatrepl's SQLite file ÷ the text it holds",
            None,
            value=f"{ratio:.2f}× ({size / 1e6:.2f} MB for {text_bytes / 1e6:.2f} MB)",
            target=f"≤ {TARGET_RATIO}×",
            met=ratio <= TARGET_RATIO,
        )
        section.add(
            "bytes per round trip",
            None,
            value=f"{size / round_trips:,.0f} B (text {text_bytes / round_trips:,.0f} B)",
        )
        section.notes.append(f"chatrepl's largest tables and indexes: {table_sizes(ours)}.")
        if llm_history(theirs, pairs):
            llm_size = theirs.stat().st_size
            section.add(
                "llm's logs.db for the same round trips",
                None,
                value=f"{llm_size / 1e6:.2f} MB ({llm_size / text_bytes:.2f}× the text)",
                beside=f"chatrepl {size / llm_size:.2f}× llm's",
                target="smaller than llm's",
                met=size < llm_size,
            )
            section.notes.append(f"llm's largest tables and indexes: {table_sizes(theirs)}.")
        else:
            section.notes.append("llm is not importable here: only chatrepl's ratio is measured.")
    section.notes.append(
        f"{WORDS}-word prompts from a 1,000-word vocabulary, {PER_CONVERSATION} round trips per "
        "conversation; answers of 40–90 other words from a deterministic model. Sizes are the "
        "files after a WAL checkpoint (llm's after VACUUM); they do not depend on the machine."
    )
    return section


def _print(section: Section) -> None:
    print(section.title)
    for row in section.rows:
        print(f"  {row.what}: {row.value} {row.beside} (target {row.target or '-'}"
              f"{'' if row.met is None else ', met' if row.met else ', MISSED'})")  # fmt: skip
    for note in section.notes:
        print(f"  - {note}")


if __name__ == "__main__":
    _print(run(int(sys.argv[1]) if len(sys.argv) > 1 else ROUND_TRIPS))

"""A chatrepl database of any size, with realistic text, generated fast and cached.

The schema is chatrepl's own: ``chatrepl.Store`` creates the file, then rows go in with
``sqlite3.executemany`` in big transactions (each text once, in the parts, as the store keeps
it), and the full-text index is rebuilt from them at the end.
The text is English-like: words drawn with Zipf frequencies (a few hundred common English
words, then technical words, then a long tail of made-up words), in sentences, paragraphs,
lists and fenced code. Turns are spread over two years and interleaved in time, as a
real database fills, so one conversation's turns are scattered through the table.

Everything is seeded: the same sizes give the same database. Files are cached in the cache
folder (``~/.cache/chatrepl-bench``) and reused.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from .common import cache_dir

VERSION = 6  # bump when the generated data changes, so cached files are rebuilt

COMMON = """the of and to a in is it you that for on are with as this be or by not can
at from have an your but if will all which one more when use there so what do about their
we they has can then than each other how some these would its like into may only also new
first time should just need make way could see over any most work here same such very well
because where both between after long while does using used before them our through first
example value data file code number set list name type line error case function system user
call return result change point state part order start version string object method class
key model answer question text output input test run build table query index page time""".split()  # noqa: SIM905

TECHNICAL = """python sqlite database terminal prompt stream token markdown render async await
thread process memory buffer cursor schema migration transaction commit rollback journal
server client request response header status timeout retry socket endpoint payload json
parser lexer compiler interpreter bytecode runtime closure decorator generator iterator
exception traceback logging config environment variable container kubernetes docker image
cluster node replica shard partition latency throughput benchmark profile cache eviction
hash tree graph vertex edge matrix vector tensor gradient neural network embedding
regression classifier dataset training inference quantization attention transformer
encoder decoder tokenizer vocabulary recipe garden goat bicycle mountain river ocean
history philosophy poetry novel chapter character music guitar piano violin coffee
breakfast travel budget invoice contract meeting calendar email spreadsheet chart""".split()  # noqa: SIM905

SYLLABLES = """ka lo mi ra ven tor sel dar pi nu qua zel bro fen gal hix jor kel lum nar
ost pel rin sul tam ulm vor wex yal zor ble cra dri fla gre plo scu tri""".split()  # noqa: SIM905


def vocabulary(rng: random.Random, tail: int = 30_000) -> list[str]:
    """Words by rank: common English, then technical words, then made-up words."""
    words = list(dict.fromkeys(COMMON + TECHNICAL))
    seen = set(words)
    while len(words) < len(COMMON) + len(TECHNICAL) + tail:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


class TextMaker:
    """English-like text: sentences from Zipf-distributed words, made into Markdown."""

    def __init__(self, seed: int = 6, pool: int = 60_000):
        self.rng = rng = random.Random(seed)
        self.words = vocabulary(rng)
        weights, total = [], 0.0
        for rank in range(1, len(self.words) + 1):
            total += 1 / rank**1.05
            weights.append(total)
        self.sentences = []
        for _ in range(pool):
            n = max(3, min(30, int(rng.gauss(13, 6))))
            words = rng.choices(self.words, cum_weights=weights, k=n)
            words[0] = words[0].capitalize()
            self.sentences.append(" ".join(words) + rng.choice("....?!"))
        self.code = [
            f"    {a} = {b}({c}, {d})"
            for a, b, c, d in (rng.choices(self.words[:400], k=4) for _ in range(2000))
        ]

    def paragraph(self, lo: int = 1, hi: int = 6) -> str:
        return " ".join(self.rng.choices(self.sentences, k=self.rng.randint(lo, hi)))

    def prompt(self) -> str:
        if self.rng.random() < 0.15:
            return self.paragraph(1, 2) + "\n\n```\n" + self.code_lines(3, 12) + "\n```"
        return self.paragraph(1, 3)

    def code_lines(self, lo: int, hi: int) -> str:
        return "\n".join(self.rng.choices(self.code, k=self.rng.randint(lo, hi)))

    def answer(self) -> str:
        """Markdown: paragraphs, sometimes a heading, a list or fenced code."""
        rng = self.rng
        blocks = []
        for _ in range(max(1, min(14, int(rng.lognormvariate(1.5, 0.6))))):
            kind = rng.random()
            if kind < 0.08:
                blocks.append("## " + rng.choice(self.sentences).rstrip(".?!"))
            elif kind < 0.22:
                items = rng.choices(self.sentences, k=rng.randint(2, 6))
                blocks.append("\n".join(f"- {s}" for s in items))
            elif kind < 0.32:
                blocks.append("```python\n" + self.code_lines(3, 20) + "\n```")
            else:
                blocks.append(self.paragraph())
        return "\n\n".join(blocks)

    def title(self) -> str:
        text = self.rng.choice(self.sentences)
        return text[:60].rstrip(" .?!")


MODELS = ["openai:gpt-4o-mini", "openai:gpt-4o", "anthropic:claude-sonnet-4-5", "ollama:llama3.2"]
B32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
EPOCH = datetime(2025, 6, 1, tzinfo=UTC).timestamp()  # the newest conversation is before this
SPAN = 2 * 365 * 86400  # conversations over two years

RETRY = 0.04  # a turn asked again: the old answer stays as a sibling, one step off the path
EDIT = 0.015  # an earlier prompt edited: a new branch from up to three turns back
TOOLS = 0.08  # a turn in which the model called a tool (two model calls)
REASONING = 0.10  # a turn whose answer starts with reasoning
TOOL_NAMES = ["search_files", "run_python", "get_weather", "read_url", "list_dir"]


def ulid(ms: int, rng: random.Random) -> str:
    n = (ms << 80) | rng.getrandbits(80)
    return "".join(B32[(n >> shift) & 31] for shift in range(125, -1, -5))


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


@dataclass
class Meta:
    """What the benchmarks need to know about a generated database."""

    conversations: int
    round_trips: int  # turns, branches included
    long_id: str  # the conversation whose head is ``long_turns`` turns deep
    long_turns: int
    seconds: float  # how long generating took
    branches: int = 0  # turns that start a branch (retries and edited prompts)


def path_for(conversations: int, round_trips: int) -> Path:
    return cache_dir() / f"store-v{VERSION}-{conversations}-{round_trips}.db"


def database(conversations: int, round_trips: int, long_turns: int = 1000) -> tuple[Path, Meta]:
    """The cached database of that size, generated first if missing."""
    path = path_for(conversations, round_trips)
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists():
        return path, Meta(**json.loads(meta_path.read_text()))
    start = time.monotonic()
    tmp = path.with_suffix(".tmp.db")
    for stale in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        stale.unlink(missing_ok=True)
    long_id, branches = generate(tmp, conversations, round_trips, long_turns)
    meta = Meta(conversations, round_trips, long_id, long_turns, time.monotonic() - start, branches)
    tmp.rename(path)
    meta_path.write_text(json.dumps(asdict(meta)))
    return path, meta


def generate(path: Path, conversations: int, round_trips: int, long_turns: int) -> tuple[str, int]:
    """Fill a new database at ``path``; returns the id of the long conversation and how many
    turns start a branch.

    Each conversation is a tree, grown in time order as chatrepl grows it: most turns follow
    the head; a retry is a sibling of the head with the same prompt; an edited prompt starts a
    branch one to three turns back. The long conversation has only retries, so its head is
    exactly ``long_turns`` turns deep.
    """
    from chatrepl.store import Store

    Store(path).close()  # chatrepl's own schema, migrations recorded
    rng = random.Random(conversations * 7 + round_trips)
    text = TextMaker()
    say = _progress(f"generating {path.name}")

    # How many turns each conversation has: one long one, the rest geometric-ish, exact sum.
    long_retries = round(long_turns * RETRY)
    long_total = long_turns + long_retries
    rest = round_trips - long_total
    counts = [1 + int(rng.expovariate(1 / max(rest / (conversations - 1) - 1, 0.01)))
              for _ in range(conversations - 1)]  # fmt: skip
    extra = sum(counts) - rest
    while extra:
        i = rng.randrange(len(counts))
        if extra > 0 and counts[i] > 1:
            counts[i], extra = counts[i] - 1, extra - 1
        elif extra < 0:
            counts[i], extra = counts[i] + 1, extra + 1
    long_index = conversations // 3  # neither the newest nor the oldest
    counts.insert(long_index, long_total)
    long_retry_at = set(rng.sample(range(1, long_total), long_retries))

    # When: conversations start over two years; turns follow minutes (the long one, days) apart.
    convs, turns = [], []
    for i, n in enumerate(counts):
        start = EPOCH - SPAN * rng.random() ** 0.7  # more of them recently
        gap = 86400 * 180 / n if n == long_total else rng.uniform(20, 600)
        times = [start + k * gap * rng.uniform(0.5, 1.5) for k in range(n)]
        times = sorted(min(t, EPOCH - 1) for t in times)
        cid = ulid(int(start * 1000), rng)
        system = rng.choice(text.sentences) if rng.random() < 0.2 else None
        model = rng.choice(MODELS)
        convs.append([cid, text.title(), "prompt", model, system, iso(start), iso(times[-1] + 9)])
        turns += [(t, i) for t in times]
    turns.sort()

    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode = off")
    con.execute("PRAGMA synchronous = off")
    con.execute("PRAGMA cache_size = -400000")
    con.execute("BEGIN")
    con.executemany(
        "INSERT INTO conversations (id, title, title_source, model, system, created, updated) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        convs,
    )
    con.execute("COMMIT")
    say(f"{len(convs):,} conversations")

    # Each conversation's path from the root to its head: (id, parent id, depth, prompt).
    paths: list[list[tuple[str, str | None, int, str]]] = [[] for _ in convs]
    position = [0] * len(convs)  # turns of each conversation written so far
    rows, parts, calls = [], [], []
    branches = done = 0
    turn_sql = """INSERT INTO turns (seq, id, conversation_id, parent_id, depth, model, system,
        options, input_tokens, output_tokens, status, error, started, duration_ms, ttft_ms)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
    for seq, (ts, i) in enumerate(turns, 1):
        c, path = convs[i], paths[i]
        k, position[i] = position[i], position[i] + 1
        roll = rng.random()
        if i == long_index:
            kind = "retry" if k in long_retry_at else "next"
        elif path and roll < RETRY:
            kind = "retry"
        elif len(path) > 1 and roll < RETRY + EDIT:
            kind = "edit"
        else:
            kind = "next"
        if kind == "retry":
            _, parent, depth, prompt = path.pop()
        elif kind == "edit":
            back = rng.randint(1, min(3, len(path)))
            _, parent, depth, _ = path[-back]
            del path[-back:]
            prompt = text.prompt()
        else:
            parent, depth = (path[-1][0], path[-1][2] + 1) if path else (None, 0)
            prompt = text.prompt()
        branches += kind != "next"
        tid = ulid(int(ts * 1000), rng)
        path.append((tid, parent, depth, prompt))
        row, turn_parts, turn_calls = _turn(rng, text, seq, tid, c, parent, depth, prompt, ts)
        rows.append(row)
        parts += turn_parts
        calls += turn_calls
        if len(rows) == 20_000:
            _insert(con, turn_sql, rows, parts, calls)
            done += len(rows)
            rows, parts, calls = [], [], []
            say(f"{done:,} / {round_trips:,} turns")
    _insert(con, turn_sql, rows, parts, calls)
    say("indexing the words")
    con.execute("INSERT INTO turns_fts (turns_fts) VALUES ('rebuild')")
    con.execute("BEGIN")
    con.executemany(
        "UPDATE conversations SET head = ? WHERE id = ?",
        [(path[-1][0], c[0]) for path, c in zip(paths, convs, strict=True)],
    )
    con.execute("COMMIT")
    con.execute("PRAGMA journal_mode = wal")
    con.close()
    say(f"done: {branches:,} turns start a branch")
    assert len(paths[long_index]) == long_turns
    return convs[long_index][0], branches


def _turn(rng, text, seq, tid, c, parent, depth, prompt, ts):  # noqa: ANN001, ANN202
    """One turn's row, its parts and its model calls."""
    model = c[3]
    roll = rng.random()
    status = "complete" if roll < 0.97 else ("interrupted" if roll < 0.99 else "error")
    parts = [(seq, 0, 0, "prompt", prompt, "{}")]
    texts: list[str] = []
    error = None
    n_calls = 1
    if status == "error":
        error = "OpenAI answered 429 Too Many Requests: rate limit reached."
    else:
        answer = text.answer()
        if status == "interrupted":
            answer = answer[: rng.randrange(len(answer) + 1)]
        if rng.random() < REASONING:
            parts.append((seq, len(parts), 1, "reasoning", text.paragraph(2, 5), "{}"))
        if status == "complete" and rng.random() < TOOLS:
            n_calls = 2
            name = rng.choice(TOOL_NAMES)
            call_id = f"call_{rng.getrandbits(48):012x}"
            lead = text.paragraph(1, 1)
            arguments = {"query": " ".join(rng.choices(text.words[:3000], k=3))}
            result = text.paragraph(2, 8)
            texts.append(lead)
            parts += [
                (seq, len(parts), 1, "text", lead, "{}"),
                (seq, len(parts) + 1, 1, "tool_call", "",
                 json.dumps({"arguments": arguments, "id": call_id, "name": name})),
                (seq, len(parts) + 2, 1, "tool_result", result,
                 json.dumps({"call_id": call_id, "is_error": False, "name": name})),
            ]  # fmt: skip
        if answer:
            texts.append(answer)
            parts.append((seq, len(parts), n_calls, "text", answer, "{}"))
    response = "".join(texts)
    tin, tout = len(prompt.split()) * 3 // 2 + depth * 40, len(response.split()) * 4 // 3
    duration, ttft = rng.randint(400, 30_000), rng.randint(150, 2000)
    calls = [
        (seq, n, model, "tool_calls" if n < n_calls else "stop", tin, tout // n_calls,
         None, None, duration // n_calls, ttft)
        for n in range(1, n_calls + 1)
    ]  # fmt: skip
    row = (seq, tid, c[0], parent, depth, model, c[4], "{}", tin, tout, status, error, iso(ts),
           duration, ttft)  # fmt: skip
    return row, parts, calls


def _insert(
    con: sqlite3.Connection, sql: str, rows: list[tuple], parts: list[tuple], calls: list[tuple]
) -> None:
    conversation = {row[0]: row[2] for row in rows}  # parts and calls are keyed by both
    con.execute("BEGIN")
    con.executemany(sql, rows)
    con.executemany(
        "INSERT INTO parts (conversation_id, turn_seq, position, call, kind, text, data) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(conversation[p[0]], *p) for p in parts],
    )
    con.executemany(
        "INSERT INTO calls (conversation_id, turn_seq, idx, model, finish_reason, input_tokens, "
        "output_tokens, reasoning_tokens, cost, duration_ms, ttft_ms) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(conversation[c[0]], *c) for c in calls],
    )
    con.execute("COMMIT")


def _progress(what: str):
    start = time.monotonic()

    def say(message: str) -> None:
        print(f"  {what}: {message} ({time.monotonic() - start:.0f} s)", file=sys.stderr)

    return say


if __name__ == "__main__":  # python -m benchmarks.gendb CONVERSATIONS ROUND_TRIPS
    sizes = [int(a) for a in sys.argv[1:3]] or [100_000, 1_000_000]
    p, m = database(*sizes)
    print(p, m, f"{os.path.getsize(p) / 2**20:.0f} MiB")

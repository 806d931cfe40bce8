"""Databases as earlier releases of chatrepl wrote them, for the migration tests: the first
release's file, and chatrepl's own migrations run up to an older schema, then conversations
written the way that schema held them (texts in the turns' columns and again in their parts,
the full-text index filled by its triggers), on SQLite or PostgreSQL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chatrepl.lazypeewee import peewee as pw
from chatrepl.migrations import MIGRATIONS
from chatrepl.records import ConversationRecord, TurnRecord
from chatrepl.text import now


def first_release_db(path: Path) -> None:
    """A database as chatrepl 0.1 wrote it (schema 1): straight lines with undone flags."""
    import peewee as pw

    from chatrepl.migrations import m001_initial

    db = pw.SqliteDatabase(str(path))
    m001_initial(db)
    db.execute_sql("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied TEXT)")
    db.execute_sql("INSERT INTO _migrations VALUES ('m001_initial', '2025-01-01')")
    db.execute_sql("PRAGMA user_version = 1")
    cid = "01JD8X0000AAAABBBBCCCCDDDD"
    db.execute_sql(
        "INSERT INTO conversations VALUES (?, 'Goats', 'user', 'echo:echo', 'be a goat', "
        "'2025-01-01T00:00:00.000+00:00', '2025-01-01T00:10:00.000+00:00')",
        (cid,),
    )
    rows = [  # prompt, response, status, undone
        ("one", "answer one", "complete", 0),
        ("two", "bad answer", "complete", 1),  # /retry of two: the old answer undone ...
        ("two", "good answer", "complete", 0),  # ... and asked again
        ("three", "thr", "interrupted", 1),  # /undo twice ...
        ("four", "", "error", 1),
    ]
    for n, (prompt, response, status, undone) in enumerate(rows):
        db.execute_sql(
            "INSERT INTO responses (id, conversation_id, model, prompt, system, response, "
            "options, input_tokens, output_tokens, status, error, started, duration_ms, ttft_ms, "
            "undone) VALUES (?, ?, 'echo:echo', ?, 'be a goat', ?, '{\"temperature\": 0.5}', 3, "
            "4, ?, ?, ?, 1200, 80, ?)",
            (
                f"01JD8X0000AAAABBBBCCCCDD{n:02d}",
                cid,
                prompt,
                response,
                status,
                "boom" if status == "error" else None,
                f"2025-01-01T00:0{n}:00.000+00:00",
                undone,
            ),
        )
    db.close()


_CONVERSATION = [
    "id", "title", "title_source", "model", "system", "created", "updated", "head", "forked_from",
]  # fmt: skip
_TURN = [
    "seq", "id", "conversation_id", "parent_id", "depth", "kind", "model", "prompt", "system",
    "response", "extra", "options", "input_tokens", "output_tokens", "status", "error", "started",
    "duration_ms", "ttft_ms",
]  # fmt: skip
_CALL = [
    "idx", "model", "finish_reason", "input_tokens", "output_tokens", "reasoning_tokens", "cost",
    "duration_ms", "ttft_ms",
]  # fmt: skip


def sqlite_at(path: Path, version: int) -> Any:
    """A new SQLite database at ``path`` with chatrepl's schema ``version`` (>= 2), open."""
    db = pw.SqliteDatabase(str(path), pragmas={"foreign_keys": 1})
    with db.atomic():
        db.execute_sql("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied TEXT)")
        for migration in MIGRATIONS[:version]:
            migration.sqlite(db)
            db.execute_sql("INSERT INTO _migrations VALUES (?, ?)", (migration.name, now()))
        db.execute_sql(f"PRAGMA user_version = {version}")
    return db


def postgres_at(url: str, version: int) -> Any:
    """chatrepl's tables at schema ``version`` (>= 2) in the empty PostgreSQL database at
    ``url``, open."""
    from chatrepl.postgres import SCHEMA, open_database

    db = open_database(url)
    with db.atomic():
        db.execute_sql(f"CREATE SCHEMA {SCHEMA}")
        db.execute_sql(f"CREATE TABLE {SCHEMA}._migrations (name TEXT PRIMARY KEY, applied TEXT)")
        for migration in MIGRATIONS[:version]:
            migration.postgres(db)
            db.execute_sql(
                f"INSERT INTO {SCHEMA}._migrations VALUES (%s, %s)", (migration.name, now())
            )
    return db


def write(
    db: Any,
    version: int,
    conversations: list[tuple[ConversationRecord, list[TurnRecord]]],
    postgres: bool = False,
) -> None:
    """Write whole conversations as schema ``version`` (2 to 4) kept them."""

    def run(sql: str, params: list[Any]) -> None:
        db.execute_sql(sql.replace("?", "%s") if postgres else sql, params)

    def insert(table: str, row: dict[str, Any]) -> None:
        names = ", ".join(row)
        run(f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(row))})", [*row.values()])

    seq = 1 + db.execute_sql("SELECT COALESCE(MAX(seq), 0) FROM turns").fetchone()[0]
    with db.atomic():
        for c, turns in conversations:
            insert("conversations", {k: getattr(c, k) for k in _CONVERSATION})
            depth: dict[str | None, int] = {None: -1}
            for t in turns:
                depth[t.id] = depth.get(t.parent_id, -1) + 1
                row = {k: getattr(t, k, None) for k in _TURN}
                extra = "\n".join(
                    p.text if p.kind == "tool_result" else str(p.data.get("name", ""))
                    for p in t.parts
                    if p.kind in ("tool_result", "attachment")
                )
                row |= {"seq": seq, "depth": depth[t.id], "extra": extra}
                row["options"] = json.dumps(t.options, sort_keys=True)
                insert("turns", row)
                key = {"conversation_id": c.id} if version >= 3 else {}
                for n, p in enumerate(t.parts):
                    insert(
                        "parts",
                        key
                        | {"turn_seq": seq, "position": n, "call": p.call, "kind": p.kind}
                        | {"text": p.text, "data": json.dumps(p.data, sort_keys=True)},
                    )
                for call in t.calls:
                    values = {k: getattr(call, "index" if k == "idx" else k) for k in _CALL}
                    if version >= 4:
                        values["cache_read_tokens"] = call.cache_read_tokens
                        values["cache_write_tokens"] = call.cache_write_tokens
                    insert("calls", key | {"turn_seq": seq} | values)
                seq += 1
        if postgres:  # as if the identity had numbered them
            db.execute_sql(
                "SELECT setval(pg_get_serial_sequence('turns', 'seq'), max(seq)) FROM turns"
            )

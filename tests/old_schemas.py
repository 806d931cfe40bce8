"""Databases as earlier releases of chatrepl wrote them, for the migration tests."""

from __future__ import annotations

from pathlib import Path


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

"""The database: forward-only migrations, and the questions the app asks, in plain records.

This is the only module that speaks SQL (with ``chatrepl.postgres`` for what PostgreSQL says
differently). It takes and returns the records of ``chatrepl.records`` and knows nothing of
conversations as objects or of providers. An SQLite file is the default: every write runs in a
``BEGIN IMMEDIATE`` transaction on a WAL database with a busy timeout, so several chatrepl
processes can share one file without losing a write. A ``postgresql://`` URL keeps the same
tables in a PostgreSQL server shared by many machines, every write in a transaction.

A conversation is a tree of turns: each turn has a parent (none for the first) and the
conversation a ``head``; the turns sent with the next prompt are the path from the root to the
head. A turn's typed parts and its model calls have tables of their own.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from .errors import AmbiguousIdError, NewerDatabaseError, NotFoundError, StoreError
from .ids import ID_CHARS
from .lazypeewee import peewee as pw
from .records import (
    STATUSES,
    CallRecord,
    ConversationRecord,
    ConversationSummary,
    Part,
    SearchHit,
    TreeNode,
    TurnRecord,
    linear_parents,
)
from .text import now

__all__ = ["STATUSES", "Store", "now"]

BUSY_TIMEOUT_S = 10
SEARCH_WINDOW = 300  # search ranks the newest this many matches
PREFIX_BUDGET_S = 0.25  # the most a search may spend adding matches of words as prefixes
_STEPS = 1_000  # SQLite instructions between two looks at the clock during such a search


# --- migrations: an ordered list of small named functions, each recorded once applied -------


def m001_initial(db: pw.SqliteDatabase) -> None:
    for statement in (
        """CREATE TABLE conversations (
            id TEXT PRIMARY KEY,
            title TEXT,
            title_source TEXT,
            model TEXT NOT NULL,
            system TEXT,
            created TEXT NOT NULL,
            updated TEXT NOT NULL)""",
        "CREATE INDEX conversations_updated ON conversations (updated)",
        """CREATE TABLE responses (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            model TEXT NOT NULL,
            prompt TEXT NOT NULL,
            system TEXT,
            response TEXT NOT NULL DEFAULT '',
            options TEXT NOT NULL DEFAULT '{}',
            input_tokens INTEGER,
            output_tokens INTEGER,
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'complete', 'interrupted', 'error')),
            error TEXT,
            started TEXT NOT NULL,
            duration_ms INTEGER,
            ttft_ms INTEGER,
            undone INTEGER NOT NULL DEFAULT 0)""",
        "CREATE INDEX responses_conversation ON responses (conversation_id, seq)",
        """CREATE VIRTUAL TABLE responses_fts USING fts5(
            prompt, response, content='responses', content_rowid='seq',
            tokenize='unicode61 remove_diacritics 2')""",
        """CREATE TRIGGER responses_ai AFTER INSERT ON responses BEGIN
            INSERT INTO responses_fts (rowid, prompt, response)
            VALUES (new.seq, new.prompt, new.response);
        END""",
        """CREATE TRIGGER responses_ad AFTER DELETE ON responses BEGIN
            INSERT INTO responses_fts (responses_fts, rowid, prompt, response)
            VALUES ('delete', old.seq, old.prompt, old.response);
        END""",
        """CREATE TRIGGER responses_au AFTER UPDATE OF prompt, response ON responses BEGIN
            INSERT INTO responses_fts (responses_fts, rowid, prompt, response)
            VALUES ('delete', old.seq, old.prompt, old.response);
            INSERT INTO responses_fts (rowid, prompt, response)
            VALUES (new.seq, new.prompt, new.response);
        END""",
    ):
        db.execute_sql(statement)


def m002_tree(db: pw.SqliteDatabase) -> None:
    """Turns in a tree with typed parts and model calls; undone turns become side branches."""
    for statement in (
        "ALTER TABLE conversations ADD COLUMN head TEXT",
        "ALTER TABLE conversations ADD COLUMN forked_from TEXT",
        """CREATE TABLE turns (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            parent_id TEXT,
            depth INTEGER NOT NULL DEFAULT 0,
            kind TEXT NOT NULL DEFAULT 'turn',
            model TEXT NOT NULL,
            prompt TEXT NOT NULL,
            system TEXT,
            response TEXT NOT NULL DEFAULT '',
            extra TEXT NOT NULL DEFAULT '',
            options TEXT NOT NULL DEFAULT '{}',
            input_tokens INTEGER,
            output_tokens INTEGER,
            status TEXT NOT NULL DEFAULT 'pending',
            error TEXT,
            started TEXT NOT NULL,
            duration_ms INTEGER,
            ttft_ms INTEGER)""",
        "CREATE INDEX turns_conversation ON turns (conversation_id, seq)",
        "CREATE INDEX turns_parent ON turns (parent_id)",
        """CREATE TABLE parts (
            turn_seq INTEGER NOT NULL REFERENCES turns (seq) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            call INTEGER NOT NULL DEFAULT 0,
            kind TEXT NOT NULL,
            text TEXT NOT NULL DEFAULT '',
            data TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (turn_seq, position)) WITHOUT ROWID""",
        """CREATE TABLE calls (
            turn_seq INTEGER NOT NULL REFERENCES turns (seq) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            model TEXT NOT NULL,
            finish_reason TEXT,
            input_tokens INTEGER,
            output_tokens INTEGER,
            reasoning_tokens INTEGER,
            cost REAL,
            duration_ms INTEGER,
            ttft_ms INTEGER,
            PRIMARY KEY (turn_seq, idx)) WITHOUT ROWID""",
        """CREATE TABLE attachments (
            sha256 TEXT PRIMARY KEY,
            mime TEXT NOT NULL,
            size INTEGER NOT NULL,
            content BLOB NOT NULL)""",
    ):
        db.execute_sql(statement)
    _copy_v1_turns(db)
    for statement in (
        "DROP TRIGGER responses_ai",
        "DROP TRIGGER responses_ad",
        "DROP TRIGGER responses_au",
        "DROP TABLE responses_fts",
        "DROP TABLE responses",
        """CREATE VIRTUAL TABLE turns_fts USING fts5(
            prompt, response, extra, content='turns', content_rowid='seq',
            tokenize='unicode61 remove_diacritics 2')""",
        "INSERT INTO turns_fts (turns_fts) VALUES ('rebuild')",
        """CREATE TRIGGER turns_ai AFTER INSERT ON turns BEGIN
            INSERT INTO turns_fts (rowid, prompt, response, extra)
            VALUES (new.seq, new.prompt, new.response, new.extra);
        END""",
        """CREATE TRIGGER turns_ad AFTER DELETE ON turns BEGIN
            INSERT INTO turns_fts (turns_fts, rowid, prompt, response, extra)
            VALUES ('delete', old.seq, old.prompt, old.response, old.extra);
        END""",
        """CREATE TRIGGER turns_au AFTER UPDATE OF prompt, response, extra ON turns BEGIN
            INSERT INTO turns_fts (turns_fts, rowid, prompt, response, extra)
            VALUES ('delete', old.seq, old.prompt, old.response, old.extra);
            INSERT INTO turns_fts (rowid, prompt, response, extra)
            VALUES (new.seq, new.prompt, new.response, new.extra);
        END""",
    ):
        db.execute_sql(statement)


def _copy_v1_turns(db: pw.SqliteDatabase) -> None:
    """Schema 1's straight lines into trees, losing nothing (see ``linear_parents``)."""
    rows = db.execute_sql(
        "SELECT seq, id, conversation_id, undone, prompt, response, model, input_tokens, "
        "output_tokens, duration_ms, ttft_ms FROM responses ORDER BY conversation_id, seq"
    ).fetchall()
    db.execute_sql(
        """INSERT INTO turns (seq, id, conversation_id, model, prompt, system, response, options,
            input_tokens, output_tokens, status, error, started, duration_ms, ttft_ms)
        SELECT seq, id, conversation_id, model, prompt, system, response, options, input_tokens,
            output_tokens, status, error, started, duration_ms, ttft_ms FROM responses"""
    )
    links, parts, calls, heads = [], [], [], []
    for cid, group in itertools.groupby(rows, key=lambda r: r[2]):
        turns = list(group)
        parents, head = linear_parents([(r[1], bool(r[3])) for r in turns])
        heads.append((head, cid))
        depth: dict[str | None, int] = {None: -1}
        for row, parent in zip(turns, parents, strict=True):
            seq, tid, _, _, prompt, response, model, tin, tout, dur, ttft = row
            depth[tid] = depth[parent] + 1
            links.append((parent, depth[tid], seq))
            parts.append((seq, 0, 0, "prompt", prompt, "{}"))
            if response:
                parts.append((seq, 1, 1, "text", response, "{}"))
            calls.append((seq, 1, model, tin, tout, dur, ttft))
    cursor = db.cursor()
    cursor.executemany("UPDATE turns SET parent_id = ?, depth = ? WHERE seq = ?", links)
    cursor.executemany(
        "INSERT INTO parts (turn_seq, position, call, kind, text, data) VALUES (?, ?, ?, ?, ?, ?)",
        parts,
    )
    cursor.executemany(
        "INSERT INTO calls (turn_seq, idx, model, input_tokens, output_tokens, duration_ms, "
        "ttft_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
        calls,
    )
    cursor.executemany("UPDATE conversations SET head = ? WHERE id = ?", heads)


def m003_by_conversation(db: pw.SqliteDatabase) -> None:
    """A conversation's rows stored together: parts and calls keyed by conversation first, and
    the turns' outline (all but their texts) in one index, so opening a conversation reads a
    few hundred neighbouring pages, not thousands scattered over the whole file."""
    outline = ", ".join(OUTLINE_COLUMNS)
    for statement in (
        "CREATE UNIQUE INDEX turns_in_conversation ON turns (conversation_id, seq)",
        "DROP INDEX turns_conversation",
        f"CREATE INDEX turns_outline ON turns (conversation_id, seq, {outline})",
        f"""CREATE TABLE parts_new (
            conversation_id TEXT NOT NULL,
            turn_seq INTEGER NOT NULL,
            position INTEGER NOT NULL,
            call INTEGER NOT NULL DEFAULT 0,
            kind TEXT NOT NULL,
            text TEXT NOT NULL DEFAULT '',
            data TEXT NOT NULL DEFAULT '{{}}',
            PRIMARY KEY (conversation_id, turn_seq, position),
            {_TURN_KEY}) WITHOUT ROWID""",
        """INSERT INTO parts_new SELECT t.conversation_id, p.turn_seq, p.position, p.call,
            p.kind, p.text, p.data FROM parts p JOIN turns t ON t.seq = p.turn_seq
            ORDER BY 1, 2, 3""",
        "DROP TABLE parts",
        "ALTER TABLE parts_new RENAME TO parts",
        f"""CREATE TABLE calls_new (
            conversation_id TEXT NOT NULL,
            turn_seq INTEGER NOT NULL,
            idx INTEGER NOT NULL,
            model TEXT NOT NULL,
            finish_reason TEXT,
            input_tokens INTEGER,
            output_tokens INTEGER,
            reasoning_tokens INTEGER,
            cost REAL,
            duration_ms INTEGER,
            ttft_ms INTEGER,
            PRIMARY KEY (conversation_id, turn_seq, idx),
            {_TURN_KEY}) WITHOUT ROWID""",
        """INSERT INTO calls_new SELECT t.conversation_id, c.* FROM calls c
            JOIN turns t ON t.seq = c.turn_seq ORDER BY 1, 2, 3""",
        "DROP TABLE calls",
        "ALTER TABLE calls_new RENAME TO calls",
    ):
        db.execute_sql(statement)


def m004_cache_tokens(db: pw.SqliteDatabase) -> None:
    """Cache reads and cache writes per model call (TEMPORARY in the cost branch: the store's
    own schema 4 replaces this)."""
    for column in ("cache_read_tokens", "cache_write_tokens"):
        db.execute_sql(f"ALTER TABLE calls ADD COLUMN {column} INTEGER")


_TURN_KEY = (
    "FOREIGN KEY (conversation_id, turn_seq) REFERENCES turns (conversation_id, seq) "
    "ON DELETE CASCADE"
)
#: A turn's columns but its texts (prompt, response, extra): what opening a conversation reads
#: from the ``turns_outline`` index (the texts come from the parts).
OUTLINE_COLUMNS = [
    "id", "parent_id", "model", "system", "options", "input_tokens", "output_tokens", "status",
    "error", "started", "duration_ms", "ttft_ms", "kind",
]  # fmt: skip

MIGRATIONS: list[Callable[[pw.SqliteDatabase], None]] = [
    m001_initial,
    m002_tree,
    m003_by_conversation,
    m004_cache_tokens,
]
SCHEMA_VERSION = len(MIGRATIONS)


# --- the columns of each record, in its order --------------------------------------------------

_CONVERSATION_COLUMNS = [f.name for f in fields(ConversationRecord)]
_TURN_COLUMNS = [
    f.name for f in fields(TurnRecord) if f.name not in ("parts", "calls", "conversation_id")
]
_TURN_SELECT = "t.seq, t.conversation_id, " + ", ".join(f"t.{c}" for c in _TURN_COLUMNS)
_CALL_COLUMNS = [f.name for f in fields(CallRecord)]


class Store:
    """A chatrepl database.

    Args:
        path: the SQLite file, or a ``postgresql://`` URL (``path`` is then the URL without
            its credentials, as shown to the user).
        create: create the database (an SQLite file with mode 0600; chatrepl's tables in a
            PostgreSQL database) if it is missing; otherwise a missing one is a StoreError, so
            read-only commands never leave an empty database behind.
    """

    pg = None  # chatrepl.postgres for a PostgreSQL store

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True):
        self._lock = threading.RLock()
        self._owner = threading.get_ident()
        if isinstance(path, str) and path.startswith(("postgresql://", "postgres://")):
            self._open_postgres(path, create)
            return
        self.path = Path(path).expanduser()
        exists = self.path.exists()
        if not exists and not create:
            raise StoreError(f"There is no chatrepl database at {self.path} yet: nothing saved.")
        if exists:
            self._check_version()
        else:
            try:
                from .config import private_file

                private_file(self.path)
            except OSError as exc:
                raise StoreError(
                    f"Cannot create the database {self.path}: {exc.strerror}."
                ) from exc
        self.read_only = exists and not create and _cannot_write(self.path)
        self._identity = _identity(self.path)
        self._unfinished: dict[str, TurnRecord] = {}  # final writes the disk had no room for
        pragmas: dict[str, Any] = {"foreign_keys": 1, "busy_timeout": BUSY_TIMEOUT_S * 1000}
        if not self.read_only:
            pragmas.update(journal_mode="wal", synchronous="normal")
        self.db = pw.SqliteDatabase(
            # A folder that cannot be written (a read-only filesystem) has no room for the
            # WAL's -shm file: the file is read as it stands, and nothing writes to it.
            f"{self.path.resolve().as_uri()}?mode=ro&immutable=1"
            if self.read_only
            else str(self.path),
            pragmas=pragmas,
            timeout=BUSY_TIMEOUT_S,
            lock_type="IMMEDIATE",
            check_same_thread=False,
            uri=self.read_only,
        )
        with self._errors():
            self._migrate()

    # --- opening --------------------------------------------------------------------------

    def _open_postgres(self, url: str, create: bool) -> None:
        from . import postgres

        self.pg, self._url = postgres, url
        self.read_only, self._identity = False, None
        self._unfinished: dict[str, TurnRecord] = {}
        self.path = postgres.display(url)  # type: ignore[assignment]
        self.db = postgres.open_database(url)
        with self._errors(), self._lock:
            postgres.migrate(self.db, create, self.path)

    def _check_version(self) -> None:
        """Refuse a newer or non-chatrepl database before anything writes to it."""
        try:
            ro = "mode=ro&immutable=1" if _cannot_write(self.path) else "mode=ro"
            con = sqlite3.connect(f"{self.path.resolve().as_uri()}?{ro}", uri=True)
            try:
                version = con.execute("PRAGMA user_version").fetchone()[0]
                tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
            finally:
                con.close()
        except sqlite3.DatabaseError as exc:
            raise StoreError(self._unusable(exc)) from exc
        if version > SCHEMA_VERSION:
            raise NewerDatabaseError(
                f"{self.path} was written by a newer chatrepl (schema {version}, this one knows "
                f"{SCHEMA_VERSION}): upgrade chatrepl; the database was left untouched."
            )
        if version == 0 and tables and "conversations" not in tables:
            raise StoreError(
                f"{self.path} is an SQLite database but not chatrepl's: give another --db path."
            )

    def _unusable(self, exc: BaseException) -> str:
        text = str(exc).lower()
        if "not a database" in text or "malformed" in text or "corrupt" in text:
            return (
                f"{self.path} is corrupt or not a chatrepl database: move it aside "
                "(it was left untouched) and chatrepl will start a new one."
            )
        if "locked" in text or "busy" in text:
            return (
                f"{self.path} stayed locked by another program for over {BUSY_TIMEOUT_S} s: "
                "try again."
            )
        if _is_full(exc):
            return f"The disk holding {self.path} is full: free some space and try again."
        if "readonly" in text or "read-only" in text or "unable to open" in text:
            return f"Cannot write to {self.path}: check its permissions and free space."
        return f"The database {self.path} failed: {exc}."

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (pw.DatabaseError, pw.OperationalError, sqlite3.DatabaseError) as exc:
            if self.pg is None:
                raise StoreError(self._unusable(exc)) from exc
            # from None: the driver's own text may hold the URL's user name
            raise StoreError(self.pg.unusable(exc, self._url)) from None
        except pw.InterfaceError as exc:
            if self.pg is None:
                raise
            raise StoreError(self.pg.unusable(exc, self._url)) from None

    def _ready(self) -> None:
        """Before a question outside a transaction: a PostgreSQL connection that broke (the
        server restarted, the network dropped) is replaced by a new one."""
        db = self.db
        if self.pg is None or db.in_transaction() or db.is_closed():
            return
        if not db.is_connection_usable():
            try:
                db.close()
            except Exception:  # noqa: BLE001 - a dead connection may fail to close: forget it
                db._state.reset()

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One write transaction (SQLite: BEGIN IMMEDIATE), failures as one sentence; never
        into a file that is no longer the one opened."""
        self._check_same_file()
        self._finish_unfinished()
        with self._errors(), self._lock:
            self._ready()
            with self.db.atomic():
                yield

    def _x(self, sql: str, params: Iterable[Any] = ()) -> Any:
        """Run one statement (``?`` parameters) on either database; the cursor."""
        if self.pg is None:
            return self.db.execute_sql(sql, tuple(params))
        return self.db.execute_sql(_pg_sql(sql), tuple(self.pg.clean(v) for v in params))

    def _many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Run one statement for each of ``rows``."""
        if not rows:
            return
        if self.pg is None:
            self.db.cursor().executemany(sql, rows)
        else:
            clean = self.pg.clean
            self.db.cursor().executemany(
                _pg_sql(sql), [tuple(clean(v) for v in row) for row in rows]
            )

    def _check_same_file(self) -> None:
        """Refuse to write when the database file was deleted, moved or replaced since it was
        opened: the writes would go to a vanished file, or into someone else's database."""
        if self.pg is not None:  # a server: no file of ours to lose
            return
        if self.read_only:
            raise StoreError(
                f"Cannot write to {self.path}: its folder is read-only (it can be listed, "
                "searched and shown, not changed)."
            )
        now_is = _identity(self.path)
        if now_is == self._identity:
            return
        if now_is is None:
            raise StoreError(
                f"The database {self.path} was deleted or moved while chatrepl was running: "
                "nothing more was saved; put it back, or restart chatrepl to start a new one."
            )
        raise StoreError(
            f"The database {self.path} was replaced by another file while chatrepl was "
            "running: nothing was written to it; restart chatrepl to use the new file."
        )

    def _finish_unfinished(self) -> None:
        """Write the final state of turns a full disk kept from being finalised."""
        for turn_id, t in list(self._unfinished.items()):
            with self._errors(), self.db.atomic():
                self._finish(t)
            self._unfinished.pop(turn_id, None)

    def _migrate(self) -> None:
        version = self._x("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        with self.db.atomic():
            version = self._x("PRAGMA user_version").fetchone()[0] or self._recorded_version()
            if version > SCHEMA_VERSION:
                raise NewerDatabaseError(
                    f"{self.path} was written by a newer chatrepl: upgrade chatrepl."
                )
            self._x("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied TEXT)")
            for migration in MIGRATIONS[version:]:
                migration(self.db)
                self._x(
                    "INSERT INTO _migrations (name, applied) VALUES (?, ?)",
                    (migration.__name__, now()),
                )
            self._x(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _recorded_version(self) -> int:
        """The schema version ``_migrations`` records: a copy restored from ``sqlite3 .dump``
        keeps that table but not ``PRAGMA user_version``."""
        if not self._x("SELECT 1 FROM sqlite_master WHERE name = '_migrations'").fetchone():
            return 0
        names = {r[0] for r in self._x("SELECT name FROM _migrations").fetchall()}
        if names - {m.__name__ for m in MIGRATIONS}:
            return SCHEMA_VERSION + 1  # applied by a newer chatrepl
        return len(names)

    def close(self) -> None:
        """Close this thread's connection (PostgreSQL: the store's one connection, when the
        thread that opened the store closes it), after a last try at a final write the disk had
        no room for."""
        if self._unfinished:
            with contextlib.suppress(StoreError):
                self._check_same_file()
                self._finish_unfinished()
        if self.pg is None or threading.get_ident() == self._owner:
            with self._lock:
                self.db.close()

    def _sql(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self._errors(), self._lock:
            self._ready()
            try:
                return self._x(sql, params).fetchall()
            except (pw.OperationalError, sqlite3.OperationalError) as exc:
                if self.pg is not None or "decode" not in str(exc):
                    raise
                # Text that is not UTF-8 (written by another program): read with U+FFFD.
                self.db.connection().text_factory = _lenient
                return self._x(sql, params).fetchall()

    # --- writing --------------------------------------------------------------------------

    def save_conversation(self, c: ConversationRecord, rename: bool = False) -> None:
        """Insert or update a conversation's row.

        A title already saved is kept unless ``rename``: another process may have renamed it
        since this one loaded it, so a stale title in memory fills an empty one and never
        overwrites.
        """
        with self._writing():
            self._upsert(c, rename)

    def _upsert(self, c: ConversationRecord, rename: bool = False) -> None:
        keep = "excluded.{0}" if rename else "COALESCE(conversations.{0}, excluded.{0})"
        self._x(
            f"""INSERT INTO conversations ({", ".join(_CONVERSATION_COLUMNS)})
            VALUES ({", ".join("?" * len(_CONVERSATION_COLUMNS))})
            ON CONFLICT (id) DO UPDATE SET
                title = {keep.format("title")}, title_source = {keep.format("title_source")},
                model = excluded.model, system = excluded.system, head = excluded.head,
                updated = excluded.updated""",
            [*(getattr(c, name) for name in _CONVERSATION_COLUMNS[:-3]), now(), c.head]
            + [c.forked_from],
        )

    def begin_turn(self, conversation: ConversationRecord, turn: TurnRecord) -> None:
        """Write a new turn with its prompt parts and make it the head, before the request goes
        out: a prompt that cannot be saved is not asked."""
        with self._writing():
            self._upsert(conversation)
            self._insert_turn(turn)
            self._set_head(conversation.id, turn.id)

    def _insert_turn(self, t: TurnRecord) -> int:
        depth = 0
        if t.parent_id:
            row = self._x("SELECT depth FROM turns WHERE id = ?", (t.parent_id,)).fetchone()
            depth = row[0] + 1 if row else 0
        values = _turn_values(t)
        cursor = self._x(
            f"""INSERT INTO turns (conversation_id, depth, extra, {", ".join(_TURN_COLUMNS)})
            VALUES (?, ?, ?, {", ".join("?" * len(_TURN_COLUMNS))})"""
            + ("" if self.pg is None else " RETURNING seq"),
            [t.conversation_id, depth, _extra(t.parts), *values],
        )
        seq = cursor.lastrowid if self.pg is None else cursor.fetchone()[0]
        self._write_parts(t.conversation_id, seq, 0, t.parts)
        self._write_calls(t.conversation_id, seq, t.calls)
        return seq

    def save_progress(self, turn_id: str, response: str, start: int, parts: list[Part]) -> None:
        """Save what has arrived: the answer text so far and the parts from ``start`` on."""
        with self._writing():
            cid, seq = self._key(turn_id)
            self._x("UPDATE turns SET response = ? WHERE seq = ?", (response, seq))
            self._write_parts(cid, seq, start, parts[start:])

    def finish_turn(self, t: TurnRecord) -> None:
        """Save the turn as it ended: every part, every call, status, usage, timings.

        When the disk is full the turn is kept here and written first by the next write once
        there is room again (the error says so).
        """
        try:
            with self._writing():
                self._finish(t)
        except StoreError as exc:
            if not _is_full(exc.__cause__):
                raise
            self._unfinished[t.id] = t
            raise StoreError(
                f"The disk holding {self.path} is full, so the end of this answer is not saved "
                "yet: free some space, and it is saved with the next thing you do."
            ) from exc
        self._unfinished.pop(t.id, None)

    def _finish(self, t: TurnRecord) -> None:
        cid, seq = self._key(t.id)
        # the conversation's row before the turn's, as every write takes them (PostgreSQL
        # locks rows: one order everywhere, no deadlock)
        self._x("UPDATE conversations SET updated = ? WHERE id = ?", (now(), cid))
        self._x(
            """UPDATE turns SET response = ?, extra = ?, status = ?, error = ?,
                input_tokens = ?, output_tokens = ?, duration_ms = ?, ttft_ms = ?
            WHERE seq = ?""",
            (
                t.response,
                _extra(t.parts),
                t.status,
                t.error,
                t.input_tokens,
                t.output_tokens,
                t.duration_ms,
                t.ttft_ms,
                seq,
            ),
        )
        self._replace_parts_and_calls(cid, seq, t)

    def _replace_parts_and_calls(self, cid: str, seq: int, t: TurnRecord) -> None:
        key = (cid, seq)
        self._x("DELETE FROM parts WHERE conversation_id = ? AND turn_seq = ?", key)
        self._write_parts(cid, seq, 0, t.parts)
        self._x("DELETE FROM calls WHERE conversation_id = ? AND turn_seq = ?", key)
        self._write_calls(cid, seq, t.calls)

    def _key(self, turn_id: str) -> tuple[str, int]:
        """A turn's conversation and sequence number, which key its parts and calls."""
        row = self._x("SELECT conversation_id, seq FROM turns WHERE id = ?", (turn_id,)).fetchone()
        if row is None:
            raise StoreError(
                f"The turn {turn_id} is no longer in {self.path}: was the database replaced "
                "or its conversation deleted?"
            )
        return str(row[0]), int(row[1])

    def _write_parts(self, cid: str, seq: int, start: int, parts: list[Part]) -> None:
        self._many(
            """INSERT INTO parts (conversation_id, turn_seq, position, call, kind, text, data)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (conversation_id, turn_seq, position) DO UPDATE SET
                call = excluded.call, kind = excluded.kind, text = excluded.text,
                data = excluded.data""",
            [
                (cid, seq, start + n, p.call, p.kind, p.text, _dumps(p.data))
                for n, p in enumerate(parts)
            ],
        )

    def _write_calls(self, cid: str, seq: int, calls: list[CallRecord]) -> None:
        self._many(
            f"""INSERT INTO calls (conversation_id, turn_seq, idx, {", ".join(_CALL_COLUMNS[1:])})
            VALUES (?, ?, {", ".join("?" * len(_CALL_COLUMNS))})""",
            [(cid, seq, *(getattr(c, name) for name in _CALL_COLUMNS)) for c in calls],
        )

    def set_head(self, conversation_id: str, turn_id: str | None) -> None:
        """Go on from ``turn_id`` (``None``: from the start) with the next prompt."""
        with self._writing():
            self._set_head(conversation_id, turn_id)

    def _set_head(self, conversation_id: str, turn_id: str | None) -> None:
        self._x(
            "UPDATE conversations SET head = ?, updated = ? WHERE id = ?",
            (turn_id, now(), conversation_id),
        )

    def set_title(self, conversation_id: str, title: str, source: str = "user") -> None:
        """Set a conversation's title; ``source`` says who chose it (user, model, prompt)."""
        cid = self.resolve(conversation_id)
        with self._writing():
            self._x(
                "UPDATE conversations SET title = ?, title_source = ? WHERE id = ?",
                (title, source, cid),
            )

    def delete(self, conversation_id: str) -> str:
        """Delete a conversation, its turns and their parts; returns the full id."""
        cid = self.resolve(conversation_id)
        with self._writing():
            self._x("DELETE FROM turns WHERE conversation_id = ?", (cid,))
            self._x("DELETE FROM conversations WHERE id = ?", (cid,))
        return cid

    def import_conversation(self, c: ConversationRecord, turns: list[TurnRecord]) -> bool:
        """Insert a whole conversation as it was; ``False`` if its id is already here."""
        with self._writing():
            inserted = self._x(
                f"""INSERT INTO conversations ({", ".join(_CONVERSATION_COLUMNS)})
                VALUES ({", ".join("?" * len(_CONVERSATION_COLUMNS))})
                ON CONFLICT (id) DO NOTHING""",
                [getattr(c, name) for name in _CONVERSATION_COLUMNS],
            )
            if inserted.rowcount == 0:
                return False
            for t in _parents_first(turns):
                self._insert_turn(t)
        return True

    def add_turns(self, c: ConversationRecord, turns: list[TurnRecord]) -> int:
        """Add the turns not saved yet (by id) to an imported conversation; how many.

        The conversation takes the model, persona, head and last activity of ``c``.
        """
        with self._writing():
            if self.pg is not None:  # one writer at a time on this conversation, as in SQLite
                self._x("SELECT 1 FROM conversations WHERE id = ? FOR UPDATE", (c.id,))
            have = {
                r[0]
                for r in self._x(
                    "SELECT id FROM turns WHERE conversation_id = ?", (c.id,)
                ).fetchall()
            }
            new = [t for t in turns if t.id not in have]
            for t in _parents_first(new):
                self._insert_turn(t)
            if new:
                self._x(
                    "UPDATE conversations SET model = ?, system = ?, head = ?, updated = ? "
                    "WHERE id = ?",
                    (c.model, c.system, c.head, c.updated, c.id),
                )
        return len(new)

    def merge(self, c: ConversationRecord, turns: list[TurnRecord]) -> tuple[str, int, int]:
        """Copy a conversation from another store, by id, never putting an older row over a
        newer one: the conversation's row if it is missing or older here (``updated``), the
        turns missing here (parents first), and turns still pending here that ended, or grew,
        there. Returns what became of the row (``new``, ``updated`` or ``kept``), how many
        turns were added, and how many were brought up to date.
        """
        lock = "" if self.pg is None else " FOR UPDATE"
        with self._writing():
            row = self._x(f"SELECT updated FROM conversations WHERE id = ?{lock}", (c.id,))
            row = row.fetchone()
            values = [getattr(c, name) for name in _CONVERSATION_COLUMNS]
            if row is None:
                self._x(
                    f"""INSERT INTO conversations ({", ".join(_CONVERSATION_COLUMNS)})
                    VALUES ({", ".join("?" * len(_CONVERSATION_COLUMNS))})""",
                    values,
                )
                state = "new"
            elif row[0] < c.updated:
                self._x(
                    f"""UPDATE conversations SET
                    {", ".join(f"{name} = ?" for name in _CONVERSATION_COLUMNS[1:])}
                    WHERE id = ?""",
                    [*values[1:], c.id],
                )
                state = "updated"
            else:
                state = "kept"
            have = {
                tid: (seq, status, size)
                for tid, seq, status, size in self._x(
                    "SELECT id, seq, status, length(response) FROM turns WHERE conversation_id = ?",
                    (c.id,),
                ).fetchall()
            }
            new = [t for t in turns if t.id not in have]
            for t in _parents_first(new):
                self._insert_turn(t)
            grown = 0
            for t in turns:
                if t.id in have and have[t.id][1] == "pending":
                    seq, _, size = have[t.id]
                    if t.status != "pending" or len(t.response) > size:
                        self._rewrite_turn(seq, t)
                        grown += 1
        return state, len(new), grown

    def _rewrite_turn(self, seq: int, t: TurnRecord) -> None:
        """A saved turn's fields, parts and calls replaced by those of ``t``."""
        columns = [c for c in _TURN_COLUMNS if c not in ("id", "parent_id")]
        row = dict(zip(_TURN_COLUMNS, _turn_values(t), strict=True))
        self._x(
            f"UPDATE turns SET extra = ?, {', '.join(f'{c} = ?' for c in columns)} WHERE seq = ?",
            [_extra(t.parts), *(row[c] for c in columns), seq],
        )
        self._replace_parts_and_calls(t.conversation_id, seq, t)

    def put_attachment(self, sha256: str, mime: str, content: bytes) -> None:
        """Keep an attachment's bytes once, by their hash."""
        with self._writing():
            self._x(
                "INSERT INTO attachments (sha256, mime, size, content) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (sha256) DO NOTHING",
                (sha256, mime, len(content), content),
            )

    def attachment(self, sha256: str) -> bytes | None:
        """An attachment's bytes, if kept."""
        rows = self._sql("SELECT content FROM attachments WHERE sha256 = ?", (sha256,))
        return bytes(rows[0][0]) if rows else None

    # --- reading --------------------------------------------------------------------------

    def resolve(self, id_or_prefix: str) -> str:
        """The full id of the one conversation whose id starts with ``id_or_prefix``."""
        prefix = id_or_prefix.strip().upper()
        if not prefix or len(prefix) > 26 or not ID_CHARS.match(prefix):
            raise NotFoundError(
                f"'{_show(id_or_prefix)}' is not a conversation id: ids are 26 letters and "
                "digits (a unique prefix will do)."
            )
        if len(prefix) == 26:
            rows = self._sql("SELECT id FROM conversations WHERE id = ?", (prefix,))
        else:
            rows = self._sql(
                "SELECT id FROM conversations WHERE id >= ? AND id < ? ORDER BY id LIMIT 6",
                (prefix, prefix + "\U0010ffff"),
            )
        ids = [r[0] for r in rows]
        if not ids:
            raise NotFoundError(f"No conversation has an id starting with '{prefix}'.")
        if len(ids) > 1:
            shown = ", ".join(i[: len(prefix) + 4] + "…" for i in ids[:5])
            raise AmbiguousIdError(
                f"'{prefix}' matches several conversations ({shown}): type more of the id.", ids
            )
        return ids[0]

    def conversation(self, conversation_id: str) -> ConversationRecord:
        """A conversation's own row (id or unique prefix)."""
        cid = self.resolve(conversation_id)
        rows = self._sql(
            f"SELECT {', '.join(_CONVERSATION_COLUMNS)} FROM conversations WHERE id = ?", (cid,)
        )
        return ConversationRecord(*rows[0])

    def summary(self, conversation_id: str) -> ConversationSummary:
        """The summary of one conversation (id or unique prefix)."""
        cid = self.resolve(conversation_id)
        return self._summaries("WHERE c.id = ?", (cid,), 1)[0]

    def recent(self, n: int = 20) -> list[ConversationSummary]:
        """The ``n`` conversations most recently active, newest first."""
        return self._summaries("", (), n)

    def _summaries(self, where: str, params: tuple[Any, ...], n: int) -> list[ConversationSummary]:
        columns = ", ".join(f"c.{name}" for name in _CONVERSATION_COLUMNS)
        rows = self._sql(
            f"""SELECT {columns}, COALESCE((SELECT depth + 1 FROM turns WHERE id = c.head), 0)
            FROM conversations c {where} ORDER BY c.updated DESC, c.id DESC LIMIT ?""",
            (*params, n),
        )
        if not rows:
            return []
        ids = [r[0] for r in rows]
        tokens = {
            cid: (tin, tout)
            for cid, tin, tout in self._sql(
                f"""SELECT conversation_id, COALESCE(SUM(input_tokens), 0),
                    COALESCE(SUM(output_tokens), 0) FROM turns
                WHERE conversation_id IN ({",".join("?" * len(ids))}) GROUP BY conversation_id""",
                ids,
            )
        }
        return [
            ConversationSummary(*row[:-1], row[-1], *tokens.get(row[0], (0, 0))) for row in rows
        ]

    def last_id(self) -> str | None:
        """The id of the most recently active conversation, if any."""
        rows = self._sql("SELECT id FROM conversations ORDER BY updated DESC, id DESC LIMIT 1")
        return rows[0][0] if rows else None

    def path_to(self, head: str | None, texts: bool = True) -> list[TurnRecord]:
        """The turns from the root to ``head``, oldest first, with their parts and calls.

        With ``texts=False`` each turn's ``prompt`` and ``response`` are those of its parts
        (the prompt part, the answer's text parts), not its own columns: the same text unless a
        turn was written with them apart, and its row is then never read. The conversation's
        outline, parts and calls are each one range of neighbouring rows (``turns_outline``).
        """
        found = self._sql("SELECT conversation_id FROM turns WHERE id = ?", (head,))
        if not found:
            return []
        cid = found[0][0]
        outline = {
            row[1]: row
            for row in self._sql(
                f"SELECT seq, {', '.join(OUTLINE_COLUMNS)} FROM turns "
                "WHERE conversation_id = ? ORDER BY seq",
                (cid,),
            )
        }
        path, at = [], head
        while at in outline:
            row = outline.pop(at)  # popped: damaged links cannot loop
            path.append(row)
            at = row[2]
        path.reverse()
        seqs = [row[0] for row in path]
        parts, calls = self._parts_and_calls(cid, seqs, whole=len(outline) <= len(path))
        columns: dict[int, tuple[str, str]] = {}
        if texts or not all(parts.values()):  # a turn saved without parts has only its columns
            sql = "SELECT seq, prompt, response FROM turns WHERE conversation_id = ?"
            columns = {seq: (prompt, response) for seq, prompt, response in self._sql(sql, (cid,))}
        out = []
        for seq, tid, parent, model, system, options, *rest, kind in path:
            if columns:
                prompt, response = columns[seq]
            else:
                prompt = "".join([p.text for p in parts[seq] if p.kind == "prompt"])
                response = "".join([p.text for p in parts[seq] if p.kind == "text"])
            # by position, in TurnRecord's order (cheaper than by keyword, for a thousand
            # turns): OUTLINE_COLUMNS from "input_tokens" to "ttft_ms" are ``rest``
            out.append(
                TurnRecord(
                    tid,
                    cid,
                    parent,
                    model,
                    prompt,
                    system,
                    response,
                    _loads(options),
                    *rest,
                    parts[seq],
                    calls[seq],
                    kind,
                )
            )
        return out

    def _parts_and_calls(
        self, cid: str, seqs: list[int], whole: bool = False
    ) -> tuple[dict[int, list[Part]], dict[int, list[CallRecord]]]:
        """The parts and the calls of these turns of one conversation; ``whole``: read the
        whole conversation's (one range, cheaper when most of its turns are wanted)."""
        parts: dict[int, list[Part]] = {s: [] for s in seqs}
        calls: dict[int, list[CallRecord]] = {s: [] for s in seqs}
        where = "conversation_id = ?"
        if not whole:
            where += f" AND turn_seq IN ({','.join('?' * len(seqs))})"
        params = (cid,) if whole else (cid, *seqs)
        for seq, call, kind, text, data in self._sql(
            f"SELECT turn_seq, call, kind, text, data FROM parts WHERE {where} "
            "ORDER BY turn_seq, position",
            params,
        ):
            bucket = parts.get(seq)
            if bucket is not None:  # most parts' data is "{}": not parsed
                bucket.append(Part(kind, text, {} if data == "{}" else _loads(data), call))
        for seq, *values in self._sql(
            f"SELECT turn_seq, {', '.join('idx' if c == 'index' else c for c in _CALL_COLUMNS)} "
            f"FROM calls WHERE {where} ORDER BY turn_seq, idx",
            params,
        ):
            bucket = calls.get(seq)
            if bucket is not None:
                bucket.append(CallRecord(*values))
        return parts, calls

    def turns(self, conversation_id: str, all_branches: bool = False) -> list[TurnRecord]:
        """The turns of a conversation: those on the path to its head, or every one (oldest
        first)."""
        if not all_branches:
            rows = self._sql("SELECT head FROM conversations WHERE id = ?", (conversation_id,))
            return self.path_to(rows[0][0] if rows else None)
        return self._turns(
            f"SELECT {_TURN_SELECT} FROM turns t WHERE t.conversation_id = ? ORDER BY t.seq",
            (conversation_id,),
        )

    def turn(self, turn_id: str) -> TurnRecord:
        """One turn by its full id."""
        found = self._turns(f"SELECT {_TURN_SELECT} FROM turns t WHERE t.id = ?", (turn_id,))
        if not found:
            raise NotFoundError(f"No turn has the id {_show(turn_id)}.")
        return found[0]

    def children(self, turn_id: str | None, conversation_id: str) -> list[TurnRecord]:
        """The turns that follow ``turn_id`` (the first turns when ``None``), oldest first."""
        if turn_id is None:
            where, params = "t.conversation_id = ? AND t.parent_id IS NULL", (conversation_id,)
        else:
            where, params = "t.parent_id = ?", (turn_id,)
        return self._turns(
            f"SELECT {_TURN_SELECT} FROM turns t WHERE {where} ORDER BY t.seq", params
        )

    def latest_leaf(self, turn_id: str) -> str:
        """The newest turn at the end of the branch through ``turn_id``: its newest child, that
        child's newest child, and so on."""
        while True:
            rows = self._sql(
                "SELECT id FROM turns WHERE parent_id = ? ORDER BY seq DESC LIMIT 1", (turn_id,)
            )
            if not rows:
                return turn_id
            turn_id = rows[0][0]

    def tree(self, conversation_id: str) -> list[TreeNode]:
        """Every turn of a conversation in the shape the tree view needs, oldest first."""
        rows = self._sql(
            "SELECT id, parent_id, substr(prompt, 1, 200), status, started, kind FROM turns "
            "WHERE conversation_id = ? ORDER BY seq",
            (conversation_id,),
        )
        return [TreeNode(*row) for row in rows]

    def _turns(self, sql: str, params: tuple[Any, ...]) -> list[TurnRecord]:
        """The turns a query selects (``_TURN_SELECT``, one conversation), with their parts and
        calls."""
        rows = self._sql(sql, params)
        if not rows:
            return []
        parts, calls = self._parts_and_calls(rows[0][1], [r[0] for r in rows])
        out = []
        for seq, cid, *values in rows:
            row = dict(zip(_TURN_COLUMNS, values, strict=True))
            row["options"] = _loads(row["options"])
            out.append(TurnRecord(conversation_id=cid, parts=parts[seq], calls=calls[seq], **row))
        return out

    def search(
        self,
        query: str,
        n: int = 20,
        marks: tuple[str, str] = ("[", "]"),
        reasoning: bool = False,
    ) -> list[SearchHit]:
        """Conversations with a turn whose prompt, answer or tool results contain every word of
        ``query`` (as a word or the start of one), best first: one hit per conversation, its
        best turn.

        Ranked by relevance (bm25) among the newest ``max(SEARCH_WINDOW, n)`` matches: ranking
        every match of a common word costs seconds in a million turns, and FTS5 finds the
        newest matches by walking its index backwards. ``marks`` go around each match in the
        snippets. With ``reasoning``, conversations whose model reasoning holds every word
        follow (reasoning is not in the index: it is scanned, newest first).
        """
        from .text import valid_text

        words = [w for w in valid_text(query).split() if w.strip('"')]
        if not words:
            return []
        hits = self._search(words, n, marks)
        if reasoning and len(hits) < n:
            seen = {h.conversation_id for h in hits}
            more = self._search_reasoning(words, n + len(seen), marks)
            hits += [h for h in more if h.conversation_id not in seen][: n - len(hits)]
        return hits

    def _search_reasoning(
        self, words: list[str], n: int, marks: tuple[str, str]
    ) -> list[SearchHit]:
        """The ``n`` conversations whose reasoning holds every word (case ignored) most
        recently, newest first, each with its newest such turn."""
        plain = [w.strip('"').lower() for w in words]
        like = " AND ".join("lower(p.text) LIKE ? ESCAPE '\\'" for _ in plain)
        patterns = tuple(f"%{_escape_like(w)}%" for w in plain)
        newest = [
            seq
            for _, seq in self._sql(
                f"""SELECT p.conversation_id, max(p.turn_seq) FROM parts p
                WHERE p.kind = 'reasoning' AND {like}
                GROUP BY p.conversation_id ORDER BY max(p.turn_seq) DESC LIMIT ?""",
                (*patterns, n),
            )
        ]
        if not newest:
            return []
        found: dict[int, SearchHit] = {}
        for seq, cid, title, tid, started, text in self._sql(
            f"""SELECT t.seq, t.conversation_id, c.title, t.id, t.started, p.text
            FROM parts p JOIN turns t ON t.seq = p.turn_seq
            JOIN conversations c ON c.id = t.conversation_id
            WHERE p.kind = 'reasoning' AND {like}
            AND t.seq IN ({",".join("?" * len(newest))}) ORDER BY p.position""",
            (*patterns, *newest),
        ):
            if seq not in found:
                found[seq] = SearchHit(cid, title, tid, started, _snippet(text, plain[0], marks))
        return [found[seq] for seq in newest if seq in found]

    def _search(self, words: list[str], n: int, marks: tuple[str, str]) -> list[SearchHit]:
        if self.pg is not None:
            tsquery = self.pg.tsquery(words)
            if tsquery is None:
                return []
            rows = self._sql(
                self.pg.search_sql(max(SEARCH_WINDOW, n)),
                (tsquery, n, self.pg.headline_options(marks)),
            )
            return [SearchHit(*row) for row in rows]
        # Every word must match. Whole words first: FTS5 finds the newest matches of a word by
        # walking its index backwards, cheaply at any size. Then words as prefixes ("goat"
        # finds "goats"; a word in double quotes stays exact): FTS5 merges every word a prefix
        # starts before it can walk them, which for a short, common prefix in a million turns
        # takes seconds, so that search is given PREFIX_BUDGET_S and left out when it is slower.
        window = max(SEARCH_WINDOW, n)
        exact = " ".join(_term(w, prefix=False) for w in words)
        prefixed = " ".join(_term(w) for w in words)
        firsts: dict[str, int] = {}  # each conversation once, with its best turn
        _first_per_conversation(firsts, self._sql(_BEST, (exact, window)), n)
        match = exact
        if len(firsts) < n and prefixed != exact:
            rows = self._sql_bounded(_BEST, (prefixed, window), PREFIX_BUDGET_S)
            if rows is not None:  # else the prefix search took too long: whole words only
                match = prefixed
                _first_per_conversation(firsts, rows, n)
        seqs = list(firsts.values())
        if not seqs:
            return []
        snippets = f"""
            SELECT turns_fts.rowid, t.conversation_id, c.title, t.id, t.started,
                   snippet(turns_fts, -1, ?, ?, '…', 12)
            FROM turns_fts
            JOIN turns t ON t.seq = turns_fts.rowid
            JOIN conversations c ON c.id = t.conversation_id
            WHERE turns_fts MATCH ? AND turns_fts.rowid IN ({",".join("?" * len(seqs))})"""
        found = {row[0]: SearchHit(*row[1:]) for row in self._sql(snippets, (*marks, match, *seqs))}
        return [found[seq] for seq in seqs if seq in found]

    def _sql_bounded(
        self, sql: str, params: tuple[Any, ...], seconds: float
    ) -> list[tuple[Any, ...]] | None:
        """``_sql`` given ``seconds`` at most (SQLite's progress handler stops it): ``None``
        when it would take longer."""
        deadline = time.monotonic() + seconds
        with self._errors(), self._lock:
            self._ready()
            connection = self.db.connection()
            connection.set_progress_handler(lambda: time.monotonic() > deadline, _STEPS)
            try:
                return self._x(sql, params).fetchall()
            except (pw.OperationalError, sqlite3.OperationalError) as exc:
                if "interrupt" not in str(exc):
                    raise
                return None
            finally:
                connection.set_progress_handler(None, 0)

    def spending(
        self, since: str | None = None, conversation_id: str | None = None
    ) -> list[tuple[Any, ...]]:
        """The model calls of every branch, summed for the ``usage`` command and the budgets.

        One row per conversation, model, quarter of an hour (UTC: every time zone's midnight
        falls on one) and whether the calls have a cost: ``(conversation_id, title, model,
        hour, quarter, costed, calls, input, output, cache_read, cache_write, cost)``, where
        ``hour`` is ``2026-12-07T14`` and ``quarter`` 0 to 3. ``since`` (a stored timestamp)
        keeps the calls of turns started then or later; ``conversation_id`` one conversation's.
        Conversations not updated since ``since`` are skipped through their index.
        """
        where, params = [], []
        if since is not None:
            where += [
                "t.conversation_id IN (SELECT id FROM conversations WHERE updated >= ?)",
                "t.started >= ?",
            ]
            params += [since, since]
        if conversation_id is not None:
            where.append("c.conversation_id = ?")
            params.append(conversation_id)
        return self._sql(
            f"""SELECT c.conversation_id, v.title, c.model, substr(t.started, 1, 13),
                CAST(substr(t.started, 15, 2) AS INTEGER) / 15, c.cost IS NOT NULL, COUNT(*),
                SUM(c.input_tokens), SUM(c.output_tokens), SUM(c.cache_read_tokens),
                SUM(c.cache_write_tokens), SUM(c.cost)
            FROM calls c
            JOIN turns t ON t.conversation_id = c.conversation_id AND t.seq = c.turn_seq
            JOIN conversations v ON v.id = c.conversation_id
            {"WHERE " + " AND ".join(where) if where else ""}
            GROUP BY c.conversation_id, v.title, c.model, 4, 5, 6""",
            params,
        )

    def count(self) -> tuple[int, int]:
        """How many conversations and turns the database holds."""
        conversations = self._sql("SELECT COUNT(*) FROM conversations")[0][0]
        return conversations, self._sql("SELECT COUNT(*) FROM turns")[0][0]


@functools.lru_cache(maxsize=256)
def _pg_sql(sql: str) -> str:
    from .postgres import placeholders

    return placeholders(sql)


def _first_per_conversation(firsts: dict[str, int], rows: list[tuple[Any, ...]], n: int) -> None:
    """Add to ``firsts`` the first turn of each conversation in ``rows`` (turn, conversation),
    up to ``n`` conversations."""
    for seq, cid in rows:
        if len(firsts) >= n:
            return
        firsts.setdefault(cid, seq)


def _escape_like(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _snippet(text: str, word: str, marks: tuple[str, str]) -> str:
    """About twelve words of ``text`` around ``word``, with ``marks`` around it."""
    at = text.lower().find(word)
    if at < 0:
        return " ".join(text.split()[:12])
    start, end = max(0, at - 60), at + len(word)
    before = ("…" if start else "") + text[start:at]
    after = text[end : end + 60] + ("…" if end + 60 < len(text) else "")
    return " ".join(f"{before}{marks[0]}{text[at:end]}{marks[1]}{after}".split())


def _term(word: str, prefix: bool = True) -> str:
    """One word of a search as an FTS5 term: a prefix, or the word exactly when quoted (or
    when ``prefix`` is off)."""
    exact = len(word) > 2 and word[0] == word[-1] == '"'
    inner = word[1:-1] if exact else word
    return '"' + inner.replace('"', '""') + ('"*' if prefix and not exact else '"')


#: The newest matches of a search, ranked (bm25) among themselves, with their conversations.
_BEST = """
    SELECT f.rowid, t.conversation_id FROM (
        SELECT rowid, bm25(turns_fts) AS score FROM turns_fts
        WHERE turns_fts MATCH ? ORDER BY rowid DESC LIMIT ?
    ) f JOIN turns t ON t.seq = f.rowid ORDER BY f.score, f.rowid DESC"""


def _lenient(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _identity(path: Path) -> tuple[int, int] | None:
    """What tells one file from another at ``path`` (device and inode), or ``None`` if gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _cannot_write(path: Path) -> bool:
    """Whether the folder of ``path`` cannot be written (a read-only filesystem or folder)."""
    return not os.access(path.parent, os.W_OK)


def _is_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or the sqlite3 error inside it) is SQLITE_FULL: the disk is full."""
    seen = 0
    while exc is not None and seen < 5:
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            return True
        if "database or disk is full" in str(exc):
            return True
        inner = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
        exc, seen = inner or exc.__cause__, seen + 1
    return False


def _turn_values(t: TurnRecord) -> list[Any]:
    row = asdict(t)
    row["options"] = _dumps(t.options)
    return [row[name] for name in _TURN_COLUMNS]


def _extra(parts: list[Part]) -> str:
    """What search finds besides prompt and answer: tool results and attachment names."""
    return "\n".join(
        p.text if p.kind == "tool_result" else str(p.data.get("name", ""))
        for p in parts
        if p.kind in ("tool_result", "attachment")
    )


def _parents_first(turns: list[TurnRecord]) -> list[TurnRecord]:
    """``turns`` ordered so that each comes after its parent (when its parent is among them)."""
    ids = {t.id for t in turns}
    done: set[str] = set()
    ordered: list[TurnRecord] = []
    pending = list(turns)
    while pending:
        rest = []
        for t in pending:
            if t.parent_id is None or t.parent_id not in ids or t.parent_id in done:
                ordered.append(t)
                done.add(t.id)
            else:
                rest.append(t)
        if len(rest) == len(pending):  # a cycle in damaged data: keep the order given
            ordered += rest
            break
        pending = rest
    return ordered


def _dumps(data: Any) -> str:
    return json.dumps(data, sort_keys=True, default=str, ensure_ascii=False)


def _loads(text: str | None) -> dict[str, Any]:
    if not text or text == "{}":  # most parts and options: no JSON to parse
        return {}
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _show(text: str) -> str:
    from .text import make_safe, shorten

    return make_safe(shorten(text, 40))

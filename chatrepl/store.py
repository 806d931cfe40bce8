"""The database: the questions the app asks, in plain records.

This is the module that asks the questions, in one SQL for both engines; what SQLite and
PostgreSQL do differently is the ``chatrepl.dialect`` object each store is given, and the
schema's history is ``chatrepl.migrations``. It takes and returns the records of ``chatrepl.records`` and knows nothing of
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
import json
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, fields
from typing import Any

from . import unsaved
from .dialect import first_failure, open_dialect
from .errors import AmbiguousIdError, NotFoundError, StoreError
from .ids import ID_CHARS
from .migrations import OUTLINE_COLUMNS
from .records import (
    STATUSES,
    CallRecord,
    ConversationRecord,
    ConversationSummary,
    Part,
    SearchHit,
    TreeNode,
    TurnRecord,
)
from .text import now

__all__ = ["STATUSES", "Store", "now"]

# --- the columns of each record, in its order --------------------------------------------------

_CONVERSATION_COLUMNS = [f.name for f in fields(ConversationRecord)]
_TURN_COLUMNS = [
    f.name for f in fields(TurnRecord) if f.name not in ("parts", "calls", "conversation_id")
]
#: A turn's prompt and answer are its parts' texts; its own columns hold one only when it is
#: not that text (NULL otherwise): each text is stored once.
_OVERRIDES = {"prompt": "prompt_override", "response": "response_override"}
_TURN_TABLE_COLUMNS = [_OVERRIDES.get(c, c) for c in _TURN_COLUMNS]
_TURN_SELECT = "t.seq, t.conversation_id, " + ", ".join(f"t.{c}" for c in _TURN_TABLE_COLUMNS)
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

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True):
        self._lock = threading.RLock()
        self._owner = threading.get_ident()
        #: final writes that failed for a reason that passes (a full disk, a server gone),
        #: made first by the next write (or at ``close``), else kept for the next chatrepl
        self._unfinished: dict[str, TurnRecord] = {}
        #: what SQLite and PostgreSQL do differently (checks the file before anything is written)
        self.dialect = open_dialect(path, create)
        self.path = self.dialect.shown
        self.read_only = self.dialect.read_only
        self.db = self.dialect.database()
        with self._errors(), self._lock:
            self.dialect.migrate(self.db, create)
        #: a sentence to show the user once, after a migration (how to give space back)
        self.notice = self.dialect.notice
        #: turns a chatrepl that ended before it could write them kept for this database: looked
        #: for at the first write (``None`` until then), their file removed once written
        self._kept: bool | None = None

    # --- opening --------------------------------------------------------------------------

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """A failure of the database as one StoreError sentence."""
        try:
            yield
        except self.dialect.failures as exc:
            failure = first_failure(exc)  # not the failed ROLLBACK that followed it
            raise StoreError(self.dialect.unusable(failure)) from self.dialect.cause(exc)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One write transaction (SQLite: BEGIN IMMEDIATE), failures as one sentence; never
        into a file that is no longer the one opened. Final writes that failed before are made
        first, in the same transaction.

        PostgreSQL gets the whole transaction in one exchange (``Dialect.batch``): statements
        whose results are not read inside the block are sent together with BEGIN and COMMIT,
        so their cursors' results (``rowcount``) are known only after the block.
        """
        self.dialect.check_writable()
        self._take_kept()
        with self._errors(), self._lock:
            self.dialect.ready(self.db)
            unfinished = list(self._unfinished.values())
            with self.dialect.batch(self.db), self.db.atomic():
                for t in unfinished:  # (a turn deleted since has nothing left to finish)
                    self._finish(t)
                yield
            self._written(unfinished)

    def _x(self, sql: str, params: Iterable[Any] = ()) -> Any:
        """Run one statement (``?`` parameters); the cursor."""
        return self.db.execute_sql(self.dialect.sql(sql), self.dialect.values(params))

    def _many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Run one statement for each of ``rows``."""
        if rows:
            values = self.dialect.values
            self.db.cursor().executemany(self.dialect.sql(sql), [values(row) for row in rows])

    def _take_kept(self) -> None:
        """Once: the turns kept for this database by a chatrepl that could not write them, to
        be written first."""
        if self._kept is None:
            kept = [] if self.read_only else unsaved.take(str(self.path))
            self._unfinished.update((t.id, t) for t in kept)
            self._kept = bool(kept)

    def _written(self, turns: list[TurnRecord]) -> None:
        """``turns``, once unfinished, are written now."""
        for t in turns:
            self._unfinished.pop(t.id, None)
        if self._kept and not self._unfinished:
            unsaved.forget(str(self.path))
            self._kept = False

    def close(self) -> None:
        """Close this thread's connection (PostgreSQL: the store's one connection, when the
        thread that opened the store closes it), after a last try at the final writes that
        failed (a full disk, a server gone); those that fail again are kept in the home folder
        for the next chatrepl that opens this database (``chatrepl.unsaved``)."""
        self._take_kept()
        if self._unfinished:
            with contextlib.suppress(StoreError), self._writing():
                pass
        owner = threading.get_ident() == self._owner
        if self._unfinished and owner:
            self._kept = unsaved.keep(str(self.path), list(self._unfinished.values()))
        if not self.dialect.one_connection or owner:
            with self._lock:
                self.db.close()

    def _sql(
        self, sql: str, params: Iterable[Any] = (), seconds: float | None = None
    ) -> list[tuple[Any, ...]] | Any:
        """The rows of one question; given ``seconds``, ``None`` when it would take longer."""
        with self._errors(), self._lock:
            self.dialect.ready(self.db)
            if seconds is not None:
                try:
                    with self.dialect.bounded(self.db, seconds):
                        return self._x(sql, params).fetchall()
                except TimeoutError:
                    return None
            try:
                return self._x(sql, params).fetchall()
            except self.dialect.failures as exc:
                if not self.dialect.read_leniently(self.db, exc):
                    raise
                return self._x(sql, params).fetchall()

    def _sqls(self, questions: list[tuple[str, tuple[Any, ...]]]) -> list[list[tuple[Any, ...]]]:
        """The rows of several questions, asked together (one exchange with a server far
        away: ``Dialect.batch``)."""
        with self._errors(), self._lock:
            self.dialect.ready(self.db)
            try:
                return self._ask_all(questions)
            except self.dialect.failures as exc:
                if not self.dialect.read_leniently(self.db, exc):
                    raise
                return self._ask_all(questions)

    def _ask_all(self, questions: list[tuple[str, tuple[Any, ...]]]) -> list[list[tuple[Any, ...]]]:
        with self.dialect.batch(self.db):
            cursors = [self._x(sql, params) for sql, params in questions]
        return [cursor.fetchall() for cursor in cursors]

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

    def _insert_turn(self, t: TurnRecord) -> None:
        # Written without reading anything back: the depth comes from the parent's row, and
        # the parts and calls find the turn's key (conversation, seq) by its id, so the whole
        # write can go to a server far away in one exchange.
        self._x(
            f"""INSERT INTO turns (conversation_id, depth, {", ".join(_TURN_TABLE_COLUMNS)})
            SELECT ?, COALESCE((SELECT depth + 1 FROM turns WHERE id = ?), 0),
                {", ".join("?" * len(_TURN_COLUMNS))}""",
            [t.conversation_id, t.parent_id, *_turn_values(t)],
        )
        self._write_parts(t.id, 0, t.parts)
        self._write_calls(t.id, t.calls)
        self.dialect.index(self._x, t.id)

    def save_progress(self, turn_id: str, response: str, start: int, parts: list[Part]) -> None:
        """Save what has arrived: the answer text so far and the parts from ``start`` on."""
        with self._writing(), self.dialect.reindexing(self._x, turn_id):
            written = self._x(
                "UPDATE turns SET response_override = ? WHERE id = ?",
                (_override(response, parts, "text"), turn_id),
            )
            self._write_parts(turn_id, start, parts[start:])
        self._check_written(written, turn_id)

    def finish_turn(self, t: TurnRecord) -> None:
        """Save the turn as it ended: every part, every call, status, usage, timings.

        When the write fails for a reason that passes (the disk is full, the server went
        away) the turn is kept here and written first by the next write (the error says so),
        or kept by ``close`` for the next chatrepl.
        """
        try:
            with self._writing():
                written = self._finish(t)
        except StoreError as exc:
            # the driver's failure: the cause, or (where the cause is not kept, as its text
            # may hold credentials) the context
            later = self.dialect.later(exc.__cause__ or exc.__context__)
            if later is None:
                raise
            self._unfinished[t.id] = t
            raise StoreError(later) from exc
        self._check_written(written, t.id)

    def _finish(self, t: TurnRecord) -> Any:
        """The final state of ``t`` written; the cursor of its row's update (``rowcount`` 0:
        the turn is not there)."""
        # the conversation's row before the turn's, as every write takes them (PostgreSQL
        # locks rows: one order everywhere, no deadlock)
        self._x(
            "UPDATE conversations SET updated = ? "
            "WHERE id = (SELECT conversation_id FROM turns WHERE id = ?)",
            (now(), t.id),
        )
        with self.dialect.reindexing(self._x, t.id):
            written = self._x(
                """UPDATE turns SET prompt_override = ?, response_override = ?, status = ?,
                    error = ?, input_tokens = ?, output_tokens = ?, duration_ms = ?, ttft_ms = ?
                WHERE id = ?""",
                (
                    _override(t.prompt, t.parts, "prompt"),
                    _override(t.response, t.parts, "text"),
                    t.status,
                    t.error,
                    t.input_tokens,
                    t.output_tokens,
                    t.duration_ms,
                    t.ttft_ms,
                    t.id,
                ),
            )
            self._replace_parts_and_calls(t)
        return written

    def _check_written(self, written: Any, turn_id: str) -> None:
        """A clear error when a write found no row of the turn (looked at after the write,
        which went out whole without waiting for an answer)."""
        if written.rowcount == 0:
            raise StoreError(
                f"The turn {turn_id} is no longer in {self.path}: was the database replaced "
                "or its conversation deleted?"
            )

    def _replace_parts_and_calls(self, t: TurnRecord) -> None:
        for table in ("parts", "calls"):
            self._x(
                f"DELETE FROM {table} WHERE (conversation_id, turn_seq) = "
                "(SELECT conversation_id, seq FROM turns WHERE id = ?)",
                (t.id,),
            )
        self._write_parts(t.id, 0, t.parts)
        self._write_calls(t.id, t.calls)

    def _write_parts(self, turn_id: str, start: int, parts: list[Part]) -> None:
        """Insert (or replace) the parts of the turn ``turn_id`` from position ``start``."""
        self._many(
            """INSERT INTO parts (conversation_id, turn_seq, position, call, kind, text, data)
            SELECT conversation_id, seq, ?, ?, ?, ?, ? FROM turns WHERE id = ?
            ON CONFLICT (conversation_id, turn_seq, position) DO UPDATE SET
                call = excluded.call, kind = excluded.kind, text = excluded.text,
                data = excluded.data""",
            [
                (start + n, p.call, p.kind, p.text, _dumps(p.data), turn_id)
                for n, p in enumerate(parts)
            ],
        )

    def _write_calls(self, turn_id: str, calls: list[CallRecord]) -> None:
        self._many(
            f"""INSERT INTO calls (conversation_id, turn_seq, idx, {", ".join(_CALL_COLUMNS[1:])})
            SELECT conversation_id, seq, {", ".join("?" * len(_CALL_COLUMNS))}
            FROM turns WHERE id = ?""",
            [(*(getattr(c, name) for name in _CALL_COLUMNS), turn_id) for c in calls],
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
            self.dialect.sync()
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
            # one writer at a time on this conversation (SQLite's BEGIN IMMEDIATE already is)
            self._x(f"SELECT 1 FROM conversations WHERE id = ?{self.dialect.for_update}", (c.id,))
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
        lock = self.dialect.for_update
        with self._writing():
            if self.dialect.conversation_lock:
                self._x(self.dialect.conversation_lock, (c.id,))
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
                    "SELECT t.id, t.seq, t.status, length(x.response) FROM turns t "
                    "JOIN turn_texts x ON x.seq = t.seq WHERE t.conversation_id = ?",
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
        columns = [c for c in _TURN_TABLE_COLUMNS if c not in ("id", "parent_id")]
        row = dict(zip(_TURN_TABLE_COLUMNS, _turn_values(t), strict=True))
        with self.dialect.reindexing(self._x, t.id):
            self._x(
                f"UPDATE turns SET {', '.join(f'{c} = ?' for c in columns)} WHERE seq = ?",
                [*(row[c] for c in columns), seq],
            )
            self._replace_parts_and_calls(t)

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
        prefix = _prefix(id_or_prefix)
        if len(prefix) == 26:
            rows = self._sql("SELECT id FROM conversations WHERE id = ?", (prefix,))
        else:
            rows = self._sql(
                "SELECT id FROM conversations WHERE id >= ? AND id < ? ORDER BY id LIMIT 6",
                (prefix, prefix + "\U0010ffff"),
            )
        ids = [r[0] for r in rows]
        if not ids:
            raise _no_conversation(prefix)
        if len(ids) > 1:
            shown = ", ".join(i[: len(prefix) + 4] + "…" for i in ids[:5])
            raise AmbiguousIdError(
                f"'{prefix}' matches several conversations ({shown}): type more of the id.", ids
            )
        return str(ids[0])

    def conversation(self, conversation_id: str) -> ConversationRecord:
        """A conversation's own row (id or unique prefix: a whole id is not resolved first)."""
        prefix = _prefix(conversation_id)
        cid = prefix if len(prefix) == 26 else self.resolve(prefix)
        rows = self._sql(
            f"SELECT {', '.join(_CONVERSATION_COLUMNS)} FROM conversations WHERE id = ?", (cid,)
        )
        if not rows:
            raise _no_conversation(prefix)
        return ConversationRecord(*rows[0])

    def summary(self, conversation_id: str) -> ConversationSummary:
        """The summary of one conversation (id or unique prefix)."""
        cid = self.resolve(conversation_id)
        return self._summaries("WHERE c.id = ?", (cid,), 1)[0]

    def recent(self, n: int = 20) -> list[ConversationSummary]:
        """The ``n`` conversations most recently active, newest first."""
        return self._summaries("", (), n)

    def _summaries(self, where: str, params: tuple[Any, ...], n: int) -> list[ConversationSummary]:
        # two questions asked together (one exchange with a server far away): the
        # conversations, and the tokens of their turns (the same conversations, by a subquery)
        columns = ", ".join(f"c.{name}" for name in _CONVERSATION_COLUMNS)
        newest = f"FROM conversations c {where} ORDER BY c.updated DESC, c.id DESC LIMIT ?"
        rows, sums = self._sqls(
            [
                (
                    f"SELECT {columns}, COALESCE((SELECT depth + 1 FROM turns WHERE id = c.head), 0) "
                    + newest,
                    (*params, n),
                ),
                (
                    f"""SELECT conversation_id, COALESCE(SUM(input_tokens), 0),
                        COALESCE(SUM(output_tokens), 0) FROM turns
                    WHERE conversation_id IN (SELECT c.id {newest}) GROUP BY conversation_id""",
                    (*params, n),
                ),
            ]
        )
        tokens = {cid: (tin, tout) for cid, tin, tout in sums}
        return [
            # positional, in the record's field order: the row's columns, then the two sums
            ConversationSummary(*row[:-1], row[-1], *tokens.get(row[0], (0, 0)))  # type: ignore[call-arg]
            for row in rows
        ]

    def last_id(self) -> str | None:
        """The id of the most recently active conversation, if any."""
        rows = self._sql("SELECT id FROM conversations ORDER BY updated DESC, id DESC LIMIT 1")
        return rows[0][0] if rows else None

    def conversation_at_head(
        self, conversation_id: str
    ) -> tuple[ConversationRecord, list[TurnRecord]]:
        """A conversation's own row (id or unique prefix) and the turns from its root to its
        head, as ``path_to(head, texts=False)`` reads them: what opening it needs.

        A prefix is resolved first; a whole id is not (a missing one says so all the same).
        The rest is asked together: one exchange with a server far away.
        """
        prefix = _prefix(conversation_id)
        cid = prefix if len(prefix) == 26 else self.resolve(prefix)
        columns = ", ".join(_CONVERSATION_COLUMNS)
        rows, outline, part_rows, call_rows = self._sqls(
            [
                (f"SELECT {columns} FROM conversations WHERE id = ?", (cid,)),
                *_path_questions("?", (cid,)),
            ]
        )
        if not rows:
            raise _no_conversation(prefix)
        record = ConversationRecord(*rows[0])
        return record, _path(cid, record.head, outline, part_rows, call_rows, texts=False)

    def path_to(self, head: str | None, texts: bool = True) -> list[TurnRecord]:
        """The turns from the root to ``head``, oldest first, with their parts and calls.

        A turn's ``prompt`` and ``response`` are its parts' (the prompt part, the answer's text
        parts), unless it was written with texts apart from its parts: its own columns then
        hold them, and ``texts=False`` ignores them (but for a turn without parts). The
        conversation's parts and calls are each one range of neighbouring rows; its turns'
        rows (small: no texts) are found through ``turns_in_conversation``; all are asked
        together: one exchange with a server far away.
        """
        found, outline, part_rows, call_rows = self._sqls(
            [
                ("SELECT conversation_id FROM turns WHERE id = ?", (head,)),
                *_path_questions("(SELECT conversation_id FROM turns WHERE id = ?)", (head,)),
            ]
        )
        if not found:
            return []
        return _path(found[0][0], head, outline, part_rows, call_rows, texts)

    def _parts_and_calls(
        self, cid: str, seqs: list[int], whole: bool = False
    ) -> tuple[dict[int, list[Part]], dict[int, list[CallRecord]]]:
        """The parts and the calls of these turns of one conversation; ``whole``: read the
        whole conversation's (one range, cheaper when most of its turns are wanted)."""
        where = "conversation_id = ?"
        if not whole:
            where += f" AND turn_seq IN ({','.join('?' * len(seqs))})"
        params = (cid,) if whole else (cid, *seqs)
        part_rows, call_rows = self._sqls(
            [
                (f"{_PARTS_SELECT} WHERE {where} {_PARTS_ORDER}", params),
                (f"{_CALLS_SELECT} WHERE {where} {_CALLS_ORDER}", params),
            ]
        )
        return _bucketed(seqs, part_rows, call_rows)

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
        parent = "t.parent_id IS NULL" if turn_id is None else "t.parent_id = ?"
        params = (conversation_id,) if turn_id is None else (conversation_id, turn_id)
        return self._turns(
            f"SELECT {_TURN_SELECT} FROM turns t WHERE t.conversation_id = ? AND {parent} "
            "ORDER BY t.seq",
            params,
        )

    def latest_leaf(self, turn_id: str) -> str:
        """The newest turn of the branch through ``turn_id``: the turn made last among
        ``turn_id`` and everything below it (where the user last was on that branch, however
        it branches further down)."""
        below: dict[str | None, list[tuple[int, str]]] = {}  # the conversation's links, read
        newest: tuple[int, str] = (-1, turn_id)  # at once (no index of parents): in memory
        for seq, tid, parent in self._sql(
            "SELECT seq, id, parent_id FROM turns WHERE conversation_id = "
            "(SELECT conversation_id FROM turns WHERE id = ?)",
            (turn_id,),
        ):
            below.setdefault(parent, []).append((seq, tid))
            if tid == turn_id:
                newest = (seq, tid)
        todo, seen = [turn_id], {turn_id}
        while todo:
            for seq, tid in below.get(todo.pop(), []):
                if tid not in seen:  # damaged links cannot loop
                    seen.add(tid)
                    todo.append(tid)
                    newest = max(newest, (seq, tid))
        return newest[1]

    def tree(self, conversation_id: str) -> list[TreeNode]:
        """Every turn of a conversation in the shape the tree view needs, oldest first."""
        rows = self._sql(
            "SELECT t.id, t.parent_id, substr(x.prompt, 1, 200), t.status, t.started, t.kind "
            "FROM turns t JOIN turn_texts x ON x.seq = t.seq "
            "WHERE t.conversation_id = ? ORDER BY t.seq",
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
            if row["prompt"] is None:
                row["prompt"] = _joined(parts[seq], "prompt")
            if row["response"] is None:
                row["response"] = _joined(parts[seq], "text")
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
        hits = self.dialect.search(self._sql, words, n, marks)
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


_PARTS_SELECT = "SELECT turn_seq, call, kind, text, data FROM parts"
_PARTS_ORDER = "ORDER BY turn_seq, position"
_CALLS_SELECT = (
    f"SELECT turn_seq, {', '.join('idx' if c == 'index' else c for c in _CALL_COLUMNS)} FROM calls"
)
_CALLS_ORDER = "ORDER BY turn_seq, idx"


def _path_questions(cid: str, params: tuple[Any, ...]) -> list[tuple[str, tuple[Any, ...]]]:
    """What ``_path`` is built from, for the conversation ``cid`` (SQL: ``?`` or a subquery,
    with ``params``): its turns' outline, parts and calls, each one range of rows."""
    where = f"WHERE conversation_id = {cid}"
    return [
        (f"SELECT seq, {', '.join(OUTLINE_COLUMNS)} FROM turns {where} ORDER BY seq", params),
        (f"{_PARTS_SELECT} {where} {_PARTS_ORDER}", params),
        (f"{_CALLS_SELECT} {where} {_CALLS_ORDER}", params),
    ]


def _path(
    cid: str,
    head: str | None,
    outline_rows: list[tuple[Any, ...]],
    part_rows: list[tuple[Any, ...]],
    call_rows: list[tuple[Any, ...]],
    texts: bool,
) -> list[TurnRecord]:
    """The turns from the root to ``head`` built from their conversation's rows
    (``_path_questions``); ``texts``: as ``Store.path_to`` says."""
    outline = {row[1]: row for row in outline_rows}
    path, at = [], head
    while at in outline:
        row = outline.pop(at)  # popped: damaged links cannot loop
        path.append(row)
        at = row[2]
    path.reverse()
    parts, calls = _bucketed([row[0] for row in path], part_rows, call_rows)
    out = []
    for seq, tid, parent, model, system, options, *rest, kind, own_prompt, own_response in path:
        # a turn's own columns hold a text only where its parts do not make it
        prompt = _joined(parts[seq], "prompt")
        response = _joined(parts[seq], "text")
        if texts or not parts[seq]:
            prompt = prompt if own_prompt is None else own_prompt
            response = response if own_response is None else own_response
        # by position, in TurnRecord's order (cheaper than by keyword, for a thousand
        # turns): OUTLINE_COLUMNS from "input_tokens" to "ttft_ms" are ``rest``
        out.append(
            TurnRecord(  # type: ignore[call-arg]  # ``rest``: the outline's columns, in order
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


def _bucketed(
    seqs: list[int], part_rows: list[tuple[Any, ...]], call_rows: list[tuple[Any, ...]]
) -> tuple[dict[int, list[Part]], dict[int, list[CallRecord]]]:
    """The parts and calls of the turns ``seqs`` from their rows (others' rows left out)."""
    parts: dict[int, list[Part]] = {s: [] for s in seqs}
    calls: dict[int, list[CallRecord]] = {s: [] for s in seqs}
    for seq, call, kind, text, data in part_rows:
        bucket = parts.get(seq)
        if bucket is not None:  # most parts' data is "{}": not parsed
            bucket.append(Part(kind, text, {} if data == "{}" else _loads(data), call))
    for seq, *values in call_rows:
        found = calls.get(seq)
        if found is not None:
            found.append(CallRecord(*values))
    return parts, calls


def _prefix(id_or_prefix: str) -> str:
    """A conversation id (or the start of one) as ids are written; NotFoundError if it
    cannot be one."""
    prefix = id_or_prefix.strip().upper()
    if not prefix or len(prefix) > 26 or not ID_CHARS.match(prefix):
        raise NotFoundError(
            f"'{_show(id_or_prefix)}' is not a conversation id: ids are 26 letters and "
            "digits (a unique prefix will do)."
        )
    return prefix


def _no_conversation(prefix: str) -> NotFoundError:
    return NotFoundError(f"No conversation has an id starting with '{prefix}'.")


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


def _turn_values(t: TurnRecord) -> list[Any]:
    """The values of a turn's row, in ``_TURN_TABLE_COLUMNS``' order."""
    row = asdict(t)
    row["options"] = _dumps(t.options)
    row["prompt"] = _override(t.prompt, t.parts, "prompt")
    row["response"] = _override(t.response, t.parts, "text")
    return [row[name] for name in _TURN_COLUMNS]


def _joined(parts: list[Part], kind: str) -> str:
    return "".join([p.text for p in parts if p.kind == kind])


def _override(text: str, parts: list[Part], kind: str) -> str | None:
    """What a turn's own column keeps of ``text``: nothing (``None``) when its parts of
    ``kind`` make that text already, the text otherwise."""
    return None if text == _joined(parts, kind) else text


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

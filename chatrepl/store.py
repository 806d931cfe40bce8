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
        self._unfinished: dict[str, TurnRecord] = {}  # final writes the disk had no room for
        #: what SQLite and PostgreSQL do differently (checks the file before anything is written)
        self.dialect = open_dialect(path, create)
        self.path = self.dialect.shown
        self.read_only = self.dialect.read_only
        self.db = self.dialect.database()
        with self._errors(), self._lock:
            self.dialect.migrate(self.db, create)
        #: a sentence to show the user once, after a migration (how to give space back)
        self.notice = self.dialect.notice

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
        into a file that is no longer the one opened."""
        self.dialect.check_writable()
        self._finish_unfinished()
        with self._errors(), self._lock:
            self.dialect.ready(self.db)
            with self.db.atomic():
                yield

    def _x(self, sql: str, params: Iterable[Any] = ()) -> Any:
        """Run one statement (``?`` parameters); the cursor."""
        return self.db.execute_sql(self.dialect.sql(sql), self.dialect.values(params))

    def _many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Run one statement for each of ``rows``."""
        if rows:
            values = self.dialect.values
            self.db.cursor().executemany(self.dialect.sql(sql), [values(row) for row in rows])

    def _finish_unfinished(self) -> None:
        """Write the final state of turns a full disk kept from being finalised."""
        for turn_id, t in list(self._unfinished.items()):
            with self._errors(), self.db.atomic():
                self._finish(t)
            self._unfinished.pop(turn_id, None)

    def close(self) -> None:
        """Close this thread's connection (PostgreSQL: the store's one connection, when the
        thread that opened the store closes it), after a last try at a final write the disk had
        no room for."""
        if self._unfinished:
            with contextlib.suppress(StoreError):
                self.dialect.check_writable()
                self._finish_unfinished()
        if not self.dialect.one_connection or threading.get_ident() == self._owner:
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
            f"""INSERT INTO turns (conversation_id, depth, {", ".join(_TURN_TABLE_COLUMNS)})
            VALUES (?, ?, {", ".join("?" * len(_TURN_COLUMNS))})"""
            + self.dialect.returning_seq,
            [t.conversation_id, depth, *values],
        )
        seq = self.dialect.new_seq(cursor)
        self._write_parts(t.conversation_id, seq, 0, t.parts)
        self._write_calls(t.conversation_id, seq, t.calls)
        self.dialect.index(self._x, seq)
        return seq

    def save_progress(self, turn_id: str, response: str, start: int, parts: list[Part]) -> None:
        """Save what has arrived: the answer text so far and the parts from ``start`` on."""
        with self._writing():
            cid, seq = self._key(turn_id)
            with self.dialect.reindexing(self._x, seq):
                self._x(
                    "UPDATE turns SET response_override = ? WHERE seq = ?",
                    (_override(response, parts, "text"), seq),
                )
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
            if not self.dialect.is_full(exc.__cause__):
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
        with self.dialect.reindexing(self._x, seq):
            self._x(
                """UPDATE turns SET prompt_override = ?, response_override = ?, status = ?,
                    error = ?, input_tokens = ?, output_tokens = ?, duration_ms = ?, ttft_ms = ?
                WHERE seq = ?""",
                (
                    _override(t.prompt, t.parts, "prompt"),
                    _override(t.response, t.parts, "text"),
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
        with self.dialect.reindexing(self._x, seq):
            self._x(
                f"UPDATE turns SET {', '.join(f'{c} = ?' for c in columns)} WHERE seq = ?",
                [*(row[c] for c in columns), seq],
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

        A turn's ``prompt`` and ``response`` are its parts' (the prompt part, the answer's text
        parts), unless it was written with texts apart from its parts: its own columns then
        hold them, and ``texts=False`` ignores them (but for a turn without parts). The
        conversation's parts and calls are each one range of neighbouring rows; its turns'
        rows (small: no texts) are found through ``turns_in_conversation``.
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

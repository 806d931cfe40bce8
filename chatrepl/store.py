"""The SQLite database: peewee models, forward-only migrations, and the questions the app asks.

This is the only module that speaks SQL. Every write runs in a ``BEGIN IMMEDIATE``
transaction on a WAL database with a busy timeout, so several chatrepl processes can share
one file without losing a write.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import peewee as pw

from .errors import AmbiguousIdError, NewerDatabaseError, NotFoundError, StoreError

if TYPE_CHECKING:
    from .conversation import Conversation, Response
    from .providers.base import Model

BUSY_TIMEOUT_S = 10
SEARCH_WINDOW = 300  # search ranks the newest this many matches
STATUSES = ("pending", "complete", "interrupted", "error")
_ID_CHARS = re.compile(r"^[0-9A-HJKMNP-TV-Z]+$")  # Crockford base32, as ULIDs are written


def now() -> str:
    """The current UTC time as ISO 8601 with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


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


MIGRATIONS: list[Callable[[pw.SqliteDatabase], None]] = [m001_initial]
SCHEMA_VERSION = len(MIGRATIONS)


# --- the peewee models, bound to one database per Store ---------------------------------------


def _models(db: pw.SqliteDatabase) -> tuple[type[pw.Model], type[pw.Model]]:
    class Base(pw.Model):
        class Meta:
            database = db

    class ConversationRow(Base):
        id = pw.TextField(primary_key=True)
        title = pw.TextField(null=True)
        title_source = pw.TextField(null=True)
        model = pw.TextField()
        system = pw.TextField(null=True)
        created = pw.TextField()
        updated = pw.TextField()

        class Meta:
            table_name = "conversations"

    class ResponseRow(Base):
        seq = pw.AutoField()
        id = pw.TextField(unique=True)
        conversation = pw.ForeignKeyField(
            ConversationRow, column_name="conversation_id", on_delete="CASCADE"
        )
        model = pw.TextField()
        prompt = pw.TextField()
        system = pw.TextField(null=True)
        response = pw.TextField(default="")
        options = pw.TextField(default="{}")
        input_tokens = pw.IntegerField(null=True)
        output_tokens = pw.IntegerField(null=True)
        status = pw.TextField(default="pending")
        error = pw.TextField(null=True)
        started = pw.TextField()
        duration_ms = pw.IntegerField(null=True)
        ttft_ms = pw.IntegerField(null=True)
        undone = pw.BooleanField(default=False)

        class Meta:
            table_name = "responses"

    return ConversationRow, ResponseRow


# --- what the queries return ------------------------------------------------------------------


@dataclass
class ConversationSummary:
    """A row of ``recent()``: enough to list and pick a conversation."""

    id: str
    title: str | None
    model: str
    system: str | None
    created: str
    updated: str
    turns: int
    input_tokens: int
    output_tokens: int
    title_source: str | None = None


@dataclass
class TurnRecord:
    """One saved round trip."""

    id: str
    conversation_id: str
    model: str
    prompt: str
    system: str | None
    response: str
    options: dict[str, Any]
    input_tokens: int | None
    output_tokens: int | None
    status: str
    error: str | None
    started: str
    duration_ms: int | None
    ttft_ms: int | None
    undone: bool


@dataclass
class SearchHit:
    """A search result: the turn, its conversation and a snippet with ``[`` ``]`` around hits."""

    conversation_id: str
    title: str | None
    response_id: str
    started: str
    snippet: str


class Store:
    """A chatrepl database.

    Args:
        path: the SQLite file.
        create: create the file (mode 0600) if it is missing; otherwise a missing file is a
            StoreError, so read-only commands never leave an empty database behind.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True):
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
        self.db = pw.SqliteDatabase(
            str(self.path),
            pragmas={
                "journal_mode": "wal",
                "foreign_keys": 1,
                "synchronous": "normal",
                "busy_timeout": BUSY_TIMEOUT_S * 1000,
            },
            timeout=BUSY_TIMEOUT_S,
            lock_type="IMMEDIATE",
            check_same_thread=False,
        )
        self.Conversation, self.Response = _models(self.db)
        with self._errors():
            self._migrate()

    # --- opening --------------------------------------------------------------------------

    def _check_version(self) -> None:
        """Refuse a newer or non-chatrepl database before anything writes to it."""
        try:
            con = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
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
        if "readonly" in text or "read-only" in text or "unable to open" in text:
            return f"Cannot write to {self.path}: check its permissions and free space."
        return f"The database {self.path} failed: {exc}."

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (pw.DatabaseError, pw.OperationalError, sqlite3.DatabaseError) as exc:
            raise StoreError(self._unusable(exc)) from exc

    def _migrate(self) -> None:
        version = self.db.execute_sql("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        with self.db.atomic():
            version = self.db.execute_sql("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise NewerDatabaseError(
                    f"{self.path} was written by a newer chatrepl: upgrade chatrepl."
                )
            self.db.execute_sql(
                "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied TEXT)"
            )
            for migration in MIGRATIONS[version:]:
                migration(self.db)
                self.db.execute_sql(
                    "INSERT INTO _migrations (name, applied) VALUES (?, ?)",
                    (migration.__name__, now()),
                )
            self.db.execute_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        """Close this thread's connection."""
        self.db.close()

    # --- writing --------------------------------------------------------------------------

    def save_conversation(self, conversation: Conversation, title: bool = False) -> None:
        """Insert or update the conversation's row; a title already saved is kept unless
        ``title`` (this is a rename)."""
        with self._errors(), self.db.atomic():
            self._upsert(conversation, title)

    def _upsert(self, c: Conversation, title: bool = False) -> None:
        C = self.Conversation
        keep = {C.title: pw.EXCLUDED.title, C.title_source: pw.EXCLUDED.title_source}
        if not title:
            # Another process may have renamed it since this one loaded it: a stale title in
            # memory fills an empty one and never overwrites.
            keep = {field: pw.fn.COALESCE(field, value) for field, value in keep.items()}
        C.insert(
            id=c.id,
            title=c.title,
            title_source=c.title_source,
            model=c.model.full_name,
            system=c.system,
            created=c.created,
            updated=now(),
        ).on_conflict(
            conflict_target=[C.id],
            preserve=[C.model, C.system, C.updated],
            update=keep,
        ).execute()

    def begin_response(self, response: Response) -> None:
        """Write the prompt row (status pending) before the request goes out."""
        with self._errors(), self.db.atomic():
            self._upsert(response.conversation)
            self.Response.insert(
                id=response.id,
                conversation=response.conversation.id,
                model=response.model_name,
                prompt=response.prompt,
                system=response.system,
                response=response.text_so_far,
                options=json.dumps(response.options, sort_keys=True, default=str),
                status=response.status,
                started=response.started,
                undone=response.undone,
            ).execute()

    def flush_response(self, response_id: str, text: str) -> None:
        """Save the text that has arrived so far."""
        with self._errors(), self.db.atomic():
            self.Response.update(response=text).where(self.Response.id == response_id).execute()

    def finish_response(self, response: Response) -> None:
        """Save the final text, status, error, usage and timings."""
        R = self.Response
        with self._errors(), self.db.atomic():
            R.update(
                response=response.text_so_far,
                status=response.status,
                error=response.error,
                input_tokens=response.usage.input_tokens,
                output_tokens=response.usage.output_tokens,
                duration_ms=_ms(response.duration),
                ttft_ms=_ms(response.time_to_first_token),
            ).where(R.id == response.id).execute()
            self.Conversation.update(updated=now()).where(
                self.Conversation.id == response.conversation.id
            ).execute()

    def set_undone(self, response_id: str, undone: bool = True) -> None:
        """Take a turn back (or give it back): undone turns are not sent again."""
        with self._errors(), self.db.atomic():
            self.Response.update(undone=undone).where(self.Response.id == response_id).execute()

    def set_title(self, conversation_id: str, title: str, source: str = "user") -> None:
        """Set a conversation's title; ``source`` says who chose it (user, model, prompt)."""
        C = self.Conversation
        cid = self.resolve(conversation_id)
        with self._errors(), self.db.atomic():
            C.update(title=title, title_source=source).where(C.id == cid).execute()

    def delete(self, conversation_id: str) -> str:
        """Delete a conversation and its turns; returns the full id."""
        cid = self.resolve(conversation_id)
        with self._errors(), self.db.atomic():
            self.Response.delete().where(self.Response.conversation == cid).execute()
            self.Conversation.delete().where(self.Conversation.id == cid).execute()
        return cid

    def import_turns(self, summary: ConversationSummary, turns: list[TurnRecord]) -> bool:
        """Insert a whole conversation as it was; ``False`` if its id is already here."""
        with self._errors(), self.db.atomic():
            if self.Conversation.get_or_none(self.Conversation.id == summary.id):
                return False
            self.Conversation.insert(
                id=summary.id,
                title=summary.title,
                title_source=summary.title_source or ("user" if summary.title else None),
                model=summary.model,
                system=summary.system,
                created=summary.created,
                updated=summary.updated,
            ).execute()
            self._insert_turns(summary.id, turns)
        return True

    def add_turns(self, summary: ConversationSummary, turns: list[TurnRecord]) -> int:
        """Append the turns not saved yet (by id) to an imported conversation; how many.

        The conversation takes the model, persona and last activity of ``summary``.
        """
        R = self.Response
        with self._errors(), self.db.atomic():
            have = {r[0] for r in R.select(R.id).where(R.conversation == summary.id).tuples()}
            new = [t for t in turns if t.id not in have]
            if new:
                self._insert_turns(summary.id, new)
                self.Conversation.update(
                    model=summary.model, system=summary.system, updated=summary.updated
                ).where(self.Conversation.id == summary.id).execute()
        return len(new)

    def _insert_turns(self, conversation_id: str, turns: list[TurnRecord]) -> None:
        for t in turns:
            row = {k: v for k, v in vars(t).items() if k != "conversation_id"}
            row["options"] = json.dumps(t.options, sort_keys=True, default=str)
            self.Response.insert(conversation=conversation_id, **row).execute()

    # --- reading --------------------------------------------------------------------------

    def resolve(self, id_or_prefix: str) -> str:
        """The full id of the one conversation whose id starts with ``id_or_prefix``."""
        prefix = id_or_prefix.strip().upper()
        if not prefix or len(prefix) > 26 or not _ID_CHARS.match(prefix):
            raise NotFoundError(
                f"'{_show(id_or_prefix)}' is not a conversation id: ids are 26 letters and "
                "digits (a unique prefix will do)."
            )
        C = self.Conversation
        with self._errors():
            if len(prefix) == 26:
                rows = list(C.select(C.id).where(C.id == prefix).tuples())
            else:
                upper = prefix + "\U0010ffff"
                rows = list(
                    C.select(C.id).where((C.id >= prefix) & (C.id < upper)).limit(6).tuples()
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

    def summary(self, conversation_id: str) -> ConversationSummary:
        """The summary of one conversation (id or unique prefix)."""
        cid = self.resolve(conversation_id)
        return self._summaries(self.Conversation.id == cid, 1)[0]

    def recent(self, n: int = 20) -> list[ConversationSummary]:
        """The ``n`` conversations most recently active, newest first."""
        return self._summaries(None, n)

    def _summaries(self, where: Any, n: int) -> list[ConversationSummary]:
        C, R = self.Conversation, self.Response
        counts = (
            R.select(
                R.conversation,
                pw.fn.COUNT(R.id).alias("turns"),
                pw.fn.COALESCE(pw.fn.SUM(R.input_tokens), 0).alias("tin"),
                pw.fn.COALESCE(pw.fn.SUM(R.output_tokens), 0).alias("tout"),
            )
            .where(R.undone == False)  # noqa: E712 - peewee expression
            .group_by(R.conversation)
        )
        query = C.select(C).order_by(C.updated.desc(), C.id.desc()).limit(n)
        if where is not None:
            query = query.where(where)
        with self._errors():
            rows = list(query)
            if not rows:
                return []
            stats = {
                r.conversation_id: r for r in counts.where(R.conversation.in_([c.id for c in rows]))
            }
        out = []
        for c in rows:
            s = stats.get(c.id)
            out.append(
                ConversationSummary(
                    c.id,
                    c.title,
                    c.model,
                    c.system,
                    c.created,
                    c.updated,
                    s.turns if s else 0,
                    s.tin if s else 0,
                    s.tout if s else 0,
                    c.title_source,
                )
            )
        return out

    def last_id(self) -> str | None:
        """The id of the most recently active conversation, if any."""
        recent = self.recent(1)
        return recent[0].id if recent else None

    def turns(self, conversation_id: str, include_undone: bool = False) -> list[TurnRecord]:
        """The saved round trips of a conversation, oldest first."""
        # Plain rows: building a peewee model per row made loading 1,000 turns ~3× slower.
        sql = f"SELECT {_TURN_COLUMNS} FROM responses WHERE conversation_id = ?"
        if not include_undone:
            sql += " AND undone = 0"
        with self._errors():
            rows = self.db.execute_sql(sql + " ORDER BY seq", (conversation_id,)).fetchall()
        return [_turn(*row) for row in rows]

    def load(self, conversation_id: str, model: Model | None = None) -> Conversation:
        """A saved conversation, ready to continue (with its own model unless ``model``)."""
        from .conversation import Conversation, Response

        cid = self.resolve(conversation_id)
        with self._errors():
            row = self.Conversation.get(self.Conversation.id == cid)
        if model is None:
            from .providers.registry import get_model

            model = get_model(row.model)
        c = Conversation(model, system=row.system, store=self, id=row.id)
        c.title, c.title_source, c.created = row.title, row.title_source, row.created
        c.responses = [Response.from_record(c, t) for t in self.turns(cid, include_undone=True)]
        return c

    def search(
        self, query: str, n: int = 20, marks: tuple[str, str] = ("[", "]")
    ) -> list[SearchHit]:
        """Round trips whose prompt or answer contain every word of ``query``, best first.

        Ranked by relevance (bm25) among the newest ``max(SEARCH_WINDOW, n)`` matches: ranking every
        match of a common word costs seconds in a million round trips, and FTS5 finds the
        newest matches by walking its index backwards. ``marks`` go around each match in the
        snippets.
        """
        from .text import valid_text

        words = [w for w in valid_text(query).split() if w.strip('"')]
        if not words:
            return []
        match = " ".join('"' + w.replace('"', '""') + '"' for w in words)
        best = """
            SELECT recent.rowid FROM (
                SELECT rowid, bm25(responses_fts) AS score FROM responses_fts
                WHERE responses_fts MATCH ? ORDER BY rowid DESC LIMIT ?
            ) AS recent
            JOIN responses r ON r.seq = recent.rowid
            WHERE r.undone = 0
            ORDER BY recent.score, recent.rowid DESC
            LIMIT ?"""
        with self._errors():
            seqs = [row[0] for row in self.db.execute_sql(best, (match, max(SEARCH_WINDOW, n), n))]
            if not seqs:
                return []
            snippets = f"""
                SELECT responses_fts.rowid, r.conversation_id, c.title, r.id, r.started,
                       snippet(responses_fts, -1, ?, ?, '…', 12)
                FROM responses_fts
                JOIN responses r ON r.seq = responses_fts.rowid
                JOIN conversations c ON c.id = r.conversation_id
                WHERE responses_fts MATCH ? AND responses_fts.rowid IN ({",".join("?" * len(seqs))})"""
            found = {
                row[0]: SearchHit(*row[1:])
                for row in self.db.execute_sql(snippets, (*marks, match, *seqs))
            }
        return [found[seq] for seq in seqs if seq in found]

    def count(self) -> tuple[int, int]:
        """How many conversations and round trips the database holds."""
        with self._errors():
            return self.Conversation.select().count(), self.Response.select().count()


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


def _show(text: str) -> str:
    from .text import make_safe, shorten

    return make_safe(shorten(text, 40))


#: The columns of a TurnRecord, in its order.
_TURN_COLUMNS = (
    "id, conversation_id, model, prompt, system, response, options, input_tokens, "
    "output_tokens, status, error, started, duration_ms, ttft_ms, undone"
)


def _turn(*row: Any) -> TurnRecord:
    """A TurnRecord from a row of ``_TURN_COLUMNS``."""
    t = TurnRecord(*row)
    try:
        t.options = json.loads(t.options or "{}")
    except ValueError:
        t.options = {}
    t.undone = bool(t.undone)
    return t

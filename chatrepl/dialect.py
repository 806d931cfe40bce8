"""What SQLite and PostgreSQL do differently, behind one small interface the store is given.

``Store`` speaks one SQL (``?`` parameters, ``ON CONFLICT`` upserts, the same tables) and asks
its dialect for the rest: opening the database and checking its version, running the
migrations, turning parameters into the driver's, the id of an inserted row, row locks, the one
sentence a failure becomes, and full-text search with its snippets (FTS5 in SQLite, a
``tsvector`` index in PostgreSQL). ``open_dialect`` picks one from what the user named.
"""

from __future__ import annotations

import functools
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from . import migrations
from .errors import StoreError
from .files import user_path
from .lazypeewee import peewee as pw
from .migrations import INDEXED_CHARS
from .postgres import SCHEMA
from .records import SearchHit

BUSY_TIMEOUT_S = 10
#: A migrated SQLite file this size or smaller is VACUUMed at once (a second or two); a larger
#: one gets a sentence saying how, at about this many bytes a second.
VACUUM_AT_ONCE_BYTES = 100_000_000
VACUUM_BYTES_PER_S = 50_000_000
#: Free space below which a "disk I/O error" is taken for a full disk.
NO_ROOM_BYTES = 1024 * 1024
#: The first key of PostgreSQL's advisory lock on one conversation while it is merged.
MERGE_LOCK = 0x63686D67
SEARCH_WINDOW = 300  # search ranks the newest this many matches
PREFIX_BUDGET_S = 0.25  # the most a search may spend adding matches of words as prefixes
_STEPS = 1_000  # SQLite instructions between two looks at the clock during such a search


class Ask(Protocol):
    """How a dialect's search asks the store a question: the rows, or ``None`` when
    ``seconds`` were given and the question would take longer."""

    def __call__(
        self, sql: str, params: tuple[Any, ...] = (), seconds: float | None = None
    ) -> list[tuple[Any, ...]] | None: ...


#: How a dialect runs a statement in the store's transaction (``?`` parameters).
Run = Callable[[str, tuple[Any, ...]], Any]


class Dialect:
    """The engine-specific half of a store (see the module's docstring); one per ``Store``."""

    #: what the user is shown for the database: the file, or the URL without credentials
    shown: Any
    #: the database can be read but not written (SQLite: its folder is read-only)
    read_only = False
    #: the errors that mean the database failed (each becomes one sentence)
    failures: tuple[type[BaseException], ...] = (pw.DatabaseError, sqlite3.DatabaseError)
    #: appended to a SELECT whose rows the transaction must hold until it ends
    for_update = ""
    #: a statement (parameters: the conversation's id) that holds one conversation until the
    #: transaction ends, even before its row exists; "" where writers already take turns
    conversation_lock = ""
    #: one connection for the whole store, closed only by the thread that opened it
    one_connection = False
    #: a sentence for the user once, after a migration (how to give space back), or None
    notice: str | None = None

    def database(self) -> Any:
        """The (not yet connected) peewee database."""
        raise NotImplementedError

    def migrate(self, db: Any, create: bool) -> None:
        """Bring the schema up to date."""
        raise NotImplementedError

    def sql(self, sql: str) -> str:
        """A statement written with ``?`` parameters, as the driver takes it."""
        return sql

    def values(self, params: Any) -> tuple[Any, ...]:
        """Parameters as the database can store them."""
        return tuple(params)

    def unusable(self, exc: BaseException) -> str:
        """The one sentence a failure of the database becomes."""
        raise NotImplementedError

    def cause(self, exc: BaseException) -> BaseException | None:
        """What the StoreError for ``exc`` keeps as its cause (``None``: nothing, when the
        driver's text may hold credentials)."""
        return exc

    def later(self, exc: BaseException | None) -> str | None:
        """When a turn's final write failed with ``exc`` for a reason that passes (a full
        disk, a server gone), what to tell: the end is kept and written later. ``None``
        for any other failure."""
        return None

    def ready(self, db: Any) -> None:
        """Before a question outside a transaction: a connection that broke is replaced."""

    @contextmanager
    def batch(self, db: Any) -> Iterator[None]:
        """Statements run inside go to the database together, as one exchange where the
        engine can (PostgreSQL's pipeline): a result read inside waits for those before it,
        the others are known at the end of the block. SQLite, next door, runs each at once."""
        yield

    def sync(self) -> None:
        """Inside a batch: wait for the results of everything sent so far (``rowcount``)."""

    def check_writable(self) -> None:
        """Refuse a write that would be lost or go to the wrong place (StoreError)."""

    def read_leniently(self, db: Any, exc: BaseException) -> bool:
        """After ``exc`` from reading rows: whether to read them again, leniently."""
        return False

    @contextmanager
    def bounded(self, db: Any, seconds: float) -> Iterator[None]:
        """A question given ``seconds`` at most: TimeoutError inside when it takes longer."""
        yield

    def search(self, ask: Ask, words: list[str], n: int, marks: tuple[str, str]) -> list[SearchHit]:
        """Conversations with a turn holding every word, best first, one hit each."""
        raise NotImplementedError

    def index(self, run: Run, turn_id: str) -> None:
        """Put the words of a new turn (its parts written) in the search index."""

    @contextmanager
    def reindexing(self, run: Run, turn_id: str) -> Iterator[None]:
        """Around a change to a saved turn's texts: its words follow them in the index."""
        yield


def open_dialect(target: str | os.PathLike[str], create: bool) -> Dialect:
    """The dialect for ``target``: a ``postgresql://`` URL, else an SQLite file (checked, and
    created when ``create``, before anything is written to it)."""
    from .postgres import is_url

    if is_url(target):
        return PostgresDialect(str(target))
    return SqliteDialect(user_path(target), create)


# --- SQLite ------------------------------------------------------------------------------------


class SqliteDialect(Dialect):
    """An SQLite file: WAL, a busy timeout, ``BEGIN IMMEDIATE`` writes, FTS5 search."""

    def __init__(self, path: Path, create: bool):
        self.path = self.shown = path
        exists = path.exists()
        if not exists and not create:
            raise StoreError(f"There is no chatrepl database at {path} yet: nothing saved.")
        if exists:
            _check_regular(path)
            try:
                version, tables = migrations.sqlite_version(path, _cannot_write(path))
            except sqlite3.DatabaseError as exc:
                raise StoreError(self.unusable(exc)) from exc
            migrations.check_sqlite(path, version, tables)
        else:
            try:
                from .settings import private_file

                private_file(path)
            except OSError as exc:
                raise StoreError(f"Cannot create the database {path}: {exc.strerror}.") from exc
        self.read_only = exists and not create and _cannot_write(path)
        self._identity = _identity(path)

    def database(self) -> Any:
        pragmas: dict[str, Any] = {"foreign_keys": 1, "busy_timeout": BUSY_TIMEOUT_S * 1000}
        if not self.read_only:
            pragmas.update(journal_mode="wal", synchronous="normal")
        return pw.SqliteDatabase(
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

    def migrate(self, db: Any, create: bool) -> None:
        applied = migrations.migrate_sqlite(db, self.path)
        if "m005_each_text_once" in applied and "m001_initial" not in applied:  # not new
            self.notice = self._give_space_back(db)

    def _give_space_back(self, db: Any) -> str | None:
        """After the texts' copies were dropped: VACUUM a small file at once (the pages freed
        go back to the disk); for a large one, the sentence that says how."""
        pages = db.execute_sql("PRAGMA page_count").fetchone()[0]
        free = db.execute_sql("PRAGMA freelist_count").fetchone()[0]
        size = db.execute_sql("PRAGMA page_size").fetchone()[0]
        if not free:
            return None
        if pages * size <= VACUUM_AT_ONCE_BYTES:
            db.execute_sql("VACUUM")
            return None
        seconds = max(1, round(pages * size / VACUUM_BYTES_PER_S))
        return (
            f"{self.path} now keeps each text once; the {free * size / 1e6:,.0f} MB it no "
            f"longer needs go back to the disk with: sqlite3 '{self.path}' VACUUM (with "
            f"chatrepl closed: about {seconds} s, and as much free disk as the file's size)."
        )

    def unusable(self, exc: BaseException) -> str:
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
        if self.is_full(exc) or ("disk i/o error" in text and _no_room(self.path)):
            return f"The disk holding {self.path} is full: free some space and try again."
        if "readonly" in text or "read-only" in text or "unable to open" in text:
            return f"Cannot write to {self.path}: check its permissions and free space."
        return f"The database {self.path} failed: {exc}."

    def later(self, exc: BaseException | None) -> str | None:
        if not self.is_full(exc):
            return None
        return (
            f"The disk holding {self.path} is full, so the end of this answer is not saved "
            "yet: free some space, and it is saved with the next thing you do."
        )

    def is_full(self, exc: BaseException | None) -> bool:
        """Whether ``exc`` (or the sqlite3 error inside it, or the error it happened while
        handling) is SQLITE_FULL."""
        seen = 0
        while exc is not None and seen < 10:
            if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
                return True
            if "database or disk is full" in str(exc):
                return True
            inner = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
            exc, seen = inner or exc.__cause__ or exc.__context__, seen + 1
        return False

    def check_writable(self) -> None:
        """Refuse to write when the file was deleted, moved or replaced since it was opened:
        the writes would go to a vanished file, or into someone else's database."""
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

    def read_leniently(self, db: Any, exc: BaseException) -> bool:
        """Text that is not UTF-8 (written by another program): read with U+FFFD."""
        if "decode" not in str(exc):
            return False
        db.connection().text_factory = _lenient
        return True

    @contextmanager
    def bounded(self, db: Any, seconds: float) -> Iterator[None]:
        deadline = time.monotonic() + seconds
        connection = db.connection()
        connection.set_progress_handler(lambda: time.monotonic() > deadline, _STEPS)
        try:
            yield
        except (pw.OperationalError, sqlite3.OperationalError) as exc:
            if "interrupt" not in str(exc):
                raise
            raise TimeoutError from exc
        finally:
            connection.set_progress_handler(None, 0)

    def index(self, run: Run, turn_id: str) -> None:
        run(_INDEX, (turn_id,))

    @contextmanager
    def reindexing(self, run: Run, turn_id: str) -> Iterator[None]:
        # FTS5 with external content forgets a row given exactly the words it indexed: the
        # texts as they are before the change, read back through the view.
        run(_UNINDEX, (turn_id,))
        yield
        run(_INDEX, (turn_id,))

    def search(self, ask: Ask, words: list[str], n: int, marks: tuple[str, str]) -> list[SearchHit]:
        # Every word must match. Whole words first: FTS5 finds the newest matches of a word by
        # walking its index backwards, cheaply at any size. Then words as prefixes ("goat"
        # finds "goats"; a word in double quotes stays exact): FTS5 merges every word a prefix
        # starts before it can walk them, which for a short, common prefix in a million turns
        # takes seconds, so that search is given PREFIX_BUDGET_S and left out when it is slower.
        window = max(SEARCH_WINDOW, n)
        exact = " ".join(_term(w, prefix=False) for w in words)
        prefixed = " ".join(_term(w) for w in words)
        firsts: dict[str, int] = {}  # each conversation once, with its best turn
        _first_per_conversation(firsts, ask(_BEST, (exact, window)) or [], n)
        match = exact
        if len(firsts) < n and prefixed != exact:
            rows = ask(_BEST, (prefixed, window), PREFIX_BUDGET_S)
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
        rows = ask(snippets, (*marks, match, *seqs)) or []
        found = {row[0]: SearchHit(*row[1:]) for row in rows}
        return [found[seq] for seq in seqs if seq in found]


#: A turn's words into the index, and out of it (``turn_words``: its texts made from its parts).
#: (The turn by its id: its ``seq`` is never read back, so a write needs no answer midway.)
_INDEX = """INSERT INTO turns_fts (rowid, words) SELECT seq, words FROM turn_words
    WHERE seq = (SELECT seq FROM turns WHERE id = ?)"""
_UNINDEX = """INSERT INTO turns_fts (turns_fts, rowid, words) SELECT 'delete', seq, words
    FROM turn_words WHERE seq = (SELECT seq FROM turns WHERE id = ?)"""

#: The newest matches of a search, ranked (bm25) among themselves, with their conversations.
_BEST = """
    SELECT f.rowid, t.conversation_id FROM (
        SELECT rowid, bm25(turns_fts) AS score FROM turns_fts
        WHERE turns_fts MATCH ? ORDER BY rowid DESC LIMIT ?
    ) f JOIN turns t ON t.seq = f.rowid ORDER BY f.score, f.rowid DESC"""


def _first_per_conversation(firsts: dict[str, int], rows: list[tuple[Any, ...]], n: int) -> None:
    """Add to ``firsts`` the first turn of each conversation in ``rows`` (turn, conversation),
    up to ``n`` conversations."""
    for seq, cid in rows:
        if len(firsts) >= n:
            return
        firsts.setdefault(cid, seq)


def _term(word: str, prefix: bool = True) -> str:
    """One word of a search as an FTS5 term: a prefix, or the word exactly when quoted (or
    when ``prefix`` is off)."""
    exact = len(word) > 2 and word[0] == word[-1] == '"'
    inner = word[1:-1] if exact else word
    return '"' + inner.replace('"', '""') + ('"*' if prefix and not exact else '"')


def _lenient(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _identity(path: Path) -> tuple[int, int] | None:
    """What tells one file from another at ``path`` (device and inode), or ``None`` if gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def first_failure(exc: BaseException) -> BaseException:
    """The database error that started it all. When COMMIT fails on a full disk, SQLite has
    already rolled the transaction back, so the ROLLBACK that follows fails too ("cannot
    rollback - no transaction is active"): that second error hides the real one, which is in
    its context."""
    seen = 0
    while (
        seen < 10
        and isinstance(exc.__context__, pw.DatabaseError | sqlite3.DatabaseError)
        and ("no transaction is active" in str(exc) or str(exc) == str(exc.__context__))
    ):
        exc, seen = exc.__context__, seen + 1
    return exc


def _no_room(path: Path) -> bool:
    """Whether the filesystem holding ``path`` has (next to) no space left: SQLite reports a
    write-ahead log or shared-memory file it could not make room for as a "disk I/O error"."""
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < NO_ROOM_BYTES


def _check_regular(path: Path) -> None:
    """Refuse a folder, a FIFO or a device as the database (SQLite would wait forever on a
    FIFO for a writer)."""
    from .files import NotRegularFileError, check_regular

    try:
        check_regular(path)
    except NotRegularFileError as exc:
        raise StoreError(
            f"{path} is {exc.what}, not a chatrepl database: give another --db path."
        ) from None
    except OSError:
        pass  # SQLite says what is wrong with it


def _cannot_write(path: Path) -> bool:
    """Whether the folder of ``path`` cannot be written (a read-only filesystem or folder)."""
    return not os.access(path.parent, os.W_OK)


# --- PostgreSQL --------------------------------------------------------------------------------


class PostgresDialect(Dialect):
    """A PostgreSQL server (``chatrepl.postgres`` opens it): one connection per store, shared
    by its threads; failures told without the URL's credentials; ``tsvector`` search."""

    failures: tuple[type[BaseException], ...] = (
        pw.DatabaseError,
        sqlite3.DatabaseError,
        pw.InterfaceError,
    )
    for_update = " FOR UPDATE"
    # Two merges of one conversation at once (two copies running, or a copy killed while its
    # server still finishes the transaction): a row lock cannot cover a row that does not exist
    # yet, so the second would insert it again and fail on the primary key.
    conversation_lock = f"SELECT pg_advisory_xact_lock({MERGE_LOCK}, hashtext(?))"
    one_connection = True

    def __init__(self, url: str):
        from . import postgres

        self._postgres, self._url = postgres, url
        self.shown = postgres.display(url)
        self._pipeline: Any = None  # the batch under way

    def database(self) -> Any:
        db = self._postgres.open_database(self._url)
        import psycopg  # (open_database said so clearly if it is missing)

        # a batch's failure comes from psycopg itself, not through peewee
        self.failures = (*PostgresDialect.failures, psycopg.Error)
        return db

    def migrate(self, db: Any, create: bool) -> None:
        migrations.migrate_postgres(db, create, self.shown)

    def sql(self, sql: str) -> str:
        return _placeholders(sql)

    def values(self, params: Any) -> tuple[Any, ...]:
        return tuple(_clean(v) for v in params)

    def unusable(self, exc: BaseException) -> str:
        return self._postgres.unusable(exc, self._url)

    def cause(self, exc: BaseException) -> BaseException | None:
        return None  # the driver's own text may hold the URL's user name

    def later(self, exc: BaseException | None) -> str | None:
        if exc is None or not self._postgres.gone(exc):
            return None
        return (
            f"The connection to the PostgreSQL server at {self._postgres.server(self._url)} "
            "was lost, so the end of this answer is not saved yet: it is saved with the next "
            "thing you do once the server is back (or by the next chatrepl to open it)."
        )

    def ready(self, db: Any) -> None:
        """A connection that broke (the server restarted, the network dropped) is replaced by
        a new one."""
        if db.in_transaction() or db.is_closed():
            return
        if not db.is_connection_usable():
            try:
                db.close()
            except Exception:  # noqa: BLE001 - a dead connection may fail to close: forget it
                db._state.reset()

    @contextmanager
    def batch(self, db: Any) -> Iterator[None]:
        """psycopg's pipeline: the statements go out together, one round trip for all; after
        a failure the transaction it left open (a statement failed, the rest were skipped,
        COMMIT too) is rolled back, so the connection is ready for the next question."""
        connection = db.connection()
        try:
            with connection.pipeline() as self._pipeline:
                yield
        except BaseException:
            self._postgres.settle(connection)
            raise
        finally:
            self._pipeline = None

    def sync(self) -> None:
        if self._pipeline is not None:
            self._pipeline.sync()

    def search(self, ask: Ask, words: list[str], n: int, marks: tuple[str, str]) -> list[SearchHit]:
        pieces = [p for w in words for p in re.findall(r"\w+", w)]
        if not pieces:
            return []
        terms = [f"'{p}':*" for p in pieces]  # each piece also the start of a longer word
        rows = ask(
            _search_sql(len(terms), max(SEARCH_WINDOW, n)),
            (*terms, " & ".join(terms), n, _headline_options(marks)),
        )
        return [SearchHit(*row) for row in rows or []]


@functools.lru_cache(maxsize=256)
def _placeholders(sql: str) -> str:
    """SQLite's ``?`` parameters as psycopg's ``%s`` (outside quoted text), ``%`` escaped."""
    out = []
    for n, piece in enumerate(re.split(r"('(?:[^']|'')*')", sql)):
        piece = piece.replace("%", "%%")
        out.append(piece if n % 2 else piece.replace("?", "%s"))
    return "".join(out)


def _clean(value: Any) -> Any:
    """A parameter PostgreSQL takes: text without NUL characters (which it cannot store)."""
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value


def _search_sql(pieces: int, window: int) -> str:
    """Hits among the newest ``window`` turns holding every piece (each one a ``to_tsquery``
    term, found in any of the turn's parts by the ``parts_words`` index), best first, with a
    snippet: the parameters are the terms, all of them as one query, ``n`` and the headline's
    options."""
    schema = SCHEMA
    words = f"{schema}.part_words(p.kind, p.text, p.data)"
    matching = " INTERSECT ".join(
        f"SELECT DISTINCT p.turn_seq FROM parts p WHERE {migrations.SEARCHED_PARTS} "
        f"AND {words} @@ to_tsquery('{schema}.words', ?)"
        for _ in range(pieces)
    )
    document = "x.prompt || ' ' || x.response || ' ' || x.extra"
    return f"""
        WITH newest AS (
            SELECT turn_seq AS seq FROM ({matching}) m ORDER BY turn_seq DESC LIMIT {window}
        ),
        q AS (SELECT to_tsquery('{schema}.words', ?) AS q),
        best AS (
            SELECT x.seq, {document} AS document,
                ts_rank(to_tsvector('{schema}.words', left({document}, {3 * INDEXED_CHARS})),
                    q.q, 1) AS score
            FROM newest JOIN turn_texts x ON x.seq = newest.seq, q
            ORDER BY score DESC, x.seq DESC LIMIT ?
        )
        SELECT t.conversation_id, c.title, t.id, t.started,
            ts_headline('{schema}.words', best.document, q.q, ?)
        FROM best JOIN turns t ON t.seq = best.seq
        JOIN conversations c ON c.id = t.conversation_id, q
        ORDER BY best.score DESC, best.seq DESC"""


def _headline_options(marks: tuple[str, str]) -> str:
    """ts_headline's options: the marks around matches, about a dozen words of context."""
    start, stop = (m.replace('"', "'") for m in marks)
    return (
        f'StartSel="{start}", StopSel="{stop}", MaxWords=14, MinWords=6, ShortWord=0, '
        'MaxFragments=1, FragmentDelimiter=" … "'
    )

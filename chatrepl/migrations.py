"""The schema's history: forward-only migrations, each a named step with its SQLite and its
PostgreSQL twin, and the code that applies them once.

A database records the steps applied in a ``_migrations`` table (SQLite also in ``PRAGMA
user_version``); opening one runs the steps it lacks, in order, in one transaction, and refuses
a database that records a step this chatrepl does not know (written by a newer one), untouched.
A PostgreSQL store starts at the tree (schema 2): its first step does nothing.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import NewerDatabaseError, StoreError
from .lazypeewee import peewee as pw
from .postgres import SCHEMA
from .records import linear_parents
from .text import now

#: A peewee database (SQLite or PostgreSQL): what a step runs its statements on.
Db = Any
MIGRATE_LOCK = 0x63686174  # pg_advisory_xact_lock key: one migrating process at a time
#: How much of each column the PostgreSQL search index reads (a tsvector holds at most 1 MB).
INDEXED_CHARS = 100_000


# --- SQLite ----------------------------------------------------------------------------------


def m001_initial(db: Db) -> None:
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


def m002_tree(db: Db) -> None:
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


def _copy_v1_turns(db: Db) -> None:
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


def m003_by_conversation(db: Db) -> None:
    """A conversation's rows stored together: parts and calls keyed by conversation first, and
    the turns' outline (all but their texts) in one index, so opening a conversation reads a
    few hundred neighbouring pages, not thousands scattered over the whole file."""
    outline = ", ".join(_OUTLINE_3)
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


def m004_cache_tokens(db: Db) -> None:
    """Each model call's cached input: tokens read from the provider's prompt cache, and
    tokens written to it (priced differently from the rest of the input)."""
    for column in ("cache_read_tokens", "cache_write_tokens"):
        db.execute_sql(f"ALTER TABLE calls ADD COLUMN {column} INTEGER")


def m005_each_text_once(db: Db) -> None:
    """Each text once: a turn's prompt and answer live in its parts only (its own columns, kept
    for a turn whose texts differ from its parts, are NULL otherwise), and the full-text index
    reads them through the ``turn_words`` view instead of keeping copies, as one column (a
    third smaller than three). Two indexes go: the outline, a copy of every turn's row (small
    without its texts), and the one of parent links (a conversation's links are read at once)."""
    if sqlite3.sqlite_version_info < (3, 35):
        raise StoreError(
            f"Moving the database to schema 5 needs SQLite 3.35 or later (this Python has "
            f"{sqlite3.sqlite_version}): use a newer Python, or an older chatrepl."
        )
    for statement in (
        "DROP TRIGGER turns_ai",
        "DROP TRIGGER turns_ad",
        "DROP TRIGGER turns_au",
        "DROP TABLE turns_fts",
        "DROP INDEX turns_outline",
        "DROP INDEX turns_parent",
        "ALTER TABLE turns ADD COLUMN prompt_override TEXT",
        "ALTER TABLE turns ADD COLUMN response_override TEXT",
        f"""UPDATE turns SET prompt_override = prompt
            WHERE prompt IS NOT COALESCE({_joined("group_concat(p.text, '')", "prompt")}, '')""",
        f"""UPDATE turns SET response_override = response
            WHERE response IS NOT COALESCE({_joined("group_concat(p.text, '')", "text")}, '')""",
        "ALTER TABLE turns DROP COLUMN prompt",
        "ALTER TABLE turns DROP COLUMN response",
        "ALTER TABLE turns DROP COLUMN extra",
        _texts_view(
            "group_concat(p.text, '')",
            "group_concat(CASE WHEN p.kind = 'tool_result' THEN p.text "
            "WHEN NOT json_valid(p.data) THEN '' "
            "ELSE COALESCE(json_extract(p.data, '$.name'), '') || CASE WHEN "
            "json_extract(p.data, '$.command') IS NULL THEN '' ELSE char(10) || p.text END END, "
            "char(10))",
        ),
        """CREATE VIEW turn_words (seq, words) AS
            SELECT seq, prompt || char(10) || response
                || CASE extra WHEN '' THEN '' ELSE char(10) || extra END FROM turn_texts""",
        """CREATE VIRTUAL TABLE turns_fts USING fts5(
            words, content='turn_words', content_rowid='seq',
            tokenize='unicode61 remove_diacritics 2')""",
        "INSERT INTO turns_fts (turns_fts) VALUES ('rebuild')",
        # a turn's words leave the index with it (its parts are still there before it goes)
        """CREATE TRIGGER turns_bd BEFORE DELETE ON turns BEGIN
            INSERT INTO turns_fts (turns_fts, rowid, words)
            SELECT 'delete', seq, words FROM turn_words WHERE seq = old.seq;
        END""",
    ):
        db.execute_sql(statement)


def m006_search_index_merged(db: Db) -> None:
    """The search index merges its segments sooner (FTS5's ``automerge`` 2, not 4): each word
    held in fewer segments, a history's index a tenth smaller for the same merging work per
    turn (measured in ``benchmarks/bench_size.py``)."""
    db.execute_sql("INSERT INTO turns_fts (turns_fts, rank) VALUES ('automerge', 2)")


def _joined(aggregate: str, kind: str, turn: str = "turns") -> str:
    """The subquery that joins the texts of one kind of a turn's parts."""
    kinds = kind if kind.startswith("(") else f"('{kind}')"
    return (
        f"(SELECT {aggregate} FROM parts p WHERE p.conversation_id = {turn}.conversation_id "
        f"AND p.turn_seq = {turn}.seq AND p.kind IN {kinds})"
    )


def _texts_view(concat: str, extra: str) -> str:
    """``turn_texts``: each turn's prompt, answer and what search finds besides (tool results,
    attachment names, a command's output), made from its parts (``concat`` and ``extra``: the
    engine's aggregates)."""
    return f"""CREATE VIEW turn_texts (seq, conversation_id, prompt, response, extra) AS
        SELECT t.seq, t.conversation_id,
            COALESCE(t.prompt_override, {_joined(concat, "prompt", "t")}, ''),
            COALESCE(t.response_override, {_joined(concat, "text", "t")}, ''),
            COALESCE({_joined(extra, "('tool_result', 'attachment')", "t")}, '')
        FROM turns t"""


_TURN_KEY = (
    "FOREIGN KEY (conversation_id, turn_seq) REFERENCES turns (conversation_id, seq) "
    "ON DELETE CASCADE"
)
#: The columns of m003's ``turns_outline`` index: a turn's columns but its texts.
_OUTLINE_3 = [
    "id", "parent_id", "model", "system", "options", "input_tokens", "output_tokens", "status",
    "error", "started", "duration_ms", "ttft_ms", "kind",
]  # fmt: skip
#: What opening a conversation reads of each turn's row: every column (since schema 5 its
#: texts are in its parts; ``*_override`` hold a text only when it is not the one its parts
#: make, NULL otherwise).
OUTLINE_COLUMNS = [*_OUTLINE_3, "prompt_override", "response_override"]


# --- PostgreSQL ------------------------------------------------------------------------------


def pg_m001_initial(db: Db) -> None:
    """Nothing of schema 1: a PostgreSQL store starts at the tree directly."""


def pg_m002_tree(db: Db) -> None:
    words = _text_search_configuration(db)
    document = " || ' ' || ".join(
        f"left({c}, {INDEXED_CHARS})" for c in ("prompt", "response", "extra")
    )
    for statement in (
        """CREATE TABLE conversations (
            id TEXT COLLATE "C" PRIMARY KEY,
            title TEXT,
            title_source TEXT,
            model TEXT NOT NULL,
            system TEXT,
            created TEXT NOT NULL,
            updated TEXT NOT NULL,
            head TEXT COLLATE "C",
            forked_from TEXT COLLATE "C")""",
        "CREATE INDEX conversations_updated ON conversations (updated)",
        f"""CREATE TABLE turns (
            seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            id TEXT COLLATE "C" NOT NULL UNIQUE,
            conversation_id TEXT COLLATE "C" NOT NULL
                REFERENCES conversations (id) ON DELETE CASCADE,
            parent_id TEXT COLLATE "C",
            depth INTEGER NOT NULL DEFAULT 0,
            kind TEXT NOT NULL DEFAULT 'turn',
            model TEXT NOT NULL,
            prompt TEXT NOT NULL,
            system TEXT,
            response TEXT NOT NULL DEFAULT '',
            extra TEXT NOT NULL DEFAULT '',
            options TEXT NOT NULL DEFAULT '{{}}',
            input_tokens INTEGER,
            output_tokens INTEGER,
            status TEXT NOT NULL DEFAULT 'pending',
            error TEXT,
            started TEXT NOT NULL,
            duration_ms INTEGER,
            ttft_ms INTEGER,
            words tsvector GENERATED ALWAYS AS (to_tsvector('{words}', {document})) STORED)""",
        "CREATE INDEX turns_conversation ON turns (conversation_id, seq)",
        "CREATE INDEX turns_parent ON turns (parent_id)",
        "CREATE INDEX turns_words ON turns USING GIN (words)",
        """CREATE TABLE parts (
            turn_seq BIGINT NOT NULL REFERENCES turns (seq) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            call INTEGER NOT NULL DEFAULT 0,
            kind TEXT NOT NULL,
            text TEXT NOT NULL DEFAULT '',
            data TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (turn_seq, position))""",
        """CREATE TABLE calls (
            turn_seq BIGINT NOT NULL REFERENCES turns (seq) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            model TEXT NOT NULL,
            finish_reason TEXT,
            input_tokens INTEGER,
            output_tokens INTEGER,
            reasoning_tokens INTEGER,
            cost DOUBLE PRECISION,
            duration_ms INTEGER,
            ttft_ms INTEGER,
            PRIMARY KEY (turn_seq, idx))""",
        """CREATE TABLE attachments (
            sha256 TEXT PRIMARY KEY,
            mime TEXT NOT NULL,
            size BIGINT NOT NULL,
            content BYTEA NOT NULL)""",
    ):
        db.execute_sql(statement)


def _text_search_configuration(db: Db) -> str:
    """``chatrepl.words``: words as they are, lower-cased, accents folded where the server has
    the unaccent extension (created here if the user may)."""
    name = f"{SCHEMA}.words"
    db.execute_sql(f"CREATE TEXT SEARCH CONFIGURATION {name} (COPY = pg_catalog.simple)")
    unaccent = _unaccent_dictionary(db)
    if unaccent:
        db.execute_sql(
            f"ALTER TEXT SEARCH CONFIGURATION {name} ALTER MAPPING FOR "
            f"word, hword, hword_part, numword, numhword WITH {unaccent}, simple"
        )
    return name


def _unaccent_dictionary(db: Db) -> str | None:
    """The qualified name of the unaccent dictionary, installing the extension if possible."""
    find = (
        "SELECT quote_ident(n.nspname) || '.unaccent' FROM pg_ts_dict d "
        "JOIN pg_namespace n ON n.oid = d.dictnamespace WHERE d.dictname = 'unaccent' LIMIT 1"
    )
    row = db.execute_sql(find).fetchone()
    if row:
        return str(row[0])
    try:
        with db.atomic():  # a savepoint: a refusal must not abort the migration
            db.execute_sql(f"CREATE EXTENSION IF NOT EXISTS unaccent SCHEMA {SCHEMA}")
    except pw.DatabaseError:
        return None
    row = db.execute_sql(find).fetchone()
    return str(row[0]) if row else None


def pg_m003_by_conversation(db: Db) -> None:
    """Parts and calls keyed by conversation first, as in SQLite (the store's statements are
    the same for both), each turn's key the pair (conversation, seq)."""
    statements = [
        "CREATE UNIQUE INDEX turns_in_conversation ON turns (conversation_id, seq)",
        "DROP INDEX turns_conversation",
    ]
    for table, position in (("parts", "position"), ("calls", "idx")):
        statements += [
            f'ALTER TABLE {table} ADD COLUMN conversation_id TEXT COLLATE "C"',
            f"""UPDATE {table} x SET conversation_id = t.conversation_id FROM turns t
                WHERE t.seq = x.turn_seq""",
            f"ALTER TABLE {table} ALTER COLUMN conversation_id SET NOT NULL",
            f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey",
            f"ALTER TABLE {table} DROP CONSTRAINT {table}_turn_seq_fkey",
            f"ALTER TABLE {table} ADD PRIMARY KEY (conversation_id, turn_seq, {position})",
            f"""ALTER TABLE {table} ADD FOREIGN KEY (conversation_id, turn_seq)
                REFERENCES turns (conversation_id, seq) ON DELETE CASCADE""",
        ]
    for statement in statements:
        db.execute_sql(statement)


def pg_m004_cache_tokens(db: Db) -> None:
    """As SQLite's."""
    m004_cache_tokens(db)


def pg_m005_each_text_once(db: Db) -> None:
    """As SQLite's; the search index is an expression index over the parts (a GIN index of
    ``part_words``), no longer a column of turns holding their words."""
    concat = "string_agg(p.text, '' ORDER BY p.position)"
    for statement in (
        "DROP INDEX turns_words",
        "ALTER TABLE turns DROP COLUMN words",
        "ALTER TABLE turns ADD COLUMN prompt_override TEXT",
        "ALTER TABLE turns ADD COLUMN response_override TEXT",
        f"""UPDATE turns SET prompt_override = prompt
            WHERE prompt IS DISTINCT FROM COALESCE({_joined(concat, "prompt")}, '')""",
        f"""UPDATE turns SET response_override = response
            WHERE response IS DISTINCT FROM COALESCE({_joined(concat, "text")}, '')""",
        "ALTER TABLE turns DROP COLUMN prompt, DROP COLUMN response, DROP COLUMN extra",
        _texts_view(
            concat,
            "string_agg(CASE p.kind WHEN 'tool_result' THEN p.text "
            "ELSE COALESCE(p.data::json ->> 'name', '') || CASE WHEN p.data::json ->> 'command' "
            "IS NULL THEN '' ELSE E'\\n' || p.text END END, E'\\n' ORDER BY p.position)",
        ),
        f"""CREATE FUNCTION {SCHEMA}.part_words(kind TEXT, body TEXT, data TEXT)
            RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT to_tsvector('{SCHEMA}.words', left(CASE WHEN kind = 'attachment'
                THEN COALESCE(data::json ->> 'name', '') || CASE WHEN data::json ->> 'command'
                    IS NULL THEN '' ELSE E'\\n' || body END
                ELSE body END, {INDEXED_CHARS}))
            $$""",
        f"""CREATE INDEX parts_words ON parts USING GIN ({SCHEMA}.part_words(kind, text, data))
            WHERE {SEARCHED_PARTS}""",
    ):
        db.execute_sql(statement)


def pg_m006_search_index_merged(db: Db) -> None:
    """Nothing: PostgreSQL's GIN index has no segments to merge."""


#: The parts search looks in (the PostgreSQL index covers these only).
SEARCHED_PARTS = "kind IN ('prompt', 'text', 'tool_result', 'attachment')"


@dataclass(frozen=True)
class Migration:
    """One step of the schema: its name (recorded once applied) and what it does on each
    engine."""

    name: str
    sqlite: Callable[[Db], None]
    postgres: Callable[[Db], None]


MIGRATIONS = [
    Migration("m001_initial", m001_initial, pg_m001_initial),
    Migration("m002_tree", m002_tree, pg_m002_tree),
    Migration("m003_by_conversation", m003_by_conversation, pg_m003_by_conversation),
    Migration("m004_cache_tokens", m004_cache_tokens, pg_m004_cache_tokens),
    Migration("m005_each_text_once", m005_each_text_once, pg_m005_each_text_once),
    Migration("m006_search_index_merged", m006_search_index_merged, pg_m006_search_index_merged),
]
SCHEMA_VERSION = len(MIGRATIONS)
_NAMES = [m.name for m in MIGRATIONS]


# --- applying them -----------------------------------------------------------------------------


def sqlite_version(path: Path, read_only: bool) -> tuple[int, set[str]]:
    """The schema version of the SQLite file at ``path`` and its tables, read without writing
    (``read_only``: its folder cannot be written, so not even a WAL index)."""
    ro = "mode=ro&immutable=1" if read_only else "mode=ro"
    con = sqlite3.connect(f"{path.resolve().as_uri()}?{ro}", uri=True)
    try:
        version = con.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    finally:
        con.close()
    return int(version), tables


def check_sqlite(path: Path, version: int, tables: set[str]) -> None:
    """Refuse a database written by a newer chatrepl, or an SQLite file that is not
    chatrepl's, before anything writes to it."""
    if version > SCHEMA_VERSION:
        raise NewerDatabaseError(
            f"{path} was written by a newer chatrepl (schema {version}, this one knows "
            f"{SCHEMA_VERSION}): upgrade chatrepl; the database was left untouched."
        )
    if version == 0 and tables and "conversations" not in tables:
        raise StoreError(
            f"{path} is an SQLite database but not chatrepl's: give another --db path."
        )


def migrate_sqlite(db: Db, shown: object) -> list[str]:
    """Bring an SQLite database up to date (one transaction); the steps applied."""
    version = db.execute_sql("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return []
    with db.atomic():
        version = db.execute_sql("PRAGMA user_version").fetchone()[0] or _recorded_version(db)
        if version > SCHEMA_VERSION:
            raise NewerDatabaseError(f"{shown} was written by a newer chatrepl: upgrade chatrepl.")
        db.execute_sql(
            "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied TEXT)"
        )
        for migration in MIGRATIONS[version:]:
            migration.sqlite(db)
            db.execute_sql(
                "INSERT INTO _migrations (name, applied) VALUES (?, ?)", (migration.name, now())
            )
        db.execute_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return [m.name for m in MIGRATIONS[version:]]


def _recorded_version(db: Db) -> int:
    """The schema version ``_migrations`` records: a copy restored from ``sqlite3 .dump`` keeps
    that table but not ``PRAGMA user_version``."""
    if not db.execute_sql("SELECT 1 FROM sqlite_master WHERE name = '_migrations'").fetchone():
        return 0
    names = {r[0] for r in db.execute_sql("SELECT name FROM _migrations").fetchall()}
    if names - set(_NAMES):
        return SCHEMA_VERSION + 1  # applied by a newer chatrepl
    return len(names)


#: The migrations a PostgreSQL store records, in one question that cannot fail whether the
#: table exists or not (``query_to_xml`` reads it only when it does): an up-to-date store is
#: told at start-up in one round trip to a server far away.
_APPLIED = f"""SELECT CASE WHEN to_regclass('{SCHEMA}._migrations') IS NOT NULL
    THEN query_to_xml('SELECT name FROM {SCHEMA}._migrations', false, true, '') END"""


def migrate_postgres(db: Db, create: bool, shown: str) -> None:
    """Bring a PostgreSQL store up to date; refuse one written by a newer chatrepl, untouched."""

    def applied() -> list[str] | None:
        row = db.execute_sql(f"SELECT to_regclass('{SCHEMA}._migrations')").fetchone()
        if row[0] is None:
            return None
        return checked([r[0] for r in db.execute_sql(f"SELECT name FROM {SCHEMA}._migrations")])

    def checked(names: list[str]) -> list[str]:
        if set(names) - set(_NAMES):
            raise NewerDatabaseError(
                f"{shown} was written by a newer chatrepl (migrations "
                f"{', '.join(sorted(set(names) - set(_NAMES)))}): upgrade chatrepl; the "
                "database was left untouched."
            )
        return names

    try:
        xml = db.execute_sql(_APPLIED).fetchone()[0]
        names = None if xml is None else checked(re.findall(r"<name>([^<]*)</name>", xml))
    except pw.NotSupportedError:  # a server built without XML: the table, then its rows
        names = applied()
    if names is not None and set(_NAMES) <= set(names):
        return
    if names is None and not create:
        raise StoreError(f"There is no chatrepl database at {shown} yet: nothing saved.")
    with db.atomic():
        db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
        db.execute_sql(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        db.execute_sql(
            f"CREATE TABLE IF NOT EXISTS {SCHEMA}._migrations (name TEXT PRIMARY KEY, applied TEXT)"
        )
        names = applied() or []
        for migration in MIGRATIONS:
            if migration.name not in names:
                migration.postgres(db)
                db.execute_sql(
                    f"INSERT INTO {SCHEMA}._migrations (name, applied) VALUES (%s, %s)",
                    (migration.name, now()),
                )

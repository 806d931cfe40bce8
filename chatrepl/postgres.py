"""PostgreSQL as chatrepl's store: the URL, the connection, the schema and the SQL that differs
from SQLite.

Imported by ``chatrepl.store`` only for a ``postgresql://`` URL; psycopg (the ``postgres``
extra) is imported only then. Tables live in their own schema, ``chatrepl``, so a database shared
with other programs (Supabase's, say) keeps them apart. Full-text search is a generated
``tsvector`` column with a GIN index, through a text search configuration that folds accents
(``unaccent``) where the server has that extension, and ``simple`` (no stemming, as SQLite's
FTS5 here) otherwise.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, urlsplit

from .errors import NewerDatabaseError, StoreError
from .lazypeewee import peewee as pw

SCHEMA = "chatrepl"
CONNECT_TIMEOUT_S = 10
MIGRATE_LOCK = 0x63686174  # pg_advisory_xact_lock key: one migrating process at a time
#: How much of each column the search index reads (a tsvector holds at most 1 MB).
INDEXED_CHARS = 100_000


# --- the URL -----------------------------------------------------------------------------------


def is_url(target: object) -> bool:
    """Whether ``target`` names a PostgreSQL database rather than an SQLite file."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def _netloc(url: str) -> str:
    return urlsplit(url).netloc.rpartition("@")[2]


def server(url: str) -> str:
    """``host:port`` of the URL (never its user or password)."""
    hosts = _netloc(url)
    if not hosts:
        query = dict(p.partition("=")[::2] for p in urlsplit(url).query.split("&") if p)
        hosts = unquote(query.get("host", "")) or "localhost"
    if "," not in hosts and not re.search(r":\d+$", hosts):
        hosts += ":5432"
    return hosts


def display(url: str) -> str:
    """The URL as chatrepl shows it: ``postgresql://host:port/dbname``, no credentials, no
    options."""
    return f"postgresql://{server(url)}{urlsplit(url).path}"


def secrets(url: str) -> list[str]:
    """The user and password in the URL, as written and decoded: never to be shown."""
    userinfo = urlsplit(url).netloc.rpartition("@")[0]
    found: list[str] = []
    for piece in userinfo.split(":", 1) if userinfo else []:
        found += [piece, unquote(piece)]
    query = dict(p.partition("=")[::2] for p in urlsplit(url).query.split("&") if p)
    for key in ("password", "user"):
        if query.get(key):
            found += [query[key], unquote(query[key])]
    return sorted({s for s in found if s}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` without the URL's user and password."""
    for secret in secrets(url):
        text = text.replace(secret, "…")
    return text


# --- the connection ----------------------------------------------------------------------------


class _Psycopg3(pw.Psycopg3Adapter):
    """peewee's psycopg 3 adapter, given the psycopg that chatrepl imported (peewee itself was
    imported without it: see ``chatrepl.lazypeewee``)."""

    def __init__(self) -> None:
        import psycopg
        from psycopg.pq import TransactionStatus

        super().__init__()
        self.psycopg = psycopg
        self.txn_idle = TransactionStatus.IDLE
        self.txn_inerror = TransactionStatus.INERROR
        self.txn_unknown = TransactionStatus.UNKNOWN

    def check_driver(self) -> None:
        pass

    def get_binary_type(self) -> Any:
        return self.psycopg.Binary

    def connect(self, db: Any, **params: Any) -> Any:
        params.setdefault("conninfo", db.database)
        return self.psycopg.connect(**params)


class Database(pw.PostgresqlDatabase):
    """peewee's PostgreSQL database on psycopg 3, with chatrepl's schema first on the path."""

    def init(self, database: str, **kwargs: Any) -> None:
        super().init(database, **kwargs)
        self._adapter = _Psycopg3()

    def _initialize_connection(self, conn: Any) -> None:
        conn.execute(f"SET search_path TO {SCHEMA}")


def open_database(url: str) -> Database:
    """A (not yet connected) peewee database for ``url``; StoreError without psycopg."""
    try:
        import psycopg  # noqa: F401 - only to say clearly when the extra is missing
    except ImportError:
        raise StoreError(
            "A postgresql:// database needs the postgres extra: pip install 'chatrepl[postgres]'."
        ) from None
    if not hasattr(pw, "Psycopg3Adapter"):
        raise StoreError(
            f"A postgresql:// database needs peewee 4 or later (this is {pw.__version__}): "
            "pip install 'chatrepl[postgres]'."
        )
    params: dict[str, Any] = {}
    if "connect_timeout" not in url:
        params["connect_timeout"] = CONNECT_TIMEOUT_S
    # One connection per Store, shared by its threads (the store serialises them): a flusher
    # thread per answer must not open a connection of its own to a server far away.
    return Database(url, thread_safe=False, **params)


def unusable(exc: BaseException, url: str) -> str:
    """One sentence for a failure of the server at ``url``, without its credentials."""
    text = str(exc)
    low = text.lower()
    where = server(url)
    name = urlsplit(url).path.lstrip("/") or "(the default)"
    if "password" in low or "authentication" in low or "no pg_hba.conf entry" in low:
        return (
            f"The PostgreSQL server at {where} refused the user name or password given: "
            "check them in the URL, ~/.pgpass or PGPASSWORD."
        )
    if "database" in low and "does not exist" in low:
        return (
            f"The PostgreSQL server at {where} has no database {scrub(name, url)}: "
            "create it (createdb) or fix the URL."
        )
    if "permission denied" in low:
        return (
            f"The PostgreSQL user given for {where} may not create or change chatrepl's "
            f"tables (schema {SCHEMA}): grant it CREATE on the database."
        )
    if any(
        s in low
        for s in (
            "connection refused",
            "could not connect",
            "connection failed",
            "timeout expired",
            "could not translate host",
            "no route to host",
            "network is unreachable",
            "name or service not known",
        )
    ):
        return (
            f"Cannot reach the PostgreSQL server at {where}: is it running, and are the host "
            "and port right? Nothing was lost."
        )
    if any(
        s in low
        for s in ("server closed", "terminating connection", "connection is lost", "consuming")
    ) or ("connection" in low and "closed" in low):
        return (
            f"The connection to the PostgreSQL server at {where} was lost: try again once it "
            "is back."
        )
    first = scrub(text.strip().splitlines()[0] if text.strip() else type(exc).__name__, url)
    return f"The PostgreSQL database at {where} failed: {first}."


def lost_connection(exc: BaseException) -> bool:
    """Whether ``exc`` leaves the connection unusable (to be dropped and opened again)."""
    return isinstance(exc, pw.OperationalError | pw.InterfaceError)


# --- the schema --------------------------------------------------------------------------------


def _m001_initial(db: Database) -> None:
    """Nothing of schema 1: a PostgreSQL store starts at the tree directly."""


def _m002_tree(db: Database) -> None:
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


def _text_search_configuration(db: Database) -> str:
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


def _unaccent_dictionary(db: Database) -> str | None:
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


def _m003_by_conversation(db: Database) -> None:
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


def _m004_cache_tokens(db: Database) -> None:
    """Cache reads and writes per model call (TEMPORARY in the cost branch, as SQLite's)."""
    for column in ("cache_read_tokens", "cache_write_tokens"):
        db.execute_sql(f"ALTER TABLE calls ADD COLUMN {column} INTEGER")


#: Migrations by name, as SQLite's (a later migration must come with its PostgreSQL twin).
MIGRATIONS = [
    ("m001_initial", _m001_initial),
    ("m002_tree", _m002_tree),
    ("m003_by_conversation", _m003_by_conversation),
    ("m004_cache_tokens", _m004_cache_tokens),
]


def migrate(db: Database, create: bool, shown: str) -> None:
    """Bring the schema up to date; refuse one written by a newer chatrepl, untouched."""
    known = [name for name, _ in MIGRATIONS]

    def applied() -> list[str] | None:
        row = db.execute_sql(f"SELECT to_regclass('{SCHEMA}._migrations')").fetchone()
        if row[0] is None:
            return None
        names = [r[0] for r in db.execute_sql(f"SELECT name FROM {SCHEMA}._migrations")]
        if set(names) - set(known):
            raise NewerDatabaseError(
                f"{shown} was written by a newer chatrepl (migrations "
                f"{', '.join(sorted(set(names) - set(known)))}): upgrade chatrepl; the "
                "database was left untouched."
            )
        return names

    names = applied()
    if names is not None and set(known) <= set(names):
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
        from .text import now

        for name, migration in MIGRATIONS:
            if name not in names:
                migration(db)
                db.execute_sql(
                    f"INSERT INTO {SCHEMA}._migrations (name, applied) VALUES (%s, %s)",
                    (name, now()),
                )


# --- the SQL that differs -----------------------------------------------------------------------


def placeholders(sql: str) -> str:
    """SQLite's ``?`` parameters as psycopg's ``%s`` (outside quoted text), ``%`` escaped."""
    out = []
    for n, piece in enumerate(re.split(r"('(?:[^']|'')*')", sql)):
        piece = piece.replace("%", "%%")
        out.append(piece if n % 2 else piece.replace("?", "%s"))
    return "".join(out)


def clean(value: Any) -> Any:
    """A parameter PostgreSQL takes: text without NUL characters (which it cannot store)."""
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value


def tsquery(words: list[str]) -> str | None:
    """The words as a ``to_tsquery`` text: each word's pieces, every one required, each also
    matching as the start of a longer word."""
    pieces = [p for w in words for p in re.findall(r"\w+", w)]
    return " & ".join(f"'{p}':*" for p in pieces) or None


def search_sql(window: int) -> str:
    """Hits among the newest ``window`` matching turns, best first, with a snippet."""
    document = " || ' ' || ".join(f"t.{c}" for c in ("prompt", "response", "extra"))
    return f"""
        WITH q AS (SELECT to_tsquery('{SCHEMA}.words', ?) AS q),
        newest AS (
            SELECT t.seq FROM turns t, q WHERE t.words @@ q.q ORDER BY t.seq DESC LIMIT {window}
        ),
        best AS (
            SELECT t.seq, ts_rank(t.words, q.q, 1) AS score
            FROM newest JOIN turns t ON t.seq = newest.seq, q
            ORDER BY score DESC, t.seq DESC LIMIT ?
        )
        SELECT t.conversation_id, c.title, t.id, t.started,
            ts_headline('{SCHEMA}.words', {document}, q.q, ?)
        FROM best JOIN turns t ON t.seq = best.seq
        JOIN conversations c ON c.id = t.conversation_id, q
        ORDER BY best.score DESC, best.seq DESC"""


def headline_options(marks: tuple[str, str]) -> str:
    """ts_headline's options: the marks around matches, about a dozen words of context."""
    start, stop = (m.replace('"', "'") for m in marks)
    return (
        f'StartSel="{start}", StopSel="{stop}", MaxWords=14, MinWords=6, ShortWord=0, '
        'MaxFragments=1, FragmentDelimiter=" … "'
    )

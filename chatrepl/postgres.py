"""PostgreSQL as chatrepl's store: the URL (whose credentials are never shown), the connection,
and the one sentence a failure becomes.

psycopg (the ``postgres`` extra) is imported only when a ``postgresql://`` store is opened.
Tables live in their own schema, ``chatrepl``, so a database shared with other programs
(Supabase's, say) keeps them apart. The tables themselves are made by ``chatrepl.migrations``;
what the store's SQL says differently here (parameters, row locks, full-text search) is
``chatrepl.dialect.PostgresDialect``.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any
from urllib.parse import unquote, urlsplit

from .errors import StoreError
from .lazypeewee import peewee as pw

SCHEMA = "chatrepl"
CONNECT_TIMEOUT_S = 10


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
    """peewee's PostgreSQL database on psycopg 3, with chatrepl's schema first on the path.

    The path is given with the connection (its ``options``), which costs no round trip; a
    pooler that refuses ``options`` (PgBouncer, some cloud proxies) gets it as a ``SET`` after
    connecting instead.
    """

    def init(self, database: str | None, **kwargs: Any) -> None:  # type: ignore[override]
        super().init(database, **kwargs)
        self._adapter = _Psycopg3()
        self._set_path = False  # the pooler refused the path as an option: SET it

    def _connect(self) -> Any:
        # (peewee's own method: its type stubs leave the private half of Database out)
        try:
            return super()._connect()  # type: ignore[misc]
        except Exception as exc:
            if "unsupported startup parameter" not in str(exc) or self._set_path:
                raise
            self.connect_params.pop("options", None)
            self._set_path = True
            return super()._connect()  # type: ignore[misc]

    def _initialize_connection(self, conn: Any) -> None:
        if self._set_path:
            conn.execute(f"SET search_path TO {SCHEMA}")


def open_database(url: str) -> Database:
    """A (not yet connected) peewee database for ``url``; StoreError without psycopg."""
    try:
        import psycopg
    except ImportError:
        raise StoreError(
            "A postgresql:// database needs the postgres extra: pip install 'chatrepl[postgres]'."
        ) from None
    if not hasattr(pw, "Psycopg3Adapter"):
        raise StoreError(
            f"A postgresql:// database needs peewee 4 or later (this is {getattr(pw, '__version__', 'an older one')}): "
            "pip install 'chatrepl[postgres]'."
        )
    from psycopg.conninfo import conninfo_to_dict

    params: dict[str, Any] = {}
    if "connect_timeout" not in url:
        params["connect_timeout"] = CONNECT_TIMEOUT_S
    try:
        given = str(conninfo_to_dict(url).get("options") or "")
    except psycopg.Error:
        given = ""  # a URL psycopg cannot read: connecting says so, in one sentence
    params["options"] = f"{given} -c search_path={SCHEMA}".strip()
    # psycopg logs (as a warning) the second error of a batch that failed, which would print
    # on the terminal where logging is not set up: the first error is the one told
    logging.getLogger("psycopg").addHandler(logging.NullHandler())
    # One connection per Store, shared by its threads (the store serialises them): a flusher
    # thread per answer must not open a connection of its own to a server far away.
    return Database(url, thread_safe=False, **params)


def _unreachable(low: str) -> bool:
    return any(
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
    )


def _lost(low: str) -> bool:
    return any(
        s in low
        for s in ("server closed", "terminating connection", "connection is lost", "consuming")
    ) or ("connection" in low and "closed" in low)


def gone(exc: BaseException) -> bool:
    """Whether ``exc`` says the server cannot be reached or the connection was lost (what
    passes once the server or the network is back)."""
    low = str(exc).lower()
    return _unreachable(low) or _lost(low)


def settle(connection: Any) -> None:
    """Roll back what a failed batch left open on ``connection``, if it is still there."""
    from psycopg.pq import TransactionStatus

    if connection.closed:
        return
    if connection.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
        with contextlib.suppress(Exception):  # a connection that broke is replaced on next use
            connection.rollback()


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
    if _unreachable(low):
        return (
            f"Cannot reach the PostgreSQL server at {where}: is it running, and are the host "
            "and port right? Nothing was lost."
        )
    if _lost(low):
        return (
            f"The connection to the PostgreSQL server at {where} was lost: try again once it "
            "is back."
        )
    first = scrub(text.strip().splitlines()[0] if text.strip() else type(exc).__name__, url)
    return f"The PostgreSQL database at {where} failed: {first}."

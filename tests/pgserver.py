"""A real PostgreSQL server for the tests: the one ``CHATREPL_TEST_PG`` names, else a throwaway
cluster started here (initdb into a temporary folder, in memory where there is room, a free
loopback port, fsync off).

Run as root, the cluster runs as the ``postgres`` user (PostgreSQL refuses root). Tests that need
a server skip, with the reason, only when none can be had: no psycopg, or no PostgreSQL
binaries (``.ci/run`` installs Debian's ``postgresql`` package).
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

#: The role the tests' databases belong to: not a superuser, as on a hosted service.
USER, PASSWORD = "chatter", "S3cret-pa55word"
ADMIN_PASSWORD = "admin-Pa55word"
_names = itertools.count(1)


def _bindir() -> str | None:
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(folder, "initdb")):
            return folder
    found = shutil.which("initdb")
    return os.path.dirname(found) if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A PostgreSQL server the tests may create databases on."""

    def __init__(self, admin_url: str, folder: Path | None = None, bindir: str | None = None):
        self.admin_url = admin_url
        self.folder, self.bindir = folder, bindir
        parts = urlsplit(admin_url)
        self.host, self.port = parts.hostname or "localhost", parts.port or 5432
        self.owner = None if folder is None else USER

    def admin(self, sql: str, params: tuple = (), database: str | None = None) -> list:
        import psycopg

        url = self.admin_url
        if database:
            url = urlunsplit(urlsplit(url)._replace(path=f"/{database}"))
        with psycopg.connect(url, autocommit=True) as con:
            cur = con.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def url(self, database: str, user: str | None = None, password: str | None = None) -> str:
        """A URL to ``database`` as the tests' role (or as ``user``:``password``)."""
        parts = urlsplit(self.admin_url)
        if self.owner or user:
            netloc = f"{user or USER}:{password or PASSWORD}@{self.host}:{self.port}"
            parts = parts._replace(netloc=netloc)
        return urlunsplit(parts._replace(path=f"/{database}"))

    def new_database(self) -> str:
        """A fresh empty database; its URL (with credentials)."""
        name = f"chatrepl_test_{os.getpid()}_{next(_names)}"
        owner = f" OWNER {self.owner}" if self.owner else ""
        self.admin(f"CREATE DATABASE \"{name}\"{owner} TEMPLATE template0 ENCODING 'UTF8'")
        return self.url(name)

    def stop(self) -> None:
        if self.folder is None:
            return
        _as_postgres(
            [f"{self.bindir}/pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "stop"],
            check=False,
        )
        shutil.rmtree(self.folder, ignore_errors=True)

    def restart(self) -> None:
        """Stop and start the server again (a server going away under a running client)."""
        assert self.folder is not None, "only a server started here can be restarted"
        data = str(self.folder / "data")
        _as_postgres([f"{self.bindir}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"])
        self.start_again()

    def pause(self) -> None:
        """Stop the server until :meth:`start_again`."""
        assert self.folder is not None
        data = str(self.folder / "data")
        _as_postgres([f"{self.bindir}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"])

    def start_again(self) -> None:
        assert self.folder is not None
        _start(self.bindir, self.folder, self.port)


def _as_postgres(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=120)


def _start(bindir: str | None, folder: Path, port: int) -> None:
    # fsync off: a killed server loses nothing the OS holds. Not synchronous_commit=off: that
    # would lose the last commits when a test stops the server abruptly.
    options = (
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c full_page_writes=off -c max_connections=200"
    )
    _as_postgres(
        [
            f"{bindir}/pg_ctl",
            "-D",
            str(folder / "data"),
            "-o",
            options,
            "-l",
            str(folder / "log"),
            "-w",
            "start",
        ]
    )


def _memory_folder() -> str | None:
    """``/dev/shm`` when it is a writable file system in memory with room to spare, else None.

    Each test's database is a copy of template0 (~8 MB, and as much again in WAL): a session
    leaves about half a gigabyte, and on a busy disk deleting it at the end took 18 to 46 s
    (each test writing its own copy slows too). In memory it costs neither.
    """
    try:
        stat = os.statvfs("/dev/shm")
    except OSError:
        return None
    room = stat.f_bavail * stat.f_frsize
    return "/dev/shm" if room > 4 * 2**30 and os.access("/dev/shm", os.W_OK) else None


def start_server() -> Server:
    """A new cluster in a temporary folder (in memory where there is room: /dev/shm); raises
    RuntimeError with the reason if it cannot."""
    bindir = _bindir()
    if bindir is None:
        raise RuntimeError("no PostgreSQL binaries (initdb) here: apt-get install postgresql")
    folder = Path(tempfile.mkdtemp(prefix="chatrepl-pg-", dir=_memory_folder()))
    folder.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    pwfile = folder / "pw"
    pwfile.write_text(ADMIN_PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(pwfile, "postgres", "postgres")
    try:
        _as_postgres(
            [
                f"{bindir}/initdb",
                "-D",
                str(folder / "data"),
                "-U",
                "postgres",
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ]
        )
        port = _free_port()
        _start(bindir, folder, port)
    except (subprocess.CalledProcessError, OSError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL: {detail.strip()[:300]}") from exc
    server = Server(
        f"postgresql://postgres:{ADMIN_PASSWORD}@127.0.0.1:{port}/postgres", folder, bindir
    )
    server.admin(f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'")
    return server


@contextlib.contextmanager
def postgres_server() -> Iterator[Server]:
    """``CHATREPL_TEST_PG`` (a URL whose user may create databases), else one started here."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed: pip install -e '.[postgres]'")
    if url := os.environ.get("CHATREPL_TEST_PG"):
        yield Server(url)
        return
    try:
        server = start_server()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Server]:
    """The PostgreSQL server of this test session."""
    with postgres_server() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: Server) -> str:
    """A fresh empty PostgreSQL database for one test: its URL, credentials included."""
    return pg_server.new_database()

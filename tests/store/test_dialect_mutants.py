"""What ``chatrepl/dialect.py`` promises that its mutation run found unchecked
(benchmarks/mutation/RESULTS.md, ``dialect``).

Each test says what a library caller or the user can observe, in this process (mutmut ties a
test to the functions it runs here, not in a child process): a store opened in a read-only
folder, or on a file it may not read, by a thread without root's power to ignore file modes;
the sentence a refusal gives and the file it names; the notice after a migration and whether
the file was VACUUMed; the lock a write transaction holds from its first statement; which of a
chain of database errors is told; and, on PostgreSQL, the database a refusal names.
"""

from __future__ import annotations

import ctypes
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import old_schemas
import pytest
from smalldisk import fill, small_disk
from test_store_migrations import history

import chatrepl
from chatrepl import dialect
from chatrepl.dialect import BUSY_TIMEOUT_S, first_failure
from chatrepl.errors import NewerDatabaseError, StoreError
from chatrepl.lazypeewee import peewee as pw
from chatrepl.store import Store

pytest_plugins = ("pgserver",)
pytestmark = pytest.mark.timeout(120)


def a_database(db: Path) -> str:
    """A database with one conversation ("goats climb trees"), closed; its id."""
    store = Store(db)
    c = chatrepl.get_model("echo").conversation(store=store)
    c.prompt("goats climb trees").text()
    cid = store.last_id()
    store.close()
    assert cid is not None
    return cid


# --- without root's power over file modes, in this process -------------------------------------

_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _drop_dac_override() -> None:
    """Take from this thread (Linux keeps capabilities per thread) root's power to ignore file
    modes, so it meets a read-only folder as a user does. Nothing to do for a user."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    header, data = _CapHeader(0x20080522, 0), (_CapData * 2)()  # _LINUX_CAPABILITY_VERSION_3
    assert libc.capget(ctypes.byref(header), data) == 0, os.strerror(ctypes.get_errno())
    keep = ~((1 << _CAP_DAC_OVERRIDE) | (1 << _CAP_DAC_READ_SEARCH))
    data[0].effective &= keep
    data[0].permitted &= keep  # access() gives root its permitted set back
    # capset(2) changes the calling thread only (unlike setuid, which glibc applies to all)
    assert libc.capset(ctypes.byref(header), data) == 0, os.strerror(ctypes.get_errno())


def as_a_user(work: Callable[[], Any]) -> Any:
    """``work()``'s result (or its exception, raised here), run in a thread of this process
    that file modes bind."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            _drop_dac_override()
            out["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            out["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_store_in_a_read_only_folder_is_read_and_not_written(tmp_path: Path) -> None:
    # kills SqliteDialect.__init__ 10, 23, 26 and SqliteDialect.database 30: the folder's mode
    # must make the store read-only, and the file be read as it stands (no -wal, no -shm)
    folder = tmp_path / "data"
    folder.mkdir()
    db = folder / "chat.db"
    cid = a_database(db)
    folder.chmod(0o555)
    try:
        before = listing(folder)

        def use() -> tuple[Any, ...]:
            store = Store(db, create=False)
            found = [h.conversation_id for h in store.search("goat")]
            prompts = [t.prompt for t in store.turns(cid)]
            with pytest.raises(StoreError) as refused:
                store.set_title(cid, "a new title")
            return store.read_only, store.last_id(), found, prompts, str(refused.value)

        read_only, last, found, prompts, refusal = as_a_user(use)
        assert read_only is True
        assert (last, found, prompts) == (cid, [cid], ["goats climb trees"])
        assert refusal == (
            f"Cannot write to {db}: its folder is read-only (it can be listed, searched and "
            "shown, not changed)."
        )
        assert listing(folder) == before
    finally:
        folder.chmod(0o700)


def test_a_store_in_a_writable_folder_says_it_is_not_read_only(tmp_path: Path) -> None:
    # kills SqliteDialect.__init__ 23 (read_only None): Store.read_only is a bool
    db = tmp_path / "chat.db"
    a_database(db)
    assert Store(db).read_only is False
    assert Store(db, create=False).read_only is False


def test_a_database_file_that_cannot_be_opened_is_one_sentence_about_its_permissions(
    tmp_path: Path,
) -> None:
    # kills SqliteDialect.unusable 29, 37, 38: SQLite's "unable to open database file"
    db = tmp_path / "chat.db"
    a_database(db)
    db.chmod(0o000)
    try:
        with pytest.raises(StoreError) as refused:
            as_a_user(lambda: Store(db, create=False))
    finally:
        db.chmod(0o600)
    assert str(refused.value) == f"Cannot write to {db}: check its permissions and free space."


# --- refusals name the file ---------------------------------------------------------------------


def test_a_foreign_sqlite_file_is_refused_by_its_name(tmp_path: Path) -> None:
    # kills SqliteDialect.__init__ 16 (check_sqlite told no path)
    db = tmp_path / "accounts.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE accounts (name TEXT, balance INTEGER)")
    con.commit()
    con.close()
    with pytest.raises(StoreError) as refused:
        Store(db)
    assert str(refused.value) == (
        f"{db} is an SQLite database but not chatrepl's: give another --db path."
    )


def test_a_restored_copy_a_newer_chatrepl_wrote_is_refused_by_its_name(tmp_path: Path) -> None:
    # kills SqliteDialect.migrate 3: a copy restored with ``sqlite3 .dump`` has user_version 0,
    # and its _migrations table names a step this chatrepl does not know
    db = tmp_path / "chat.db"
    a_database(db)
    con = sqlite3.connect(db)
    con.execute("PRAGMA user_version = 0")
    con.execute("INSERT INTO _migrations (name, applied) VALUES ('m999_from_the_future', '')")
    con.commit()
    con.close()
    with pytest.raises(NewerDatabaseError) as refused:
        Store(db)
    assert str(refused.value) == f"{db} was written by a newer chatrepl: upgrade chatrepl."


# --- giving the space back after a migration ------------------------------------------------------


def an_old_database(path: Path, tmp_path: Path, server: Any) -> None:
    """A schema-4 file (each text kept twice) holding a history with branches and tools."""
    _, records = history(tmp_path, server)
    old = old_schemas.sqlite_at(path, 4)
    old_schemas.write(old, 4, records)
    old.close()


def test_a_new_database_says_nothing_about_giving_space_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # kills SqliteDialect.migrate 10, 11: only a file that had each text twice gives space back
    monkeypatch.setattr(dialect, "VACUUM_AT_ONCE_BYTES", 0)
    store = Store(tmp_path / "new.db")
    assert store.notice is None


def test_a_migrated_file_larger_than_the_limit_is_told_not_vacuumed(
    tmp_path: Path, server: Any, openai_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # kills SqliteDialect._give_space_back 20 (pages / size compared with the limit in bytes)
    path = tmp_path / "old.db"
    an_old_database(path, tmp_path, server)
    monkeypatch.setattr(dialect, "VACUUM_AT_ONCE_BYTES", 1)  # any file is larger
    store = Store(path)
    assert store.notice is not None and f"sqlite3 '{path}' VACUUM" in store.notice
    assert store.db.execute_sql("PRAGMA freelist_count").fetchone()[0] > 0


def test_a_migrated_file_of_exactly_the_limit_is_vacuumed_at_once(
    tmp_path: Path, server: Any, openai_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # kills SqliteDialect._give_space_back 21 (< instead of <=): the limit is inclusive
    first, second = tmp_path / "first.db", tmp_path / "second.db"
    an_old_database(first, tmp_path, server)
    second.write_bytes(first.read_bytes())
    monkeypatch.setattr(dialect, "VACUUM_AT_ONCE_BYTES", 0)
    measured = Store(first)  # migrated, not VACUUMed: the size the limit is compared with
    assert measured.notice is not None
    pages = measured.db.execute_sql("PRAGMA page_count").fetchone()[0]
    size = measured.db.execute_sql("PRAGMA page_size").fetchone()[0]
    measured.close()
    monkeypatch.setattr(dialect, "VACUUM_AT_ONCE_BYTES", pages * size)
    store = Store(second)
    assert store.notice is None
    assert store.db.execute_sql("PRAGMA freelist_count").fetchone()[0] == 0


def a_large_old_database(path: Path, tmp_path: Path) -> None:
    """A schema-4 file whose one conversation holds about 1.2 MB of text, kept twice."""
    scratch = Store(tmp_path / "scratch.db")
    c = chatrepl.get_model("echo").conversation(store=scratch)
    c.prompt(" ".join(f"goat{i}" for i in range(100_000))).text()  # echoed: twice as much
    cid = scratch.last_id()
    records = [(scratch.conversation(cid), scratch.turns(cid, all_branches=True))]
    scratch.close()
    old = old_schemas.sqlite_at(path, 4)
    old_schemas.write(old, 4, records)
    old.close()


def test_the_notice_says_the_megabytes_freed_and_the_seconds_vacuum_takes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # kills SqliteDialect._give_space_back 25, 30, 32, 33, 34, 35: the figures of the sentence
    path = tmp_path / "old.db"
    a_large_old_database(path, tmp_path)
    twin = tmp_path / "twin.db"
    twin.write_bytes(path.read_bytes())
    monkeypatch.setattr(dialect, "VACUUM_AT_ONCE_BYTES", 0)  # told, not done
    store = Store(path)
    free = store.db.execute_sql("PRAGMA freelist_count").fetchone()[0]
    size = store.db.execute_sql("PRAGMA page_size").fetchone()[0]
    freed_mb = free * size / 1e6
    assert 1 <= freed_mb < 10  # the text's second copy, told in whole megabytes
    assert store.notice == (
        f"{path} now keeps each text once; the {freed_mb:,.0f} MB it no longer needs go back "
        f"to the disk with: sqlite3 '{path}' VACUUM (with chatrepl closed: about 1 s, and as "
        "much free disk as the file's size)."
    )  # a file of a few MB at 50 MB/s: the one second it is rounded up to
    # At 1000 bytes a second, the seconds are the file's bytes in thousands.
    monkeypatch.setattr(dialect, "VACUUM_BYTES_PER_S", 1000)
    slow = Store(twin)
    pages = slow.db.execute_sql("PRAGMA page_count").fetchone()[0]
    assert slow.notice is not None
    assert f"about {round(pages * size / 1000)} s," in slow.notice
    assert round(pages * size / 1000) > 1000


# --- the connection: how long it waits, when it takes the write lock ----------------------------


def test_the_store_waits_for_a_lock_as_long_as_its_refusal_says(tmp_path: Path) -> None:
    # kills SqliteDialect.database 8 (10.001 s): the refusal says "for over 10 s"
    store = Store(tmp_path / "chat.db")
    waits_ms = store.db.execute_sql("PRAGMA busy_timeout").fetchone()[0]
    assert waits_ms == BUSY_TIMEOUT_S * 1000


def test_a_write_holds_the_write_lock_from_its_first_statement(tmp_path: Path) -> None:
    # kills SqliteDialect.database 21, 27 (BEGIN, BEGIN DEFERRED): a write transaction that
    # only reads first would let another program write in between, and then fail at once
    db = tmp_path / "chat.db"
    cid = a_database(db)
    store = Store(db)
    other = sqlite3.connect(db, timeout=0, isolation_level=None)
    began: list[str] = []
    tried: list[str] = []

    def watch(sql: str) -> None:
        """SQLite's trace: called as each statement starts, after the ones before it ran."""
        if not began:
            if sql.lstrip().upper().startswith("BEGIN"):
                began.append(sql)
        elif not tried:  # the transaction's first statement, about to run
            try:
                other.execute("BEGIN IMMEDIATE")
                other.execute("ROLLBACK")
                tried.append("another program could write")
            except sqlite3.OperationalError as exc:
                tried.append(str(exc))

    store.db.connection().set_trace_callback(watch)
    store.set_title(cid, "a new title")
    store.db.connection().set_trace_callback(None)
    other.close()
    assert began and tried == ["database is locked"]
    assert store.conversation(cid).title == "a new title"


# --- which failure is told ------------------------------------------------------------------------


def _failing(db: Any, sql: str) -> pw.DatabaseError:
    try:
        db.execute_sql(sql)
    except pw.DatabaseError as exc:
        return exc
    raise AssertionError(f"{sql} did not fail")


def test_the_failure_a_failed_rollback_hides_is_the_one_told() -> None:
    # kills first_failure 7, 8, 9, 10, 11: COMMIT fails, SQLite has rolled back already, and
    # the ROLLBACK that follows fails too; the store tells the first failure
    db = pw.SqliteDatabase(":memory:")
    try:
        try:
            db.execute_sql("INSERT INTO nowhere VALUES (1)")
        except pw.DatabaseError:
            db.execute_sql("ROLLBACK")
    except pw.DatabaseError as exc:
        assert "no transaction is active" in str(exc)
        told = first_failure(exc)
    assert str(told) == "no such table: nowhere"
    assert isinstance(told, pw.DatabaseError | sqlite3.DatabaseError)


def test_a_failed_rollback_with_nothing_before_it_is_told_itself() -> None:
    # kills first_failure 3 (the checks joined by "or": it walked past the last error)
    exc = _failing(pw.SqliteDatabase(":memory:"), "ROLLBACK")
    assert str(first_failure(exc)) == "cannot rollback - no transaction is active"


@pytest.mark.parametrize("layer", ["peewee", "sqlite3"])
def test_an_error_raised_while_handling_another_is_told_not_the_older_one(layer: str) -> None:
    # kills first_failure 3, 10 and (sqlite3's own error, as a raw cursor raises it) 13: only
    # a failed rollback, or peewee's copy of an error, is walked past
    if layer == "peewee":
        run, failure = pw.SqliteDatabase(":memory:").execute_sql, pw.DatabaseError
    else:
        run, failure = sqlite3.connect(":memory:").execute, sqlite3.DatabaseError
    try:
        try:
            run("SELECT * FROM nowhere")
        except failure:
            run("SELECT * FROM elsewhere")
    except failure as exc:
        assert str(first_failure(exc)) == "no such table: elsewhere"


# --- a full disk --------------------------------------------------------------------------------


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a filesystem of its own, 1 MB in all."""
    with small_disk(tmp_path / "disk") as folder:
        yield folder


def test_opening_a_database_on_a_full_disk_says_the_disk_is_full(disk: Path) -> None:
    # kills SqliteDialect.unusable 25, 26, 28: with no room for its -shm, SQLite says
    # "disk I/O error"
    db = disk / "chat.db"
    a_database(db)
    fill(disk)
    with pytest.raises(StoreError) as refused:
        Store(db, create=False).recent()
    assert str(refused.value) == f"The disk holding {db} is full: free some space and try again."


def test_a_refusal_to_write_on_a_full_disk_is_not_told_as_a_full_disk(disk: Path) -> None:
    # kills SqliteDialect.unusable 24, 27: only "disk I/O error" is taken for a full disk
    db = disk / "chat.db"
    cid = a_database(db)
    store = Store(db)
    store.recent()
    fill(disk)
    store.db.execute_sql("PRAGMA query_only = 1")  # SQLite answers as for a read-only file
    with pytest.raises(StoreError) as refused:
        store.set_title(cid, "a new title")
    assert str(refused.value) == f"Cannot write to {db}: check its permissions and free space."


def a_database_whose_shm_is_a_fifo(db: Path) -> None:
    """A closed database whose shared-memory file is a FIFO: SQLite opening it says
    "disk I/O error", whatever room the disk has."""
    a_database(db)
    os.mkfifo(db.with_name(db.name + "-shm"))


def test_a_disk_io_error_with_room_on_the_disk_is_told_as_it_is(tmp_path: Path) -> None:
    # kills _no_room 3 (free blocks divided by the block size: "no room" on any disk)
    db = tmp_path / "chat.db"
    a_database_whose_shm_is_a_fifo(db)
    assert os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize > 2**20
    with pytest.raises(StoreError) as refused:
        Store(db, create=False).recent()
    assert str(refused.value) == f"The database {db} failed: disk I/O error."


def test_a_disk_with_exactly_a_mebibyte_left_has_room(tmp_path: Path) -> None:
    # kills _no_room 4 (<=): below NO_ROOM_BYTES is "no room", that much is room
    with small_disk(tmp_path / "disk", "4m") as folder:
        db = folder / "chat.db"
        a_database_whose_shm_is_a_fifo(db)
        st = os.statvfs(folder)
        (folder / "filler").write_bytes(b"\0" * (st.f_bavail * st.f_frsize - dialect.NO_ROOM_BYTES))
        st = os.statvfs(folder)
        assert st.f_bavail * st.f_frsize == dialect.NO_ROOM_BYTES
        with pytest.raises(StoreError) as refused:
            Store(db, create=False).recent()
        assert str(refused.value) == f"The database {db} failed: disk I/O error."


# --- PostgreSQL -------------------------------------------------------------------------------------


def test_a_missing_postgres_store_is_refused_by_the_url_shown_then_created(pg_url: str) -> None:
    # kills PostgresDialect.__init__ 2 and migrate 3 (the refusal names no database), and
    # migrate 2 (create not passed on: the store would never be made)
    from chatrepl.postgres import display

    with pytest.raises(StoreError) as refused:
        Store(pg_url, create=False)
    assert str(refused.value) == (
        f"There is no chatrepl database at {display(pg_url)} yet: nothing saved."
    )
    created = Store(pg_url)
    assert created.recent() == []
    created.close()
    assert Store(pg_url, create=False).recent() == []


def test_a_postgres_snippet_marks_with_double_quotes_show_them_as_single_quotes(
    pg_url: str,
) -> None:
    # kills _headline_options 6, 7: ts_headline's options cannot hold a double quote inside
    # a quoted mark, so it is given as a single one
    store = Store(pg_url)
    c = chatrepl.get_model("echo").conversation(store=store)
    c.prompt("goats climb trees").text()
    hits = store.search("goats", marks=('<"', '">'))
    assert [h.conversation_id for h in hits] == [store.last_id()]
    assert "<'goats'>" in hits[0].snippet

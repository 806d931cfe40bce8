"""The database under the user's feet: deleted, moved or replaced while a session runs; a full
disk; a read-only folder or filesystem; a new database's mode. And what search promises."""

from __future__ import annotations

import hashlib
import io
import os
import sqlite3
import stat

import pytest
from conftest import child_env, run_chatrepl, saved_rows

import chatrepl
from chatrepl import conversation as conversation_module
from chatrepl.errors import StoreError
from chatrepl.frontend import stream_answer
from chatrepl.store import Store


def chat(store, *prompts):
    c = chatrepl.get_model("echo").conversation(store=store)
    for p in prompts:
        c.prompt(p).text()
    return c


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def foreign_database(path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE accounts (name TEXT, balance INTEGER)")
    con.execute("INSERT INTO accounts VALUES ('alice', 100)")
    con.commit()
    con.close()


# --- deleted, moved, replaced while a session runs ---------------------------------------------


def test_a_database_deleted_under_a_session_is_said_and_not_written(tmp_path):
    db = tmp_path / "chat.db"
    store = Store(db)
    c = chat(store, "first words")
    db.unlink()
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"chat.db{suffix}").unlink(missing_ok=True)
    with pytest.raises(StoreError, match="deleted or moved") as caught:
        c.prompt("second words").text()
    assert str(caught.value).count(". ") == 0 and str(caught.value).endswith(".")
    with pytest.raises(StoreError, match="deleted or moved"):
        c.set_title("a new title")
    assert not db.exists()  # nothing made anew behind the user's back either


def test_a_database_moved_under_a_session_is_not_written_where_it_went(tmp_path):
    db = tmp_path / "chat.db"
    store = Store(db)
    c = chat(store, "first words")
    store.db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    moved = tmp_path / "elsewhere.db"
    db.rename(moved)
    with pytest.raises(StoreError, match="deleted or moved"):
        c.prompt("second words").text()
    store.close()
    assert [r["prompt"] for r in saved_rows(moved)] == ["first words"]


@pytest.mark.parametrize("replacement", ["foreign", "another chatrepl database"])
def test_a_database_replaced_under_a_session_is_left_alone(tmp_path, replacement):
    db = tmp_path / "chat.db"
    store = Store(db)
    c = chat(store, "first words")
    new = tmp_path / "new.db"
    if replacement == "foreign":
        foreign_database(new)
    else:
        other = Store(new)
        chat(other, "the other one's words")
        other.db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        other.close()
        for suffix in ("-wal", "-shm"):
            (tmp_path / f"new.db{suffix}").unlink(missing_ok=True)
    before = digest(new)
    os.replace(new, db)
    for action in (lambda: c.prompt("second words").text(), lambda: c.set_title("renamed")):
        with pytest.raises(StoreError, match="replaced by another file"):
            action()
    # A flush from another thread opens the path anew: it must not write either.
    with pytest.raises(StoreError, match="replaced"):
        store.save_progress(c.turns[-1].id, "x", 0, [])
    assert digest(db) == before
    store.close()
    assert digest(db) == before


def test_the_repl_says_the_database_went_away_in_one_line(tmp_path, capsys):
    from rich.console import Console

    from chatrepl.repl.app import Repl

    db = tmp_path / "chat.db"
    store = Store(db)
    c = chat(store, "first words")
    console = Console(file=io.StringIO(), width=400, record=True)
    repl = Repl(store, c, console=console)
    db.unlink()
    repl.handle("second words")
    lines = console.export_text().splitlines()
    said = [line for line in lines if "deleted or moved" in line]
    assert len(said) == 1 and "Traceback" not in console.export_text(), lines


# --- a full disk ---------------------------------------------------------------------------------


def _fill_the_disk(store: Store) -> None:
    """Make the main connection's database unable to grow: SQLite then reports SQLITE_FULL, as
    on a full disk."""
    pages = store.db.execute_sql("PRAGMA page_count").fetchone()[0]
    store.db.execute_sql(f"PRAGMA max_page_count = {pages}")


def _free_space(store: Store) -> None:
    store.db.execute_sql("PRAGMA max_page_count = 1073741823")


def test_a_full_disk_is_said_plainly_and_the_turn_is_finalised_once_there_is_room(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(conversation_module, "FLUSH_INTERVAL", 3600)  # one early flush only
    db = tmp_path / "chat.db"
    store = Store(db)
    c = chat(store, "warm up")
    long_prompt = " ".join(f"word{i}" for i in range(20000))
    response = c.prompt(long_prompt)

    class Screen:
        def __init__(self):
            self.received = 0
            self.full = False

        def feed(self, text):
            self.received += len(text)
            if not self.full:
                _fill_the_disk(store)
                self.full = True

        def finish(self, note=None):
            pass

    error = stream_answer(response, Screen())
    assert error is not None and "disk holding" in error and "is full" in error
    assert "\n" not in error and error.endswith(".")
    row = saved_rows(db)[-1]
    assert row["status"] == "pending" and row["response"] != long_prompt

    _free_space(store)
    c.set_title("the next thing the user does")
    row = saved_rows(db)[-1]
    assert row["status"] == "complete" and row["response"] == long_prompt


def test_a_write_on_a_full_disk_is_one_sentence(tmp_path):
    store = Store(tmp_path / "chat.db")
    c = chat(store, "warm up")
    _fill_the_disk(store)
    with pytest.raises(StoreError) as caught:
        c.prompt("x " * 50000).text()
    assert str(caught.value) == (
        f"The disk holding {store.path} is full: free some space and try again."
    )


# --- read-only ---------------------------------------------------------------------------------


def _without_dac_override() -> list[str]:
    import shutil

    if os.geteuid() != 0:
        return []
    assert shutil.which("setpriv"), "setpriv (util-linux) is needed to test file modes as root"
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"]


def test_listing_searching_and_showing_work_in_a_read_only_folder(tmp_path):
    folder = tmp_path / "data"
    db = folder / "chatrepl.db"
    out = run_chatrepl("--db", str(db), "-m", "echo:echo", "-p", "goats climb trees")
    assert out.returncode == 0, out.stderr
    folder.chmod(0o555)
    try:
        before = {p.name: digest(p) for p in folder.iterdir()}
        prefix = _without_dac_override()
        listed = run_chatrepl("list", "--db", str(db), prefix=prefix)
        assert listed.returncode == 0 and "goats climb trees" in listed.stdout, listed.stderr
        cid = listed.stdout.split("\t")[0]
        found = run_chatrepl("search", "goat", "--db", str(db), prefix=prefix)
        assert found.returncode == 0 and cid in found.stdout, found.stderr
        shown = run_chatrepl("show", cid, "--db", str(db), prefix=prefix)
        assert shown.returncode == 0 and "goats climb trees" in shown.stdout, shown.stderr
        written = run_chatrepl("title", cid, "new", "--db", str(db), prefix=prefix)
        assert written.returncode == 1 and "Traceback" not in written.stderr
        assert len(written.stderr.splitlines()) == 1 and "read-only" in written.stderr
        asked = run_chatrepl("--db", str(db), "-m", "echo:echo", "-p", "more", prefix=prefix)
        assert asked.returncode == 1 and len(asked.stderr.splitlines()) == 1, asked.stderr
        assert {p.name: digest(p) for p in folder.iterdir()} == before
    finally:
        folder.chmod(0o700)


def test_a_new_database_and_its_journal_files_are_private_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        db = tmp_path / "fresh" / "chat.db"
        store = Store(db)
        chat(store, "private words")
        files = [db, db.with_name("chat.db-wal"), db.with_name("chat.db-shm")]
        for f in files:
            assert f.exists(), f
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        store.close()
    finally:
        os.umask(old)
    out = run_chatrepl(
        "--db", str(tmp_path / "cli.db"), "-m", "echo:echo", "-p", "hi", env=child_env()
    )
    assert out.returncode == 0
    assert stat.S_IMODE((tmp_path / "cli.db").stat().st_mode) == 0o600


# --- search ----------------------------------------------------------------------------------


def test_search_matches_word_prefixes_and_needs_every_word(tmp_path):
    store = Store(tmp_path / "chat.db")
    goats = chat(store, "the goats climbed the mountain")
    chat(store, "goats eat grass")
    assert {h.conversation_id for h in store.search("goat")} >= {goats.id}
    assert [h.conversation_id for h in store.search("goat climb")] == [goats.id]
    assert [h.conversation_id for h in store.search("CLIMB mount")] == [goats.id]
    assert store.search("goat zebra") == []
    assert store.search("oats") == []  # a prefix of a word, not any substring


def test_search_lists_a_conversation_once_with_its_best_turn(tmp_path):
    store = Store(tmp_path / "chat.db")
    many = chat(store, "goat", "goat again", "goat goat goat goat", "goat once more")
    other = chat(store, "a goat elsewhere")
    hits = store.search("goat")
    ids = [h.conversation_id for h in hits]
    assert sorted(ids) == sorted([many.id, other.id])
    best = next(h for h in hits if h.conversation_id == many.id)
    assert best.response_id == many.turns[2].id  # the densest match
    assert len(store.search("goat", n=1)) == 1


def test_search_from_the_shell_lists_each_conversation_once(tmp_path):
    db = tmp_path / "chat.db"
    store = Store(db)
    chat(store, "goats one", "goats two", "goats three")
    store.close()
    out = run_chatrepl("search", "goat", "--db", str(db))
    assert out.returncode == 0 and len(out.stdout.splitlines()) == 1, out.stdout


def test_a_word_in_double_quotes_matches_exactly(tmp_path):
    store = Store(tmp_path / "chat.db")
    one = chat(store, "slot1 here")
    chat(store, "slot10 there")
    assert len(store.search("slot1")) == 2
    assert [h.conversation_id for h in store.search('"slot1"')] == [one.id]

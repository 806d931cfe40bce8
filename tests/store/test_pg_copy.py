"""``chatrepl db copy SRC DST`` between SQLite files and a real PostgreSQL server, both ways."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from conftest import run_chatrepl

import chatrepl
from chatrepl.records import Part
from chatrepl.store import Store

pytest_plugins = ("pgserver",)
pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[postgres]'")


def chat(store: Store, *prompts: str):
    c = chatrepl.get_model("echo").conversation(store=store)
    for p in prompts:
        c.prompt(p).text()
    return c


def everything(store: Store) -> list[tuple]:
    """A store's whole history, comparable between stores (local row numbers left out)."""
    out = []
    for s in sorted(store.recent(1000), key=lambda s: s.id):
        row = dataclasses.astuple(store.conversation(s.id))
        turns = [dataclasses.astuple(t) for t in store.turns(s.id, all_branches=True)]
        out.append((row, turns))
    return out


def copy(src, dst) -> str:
    out = run_chatrepl("db", "copy", str(src), str(dst))
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # no progress bar into a pipe
    return out.stdout.strip()


def test_sqlite_to_postgres_and_back_loses_nothing(tmp_path, pg_url):
    laptop = Store(tmp_path / "laptop.db")
    a = chat(laptop, "first about goats", "second about goats")
    a.undo()
    a.prompt("a second branch").text()  # a tree with two branches
    chat(laptop, "another conversation")
    laptop.set_title(a.id, "Goats", "user")
    data = b"\x00\x01 attachment bytes"
    sha = hashlib.sha256(data).hexdigest()
    laptop.put_attachment(sha, "application/octet-stream", data)
    # a turn carrying an attachment part, written as the app writes it
    t = laptop.turns(a.id, all_branches=True)[0]
    laptop.finish_turn(
        dataclasses.replace(
            t,
            parts=[*t.parts, Part("attachment", "", {"sha256": sha, "mime": "x/y", "name": "f"})],
        )
    )

    line = copy(tmp_path / "laptop.db", pg_url)
    assert line.startswith("Copied 2 conversations from ")
    assert "2 new" in line and "4 turns added" in line and "1 attachment" in line
    assert "S3cret" not in line and "chatter" not in line
    server = Store(pg_url)
    assert everything(server) == everything(laptop)
    assert server.attachment(sha) == data
    assert [h.conversation_id for h in server.search("goats")] == [a.id, a.id]

    back = tmp_path / "back.db"
    copy(pg_url, back)
    assert everything(Store(back)) == everything(laptop)
    assert Store(back).attachment(sha) == data


def test_copying_again_changes_nothing(tmp_path, pg_url):
    laptop = Store(tmp_path / "laptop.db")
    chat(laptop, "one", "two")
    copy(tmp_path / "laptop.db", pg_url)
    before = everything(Store(pg_url))
    line = copy(tmp_path / "laptop.db", pg_url)
    assert "0 new, 0 updated, 1 already up to date; 0 turns added" in line
    assert everything(Store(pg_url)) == before


def test_two_machines_merge_and_newer_rows_win(tmp_path, pg_url):
    """Desktop and laptop both went on with one conversation; each copies into the server."""
    desktop = Store(tmp_path / "desktop.db")
    shared = chat(desktop, "started on the desktop")
    copy(tmp_path / "desktop.db", tmp_path / "laptop.db")
    laptop = Store(tmp_path / "laptop.db")
    again = chatrepl.conversation.Conversation.load(laptop, shared.id)
    again.prompt("went on on the laptop").text()
    laptop.set_title(shared.id, "Renamed on the laptop", "user")
    again.prompt("and once more").text()  # the laptop's row is now the newer
    shared.prompt("went on on the desktop").text()
    desktop.set_title(shared.id, "Older desktop title", "user")
    # the desktop's conversation row is older than the laptop's only if written before it:
    desktop.db.execute_sql(
        "UPDATE conversations SET updated = '2000-01-01T00:00:00.000+00:00' WHERE id = ?",
        (shared.id,),
    )
    chat(desktop, "only on the desktop")

    copy(tmp_path / "laptop.db", pg_url)
    line = copy(tmp_path / "desktop.db", pg_url)
    assert "1 new, 0 updated, 1 already up to date; 2 turns added" in line
    server = Store(pg_url)
    assert server.count() == (2, 5)
    assert server.summary(shared.id).title == "Renamed on the laptop"  # the newer row kept
    prompts = {t.prompt for t in server.turns(shared.id, all_branches=True)}
    assert prompts == {
        "started on the desktop",
        "went on on the laptop",
        "and once more",
        "went on on the desktop",
    }
    # and SQLite to SQLite merges the same way
    copy(tmp_path / "desktop.db", tmp_path / "laptop.db")
    assert everything(Store(tmp_path / "laptop.db")) == everything(server)


def test_a_turn_pending_in_the_copy_is_completed_by_a_later_copy(tmp_path, pg_url):
    laptop = Store(tmp_path / "laptop.db")
    c = chatrepl.get_model("echo").conversation(store=laptop)
    r = c.prompt("streaming while copied")
    copy(tmp_path / "laptop.db", pg_url)
    assert Store(pg_url).turns(c.id)[0].status == "pending"
    r.text()
    line = copy(tmp_path / "laptop.db", pg_url)
    assert "1 brought up to date" in line
    (turn,) = Store(pg_url).turns(c.id)
    assert (turn.status, turn.response) == ("complete", "streaming while copied")
    assert everything(Store(pg_url)) == everything(laptop)


def test_a_missing_source_is_one_sentence(tmp_path, pg_url):
    out = run_chatrepl("db", "copy", str(tmp_path / "nope.db"), pg_url)
    assert out.returncode == 1
    assert "no chatrepl database" in out.stderr and "Traceback" not in out.stderr


def test_a_progress_bar_on_a_terminal(tmp_path, pg_url):
    import sys

    import pexpect
    from conftest import child_env

    laptop = Store(tmp_path / "laptop.db")
    for i in range(3):
        chat(laptop, f"conversation {i}")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "chatrepl", "db", "copy", str(tmp_path / "laptop.db"), pg_url],
        env=child_env(COLUMNS="100"),
        encoding="utf-8",
        timeout=60,
    )
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "copying" in child.before  # the bar, drawn on the terminal, then cleared
    assert "Copied 3 conversations" in child.before
    assert "S3cret" not in child.before

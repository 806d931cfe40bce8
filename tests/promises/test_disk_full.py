"""A full disk is said as a full disk on every write path: an attachment kept, an import, a
copy, a title, a delete, a prompt; not as "cannot rollback - no transaction is active" or
"disk I/O error". The disk is a real, tiny filesystem (tmpfs) filled to the brim."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_chatrepl
from smalldisk import fill, small_disk

from chatrepl.errors import StoreError
from chatrepl.store import Store

FULL = "The disk holding {db} is full: free some space and try again."


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a filesystem of its own, 1 MB in all."""
    with small_disk(tmp_path / "disk") as folder:
        yield folder


def png(size: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + os.urandom(size)


def a_database(db: Path) -> str:
    out = run_chatrepl("--db", str(db), "-m", "echo:echo", "-p", "goats climb trees")
    assert out.returncode == 0, out.stderr
    listed = run_chatrepl("list", "--db", str(db), "--json")
    return listed.stdout.split('"id": "')[1].split('"')[0]


def said_full(out: subprocess.CompletedProcess, db: Path) -> None:
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert out.stderr == f"chatrepl: {FULL.format(db=db)}\n"


def test_an_attachment_larger_than_the_room_left_says_the_disk_is_full(disk, tmp_path):
    """The attachment's bytes go in at COMMIT time: SQLite rolls back by itself, and the
    rollback that follows fails; that second error must not hide the first."""
    db = disk / "chat.db"
    a_database(db)
    picture = tmp_path / "photo.png"
    picture.write_bytes(png(1_100_000))
    out = run_chatrepl("--db", str(db), "-m", "echo:echo", "-a", str(picture), "-p", "look")
    said_full(out, db)


def test_keeping_an_attachment_in_the_store_is_one_sentence(disk):
    store = Store(disk / "chat.db")
    content = png(1_100_000)
    with pytest.raises(StoreError) as caught:
        store.put_attachment(hashlib.sha256(content).hexdigest(), "image/png", content)
    assert str(caught.value) == FULL.format(db=store.path)
    store.close()


@pytest.mark.parametrize("command", ["list", "title", "delete", "import", "copy", "prompt"])
def test_every_command_on_a_full_disk_says_so(disk, tmp_path, command):
    db = disk / "chat.db"
    cid = a_database(db)
    other = tmp_path / "other.db"
    elsewhere = a_database(other)
    export = tmp_path / "export.json"
    exported = run_chatrepl("export", "--db", str(other), elsewhere, "--format", "json")
    export.write_text(exported.stdout)
    fill(disk)
    args = {
        "list": ["list", "--db", str(db)],
        "title": ["title", "--db", str(db), cid, "A new title"],
        "delete": ["delete", "--db", str(db), "--yes", cid],
        "import": ["import", "--db", str(db), str(export)],
        "copy": ["db", "copy", str(other), str(db)],
        "prompt": ["--db", str(db), "-m", "echo:echo", "-p", "more about goats"],
    }[command]
    out = run_chatrepl(*args)
    said_full(out, db)


def test_a_new_database_on_a_full_disk_says_so(disk, tmp_path):
    other = tmp_path / "other.db"
    a_database(other)
    fill(disk)
    out = run_chatrepl("db", "copy", str(other), str(disk / "new.db"))
    said_full(out, disk / "new.db")

"""Long work survives being killed: ``chatrepl db copy SRC DST`` killed (SIGKILL) at several
points, mid-conversation and between conversations, in each direction (SQLite → PostgreSQL,
PostgreSQL → SQLite, SQLite → SQLite), finishes when run again: DST then holds exactly what
SRC holds, nothing lost or doubled. Two copies into one database at once both finish too."""

from __future__ import annotations

import dataclasses
import hashlib
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import child_env, run_chatrepl

import chatrepl
from chatrepl.records import Part
from chatrepl.store import Store

pytest_plugins = ("pgserver",)
pytestmark = pytest.mark.timeout(300)

#: Run in a process of its own: the copy, killed with SIGKILL just before its DST store runs
#: its Nth write statement (an INSERT, UPDATE or DELETE: inside a conversation's transaction).
KILLED_COPY = textwrap.dedent(
    """
    import os, signal, sys
    from chatrepl import dbcopy
    from chatrepl.store import Store

    src, dst, kill_at = Store(sys.argv[1], create=False), Store(sys.argv[2]), int(sys.argv[3])
    writes = 0
    run = Store._x

    def counted(self, sql, params=()):
        global writes
        if self is dst and sql.split()[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            writes += 1
            if writes == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        return run(self, sql, params)

    Store._x = counted
    dbcopy.copy(src, dst)
    print("finished before write", kill_at, "- wrote", writes)
    """
)
KILL_POINTS = (1, 4, 9, 15, 23)  # of 24 writes: the first, mid-conversation, the last


def history(path: Path) -> Store:
    """A store of six conversations: branches, an attachment, a pending turn, a title."""
    store = Store(path)
    model = chatrepl.get_model("echo")
    for n in range(5):
        c = model.conversation(store=store)
        for m in range(3):
            c.prompt(f"conversation {n}, prompt {m} about goats").text()
        if n == 1:
            c.undo()
            c.prompt("a second branch").text()
            store.set_title(c.id, "Branched", "user")
        if n == 2:
            data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
            sha = hashlib.sha256(data).hexdigest()
            store.put_attachment(sha, "image/png", data)
            t = store.turns(c.id)[0]
            part = Part("attachment", "", {"sha256": sha, "mime": "image/png", "name": "g.png"})
            store.finish_turn(dataclasses.replace(t, parts=[*t.parts, part]))
    model.conversation(store=store).prompt("still streaming when copied")  # left pending
    return store


def everything(store: Store) -> list[tuple]:
    """A store's whole history, comparable between stores (local row numbers left out)."""
    out = []
    for s in sorted(store.recent(1000), key=lambda s: s.id):
        row = dataclasses.astuple(store.conversation(s.id))
        turns = [dataclasses.astuple(t) for t in store.turns(s.id, all_branches=True)]
        files = [
            store.attachment(p.data["sha256"])
            for t in store.turns(s.id, all_branches=True)
            for p in t.parts
            if p.kind == "attachment"
        ]
        out.append((row, turns, files))
    return out


def kill_then_finish(src: str, dst: str, kill_at: int) -> str:
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_COPY, src, dst, str(kill_at)],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, (killed.stdout, killed.stderr)
    out = run_chatrepl("db", "copy", src, dst, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    return out.stdout


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[Path, list[tuple]]:
    path = tmp_path_factory.mktemp("source") / "laptop.db"
    store = history(path)
    contents = everything(store)
    store.close()
    return path, contents


@pytest.mark.parametrize("kill_at", KILL_POINTS)
def test_sqlite_to_sqlite_killed_then_run_again(source, tmp_path, kill_at):
    src, contents = source
    kill_then_finish(str(src), str(tmp_path / "copy.db"), kill_at)
    assert everything(Store(tmp_path / "copy.db")) == contents


@pytest.mark.parametrize("kill_at", KILL_POINTS)
def test_sqlite_to_postgres_killed_then_run_again(source, pg_url, kill_at):
    src, contents = source
    line = kill_then_finish(str(src), pg_url, kill_at)
    assert "6 conversations" in line
    assert everything(Store(pg_url)) == contents
    again = run_chatrepl("db", "copy", str(src), pg_url)
    assert "0 new, 0 updated, 6 already up to date; 0 turns added" in again.stdout


@pytest.mark.parametrize("kill_at", KILL_POINTS)
def test_postgres_to_sqlite_killed_then_run_again(source, pg_server, tmp_path, kill_at):
    src, contents = source
    server_copy = pg_server.new_database()
    assert run_chatrepl("db", "copy", str(src), server_copy).returncode == 0
    kill_then_finish(server_copy, str(tmp_path / "back.db"), kill_at)
    assert everything(Store(tmp_path / "back.db")) == contents


def test_killed_twice_then_run_again(source, pg_url):
    src, contents = source
    for kill_at in (5, 12):
        killed = subprocess.run(
            [sys.executable, "-c", KILLED_COPY, str(src), pg_url, str(kill_at)],
            capture_output=True,
            env=child_env(),
            timeout=120,
        )
        assert killed.returncode == -signal.SIGKILL
    assert run_chatrepl("db", "copy", str(src), pg_url).returncode == 0
    assert everything(Store(pg_url)) == contents


def test_two_copies_into_one_server_at_once_both_finish(tmp_path, pg_url):
    """What a copy killed by a wrapper (its process still running) and run again meets."""
    big = tmp_path / "big.db"
    store = Store(big)
    model = chatrepl.get_model("echo")
    for n in range(60):
        model.conversation(store=store).prompt(f"conversation {n}").text()
    contents = everything(store)
    store.close()
    copies = [
        subprocess.Popen(
            [sys.executable, "-m", "chatrepl", "db", "copy", str(big), pg_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        for _ in range(3)
    ]
    results = [c.communicate(timeout=120) for c in copies]
    assert [c.returncode for c in copies] == [0, 0, 0], results
    assert everything(Store(pg_url)) == contents
    new = sum(int(out.split(": ")[1].split(" new")[0]) for out, _ in results)
    assert new == 60  # each conversation copied once, by one of them


#: ``chatrepl db copy`` as run from the shell, with Ctrl-C arriving before the Nth write.
INTERRUPTED_COPY = textwrap.dedent(
    """
    import sys
    from chatrepl import cli
    from chatrepl.store import Store

    writes, run = 0, Store._x

    def counted(self, sql, params=()):
        global writes
        if sql.split()[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            writes += 1
            if writes == int(sys.argv[3]):
                raise KeyboardInterrupt
        return run(self, sql, params)

    Store._x = counted
    sys.exit(cli.main(["db", "copy", sys.argv[1], sys.argv[2]]))
    """
)


def test_ctrl_c_says_how_far_it_got(source, tmp_path):
    src, contents = source
    dst = tmp_path / "copy.db"
    process = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_COPY, str(src), str(dst), "12"],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=120,
    )
    assert process.returncode == 130, process.stderr
    copied = len(Store(dst).recent(100))
    assert 0 < copied < 6
    assert process.stderr == (
        f"chatrepl: interrupted after {copied} conversation{'s' if copied > 1 else ''}; each "
        "copied one is whole: run the same command again to finish (nothing is copied twice).\n"
    )
    assert run_chatrepl("db", "copy", str(src), str(dst)).returncode == 0
    assert everything(Store(dst)) == contents

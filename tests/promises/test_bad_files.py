"""Bad files: a clear sentence, nothing overwritten, nothing lost.

A database that is corrupt, cut short, read-only, locked past the busy timeout, foreign, or
from a newer chatrepl; a malformed ``config.toml`` or ``keys.json``; a home folder that is
missing or cannot be made. Each is met through the real ``chatrepl`` process: exit status 1,
one line on stderr, every file byte for byte as it was, and no request sent for a prompt that
could not be saved.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from conftest import child_env, run_chatrepl
from fakeserver import Reply

from chatrepl import dialect, get_model
from chatrepl.cli import main
from chatrepl.errors import StoreError
from chatrepl.migrations import SCHEMA_VERSION
from chatrepl.store import Store

MODEL = "openai:gpt-test"


def chatrepl(*args: str, prefix: list[str] | None = None, **env: str):
    return run_chatrepl(*args, prefix=prefix, env=child_env(**env))


def in_process(capsys, *args: str) -> subprocess.CompletedProcess[str]:
    """``chatrepl ARGS`` run by its own main() in this process: the same code, no start-up."""
    status = main(list(args))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, status, out.out, out.err)


def one_sentence(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("chatrepl: ") and lines[0].endswith("."), lines[0]
    return lines[0].removeprefix("chatrepl: ")


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` and a hash of its bytes: to prove nothing was touched."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def untouched(folder: Path, before: dict[str, str], new_database: bool = False) -> bool:
    """Every file that was there is byte for byte the same; nothing new but what SQLite makes
    beside any database it opens: an empty -wal and the -shm index (both rebuilt at will), and
    with ``new_database`` the home's new (empty) database."""
    after = snapshot(folder)
    fresh = {"chatrepl.db", "chatrepl.db-wal", "chatrepl.db-shm"} if new_database else set()
    new = set(after) - set(before) - fresh
    empty = hashlib.sha256(b"").hexdigest()
    return all(after.get(name) == digest for name, digest in before.items()) and all(
        name.endswith("-shm") or (name.endswith("-wal") and after[name] == empty) for name in new
    )


def a_saved_conversation(db: Path) -> None:
    out = chatrepl("-m", "echo", "-p", "words worth keeping " * 500, "--db", str(db))
    assert out.returncode == 0, out.stderr


# --- the database -----------------------------------------------------------------------------


def junk(db: Path) -> None:
    db.write_bytes(b"not a database, just some bytes\n" * 200)


def cut_short(db: Path) -> None:
    a_saved_conversation(db)
    data = db.read_bytes()
    assert len(data) > 8 * 4096
    db.write_bytes(data[: len(data) // 2])


def foreign(db: Path) -> None:
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE accounts (name, balance)")
    con.execute("INSERT INTO accounts VALUES ('me', 100)")
    con.commit()
    con.close()


def newer(db: Path) -> None:
    a_saved_conversation(db)
    con = sqlite3.connect(db)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.execute("CREATE TABLE from_the_future (x)")
    con.commit()
    con.close()


DATABASES = {
    junk: "corrupt or not a chatrepl database",
    cut_short: "corrupt or not a chatrepl database",
    foreign: "not chatrepl's",
    newer: "newer chatrepl",
}


@pytest.mark.parametrize("make", DATABASES, ids=lambda f: f.__name__)
def test_a_bad_database_is_refused_and_left_untouched(make, openai_env, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    db = folder / "chatrepl.db"
    make(db)
    before = snapshot(folder)
    for args in (["-c", "-m", MODEL, "-p", "hello"], ["search", "words"]):
        sentence = one_sentence(chatrepl(*args, "--db", str(db)))
        assert DATABASES[make] in sentence
        assert str(db) in sentence
        assert untouched(folder, before), args
    assert openai_env.requests == []  # a prompt that cannot be saved is not sent


def test_a_directory_given_as_the_database(tmp_path):
    sentence = one_sentence(chatrepl("-p", "hello", "--db", str(tmp_path)))
    assert str(tmp_path) in sentence


def without_dac_override() -> list[str]:
    """A prefix that makes root obey file modes (as a user is made to), or [] for a user."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: file modes cannot be enforced")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"]


def test_a_read_only_database_can_be_read_but_not_written(openai_env, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    db = folder / "chatrepl.db"
    a_saved_conversation(db)
    db.chmod(0o444)
    before = snapshot(folder)
    prefix = without_dac_override()

    out = chatrepl("-m", MODEL, "-p", "hello", "--db", str(db), prefix=prefix)
    assert "Cannot write to" in one_sentence(out) and str(db) in out.stderr
    assert openai_env.requests == []
    out = chatrepl("list", "--db", str(db), prefix=prefix)
    assert out.returncode == 0 and "words worth keeping" in out.stdout, out.stderr
    out = chatrepl("search", "keeping", "--db", str(db), prefix=prefix)
    assert out.returncode == 0 and "keeping" in out.stdout, out.stderr
    assert untouched(folder, before)


LOCKED = textwrap.dedent(
    """
    import sys
    import chatrepl.dialect
    chatrepl.dialect.BUSY_TIMEOUT_S = int(sys.argv[1])
    from chatrepl.cli import main
    sys.exit(main(sys.argv[2:]))
    """
)


def test_a_database_locked_past_the_busy_timeout(openai_env, tmp_path):
    """Another program holds the write lock: wait the busy timeout, then say so; lose nothing.

    The timeout is shortened to 1 s in the child (the real default is 10 s); the lock is held by
    plain sqlite3 here, as any other program could.
    """
    db = tmp_path / "locked.db"
    a_saved_conversation(db)
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("UPDATE conversations SET title = 'written by the lock holder'")
    args = ["-c", "-m", MODEL, "-p", "hello", "--db", str(db)]

    out = subprocess.run(
        [sys.executable, "-c", LOCKED, "1", *args],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    )
    sentence = one_sentence(out)
    assert "stayed locked by another program for over 1 s" in sentence and "try again" in sentence
    assert openai_env.requests == []

    # A lock released within the busy timeout is simply waited for.
    threading.Timer(1.0, holder.execute, ["COMMIT"]).start()
    out = subprocess.run(
        [sys.executable, "-c", LOCKED, "10", *args],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    holder.close()
    store = Store(db)
    (summary,) = store.recent()
    assert summary.title == "written by the lock holder"
    assert [t.status for t in store.turns(summary.id)] == ["complete", "complete"]


def test_a_lock_held_mid_answer_within_the_busy_timeout_loses_nothing(openai_env, tmp_path):
    """Flushes and the final write wait for another writer; the answer is saved whole."""
    db = tmp_path / "busy.db"
    a_saved_conversation(db)
    words = " ".join(f"w{i}" for i in range(60))
    openai_env.push(Reply(words, delay=0.02))
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatrepl", "-m", MODEL, "-p", "count", "--db", str(db)],
        stdout=subprocess.PIPE,
        env=child_env(),
    )
    holder = sqlite3.connect(db, isolation_level=None, timeout=30)
    while not openai_env.requests:
        threading.Event().wait(0.02)
    holder.execute("BEGIN EXCLUSIVE")
    threading.Event().wait(2.0)  # longer than the whole answer takes to arrive
    holder.execute("COMMIT")
    holder.close()
    assert proc.wait(timeout=30) == 0
    store = Store(db)
    turn = store.turns(store.last_id())[-1]
    assert (turn.prompt, turn.response, turn.status) == ("count", words, "complete")


# --- config.toml, keys.json and the home folder -----------------------------------------------

CONFIGS = {
    "not TOML": ("default_model = 'openai:x\n[providers\n", "config.toml is not valid TOML"),
    "providers not a table": ("providers = 'openai'\n", "[providers] must be a table"),
    "a provider not a table": ("[providers]\nopenai = 5\n", "[providers.openai] must be a table"),
    "aliases not a table": ("aliases = ['fast']\n", "[aliases] must be a table"),
    "max_retries not a number": (
        "[providers.openai]\nmax_retries = 'many'\n",
        "[providers.openai] max_retries must be a whole number, not 'many'",
    ),
    "read_timeout not a number": (
        "[providers.openai]\nread_timeout = 'slow'\n",
        "[providers.openai] read_timeout must be a number of seconds",
    ),
    "base_url not text": ("[providers.openai]\nbase_url = 5\n", "base_url must be text"),
    "options not a table": ("[providers.openai]\noptions = 5\n", "options must be a table"),
    "api_key not text": ("[providers.openai]\napi_key = 12345678\n", "api_key must be text."),
    "unknown type": ("[providers.mine]\ntype = 'grpc'\nbase_url = 'http://x'\n", "type 'grpc'"),
    "default_model a list": ("default_model = ['openai:x']\n", "default_model must be text"),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_a_malformed_config_is_one_sentence_and_left_as_it_was(name, home, openai_env, capsys):
    text, says = CONFIGS[name]
    home.mkdir(parents=True)
    (home / "config.toml").write_text(text)
    before = snapshot(home)
    model = ["-m", "mine:x"] if "mine" in text else ["-m", MODEL] if "[providers." in text else []
    sentence = one_sentence(in_process(capsys, *model, "-p", "hello"))
    assert says in sentence
    assert "12345678" not in sentence
    assert untouched(home, before, new_database=True)
    assert openai_env.requests == []


def test_a_bad_timeout_in_the_environment_is_one_sentence(openai_env, capsys, monkeypatch):
    monkeypatch.setenv("CHATREPL_TIMEOUT", "soon")
    sentence = one_sentence(in_process(capsys, "-m", MODEL, "-p", "hello"))
    assert sentence == "CHATREPL_TIMEOUT must be a number of seconds, not 'soon'."
    assert openai_env.requests == []


def test_a_malformed_keys_file_is_one_sentence_and_left_as_it_was(home, capsys):
    home.mkdir(parents=True)
    (home / "keys.json").write_text('{"openai": "sk-half-written')
    before = snapshot(home)
    sentence = one_sentence(in_process(capsys, "-p", "hello"))
    assert "keys.json" in sentence
    assert "sk-half-written" not in sentence
    assert untouched(home, before, new_database=True)


def test_a_missing_home_folder_is_made_private(tmp_path):
    home = tmp_path / "not" / "there" / "yet"
    out = chatrepl("-p", "hello", CHATREPL_HOME=str(home))
    assert out.returncode == 0, out.stderr
    assert oct(home.stat().st_mode & 0o777) == "0o700"
    assert Store(home / "chatrepl.db").count() == (1, 1)


def test_a_home_folder_that_cannot_be_made(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    sentence = one_sentence(chatrepl("-p", "hello", CHATREPL_HOME=str(blocker / "home")))
    assert "Cannot create the home folder" in sentence
    assert blocker.read_text() == "in the way"


def test_a_home_folder_that_cannot_be_written(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o500)
    sentence = one_sentence(
        chatrepl("-p", "hello", CHATREPL_HOME=str(home), prefix=without_dac_override())
    )
    assert "Cannot create the database" in sentence and str(home) in sentence
    assert list(home.iterdir()) == []


def test_a_prompt_that_cannot_be_saved_does_not_join_the_conversation(tmp_path, monkeypatch):
    """With the database locked past the busy timeout the prompt fails in one sentence, and the
    conversation in memory stays as the database has it: /undo and /retry see saved turns only."""
    monkeypatch.setattr(dialect, "BUSY_TIMEOUT_S", 1)
    db = tmp_path / "held.db"
    store = Store(db)
    conversation = get_model("echo").conversation(store=store)
    conversation.prompt("kept").text()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    with pytest.raises(StoreError, match="stayed locked by another program for over 1 s"):
        conversation.prompt("never saved")
    holder.execute("ROLLBACK")
    assert [t.prompt for t in conversation.turns] == ["kept"]
    assert conversation.retry().text() == "kept"
    every = store.turns(conversation.id, all_branches=True)
    assert [(t.prompt, t.parent_id) for t in every] == [("kept", None), ("kept", None)]
    assert [t.id for t in store.turns(conversation.id)] == [every[1].id]

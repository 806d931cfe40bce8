"""Secrets: an API key never reaches the database, an export, a message or any file we write;
the files that hold keys or conversations are private to the user.

The fake server quotes the key back in every way a real service (or a hostile proxy) might: a
401 body, an error body, an error event mid-answer, a frame that is not JSON. Afterwards every
byte chatrepl wrote or printed is searched for any 8-character piece of the key.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import child_env
from fakeserver import Raw, Reply, Status
from pty_repl import chatrepl as repl
from pty_repl import say

from chatrepl.cli import main
from chatrepl.providers.registry import get_backend

KEY = "sk-proj-Zq8vR2mN5tX1wY7kQ3pL"
PIECES = {KEY[i : i + 8] for i in range(len(KEY) - 7)}
VENDORS = ("openai:gpt-test", "anthropic:claude-test")


def no_key_in(haystack: bytes, where: object) -> None:
    if found := sorted(piece for piece in PIECES if piece.encode() in haystack):
        pytest.fail(f"pieces of the key leaked into {where}: {found}")


def run(capsys, *args: str, db: Path) -> tuple[int, str]:
    """``chatrepl ARGS`` run in this process (the same code as the command, without its start-up
    cost); the exit status and everything it printed."""
    where = [] if args[0] == "models" else ["--db", str(db)]
    status = main([*args, *where])
    out = capsys.readouterr()
    return status, out.out + out.err


@pytest.fixture
def keyed(openai_env, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    return openai_env


def test_the_key_is_never_saved_exported_or_shown(keyed, tmp_path, home, capsys):
    server = keyed
    db = tmp_path / "secrets.db"
    printed = []

    def chat(model: str, prompt: str, *steps) -> None:
        server.push(*steps)
        again = ["-c"] if db.exists() else []  # one conversation holds every turn
        printed.append(run(capsys, *again, "-m", model, "-p", prompt, db=db)[1])

    for model in VENDORS:
        # A 401 that quotes the key, as OpenAI does.
        server.api_key = "sk-the-right-one"
        chat(model, "rejected")
        server.api_key = None
        chat(
            model,
            "error body",
            *[Status(500, {"error": {"message": f"refused key {KEY}"}}, {"Retry-After": "0"})] * 3,
        )
        chat(
            model,
            "error event",
            Reply("some text", error_event={"type": "api_error", "message": f"key {KEY} revoked"}),
        )
        chat(model, "fine")
    # Frames that are not JSON, quoting the key; placed where a 60-character cut would halve it.
    chat(VENDORS[0], "bad frame", Raw(f"data: {'x' * 50} {KEY} tail\n\n".encode()))
    chat(VENDORS[1], "bad event", Raw(f"event: error\ndata: oops {KEY}\n\n".encode()))

    (cid,) = [line.split()[0] for line in run(capsys, "list", db=db)[1].splitlines()]
    for args in (
        ("list", "--json"),
        ("show", cid),
        ("search", "key", "--json"),
        ("export", cid, "--format", "json", "-o", str(tmp_path / "export.json")),
        ("export", cid, "--format", "markdown", "-o", str(tmp_path / "export.md")),
        ("models",),
    ):
        status, out = run(capsys, *args, db=db)
        assert status == 0, (args, out)
        printed.append(out)

    # Every failure reached the database with its sentence, so the search below means something.
    turns = json.loads((tmp_path / "export.json").read_text())["turns"]
    assert [t["status"] for t in turns].count("error") == 8
    assert all(t["error"] for t in turns if t["status"] == "error")

    no_key_in("".join(printed).encode(), "what chatrepl printed")
    written = [p for p in tmp_path.rglob("*") if p.is_file()] + [
        p for p in home.rglob("*") if p.is_file()
    ]
    assert any(p.name == "secrets.db-wal" or p.name == "secrets.db" for p in written)
    for path in written:
        no_key_in(path.read_bytes(), path)


def test_a_model_and_its_endpoint_do_not_show_the_key_in_their_repr(keyed):
    """A repr ends up in debug prints, logs and tracebacks with locals."""
    for name in VENDORS:
        model = get_backend(name)
        no_key_in(repr(model).encode(), f"repr of {name}")
        no_key_in(repr(model.endpoint).encode(), f"repr of the endpoint of {name}")


PRIVATE = textwrap.dedent(
    """
    import json, os, stat, sys
    os.umask(0)  # the most permissive umask: only chatrepl's own modes protect the files
    import chatrepl
    from chatrepl.settings import ensure_home, history_path, private_file, save_key
    home = ensure_home()
    save_key("openai", sys.argv[1])
    save_key("anthropic", sys.argv[1])  # rewriting keys.json keeps it private
    private_file(history_path())
    store = chatrepl.Store(home / "chatrepl.db")
    chatrepl.get_model("echo").conversation(store=store).prompt("hello").text()
    # While the database is open its -wal and -shm files exist: they hold conversations too.
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in home.iterdir()}
    modes[""] = stat.S_IMODE(home.stat().st_mode)
    print(json.dumps(modes))
    """
)


def test_files_holding_keys_or_conversations_are_private_even_with_umask_0(home):
    out = subprocess.run(
        [sys.executable, "-c", PRIVATE, KEY],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    modes = {name: oct(mode) for name, mode in json.loads(out.stdout).items()}
    assert modes == {
        "": "0o700",
        "keys.json": "0o600",
        "history": "0o600",
        "chatrepl.db": "0o600",
        "chatrepl.db-wal": "0o600",
        "chatrepl.db-shm": "0o600",
    }
    assert json.loads((home / "keys.json").read_text()) == {"openai": KEY, "anthropic": KEY}


# --- the REPL: history, /edit and /copy -------------------------------------------------------

RECORDER = """#!{python}
import json, sys, pathlib
log = pathlib.Path({log!r})
entry = {{"argv": sys.argv[1:], "stdin": None if sys.stdin.isatty() else sys.stdin.read()}}
if {append!r} and len(sys.argv) > 1:
    entry["file"] = pathlib.Path(sys.argv[-1]).read_text()
    with open(sys.argv[-1], "a") as f:
        f.write(" and from the editor")
with log.open("a") as f:
    f.write(json.dumps(entry) + "\\n")
"""

SHELL_BAIT = "$(touch pwned1) `touch pwned2`; touch pwned3 | touch pwned4 && touch pwned5"


def recorder(folder: Path, name: str, append: bool = False) -> tuple[Path, Path]:
    """A program that writes down how it was called (and, as an editor, edits its file)."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"{name}.log"
    program = folder / name
    program.write_text(RECORDER.format(python=sys.executable, log=str(log), append=append))
    program.chmod(0o755)
    return program, log


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_edit_and_copy_never_pass_text_through_a_shell(keyed, home, tmp_path):
    """The text (and $EDITOR's own words) reach the editor and the clipboard tool as they are:
    shell syntax in them runs nothing."""
    server, bin_dir = keyed, tmp_path / "bin"
    editor, edits = recorder(bin_dir, "my editor", append=True)  # a space in its path, too
    _, copies = recorder(bin_dir, "xclip")
    work = home.parent  # the REPL's working folder, where a `touch` would land
    env = {
        "EDITOR": f"'{editor}' --wait;touch pwned6",
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "DISPLAY": ":0",
    }
    with repl(home, **env) as t:
        say(t, f"/edit {SHELL_BAIT}", "(messages: 1)")
        sent = server.last["json"]["messages"][-1]["content"]
        assert sent == f"{SHELL_BAIT}\n and from the editor"
        server.push(Reply(f"Run {SHELL_BAIT}"))
        say(t, "ok?", "pwned5")
        say(t, "/copy", "Copied the last answer")
        t.key("ctrl-d")
        assert t.wait_exit() == 0
    (edit,) = calls(edits)
    assert edit["argv"][:2] == ["--wait;touch", "pwned6"] and len(edit["argv"]) == 3
    assert edit["file"] == SHELL_BAIT + "\n"
    (copy,) = calls(copies)
    assert copy == {"argv": ["-selection", "clipboard"], "stdin": f"Run {SHELL_BAIT}"}
    for folder in (work, home, tmp_path, bin_dir, Path.cwd()):
        assert not list(folder.glob("pwned*")), folder


def test_the_history_file_is_private_and_holds_no_key(keyed, home):
    with repl(home) as t:
        say(t, "a private thought", "You said: a private thought")
        t.line("/exit")
        assert t.wait_exit() == 0
    history = home / "history"
    assert oct(history.stat().st_mode & 0o777) == "0o600"
    assert "a private thought" in history.read_text()
    for path in home.iterdir():
        no_key_in(path.read_bytes(), path)

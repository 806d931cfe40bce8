"""Files that hold secrets or what was typed are private (0600) even when they already existed
with looser permissions: an input history and a keys.json copied in by hand at 0644 are
tightened the next time chatrepl uses them."""

from __future__ import annotations

import json
import stat
import sys

from conftest import child_env, run_chatrepl
from terminal import Terminal


def mode(path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


def test_a_loose_history_file_is_made_private_when_the_repl_starts(home):
    home.mkdir(parents=True, exist_ok=True)
    history = home / "history"
    history.write_text("\n# 2025-01-01 00:00:00.000000\n+an old prompt\n")
    history.chmod(0o644)
    env = child_env(TERM="xterm-256color", PYTHONIOENCODING="utf-8")
    with Terminal([sys.executable, "-m", "chatrepl", "-m", "echo:echo"], env) as t:
        t.wait_prompt()
        t.line("a new prompt")
        t.wait_for("a new prompt")
        t.wait_prompt()
        t.key("ctrl-d")
        t.wait_exit()
    assert mode(history) == "0o600"
    assert "+an old prompt" in history.read_text() and "+a new prompt" in history.read_text()


def test_a_loose_keys_file_is_made_private_when_it_is_read(home):
    home.mkdir(parents=True, exist_ok=True)
    keys = home / "keys.json"
    keys.write_text(json.dumps({"openai": "sk-copied-in-by-hand-0123456789"}))
    keys.chmod(0o644)
    out = run_chatrepl("models", "--json")
    assert out.returncode == 0, out.stderr
    openai = next(p for p in json.loads(out.stdout)["providers"] if p["name"] == "openai")
    assert openai["key"] == "set"  # it was read ...
    assert mode(keys) == "0o600"  # ... and is private now

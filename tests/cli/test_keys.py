"""``chatrepl keys``: a key goes to the keyring when one works, else to keys.json (0600); it is
never printed; the lookup order is environment, keyring, keys.json; and keyring is imported
only when a key is missing from the environment and chatrepl stored one there.

The keyring is a real ``keyring`` backend: tests/keyring_backend.py (a JSON file), selected
as a user selects one, with ``PYTHON_KEYRING_BACKEND``; "no keyring" is keyring's own
``fail.Keyring``.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path

import pytest
from conftest import child_env, run_chatrepl
from fakeserver import FakeLLMServer

pytest.importorskip("keyring", reason="needs keyring (pip install -e '.[dev]')")

TESTS = str(Path(__file__).parent.parent)  # where keyring_backend.py is
KEY = "sk-proj-Secret0123456789abcdef"


def no_keyring(**extra: str) -> dict[str, str]:
    return child_env(PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring", **extra)


def file_keyring(tmp_path: Path, **extra: str) -> dict[str, str]:
    return child_env(
        PYTHON_KEYRING_BACKEND="keyring_backend.FileKeyring",
        PYTHONPATH=TESTS,
        CHATREPL_TEST_KEYRING=str(tmp_path / "keyring.json"),
        **extra,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def ask_fake_server(server: FakeLLMServer, env: dict[str, str]) -> str:
    """The Authorization header of one prompt sent to the fake OpenAI server."""
    env = {**env, "OPENAI_BASE_URL": server.openai_url}
    env.pop("OPENAI_API_KEY", None)
    out = run_chatrepl("-m", "openai:gpt-test", "-p", "hi", env=env)
    assert out.returncode == 0, out.stderr
    assert KEY not in out.stdout + out.stderr
    return server.last["headers"]["Authorization"]


def test_without_a_keyring_the_key_goes_to_keys_json(home: Path, server: FakeLLMServer) -> None:
    env = no_keyring()
    out = run_chatrepl("keys", "set", "openai", input=KEY + "\n", env=env)
    assert out.returncode == 0, out.stderr
    path = home / "keys.json"
    assert out.stdout == f"Stored the key for openai in {path} (readable by you only).\n"
    assert json.loads(path.read_text()) == {"openai": KEY}
    assert mode(path) == 0o600
    listed = run_chatrepl("keys", "list", env=env)
    assert listed.stdout == "openai\tkeys.json\n"
    as_json = run_chatrepl("keys", "list", "--json", env=env)
    assert json.loads(as_json.stdout) == [{"name": "openai", "stored": ["keys.json"]}]
    assert run_chatrepl("keys", "path", env=env).stdout == f"{path}\n"
    assert ask_fake_server(server, env) == f"Bearer {KEY}"

    gone = run_chatrepl("keys", "remove", "openai", env=env)
    assert gone.stdout == f"Removed the key for openai from {path}.\n"
    assert json.loads(path.read_text()) == {}
    again = run_chatrepl("keys", "remove", "openai", env=env)
    assert (again.returncode, again.stderr) == (1, "chatrepl: No key named openai is stored.\n")


def test_with_a_keyring_the_key_goes_there_and_nowhere_else(
    home: Path, tmp_path: Path, server: FakeLLMServer
) -> None:
    # a key kept in keys.json before the keyring was installed moves into it
    run_chatrepl("keys", "set", "openai", input="sk-old-key", env=no_keyring())
    env = file_keyring(tmp_path)
    out = run_chatrepl("keys", "set", "openai", input=KEY, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Stored the key for openai in the system keyring (")
    assert json.loads((tmp_path / "keyring.json").read_text()) == {"chatrepl/openai": KEY}
    assert json.loads((home / "keys.json").read_text()) == {}  # no stale copy on disk
    index = home / "keyring-names.json"
    assert json.loads(index.read_text()) == ["openai"] and mode(index) == 0o600
    for path in home.rglob("*"):  # the key is in no file of the home folder
        assert path.is_dir() or KEY not in path.read_text(errors="replace")
    assert run_chatrepl("keys", "list", env=env).stdout == "openai\tkeyring\n"
    assert ask_fake_server(server, env) == f"Bearer {KEY}"

    removed = run_chatrepl("keys", "remove", "openai", env=env)
    assert removed.stdout == "Removed the key for openai from the system keyring.\n"
    assert json.loads((tmp_path / "keyring.json").read_text()) == {}


def test_the_environment_comes_first(home: Path, tmp_path: Path, server: FakeLLMServer) -> None:
    env = file_keyring(tmp_path, OPENAI_API_KEY="sk-from-the-environment")
    out = run_chatrepl("keys", "set", "openai", input=KEY, env=env)
    assert (
        "Note: OPENAI_API_KEY is set in the environment, and is used before this key." in out.stdout
    )
    listed = run_chatrepl("keys", "list", env=env)
    assert listed.stdout == "openai\tenvironment (OPENAI_API_KEY), keyring\n"
    env["OPENAI_BASE_URL"] = server.openai_url
    run_chatrepl("-m", "openai:gpt-test", "-p", "hi", env=env)
    assert server.last["headers"]["Authorization"] == "Bearer sk-from-the-environment"


@pytest.mark.parametrize(
    ("name", "key", "said"),
    [
        ("openai", "", "chatrepl: No key was given: nothing stored.\n"),
        (
            "openai",
            "two words",
            "chatrepl: A key is one word of printable characters: nothing stored.\n",
        ),
        (
            "../x",
            KEY,
            "chatrepl: '../x' cannot name a key: use the provider's name, e.g. openai (letters, "
            "digits, '_', '.', '-').\n",
        ),
    ],
)
def test_what_cannot_be_stored(home: Path, name: str, key: str, said: str) -> None:
    out = run_chatrepl("keys", "set", name, input=key, env=no_keyring())
    assert (out.returncode, out.stderr, out.stdout) == (1, said, "")
    assert not (home / "keys.json").exists()


def test_keyring_is_imported_only_when_a_key_may_be_in_it(home: Path, tmp_path: Path) -> None:
    def imports_keyring(env: dict[str, str]) -> bool:
        timed = run_chatrepl_importtime(env)
        return bool(re.search(r"\|\s+keyring$", timed, re.MULTILINE))

    env = file_keyring(tmp_path)
    assert not imports_keyring(env)  # no key anywhere, none in the keyring: not imported
    assert not imports_keyring({**env, "OPENAI_API_KEY": "x", "ANTHROPIC_API_KEY": "y"})
    run_chatrepl("keys", "set", "anthropic", input=KEY, env=env)
    assert imports_keyring(env)  # the environment lacks it and the keyring has it
    assert not imports_keyring({**env, "ANTHROPIC_API_KEY": "y"})


def run_chatrepl_importtime(env: dict[str, str]) -> str:
    import subprocess

    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "chatrepl", "-m", "echo", "-p", "hi"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    return p.stderr


def test_a_key_typed_at_a_terminal_is_not_echoed(home: Path) -> None:
    from terminal import Terminal

    env = no_keyring(TERM="xterm-256color")
    with Terminal([sys.executable, "-m", "chatrepl", "keys", "set", "openai"], env) as t:
        t.wait_for(r"Key for openai \(not shown\):")
        t.send(KEY + "\r")
        assert t.wait_exit() == 0
        t.pump()
        screen = t.scrollback()
    assert KEY not in screen
    assert "Stored the key for openai in" in screen
    assert json.loads((home / "keys.json").read_text()) == {"openai": KEY}
    assert os.stat(home / "keys.json").st_mode & 0o077 == 0

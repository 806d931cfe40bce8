"""``chatrepl import-llm`` brings llm's saved templates (and with ``--keys`` its keys), written
here by the real llm: what cannot come over is reported, nothing is overwritten silently, and a
key is never printed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml
from conftest import child_env, run_chatrepl
from test_import_llm import llm

pytestmark = pytest.mark.skipif(
    not (importlib.util.find_spec("llm") and importlib.util.find_spec("llm_echo")),
    reason="needs llm and llm-echo (pip install -e '.[dev]')",
)

KEY = "sk-llm-Secret0123456789"


def llm_folder(tmp_path: Path) -> Path:
    """llm's folder with templates and a key saved by llm itself."""
    folder = tmp_path / "llm"
    folder.mkdir()
    (folder / "notes.txt").write_text("Some notes\n")
    llm(
        folder, "--save", "review", "-m", "echo", "-s", "You review code", "-o", "example_bool", "1"
    )
    llm(folder, "--save", "summary", "-s", "Summarise", "-f", str(folder / "notes.txt"))
    llm(folder, "--save", "wrap", "-m", "gpt-4o-mini", "-p", "x", "1", "Explain: $input")
    (folder / "templates" / "fragments_only.yaml").write_text("fragments: [a.txt]\n")
    (folder / "templates" / "broken.yaml").write_text("system: [oops\n")
    keys = folder / "keys.json"
    keys.write_text(
        json.dumps({"// Note": "This file stores secret API credentials.", "openai": KEY})
    )
    return folder


def test_templates_and_keys_come_over_and_the_report_says_what_did_not(
    home: Path, tmp_path: Path
) -> None:
    folder = llm_folder(tmp_path)
    (home / "templates").mkdir(parents=True)
    mine = home / "templates" / "review.yaml"
    mine.write_text("system: My own reviewer\n")
    env = child_env(
        LLM_USER_PATH=str(folder), PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring"
    )
    out = run_chatrepl("import-llm", "--keys", env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"Imported 0 conversations (0 turns) from {folder / 'logs.db'}."
    assert "Imported 2 templates from llm: summary, wrap." in lines
    assert "Imported summary without fragments (chatrepl does not support those)." in lines
    assert "Not imported: review: a different template of that name is here." in lines
    assert "Not imported: fragments_only: only fragments." in lines
    assert "Not imported: broken: not readable YAML." in lines
    assert "Imported 1 key from llm: openai (keys.json)." in lines
    assert KEY not in out.stdout + out.stderr
    assert mine.read_text() == "system: My own reviewer\n"  # never overwritten
    assert yaml.safe_load((home / "templates" / "summary.yaml").read_text()) == {
        "system": "Summarise"
    }
    wrap = yaml.safe_load((home / "templates" / "wrap.yaml").read_text())
    assert wrap["model"] == "openai:gpt-4o-mini"  # llm's model id as a chatrepl name
    assert json.loads((home / "keys.json").read_text()) == {"openai": KEY}

    again = run_chatrepl("import-llm", "--keys", env=env)
    assert "2 templates already here: summary, wrap." in again.stdout
    assert "1 key already here: openai." in again.stdout
    # an imported template works as it is
    used = run_chatrepl("-t", "summary", "-m", "echo", "-p", "hello", env=env)
    assert (used.returncode, used.stdout) == (0, "hello\n")


def test_a_different_key_is_kept_and_keys_come_only_when_asked(home: Path, tmp_path: Path) -> None:
    folder = llm_folder(tmp_path)
    (folder / "logs.db").unlink()  # templates and keys, no logs yet
    env = child_env(
        LLM_USER_PATH=str(folder), PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring"
    )
    without = run_chatrepl("import-llm", env=env)
    assert without.returncode == 0, without.stderr
    assert without.stdout.splitlines()[0] == f"No conversations: there is no logs.db in {folder}."
    assert "key from llm" not in without.stdout and "No keys" not in without.stdout
    assert not (home / "keys.json").exists()
    run_chatrepl("keys", "set", "openai", input="sk-mine-different", env=env)
    out = run_chatrepl("import-llm", "--keys", env=env)
    assert "Not imported: openai: chatrepl has a different key for it (kept)." in out.stdout
    assert json.loads((home / "keys.json").read_text()) == {"openai": "sk-mine-different"}

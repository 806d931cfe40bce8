"""``-a`` and ``/attach`` with a folder or a glob: its text files under their relative names, a
binary file refused in one sentence each, a total cap with one sentence; known keys blanked out
of attached text before it is sent or saved."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_chatrepl
from fakeserver import FakeLLMServer
from harness import make
from prompt_toolkit.input import create_pipe_input

from chatrepl.store import Store

pytestmark = pytest.mark.timeout(60)
KEY = "sk-test-key-0123456789"  # conftest's openai_env sets it as OPENAI_API_KEY


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A small source tree: text files in folders, a binary file, an image, a hidden folder."""
    root = tmp_path / "proj"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / ".cache").mkdir()
    (root / "src" / "main.py").write_text("print('main')\n")
    (root / "src" / "pkg" / "util.py").write_text("def util():\n    return 1\n")
    (root / "src" / "notes.md").write_text("# Notes\n")
    (root / "src" / "blob.bin").write_bytes(b"\x00\x01\x02binary")
    (root / "src" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (root / "src" / ".cache" / "hidden.py").write_text("hidden = True\n")
    return root


def texts(server: FakeLLMServer) -> list[str]:
    return [b["text"] for b in server.last["json"]["messages"][-1]["content"]]


def test_dash_a_folder_sends_its_text_files_and_refuses_binaries_one_sentence_each(
    openai_env: FakeLLMServer, project: Path
) -> None:
    out = run_chatrepl("-m", "openai:gpt-test", "-a", str(project / "src"), "-p", "review")
    assert out.returncode == 0, out.stderr
    sent = texts(openai_env)
    assert [s.split("\n", 1)[0] for s in sent[:-1]] == [
        "[file src/main.py]",
        "[file src/notes.md]",
        "[file src/pkg/util.py]",
    ]
    assert "def util():" in sent[2] and sent[-1] == "review"
    refused = [line for line in out.stderr.splitlines() if "Left out" in line]
    assert refused == [
        "chatrepl: Left out 'src/blob.bin': a binary file (a folder or a glob gives its text "
        "files only).",
        "chatrepl: Left out 'src/logo.png': a binary file (a folder or a glob gives its text "
        "files only).",
    ]
    assert "hidden" not in " ".join(sent)  # a hidden folder is left out


def test_the_total_cap_stops_the_expansion_with_one_sentence(
    openai_env: FakeLLMServer, project: Path, home: Path
) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("[attachments]\nmax_folder_kb = 0.025\n")  # 25 bytes
    out = run_chatrepl("-m", "openai:gpt-test", "-a", str(project / "src"), "-p", "x")
    assert out.returncode == 0, out.stderr
    assert len(texts(openai_env)) == 3  # main.py (14 B) and notes.md (8 B), then the prompt
    capped = [line for line in out.stderr.splitlines() if "cap" in line]
    assert len(capped) == 1
    assert capped[0].startswith("chatrepl: Stopped at 22 B: 1 more file of '/")
    assert capped[0].endswith(
        "' would pass the cap of 25 B ([attachments] max_folder_kb in config.toml)."
    )
    bad = run_chatrepl("-a", "/no/such/*.py", "-p", "x")
    assert bad.returncode == 1 and "No files match '/no/such/*.py'." in bad.stderr


def test_known_keys_are_blanked_out_of_attached_text(
    openai_env: FakeLLMServer, tmp_path: Path, home: Path
) -> None:
    notes = tmp_path / "env.txt"
    notes.write_text(f"OPENAI_API_KEY={KEY}\nother=fine\n")
    out = run_chatrepl("-m", "openai:gpt-test", "-a", str(notes), "-p", "what is this")
    assert out.returncode == 0, out.stderr
    assert (
        texts(openai_env)[0]
        == "[file env.txt]\nOPENAI_API_KEY=***\nother=fine\n[end of file env.txt]"
    )
    store = Store(home / "chatrepl.db", create=False)
    part = next(
        p
        for t in store.turns(store.recent(1)[0].id)
        for p in t.parts
        if p.data.get("name") == "env.txt"
    )
    assert KEY.encode() not in (store.attachment(part.data["sha256"]) or b"")


@pytest.fixture
def repl(store: Store, home: Path) -> Iterator:
    with create_pipe_input() as pipe:
        yield make(store, pipe=pipe)


def test_attach_takes_a_glob_with_relative_names(
    repl, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    repl.handle("/attach 'src/**/*.py'")
    said = repl.console.file.getvalue()
    assert "Attached 2 files" in said and "from 'src/**/*.py'" in said
    assert [p.data["name"] for p in repl.staged] == ["src/main.py", "src/pkg/util.py"]
    for n in range(12):  # a folder's files do not count against max_files (10)
        (project / f"f{n}.txt").write_text(f"file {n}\n")
    repl.handle("/attach .")
    assert len(repl.staged) == 2 + 12 + 1  # the glob's, the new ones, notes.md
    repl.handle("/attach src/notes.md")  # already staged through the folder
    assert "is already staged" in repl.console.file.getvalue()
    repl.handle("look")
    turn = repl.store.turns(repl.conversation.id)[-1]
    names = [p.data["name"] for p in turn.parts if p.kind == "attachment"]
    assert names[:2] == ["src/main.py", "src/pkg/util.py"] and "f0.txt" in names

"""Nothing hangs on a file that is not a regular file: a named pipe (FIFO) given as an
attachment (even named ``.png``, even through a symbolic link; with ``-a`` and with
``/attach``), as the MCP servers file, as config.toml, as an export to import or as the
database is refused at once, in one sentence; a servers file nested too deeply is one sentence
too. A hang fails the test by its time-out."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from conftest import child_env, run_chatrepl
from terminal import Terminal

pytestmark = pytest.mark.timeout(60)
QUICK = 20  # seconds: a refusal is immediate; only a hang takes this long


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    os.mkfifo(path)
    return path


def one_line(out, *words: str) -> str:
    assert out.returncode != 0, out.stdout
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("chatrepl: "), out.stderr
    assert "Traceback" not in out.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_a_fifo_named_like_a_picture_is_refused_as_an_attachment(fifo, tmp_path):
    out = run_chatrepl(
        "--db", str(tmp_path / "c.db"), "-m", "echo:echo", "-a", str(fifo), "-p", "look",
        timeout=QUICK,
    )  # fmt: skip
    line = one_line(out, "photo.png", "named pipe", "not a regular file")
    assert line.endswith(".")


def test_a_fifo_behind_a_symbolic_link_is_refused(fifo, tmp_path):
    link = tmp_path / "link.png"
    link.symlink_to(fifo)
    out = run_chatrepl(
        "--db", str(tmp_path / "c.db"), "-m", "echo:echo", "-a", str(link), "-p", "look",
        timeout=QUICK,
    )  # fmt: skip
    one_line(out, "link.png", "named pipe")


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_a_device_is_refused_as_an_attachment(device, tmp_path):
    out = run_chatrepl(
        "--db", str(tmp_path / "c.db"), "-m", "echo:echo", "-a", device, "-p", "look",
        timeout=QUICK,
    )  # fmt: skip
    one_line(out, device, "a device")


def test_attach_in_the_repl_refuses_a_fifo_and_goes_on(fifo):
    env = child_env(TERM="xterm-256color", PYTHONIOENCODING="utf-8")
    argv = [sys.executable, "-m", "chatrepl", "-m", "echo:echo"]
    with Terminal(argv, env) as t:
        t.wait_prompt()
        t.line(f"/attach {fifo}")
        t.wait_for("named pipe", timeout=QUICK)
        t.wait_prompt()
        t.line("still here")
        t.wait_for("still here", timeout=QUICK)


def test_a_fifo_as_the_mcp_servers_file_is_one_sentence(home, tmp_path):
    fifo = tmp_path / "mcp.json"
    os.mkfifo(fifo)
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(f'[mcp]\nservers_file = "{fifo}"\n')
    out = run_chatrepl("tools", timeout=QUICK)
    one_line(out, "mcp.json", "named pipe")


def test_a_deeply_nested_servers_file_is_one_sentence(home, tmp_path):
    deep = tmp_path / "mcp.json"
    deep.write_text('{"mcpServers": ' + "[" * 100_000 + "]" * 100_000 + "}")
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(f'[mcp]\nservers_file = "{deep}"\n')
    out = run_chatrepl("tools", timeout=QUICK)
    one_line(out, "mcp.json", "nested too deeply")


def test_a_deeply_nested_config_is_one_sentence(home):
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    out = run_chatrepl("models", timeout=QUICK)
    one_line(out, "config.toml", "nested too deeply")


def test_a_fifo_as_config_toml_is_one_sentence(home):
    home.mkdir(parents=True, exist_ok=True)
    os.mkfifo(home / "config.toml")
    out = run_chatrepl("models", timeout=QUICK)
    one_line(out, "config.toml", "named pipe")


def test_a_fifo_to_import_is_one_sentence(fifo, tmp_path):
    out = run_chatrepl("import", "--db", str(tmp_path / "c.db"), str(fifo), timeout=QUICK)
    one_line(out, "photo.png", "named pipe", "- to read one from stdin")


def test_a_fifo_as_the_database_is_one_sentence(fifo):
    out = run_chatrepl("list", "--db", str(fifo), timeout=QUICK)
    one_line(out, "photo.png", "named pipe", "not a chatrepl database")

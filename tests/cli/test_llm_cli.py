"""The import-llm tests' llm (tests/llm_cli.py) answers as ``python -m llm`` does."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from llm_cli import run_llm
from test_import_llm import llm_env

pytestmark = pytest.mark.skipif(
    not importlib.util.find_spec("llm"), reason="needs llm (pip install -e '.[dev]')"
)


@pytest.mark.parametrize(
    "args", [["logs", "path"], ["--no-such-option"], ["-m", "echo", "hello"]], ids=" ".join
)
def test_a_forked_call_gives_what_a_process_of_its_own_gives(args: list[str], tmp_path: Path):
    forked = run_llm(args, llm_env(tmp_path / "forked"))
    alone = subprocess.run(
        [sys.executable, "-m", "llm", *args],
        env=llm_env(tmp_path / "alone"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    mine = str(tmp_path / "forked")  # each has its own folder, named in what it prints
    assert forked.returncode == alone.returncode
    assert forked.stdout == alone.stdout.replace(str(tmp_path / "alone"), mine)
    assert forked.stderr == alone.stderr
    assert (tmp_path / "forked" / "logs.db").exists() == (tmp_path / "alone" / "logs.db").exists()

"""The ``llm`` we compare with, in an environment of its own (never chatrepl's runtime).

Created on first use in the cache folder (``~/.cache/chatrepl-bench/venv-llm``) with
``python -m venv`` and ``pip install llm llm-echo``; reused after that.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .common import cache_dir

PACKAGES = ("llm", "llm-echo")  # llm-echo: llm's offline ``echo`` model


def llm_bin() -> Path:
    """The ``llm`` executable of the benchmark's own environment, created if missing."""
    venv = cache_dir() / "venv-llm"
    exe = venv / "bin" / "llm"
    if exe.exists():
        return exe
    print(f"creating {venv} with {' '.join(PACKAGES)} (once) …", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *PACKAGES], check=True
    )
    return exe


def llm_versions() -> str:
    """``llm 0.x, llm-echo 0.y`` as installed in that environment."""
    python = llm_bin().parent / "python"
    code = (
        "from importlib.metadata import version\n"
        f"print(', '.join(f'{{p}} {{version(p)}}' for p in {PACKAGES!r}))"
    )
    return subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()

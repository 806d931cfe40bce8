"""Shared fixtures: an isolated home folder and the fake vendor server."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakeserver import FakeLLMServer  # noqa: E402

#: Variables that would let a test reach a real service or a real home folder.
_ISOLATE = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "OLLAMA_HOST",
    "CHATREPL_MODEL",
    "CHATREPL_DB",
    "CHATREPL_TIMEOUT",
    "VISUAL",
    "EDITOR",
    "NO_COLOR",
)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own CHATREPL_HOME and no keys from the outside world."""
    for name in _ISOLATE:
        monkeypatch.delenv(name, raising=False)
    # The offline fallback is echo, deterministic, even where the local extra is installed;
    # tests of the local model choose it by name (or delete this variable).
    monkeypatch.setenv("CHATREPL_OFFLINE_MODEL", "echo:echo")
    folder = tmp_path / "home"
    monkeypatch.setenv("CHATREPL_HOME", str(folder))
    return folder


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    """A running fake OpenAI/Anthropic server on a loopback port."""
    with FakeLLMServer() as s:
        yield s


@pytest.fixture
def openai_env(server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> FakeLLMServer:
    """The environment pointing the openai and anthropic providers at the fake server."""
    monkeypatch.setenv("OPENAI_BASE_URL", server.openai_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key-0123456789")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key-0123456789")
    return server


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a chatrepl subprocess: this one (already isolated) plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(extra)
    return env


def run_chatrepl(
    *args: str,
    input: str | bytes | None = None,
    text: bool = True,
    env: dict[str, str] | None = None,
    prefix: list[str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess:
    """``python -m chatrepl ARGS`` as a user runs it, in the isolated environment."""
    return subprocess.run(
        [*(prefix or []), sys.executable, "-m", "chatrepl", *args],
        input=input,
        capture_output=True,
        text=text,
        env=env or child_env(),
        timeout=timeout,
    )


def saved_rows(db: str | os.PathLike[str]) -> list[dict]:
    """Every row of the turns table, oldest first, read with plain sqlite3."""
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM turns ORDER BY seq")]
    finally:
        con.close()

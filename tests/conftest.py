"""Shared fixtures: an isolated home folder and the fake vendor server; the skip policy."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakeserver import FakeLLMServer  # noqa: E402

if TYPE_CHECKING:
    from chatrepl.store import Store

#: Variables that would let a test reach a real service or a real home folder, or change what
#: it sees.
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
    # A terminal's size from the environment overrides the pseudo-terminal's own (rich and
    # prompt-toolkit read them first); pytest-xdist's workers set both to 80×24.
    "COLUMNS",
    "LINES",
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


@pytest.fixture(autouse=True)
def fresh_connections() -> Iterator[None]:
    """Every test starts with no kept HTTP connections (the pool lives as long as the process)."""
    yield
    from chatrepl.providers.connections import close_all

    close_all()


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
    """Every row of the turns table with its texts (prompt, response: made from its parts by
    the ``turn_texts`` view), oldest first, read with plain sqlite3."""
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        sql = "SELECT t.*, x.* FROM turns t JOIN turn_texts x ON x.seq = t.seq ORDER BY t.seq"
        return [dict(r) for r in con.execute(sql)]
    finally:
        con.close()


# --- the skip policy -------------------------------------------------------------------------
#
# With CHATREPL_NO_SKIPS=1 (set by .ci/run) a skipped test fails the run, unless its reason says
# that what it needs cannot exist on this machine. A skip is never counted as a pass: a missing
# extra, package or server that CI is meant to install is a failure there, with the test named.

#: Reasons a test may skip even in CI: what it needs cannot exist on this machine.
ALLOWED_SKIPS = (
    re.compile(r"Node\.js and npm are not on this machine"),  # no node: server-everything
    re.compile(r"tmux is not on this machine"),  # no tmux and no apt-get: the reflow tests
    re.compile(r"chromium is not on this machine"),  # no apt-get: the HTML export's browser
    re.compile(r"\(offline\?\)"),  # a test that installs an old release from PyPI, offline
    re.compile(r"cannot mount a small filesystem"),  # a container without mount: full disks
)
_skipped: list[tuple[str, str]] = []


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
    else:
        reason = str(longrepr)
    return reason.removeprefix("Skipped: ")


def _record_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append((report.nodeid, _skip_reason(report)))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Note every skipped test with its reason."""
    _record_skip(report)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    """Note every module skipped as a whole (``pytest.skip(allow_module_level=True)``)."""
    _record_skip(report)


def unexpected_skips() -> list[tuple[str, str]]:
    """The skips so far whose reason is not on :data:`ALLOWED_SKIPS`: (test id, reason)."""
    return [(n, r) for n, r in _skipped if not any(p.search(r) for p in ALLOWED_SKIPS)]


def _no_skips() -> bool:
    return os.environ.get("CHATREPL_NO_SKIPS", "") not in ("", "0")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CHATREPL_NO_SKIPS, an unexpected skip makes the run fail."""
    if _no_skips() and unexpected_skips() and exitstatus in (0, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Say which tests skipped and why, and that this fails the run."""
    bad = unexpected_skips()
    if not (_no_skips() and bad):
        return
    terminalreporter.section("skips not allowed (CHATREPL_NO_SKIPS=1)", red=True, bold=True)
    for nodeid, reason in bad:
        terminalreporter.line(f"SKIPPED {nodeid}: {reason}", red=True)
    terminalreporter.line(
        f"{len(bad)} test(s) skipped for a reason CI does not accept: install what they need "
        "(see .ci/run), or, if it cannot exist on this machine, add the reason to "
        "ALLOWED_SKIPS in tests/conftest.py.",
        red=True,
    )


def module_of_tests(path: str) -> Any:
    """The test module at ``path`` (under tests/), to run some of its tests again elsewhere."""
    import importlib.util

    name = Path(path).stem
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parent / path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A new SQLite store in the test's own folder (``s.db``), closed afterwards."""
    from chatrepl.store import Store

    opened = Store(tmp_path / "s.db")
    yield opened
    opened.close()

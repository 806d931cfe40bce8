"""The skip policy: with CHATREPL_NO_SKIPS=1 a skip fails the run, unless what the test needs
cannot exist on the machine; the message names the test and its reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import child_env

CONFTEST = Path(__file__).with_name("conftest.py")
SAMPLE = """
import pytest

def test_runs():
    assert True

def test_needs_an_extra():
    pytest.skip("the frobnicate extra is not installed")

def test_needs_node():
    pytest.skip("Node.js and npm are not on this machine: server-everything cannot run")
"""
ONLY_ALLOWED = """
import pytest

def test_runs():
    assert True

def test_needs_node():
    pytest.skip("Node.js and npm are not on this machine: server-everything cannot run")
"""
MODULE_SKIP = """
import pytest

pytest.skip("llama.cpp's server cannot run here: llama-cpp-python not installed",
            allow_module_level=True)

def test_never():
    assert True
"""


def pytest_in(folder: Path, source: str, no_skips: str | None) -> subprocess.CompletedProcess:
    """pytest over one test file that uses our conftest, in a folder of its own."""
    (folder / "conftest.py").write_text(CONFTEST.read_text())
    (folder / "fakeserver.py").write_text(CONFTEST.with_name("fakeserver.py").read_text())
    (folder / "test_sample.py").write_text(source)
    env = child_env()
    env.pop("CHATREPL_NO_SKIPS", None)
    if no_skips is not None:
        env["CHATREPL_NO_SKIPS"] = no_skips
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_unexpected_skip_fails_the_run_and_says_which_and_why(tmp_path: Path) -> None:
    r = pytest_in(tmp_path, SAMPLE, "1")
    assert r.returncode == 1, r.stdout
    assert "skips not allowed (CHATREPL_NO_SKIPS=1)" in r.stdout
    assert (
        "SKIPPED test_sample.py::test_needs_an_extra: the frobnicate extra is not installed"
        in r.stdout
    )
    assert "test_sample.py::test_needs_node:" not in r.stdout  # node cannot be here: allowed


def test_a_module_skipped_whole_fails_the_run_too(tmp_path: Path) -> None:
    r = pytest_in(tmp_path, MODULE_SKIP, "1")
    assert r.returncode == 1, r.stdout
    assert "SKIPPED test_sample.py: llama.cpp's server cannot run here" in r.stdout


def test_an_allowed_skip_and_a_run_without_the_policy_pass(tmp_path: Path) -> None:
    assert pytest_in(tmp_path, ONLY_ALLOWED, "1").returncode == 0
    r = pytest_in(tmp_path, SAMPLE, None)
    assert r.returncode == 0 and "skips not allowed" not in r.stdout
    assert pytest_in(tmp_path, SAMPLE, "0").returncode == 0


def test_ci_asks_for_the_policy() -> None:
    ci = (CONFTEST.parents[1] / ".ci" / "run").read_text()
    assert "CHATREPL_NO_SKIPS=1" in ci

"""``pytest -p cputime``: the slowest test phases with the CPU time they used.

On a busy machine a test's wall time says little: it waits for the processor as much as for
anything it does. Beside each phase's wall time this shows the CPU time of the test process and
of the child processes that ended in it (chatrepl, llm, pytest, servers: counted when they are
reaped), so work can be told from waiting: a phase with little CPU and a long wall time waits
(a sleep, a time-out, a server), one whose CPU is most of its wall time works.
``--cputime=N`` shows N phases (20 by default) and ``--cputime-sort=cpu`` orders them by CPU.
Under ``-n`` (pytest-xdist) the workers measure and the table is shown once, for all of them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass
class Phase:
    nodeid: str
    when: str  # setup, call or teardown
    wall: float
    own: float  # CPU of the test process, user and system
    children: float  # CPU of the child processes reaped meanwhile

    @property
    def cpu(self) -> float:
        return self.own + self.children


_phases: list[Phase] = []
_measured: dict[tuple[str, str], tuple[float, float, float]] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cputime")
    group.addoption("--cputime", type=int, default=20, help="how many phases to show")
    group.addoption("--cputime-sort", choices=("wall", "cpu"), default="wall")


def _cpu() -> tuple[float, float]:
    t = os.times()
    return t.user + t.system, t.children_user + t.children_system


def _measure(item: pytest.Item, when: str) -> Iterator[None]:
    own, children = _cpu()
    start = time.perf_counter()
    yield
    wall = time.perf_counter() - start
    own_after, children_after = _cpu()
    _measured[item.nodeid, when] = (wall, own_after - own, children_after - children)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    yield from _measure(item, "setup")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    yield from _measure(item, "call")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    yield from _measure(item, "teardown")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """The figures travel in the report, so that under xdist they reach the controller."""
    outcome = yield
    if figures := _measured.pop((item.nodeid, call.when), None):
        outcome.get_result().user_properties.append(("cputime", figures))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for name, figures in report.user_properties:
        if name == "cputime":
            _phases.append(Phase(report.nodeid, report.when, *figures))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if not _phases:
        return
    key = (lambda p: p.cpu) if config.getoption("cputime_sort") == "cpu" else (lambda p: p.wall)
    total = Phase(
        "", "", *(sum(getattr(p, f) for p in _phases) for f in ("wall", "own", "children"))
    )
    terminalreporter.section("wall and CPU time (cputime)")
    terminalreporter.line(f"{'wall':>8} {'cpu':>7} {'own':>7} {'children':>8}  phase")
    for p in [*sorted(_phases, key=key, reverse=True)[: config.getoption("cputime")], total]:
        name = f"{p.when:8} {p.nodeid}" if p.nodeid else "all tests"
        terminalreporter.line(
            f"{p.wall:7.2f}s {p.cpu:6.2f}s {p.own:6.2f}s {p.children:7.2f}s  {name}"
        )

"""What every benchmark shares: repeated measures, their summary, a results row, the cache.

A figure is the median of repeated runs, shown with its min and max. Comparisons are measured
interleaved (a, b, a, b, …) in the same invocation, so that load from other processes falls
on both sides alike and the ratio holds on a noisy machine.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the environment chatrepl is installed in


def cache_dir() -> Path:
    """Where generated databases and llm's environment live: outside git, reused when present."""
    path = Path(os.environ.get("CHATREPL_BENCH_CACHE") or Path.home() / ".cache" / "chatrepl-bench")
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Stat:
    """Repeated measures of one thing, in ``unit`` (``s`` for seconds, ``B`` for bytes)."""

    values: list[float]
    unit: str = "s"

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def max(self) -> float:
        return max(self.values)

    def fmt(self, value: float | None = None) -> str:
        return fmt(self.median if value is None else value, self.unit)

    def spread(self) -> str:
        if len(self.values) < 2:
            return ""
        return f"{self.fmt(self.min)} … {self.fmt(self.max)}"


def fmt(value: float, unit: str) -> str:
    """A value with three significant figures and a readable unit."""
    if unit == "s":
        if abs(value) >= 1:
            return f"{value:.2f} s"
        if abs(value) >= 0.001:
            return f"{value * 1000:.3g} ms"
        return f"{value * 1e6:.3g} µs"
    if unit == "B":
        for size, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
            if value >= size:
                return f"{value / size:.3g} {name}"
        return f"{value:.0f} B"
    if unit == "%":
        return f"{value:.2f} %"
    if unit == "x":
        return f"{value:.2f}×"
    return f"{value:.3g} {unit}".strip()


@dataclass
class Row:
    """One line of the table.

    Args:
        what: what was measured.
        stat: the measures.
        beside: what it is compared with, e.g. ``llm --version 1.12 s (18.3× slower)``.
        target: the target in words, e.g. ``≤ 60 ms``.
        met: whether the target is met; ``None`` when there is no target.
        if_missed: said under the table when the target is missed: why, and what it would take.
    """

    what: str
    stat: Stat | None
    beside: str = ""
    target: str = ""
    met: bool | None = None
    value: str = ""  # shown instead of the median when there is no Stat
    if_missed: str = ""  # why the target can be missed and what it would take, when it is


@dataclass
class Section:
    """The results of one benchmark: its rows and the notes that explain them."""

    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *args, **kwargs) -> Row:
        row = Row(*args, **kwargs)
        self.rows.append(row)
        return row


def interleaved(cases: dict[str, Callable[[], float]], repeat: int, warmup: int = 1) -> dict:
    """Run every case once per round, ``warmup`` + ``repeat`` rounds; returns name → Stat.

    Each case returns the figure it measured (seconds), so it can leave out its own set-up.
    """
    values: dict[str, list[float]] = {name: [] for name in cases}
    for i in range(warmup + repeat):
        for name, case in cases.items():
            value = case()
            if i >= warmup:
                values[name].append(value)
    return {name: Stat(v) for name, v in values.items()}


def ratio(slow: Stat, fast: Stat) -> float:
    """How many times faster ``fast`` is, median against median."""
    return slow.median / fast.median


def machine() -> str:
    """One line saying what the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        memory = f"{mem / (1 << 30):.0f} GiB"
    except (ValueError, OSError):
        memory = "?"
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}"
    )


def load() -> str:
    """The load averages, to judge how quiet the machine was."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "?"
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "chatrepl"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        return out + (" (with uncommitted changes in chatrepl/)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"

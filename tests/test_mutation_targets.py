"""benchmarks/mutation/run.py's targets name files that exist: a test file moved or renamed
would otherwise drop out of a module's selection unseen, and its score would mean less."""

from __future__ import annotations

import importlib.util
from pathlib import Path

RUN = Path(__file__).resolve().parents[1] / "benchmarks" / "mutation" / "run.py"


def test_every_module_and_test_file_a_target_names_exists() -> None:
    spec = importlib.util.spec_from_file_location("mutation_run", RUN)
    assert spec and spec.loader
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    assert run.TARGETS, "no targets"
    assert run.missing_paths() == []

"""Mutation testing of the core modules with mutmut 3, one module at a time.

    python benchmarks/mutation/run.py [TARGET ...] [--max-children N] [--keep]

TARGET is one of the names in :data:`TARGETS` (all of them by default). For each, the module and
the test files that exercise it are copied into a scratch folder (never the worktree: mutmut
writes a ``mutants/`` folder and rewrites the module there), mutmut runs only those tests against
every mutant, and the counts and the surviving mutants are written to
``benchmarks/mutation/results/TARGET.txt`` (``mutmut results`` plus, per survivor, its diff).
RESULTS.md says what the survivors mean.

Slow (minutes per module on two cores), so it is not part of CI: run it when a core module or
its tests change. Needs ``pip install 'mutmut>=3.8'`` (in the ``dev`` extra's spirit, but not
in it: nothing else uses it).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "results"

#: name -> (the functions' module, the test files that exercise it, in-process ones only)
TARGETS: dict[str, tuple[str, list[str]]] = {
    "text": (
        "chatrepl/text.py",
        ["tests/text/test_text_safe.py", "tests/text/test_text_mutants.py"],
    ),
    "conversation": (
        "chatrepl/conversation.py",
        [
            "tests/conversation/test_conversation.py",
            "tests/conversation/test_tree.py",
            "tests/conversation/test_chain.py",
            "tests/conversation/test_conversation_flush.py",
            "tests/store/test_store.py",
            "tests/repl/test_repl_commands.py",
            "tests/conversation/test_compaction.py",
            "tests/conversation/test_conversation_mutants.py",
        ],
    ),
    "store": (
        "chatrepl/store.py",
        [
            "tests/store/test_store.py",
            "tests/conversation/test_tree.py",
            "tests/cli/test_export.py",
            "tests/store/test_store_search.py",
            "tests/store/test_store_lost_and_full.py",
            "tests/promises/test_hostile_store.py",
            "tests/promises/test_bad_files.py",
            "tests/cli/test_manage.py",
            "tests/store/test_store_mutants.py",
            "tests/store/test_store_layout.py",
            "tests/store/test_store_migrations.py",
        ],
    ),
    "dialect": (
        "chatrepl/dialect.py",
        [
            "tests/store/test_store.py",
            "tests/store/test_store_search.py",
            "tests/store/test_store_lost_and_full.py",
            "tests/promises/test_hostile_store.py",
            "tests/promises/test_bad_files.py",
            "tests/store/test_store_mutants.py",
            "tests/store/test_store_migrations.py",
            "tests/store/test_dialect_mutants.py",
        ],
    ),
    "migrations": (
        "chatrepl/migrations.py",
        [
            "tests/store/test_store.py",
            "tests/conversation/test_tree.py",
            "tests/store/test_store_layout.py",
            "tests/store/test_store_migrations.py",
            "tests/store/test_store_cache_tokens.py",
            "tests/promises/test_bad_files.py",
            "tests/store/test_store_mutants.py",
            "tests/store/test_migrations_mutants.py",
        ],
    ),
    "openai": (
        "chatrepl/providers/openai.py",
        [
            "tests/providers/test_providers.py",
            "tests/providers/test_wire_tools.py",
            "tests/providers/test_wire_reasoning.py",
            "tests/providers/test_wire_robustness.py",
            "tests/providers/test_wire_secrets_models.py",
            "tests/providers/test_wire_prompt_cache.py",
            "tests/providers/test_wire_shapes.py",
            "tests/providers/test_wire_stream_endings.py",
            "tests/conversation/test_context.py",
            "tests/conversation/test_attachments.py",
            "tests/providers/test_providers_mutants.py",
        ],
    ),
    "stream": (
        "chatrepl/providers/stream.py",
        [
            "tests/providers/test_providers.py",
            "tests/providers/test_wire_stream_endings.py",
            "tests/providers/test_wire_shapes.py",
            "tests/providers/test_wire_robustness.py",
            "tests/providers/test_wire_connections.py",
            "tests/providers/test_wire_secrets_models.py",
            "tests/providers/test_wire_tools.py",
            "tests/providers/test_wire_reasoning.py",
            "tests/providers/test_providers_mutants.py",
        ],
    ),
    "anthropic": (
        "chatrepl/providers/anthropic.py",
        [
            "tests/providers/test_providers.py",
            "tests/providers/test_wire_tools.py",
            "tests/providers/test_wire_reasoning.py",
            "tests/providers/test_wire_robustness.py",
            "tests/providers/test_wire_secrets_models.py",
            "tests/providers/test_wire_prompt_cache.py",
            "tests/providers/test_wire_shapes.py",
            "tests/providers/test_wire_stream_endings.py",
            "tests/providers/test_server_errors.py",
            "tests/conversation/test_context.py",
            "tests/conversation/test_attachments.py",
            "tests/providers/test_providers_mutants.py",
            "tests/providers/test_anthropic_mutants.py",
        ],
    ),
    "http": (
        "chatrepl/providers/http.py",
        [
            "tests/providers/test_providers.py",
            "tests/providers/test_wire_connections.py",
            "tests/providers/test_wire_robustness.py",
            "tests/providers/test_wire_secrets_models.py",
            "tests/providers/test_wire_stream_endings.py",
            "tests/providers/test_wire_shapes.py",
            "tests/providers/test_server_errors.py",
            "tests/providers/test_wire_tls_proxy.py",
            "tests/providers/test_providers_mutants.py",
            "tests/providers/test_http_mutants.py",
        ],
    ),
    "attach_wire": (
        "chatrepl/providers/attach_wire.py",
        [
            "tests/conversation/test_attachments.py",
            "tests/providers/test_providers.py",
            "tests/providers/test_wire_shapes.py",
            "tests/providers/test_providers_mutants.py",
            "tests/providers/test_attach_wire_mutants.py",
        ],
    ),
    "sse": (
        "chatrepl/providers/sse.py",
        [
            "tests/providers/test_providers.py",
            "tests/providers/test_wire_robustness.py",
            "tests/providers/test_wire_shapes.py",
            "tests/providers/test_providers_mutants.py",
        ],
    ),
}


def missing_paths() -> list[str]:
    """The modules and test files named in :data:`TARGETS` that do not exist (a test moved or
    renamed would otherwise drop out of the selection unseen, and the score would mean less)."""
    named = [path for module, tests in TARGETS.values() for path in (module, *tests)]
    return sorted({path for path in named if not (ROOT / path).exists()})


def _config(module: str, tests: list[str]) -> str:
    """A pyproject.toml for the scratch folder: pytest's settings and mutmut's."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pytest_ini = project["tool"]["pytest"]["ini_options"]
    lines = ["[tool.pytest.ini_options]"]
    for key, value in pytest_ini.items():
        lines.append(f"{key} = {_toml(value)}")
    lines += [
        "",
        "[tool.mutmut]",
        'source_paths = ["chatrepl"]',
        f"only_mutate = [{_toml(module)}]",
        f"pytest_add_cli_args_test_selection = {_toml(tests)}",
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-x"]',
        "mutate_only_covered_lines = true",
        "",
    ]
    return "\n".join(lines)


def _toml(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)


def run(name: str, max_children: int, keep: bool) -> str:
    """Run mutmut over one target; its summary line."""
    module, tests = TARGETS[name]
    scratch = Path(tempfile.mkdtemp(prefix=f"chatrepl-mutation-{name}-"))
    try:
        shutil.copytree(ROOT / "chatrepl", scratch / "chatrepl", ignore=_junk)
        shutil.copytree(ROOT / "tests", scratch / "tests", ignore=_junk)
        (scratch / "pyproject.toml").write_text(_config(module, tests))
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        began = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children)],
            cwd=scratch,
            env=env,
            check=False,
        )
        took = time.monotonic() - began
        results = _mutmut(scratch, env, "results", "--all", "true")
        summary, report = _report(name, module, tests, results, scratch, env, took)
        OUT.mkdir(exist_ok=True)
        (OUT / f"{name}.txt").write_text(report)
        return summary
    finally:
        if keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def _mutmut(scratch: Path, env: dict[str, str], *args: str) -> str:
    """What ``mutmut ARGS`` prints in the scratch folder."""
    return subprocess.run(
        [sys.executable, "-m", "mutmut", *args],
        cwd=scratch,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    ).stdout


def _junk(folder: str, names: list[str]) -> set[str]:
    return {n for n in names if n in ("__pycache__", ".hypothesis", "mutants")}


def _report(
    name: str,
    module: str,
    tests: list[str],
    results: str,
    scratch: Path,
    env: dict[str, str],
    took: float,
) -> tuple[str, str]:
    """The summary line and the whole report of one target."""
    statuses: dict[str, str] = {}
    for line in results.splitlines():
        m = re.match(r"\s*(\S+): (.+)$", line)
        if m:
            statuses[m.group(1)] = m.group(2).strip()
    counts: dict[str, int] = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    survived = [k for k, v in statuses.items() if v == "survived"]
    judged = killed + len(survived)
    score = 100 * killed / judged if judged else 0.0
    summary = (
        f"{name}: {module}: {killed}/{judged} killed ({score:.1f} %), "
        f"{len(survived)} survived; all statuses {dict(sorted(counts.items()))}; {took:.0f} s"
    )
    out = [summary, f"tests: {' '.join(tests)}", "", *by_function(statuses), ""]
    for key in survived:
        out += [f"## {key}", _mutmut(scratch, env, "show", key).strip(), ""]
    return summary, "\n".join(out) + "\n"


def by_function(statuses: dict[str, str]) -> list[str]:
    """One line per mutated function: its mutants, killed (timeouts included), survived, other;
    the figures to compare when code moves between modules."""
    rows: dict[str, list[int]] = {}
    for key, status in statuses.items():
        # mutmut's names: module.x_function__mutmut_N, module.xǁClassǁmethod__mutmut_N
        name = key.rsplit("__mutmut_", 1)[0].rsplit(".", 1)[-1]
        name = name[2:] if name.startswith("x_") else name.removeprefix("x\u01c1")
        row = rows.setdefault(name.replace("\u01c1", "."), [0, 0, 0, 0])
        row[0] += 1
        if status in ("killed", "timeout"):
            row[1] += 1
        elif status == "survived":
            row[2] += 1
        else:
            row[3] += 1
    lines = [f"{'function':40} {'mutants':>7} {'killed':>6} {'survived':>8} {'other':>5}"]
    for name, (n, killed, survived, other) in sorted(rows.items()):
        lines.append(f"{name:40} {n:7} {killed:6} {survived:8} {other:5}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help=f"any of {', '.join(TARGETS)} (default all)")
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    if unknown := [t for t in args.targets if t not in TARGETS]:
        parser.error(f"unknown target {unknown[0]!r}: choose from {', '.join(TARGETS)}")
    if missing := missing_paths():
        parser.error(f"TARGETS names files that do not exist: {', '.join(missing)}")
    for name in args.targets or list(TARGETS):
        print(run(name, args.max_children, args.keep), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

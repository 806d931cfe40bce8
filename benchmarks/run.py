"""The one command: run the benchmarks, print the table, write benchmarks/RESULTS.md.

    python -m benchmarks.run                  # everything; writes benchmarks/RESULTS.md
    python -m benchmarks.run startup storage  # some of them (prints only)
    python -m benchmarks.run --quick          # fewer repeats and a small database (prints only)
    python benchmarks/run.py startup          # the same, run as a file

Benchmarks: startup, installed, render, storage, size, postgres, remote, tools, memory, attach,
connections, cost.
See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

if not __package__:  # run as a file: python benchmarks/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"  # noqa: A001 - so the relative imports below resolve

from .common import Section, git_commit, load, machine  # noqa: E402

SUITES = (
    "startup",
    "installed",
    "render",
    "storage",
    "size",
    "postgres",
    "remote",
    "tools",
    "memory",
    "attach",
    "connections",
    "cost",
)
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def run_suite(name: str, args: argparse.Namespace) -> Section:
    if name == "startup":
        from . import bench_startup

        return bench_startup.run(repeat=args.repeat or (5 if args.quick else 15))
    if name == "installed":
        from . import bench_startup

        return bench_startup.run_installed(repeat=args.repeat or (5 if args.quick else 21))
    if name == "render":
        from . import bench_render

        return bench_render.run(repeat=args.repeat or (3 if args.quick else 7), quick=args.quick)
    if name == "storage":
        from . import bench_storage

        return bench_storage.run(repeat=args.repeat or (5 if args.quick else 15), quick=args.quick)
    if name == "size":
        from . import bench_size

        return bench_size.run(500 if args.quick else bench_size.ROUND_TRIPS)
    if name == "postgres":
        from . import bench_storage

        return bench_storage.run_postgres(
            repeat=args.repeat or (3 if args.quick else 10), quick=args.quick
        )
    if name == "remote":
        from . import bench_remote_store

        return bench_remote_store.run(
            repeat=args.repeat or (2 if args.quick else 7), quick=args.quick
        )
    if name == "tools":
        from . import bench_tools

        return bench_tools.run(repeat=args.repeat or (10 if args.quick else 30))
    if name == "memory":
        from . import bench_memory

        return bench_memory.run(repeat=args.repeat or (1 if args.quick else 3))
    if name == "attach":
        from . import bench_attach

        return bench_attach.run(repeat=args.repeat or (1 if args.quick else 3))
    if name == "connections":
        from . import bench_connections

        return bench_connections.run(turns=args.repeat or (6 if args.quick else 10))
    if name == "cost":
        from . import bench_cost

        return bench_cost.run(turns=20 if args.quick else 50)
    raise ValueError(name)


def table(section: Section) -> str:
    """The section as a Markdown table with its notes below."""
    lines = [
        f"## {section.title}",
        "",
        "| measure | median | min … max | beside it | target | met |",
        "|---|---:|---|---|---|---|",
    ]
    for row in section.rows:
        median = row.stat.fmt() if row.stat else row.value
        spread = row.stat.spread() if row.stat else ""
        met = {True: "yes", False: "**no**", None: ""}[row.met]
        lines.append(f"| {row.what} | {median} | {spread} | {row.beside} | {row.target} | {met} |")
    missed = [f"**Missed: {r.what}.** {r.if_missed}".rstrip() for r in section.rows
              if r.met is False]  # fmt: skip
    if section.notes or missed:
        lines.append("")
        lines += [f"- {note}" for note in missed + section.notes]
    return "\n".join(lines)


def targets(sections: list[Section]) -> str:
    """Every target at a glance: what, the figure, the target, met or not."""
    lines = ["## Targets", "", "| measure | figure | target | met |", "|---|---:|---|---|"]
    for section in sections:
        for row in section.rows:
            if row.met is None:
                continue
            figure = row.stat.fmt() if row.stat else row.value
            met = "yes" if row.met else "**no**"
            lines.append(f"| {section.title}: {row.what} | {figure} | {row.target} | {met} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("suites", nargs="*", metavar="SUITE",
                        help=f"any of {', '.join(SUITES)} (default: all)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="few repeats, small sizes")
    parser.add_argument("--repeat", type=int, help="runs per figure (default depends on suite)")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        help="write the results here (default: benchmarks/RESULTS.md after a full run)",
    )
    args = parser.parse_args(argv)
    if unknown := [name for name in args.suites if name not in SUITES]:
        parser.error(f"no suite called {', '.join(unknown)}: choose from {', '.join(SUITES)}")
    suites = args.suites or list(SUITES)
    output = args.output
    if output is None and not args.quick and suites == list(SUITES):
        output = RESULTS

    started = datetime.now(UTC)
    load_before = load()
    t0 = time.monotonic()
    sections = []
    for name in suites:
        print(f"— {name} …", file=sys.stderr, flush=True)
        section = run_suite(name, args)
        sections.append(section)
        print("\n" + table(section) + "\n", flush=True)

    header = [
        "# chatrepl benchmark results",
        "",
        f"- when: {started:%Y-%m-%d %H:%M} UTC, {time.monotonic() - t0:.0f} s",
        f"- machine: {machine()}",
        f"- load average (1, 5, 15 min): {load_before} before, {load()} after",
        f"- code: {git_commit()}",
        "- command: `" + " ".join(["python -m benchmarks.run", *(argv or sys.argv[1:])]) + "`",
        "",
        "Each figure is the median of repeated runs, with the min and max beside it; every "
        "comparison was measured interleaved in the same invocation.",
    ]
    missed = [(s.title, r.what) for s in sections for r in s.rows if r.met is False]
    summary = (
        "All targets met."
        if not missed
        else "Targets missed: " + "; ".join(f"{t}: {w}" for t, w in missed) + "."
    )
    print(summary)
    if output:
        body = "\n\n".join([targets(sections), *(table(s) for s in sections)])
        output.write_text("\n".join(header) + "\n\n" + summary + "\n\n" + body + "\n", "utf-8")
        print(f"wrote {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

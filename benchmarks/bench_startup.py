"""Start-up: ``chatrepl --version``, a one-shot answer, the interactive prompt; beside ``llm``.

Every case is a fresh process, timed from spawn to exit (or, for the prompt, to the moment
the prompt is on the screen), measured interleaved with its ``llm`` counterpart.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

from .common import BIN, Section, interleaved, ratio
from .llm_env import llm_bin, llm_versions

#: What the interactive prompt of each program looks like on the screen.
CHATREPL_PROMPT = re.compile(rb"\xe2\x80\xba|> ")  # "› " or "> ", whichever app.py draws
LLM_PROMPT = re.compile(rb"> ")
CPR_REQUEST = re.compile(rb"\x1b\[6n")  # prompt-toolkit asks where the cursor is


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without keys or chatrepl settings, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_API_KEY") and not k.startswith(("CHATREPL_", "LLM_"))
    }
    env.update(TERM="xterm-256color", LANG="C.UTF-8", LC_ALL="C.UTF-8", **extra)
    env.pop("NO_COLOR", None)
    return env


def timed(argv: list[str], env: dict[str, str], stdin: int | None = subprocess.DEVNULL) -> float:
    """Seconds from spawning ``argv`` to its exit; fails loudly on a non-zero status."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, stdin=stdin, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)  # fmt: skip
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.decode()[-500:]}")
    return elapsed


def prompt_ready(argv: list[str], env: dict[str, str], prompt: re.Pattern[bytes]) -> float:
    """Seconds from spawning ``argv`` in a pseudo-terminal until ``prompt`` is on the screen.

    prompt-toolkit asks the terminal where the cursor is (``ESC[6n``) and this answers as a
    terminal would. The program is then ended with Ctrl-D (and, failing that, killed).
    """
    import pexpect

    start = time.perf_counter()
    child = pexpect.spawn(argv[0], argv[1:], env=env, dimensions=(24, 80), timeout=15)
    try:
        while child.expect([CPR_REQUEST, prompt]) == 0:
            child.send(b"\x1b[1;1R")
        elapsed = time.perf_counter() - start
        child.sendeof()
        with contextlib.suppress(pexpect.TIMEOUT):
            child.expect(pexpect.EOF, timeout=5)
    finally:
        child.close(force=True)
    return elapsed


def run(repeat: int = 15, quick: bool = False) -> Section:
    section = Section("Start-up")
    chatrepl = str(BIN / "chatrepl")
    llm = str(llm_bin())
    work = Path(tempfile.mkdtemp(prefix="chatrepl-bench-startup-"))
    home, llm_home = work / "chatrepl-home", work / "llm-home"
    env = clean_env(CHATREPL_HOME=str(home), LLM_USER_PATH=str(llm_home))

    cases = {
        "python": lambda: timed([str(BIN / "python"), "-c", "pass"], env),
        "chatrepl --version": lambda: timed([chatrepl, "--version"], env),
        "llm --version": lambda: timed([llm, "--version"], env),
        "chatrepl -m echo -p hi": lambda: timed([chatrepl, "-m", "echo", "-p", "hi"], env),
        "llm -m echo hi": lambda: timed([llm, "-m", "echo", "hi"], env),
    }
    interactive = _has_repl()
    if interactive:
        cases["chatrepl (prompt)"] = lambda: prompt_ready([chatrepl], env, CHATREPL_PROMPT)
        cases["llm chat (prompt)"] = lambda: prompt_ready(
            [llm, "chat", "-m", "echo"], env, LLM_PROMPT
        )
    stats = interleaved(cases, repeat)

    floor = stats["python"]
    section.add("python -c pass (the interpreter alone, for reference)", floor)

    ver, llm_ver = stats["chatrepl --version"], stats["llm --version"]
    r = ratio(llm_ver, ver)
    section.add(
        "chatrepl --version",
        ver,
        beside=f"llm --version {llm_ver.fmt()} ({llm_ver.spread()}): {r:.1f}× faster",
        target="≤ 60 ms, ≥ 10× faster than llm",
        met=ver.median <= 0.060 and r >= 10,
    )

    one, llm_one = stats["chatrepl -m echo -p hi"], stats["llm -m echo hi"]
    r = ratio(llm_one, one)
    section.add(
        "chatrepl -m echo -p hi (answer saved)",
        one,
        beside=f"llm -m echo hi {llm_one.fmt()} ({llm_one.spread()}): {r:.1f}× faster",
        target="≥ 3× faster than llm",
        met=r >= 3,
    )
    saved = _count(home / "chatrepl.db", "responses")
    logged = _count(llm_home / "logs.db", "turns", "responses")  # newer llm logs turns
    section.notes.append(
        f"Both one-shot commands save their answer: chatrepl's database held {saved} "
        f"round trips after the run, llm's logs.db {logged} (one per run, warm-up included)."
    )

    if interactive:
        ready, llm_ready = stats["chatrepl (prompt)"], stats["llm chat (prompt)"]
        section.add(
            "chatrepl: interactive prompt ready (pty)",
            ready,
            beside=f"llm chat -m echo {llm_ready.fmt()} ({llm_ready.spread()}): "
            f"{ratio(llm_ready, ready):.1f}× faster",
            target="≤ 250 ms",
            met=ready.median <= 0.250,
        )
    else:
        section.notes.append(
            "The interactive prompt was not measured: chatrepl.repl.app is missing."
        )

    section.notes.append(
        f"Each figure: {repeat} fresh processes after one warm-up, interleaved with their llm "
        f"counterpart; the wall time from spawn to exit (the prompt: from spawn until the "
        f"prompt is drawn in an 80×24 pseudo-terminal). Compared with {llm_versions()}, "
        f"installed in its own environment ({Path(llm).parent.parent})."
    )
    return section


def _has_repl() -> bool:
    import importlib.util

    return importlib.util.find_spec("chatrepl.repl.app") is not None


def _count(db: Path, *tables: str) -> int | str:
    """The rows of the first of ``tables`` that ``db`` has."""
    try:
        con = sqlite3.connect(db)
        try:
            have = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
            table = next(t for t in tables if t in have)
            return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        finally:
            con.close()
    except (sqlite3.Error, StopIteration) as exc:
        return f"? ({exc!r})"

"""Memory: the peak RSS of an interactive session after a 20,000-token answer.

chatrepl runs as a user runs it, in an 100×30 pseudo-terminal, talking to the test suite's
local OpenAI-style server (a thread of this process). The benchmark types a prompt, the
20,000-token Markdown answer streams and is rendered, and once the answer is saved and the
screen is quiet the peak resident set size (``VmHWM`` in ``/proc/PID/status``) is read.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from pathlib import Path

from .answer import fake_server, markdown_answer
from .bench_startup import CHATREPL_PROMPT, CPR_REQUEST, clean_env
from .common import BIN, Section, Stat

N = 20_000


def rss(pid: int) -> tuple[int, int]:
    """The current and the peak resident set size of ``pid``, in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    return fields["VmRSS"], fields["VmHWM"]


def drain(child, seconds: float) -> bytes:
    """Read what the program writes for ``seconds``, answering its cursor position requests."""
    import pexpect

    out = b""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            data = child.read_nonblocking(1 << 16, timeout=0.05)
        except pexpect.TIMEOUT:
            continue
        except pexpect.EOF:
            break
        if CPR_REQUEST.search(data):
            child.send(b"\x1b[1;1R")
        out += data
    return out


def status(db: Path) -> str | None:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            row = con.execute("SELECT status FROM turns ORDER BY seq DESC LIMIT 1").fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def session(server, reply, text: str) -> dict[str, float]:
    """One interactive session: start, answer ``text``, measure, leave."""
    import pexpect

    home = Path(tempfile.mkdtemp(prefix="chatrepl-bench-memory-"))
    env = clean_env(
        CHATREPL_HOME=str(home), OPENAI_BASE_URL=server.openai_url, OPENAI_API_KEY="sk-bench"
    )
    child = pexpect.spawn(
        str(BIN / "chatrepl"), ["-m", "openai:bench"], env=env, dimensions=(30, 100), timeout=30
    )
    child.delaybeforesend = None
    try:
        while child.expect([CPR_REQUEST, CHATREPL_PROMPT]) == 0:
            child.send(b"\x1b[1;1R")
        drain(child, 0.3)
        idle_rss, idle_peak = rss(child.pid)
        server.push(reply(text=text))
        start = time.monotonic()
        child.send(b"write me a long answer\r")
        db = home / "chatrepl.db"
        shown = 0
        while status(db) in (None, "pending"):
            shown += len(drain(child, 0.1))
            if time.monotonic() - start > 120:
                raise RuntimeError("the answer did not end within 120 s")
        answered = time.monotonic() - start
        if status(db) != "complete":
            raise RuntimeError(f"the answer ended {status(db)}")
        while more := len(drain(child, 0.5)):  # until the screen is quiet: the prompt is back
            shown += more
        if shown < len(text):
            raise RuntimeError(f"only {shown} bytes reached the screen for {len(text)} of text")
        after_rss, peak = rss(child.pid)
        child.sendeof()
        drain(child, 0.2)
    finally:
        child.close(force=True)
    return {"idle": idle_rss, "idle_peak": idle_peak, "after": after_rss, "peak": peak,
            "answered": answered, "shown": shown}  # fmt: skip


def run(repeat: int = 3) -> Section:
    section = Section("Memory")
    text = markdown_answer(N)
    server, reply = fake_server()
    server.start()
    try:
        runs = [session(server, reply, text) for _ in range(repeat)]
    finally:
        server.stop()
    peak = Stat([r["peak"] for r in runs], "B")
    section.add(
        f"peak RSS of an interactive session after a {N:,}-token answer",
        peak,
        beside=f"at the prompt before it: {Stat([r['idle_peak'] for r in runs], 'B').fmt()}",
        target="≤ 80 MB",
        met=peak.median <= 80e6,
        if_missed="Compare with the figure at the prompt before the answer: the growth is what "
        "the answer cost. tracemalloc's top statistics in a session (or `python -X "
        "tracemalloc`) show which objects hold it: the text should be held once or twice, not "
        "once per redraw.",
    )
    section.add(
        "RSS at the prompt after the answer",
        Stat([r["after"] for r in runs], "B"),
        beside=f"before it: {Stat([r['idle'] for r in runs], 'B').fmt()}",
    )
    section.add(
        "the answer streamed, rendered and saved (wall time)",
        Stat([r["answered"] for r in runs]),
        beside=f"{Stat([r['shown'] for r in runs], 'B').fmt()} written to the terminal "
        f"for {len(text):,} characters of Markdown",
    )
    section.notes.append(
        f"{repeat} sessions of `chatrepl -m openai:bench` in a 100×30 pseudo-terminal against "
        "the local OpenAI-style test server, the answer sent as fast as it goes; peak RSS is "
        "the kernel's VmHWM of the chatrepl process. 80 MB is read as 80·10⁶ bytes (76.3 MiB)."
    )
    return section

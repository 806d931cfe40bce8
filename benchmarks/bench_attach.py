"""Attachments: peak memory while a 20 MB PDF is staged and sent.

Each run is a fresh Python process (so its peak resident set size, ``VmHWM``, is its own) that
uses chatrepl as the REPL does: a store, a conversation with ``openai:bench`` pointed at the
test suite's local server (a thread of this process, so the server's copy of the request is not
counted), one plain prompt first (the baseline), then ``attachments.stage`` of the PDF, then a
prompt that sends it. Beside it, the same run with the request built the usual way (the whole
base64 text in the body, encoded to JSON by httpx), interleaved.

    python -m benchmarks.bench_attach            # print the table
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from .answer import fake_server
from .common import ROOT, Section, Stat

SIZE = 20 * 1024 * 1024


def big_pdf(path: Path, size: int = SIZE) -> Path:
    """A valid one-page PDF padded to ``size`` bytes with a big (unused) stream."""
    head = b"%PDF-1.4\n"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
    ]
    padding = size - 600  # the rest of the file takes well under 600 bytes
    stream = b"%" + b"0" * (padding - 1)
    objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = bytearray(head)
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    path.write_bytes(bytes(out))
    return path


def vm(key: str) -> int:
    """``VmRSS`` or ``VmHWM`` of this process, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def child(mode: str, pdf: str, url: str, home: str) -> None:
    """One measured run (in its own process); prints its figures as JSON."""
    import os
    import tracemalloc

    os.environ.update(CHATREPL_HOME=home, OPENAI_BASE_URL=url, OPENAI_API_KEY="sk-bench")
    from chatrepl import attachments
    from chatrepl.conversation import Conversation
    from chatrepl.providers import attach_wire
    from chatrepl.providers.registry import get_backend
    from chatrepl.store import Store

    if mode == "whole":  # the usual way: the whole base64 text in a dict, JSON-encoded by httpx
        streamed = attach_wire.request_content

        def whole(body, messages):  # type: ignore[no-untyped-def]
            out = streamed(body, messages)
            return out if isinstance(out, dict) else json.loads(b"".join(out))

        attach_wire.request_content = whole
    store = Store(Path(home) / "chatrepl.db")
    c = Conversation(get_backend("openai:bench"), store=store)
    c.prompt("hello").text()
    baseline = vm("VmHWM")
    tracemalloc.start()
    part = attachments.stage(pdf, store)
    staged_peak = tracemalloc.get_traced_memory()[1]
    after_stage = vm("VmHWM")
    tracemalloc.reset_peak()
    answer = c.prompt("summarise this", attachments=[part]).text()
    sent_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    if not answer.startswith("You said:"):
        raise RuntimeError(f"unexpected answer {answer[:80]!r}")
    result = {
        "baseline": baseline,
        "after_stage": after_stage,
        "peak": vm("VmHWM"),
        "stage_traced": staged_peak,
        "send_traced": sent_peak,
    }
    print(json.dumps(result))


def measure(mode: str, pdf: Path, url: str) -> dict[str, float]:
    home = tempfile.mkdtemp(prefix="chatrepl-bench-attach-")
    code = "from benchmarks.bench_attach import child; import sys; child(*sys.argv[1:])"
    out = subprocess.run(
        [sys.executable, "-c", code, mode, str(pdf), url, home],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if out.returncode:
        raise RuntimeError(f"the {mode} run failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(repeat: int = 3) -> Section:
    section = Section("Attachments")
    folder = Path(tempfile.mkdtemp(prefix="chatrepl-bench-pdf-"))
    pdf = big_pdf(folder / "big.pdf")
    server, _ = fake_server()
    server.start()
    runs: dict[str, list[dict[str, float]]] = {"streamed": [], "whole": []}
    try:
        for _ in range(repeat):
            for mode in runs:
                runs[mode].append(measure(mode, pdf, server.openai_url))
        request = server.requests[-1]["headers"].get("Content-Length", "?")
    finally:
        server.stop()
    mb = SIZE / 2**20

    def growth(mode: str) -> Stat:
        return Stat([r["peak"] - r["baseline"] for r in runs[mode]], "B")

    streamed, whole = growth("streamed"), growth("whole")
    staged = Stat([r["stage_traced"] for r in runs["streamed"]], "B")
    sent = Stat([r["send_traced"] for r in runs["streamed"]], "B")
    once = 1.25 * SIZE
    section.add(
        f"peak RSS growth while staging and sending a {mb:.0f} MiB PDF",
        streamed,
        beside=f"the whole base64 body built first: {whole.fmt()}",
    )
    section.add(
        "peak RSS of the process",
        Stat([r["peak"] for r in runs["streamed"]], "B"),
        beside=f"after one plain prompt: {Stat([r['baseline'] for r in runs['streamed']], 'B').fmt()}",
    )
    section.add(
        "Python's peak while staging (read, hash, store)",
        staged,
        target="≤ 1.25 × the file (held once)",
        met=staged.median <= once,
        if_missed="Something holds a second copy of the file while it is read and stored.",
    )
    section.add(
        "Python's peak while sending (load from the store, encode, send)",
        sent,
        beside=f"the whole body built first: "
        f"{Stat([r['send_traced'] for r in runs['whole']], 'B').fmt()}",
        target="≤ 1.25 × the file (held once)",
        met=sent.median <= once,
        if_missed="The base64 text or the JSON body is being built whole: see StreamedJSON.",
    )
    section.notes.append(
        "The RSS growth above Python's own peak is SQLite's: it copies a blob it is given to "
        "write and builds the blob it reads in its own memory before Python copies it; "
        "incremental blob I/O in the store would save those two copies."
    )
    section.notes.append(
        f"{repeat} fresh processes each way, interleaved; a {SIZE:,}-byte PDF (a valid page "
        f"padded with a big stream), sent as a {request}-byte request to the local server; RSS "
        "from /proc/self/status (VmHWM), traced peaks from tracemalloc (Python allocations)."
    )
    return section


if __name__ == "__main__":
    from .run import table

    print(table(run(int(sys.argv[1]) if len(sys.argv) > 1 else 3)))

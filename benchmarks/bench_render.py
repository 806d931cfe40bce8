"""Streaming display: a 20,000-token Markdown answer through the real renderer.

Two ways the answer arrives:

- **all at once**: streamed by the test suite's local OpenAI-style server, through chatrepl's
  own OpenAI provider, as fast as it sends, with the renderer on its real clock;
- **at 200 tokens a second**: the renderer's clock is driven by the benchmark (token ``i``
  arrives at ``i / 200`` s), so the 100 s answer takes as long as the CPU needs.

The display's CPU time is the main thread's CPU time inside ``start``/``feed``/``finish``
(``time.thread_time``), so neither the server thread nor the HTTP client is counted. The
console is a terminal of 100×30 cells writing to a sink that counts bytes.

Beside it, the naive display, ``rich.live.Live(Markdown(whole_text))`` refreshed 10 times a
second under the same clock, and the cost of rendering the whole answer once.
"""

from __future__ import annotations

import gc
import os
import tempfile
import time
import tracemalloc
from collections.abc import Callable

from .answer import fake_server, markdown_answer, tokens
from .common import Section, Stat, fmt

WIDTH, HEIGHT = 100, 30
RATE = 200  # tokens a second
NAIVE_FPS = 10
N = 20_000
PROFILE = (
    "A redraw should cost the same at the end of the answer as at its start (only the "
    "unfinished block is parsed again): profile one run, e.g. `pyinstrument -m benchmarks.run "
    "render --quick`, and look for work that grows with the text (re-parsing or re-rendering "
    "committed blocks, joining the whole text)."
)


class Sink:
    """A terminal that throws the bytes away and counts them."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, text: str) -> int:
        self.bytes += len(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        raise OSError("not a real terminal")


def console(sink: Sink | None = None):
    from rich.console import Console

    return Console(
        file=sink or Sink(),
        force_terminal=True,
        width=WIDTH,
        height=HEIGHT,
        color_system="truecolor",
        legacy_windows=False,
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _cpu(fn: Callable[[], object]) -> float:
    start = time.thread_time()
    fn()
    return time.thread_time() - start


# --- chatrepl's display ---------------------------------------------------------------------


def stream_at_rate(pieces: list[str]) -> tuple[float, int]:
    """CPU seconds to display ``pieces`` arriving at RATE a second; and the redraws."""
    from chatrepl.screen.render import StreamRenderer

    clock = FakeClock()
    renderer = StreamRenderer(console(), clock=clock)

    def show() -> None:
        renderer.start()
        for i, piece in enumerate(pieces):
            clock.now = i / RATE
            renderer.feed(piece)
        clock.now = len(pieces) / RATE
        renderer.finish()

    return _cpu(show), renderer.refreshes


def stream_from_server(server, reply, text: str) -> tuple[float, float, int]:
    """Display CPU, wall time and redraws for ``text`` streamed by the local server."""
    from chatrepl.conversation import Conversation
    from chatrepl.providers.registry import get_backend
    from chatrepl.screen.render import StreamRenderer

    server.push(reply(text=text))
    renderer = StreamRenderer(console())
    response = Conversation(get_backend("openai:bench")).prompt("write it all")
    cpu = 0.0
    start = time.perf_counter()
    t = time.thread_time()
    renderer.start()
    cpu += time.thread_time() - t
    for chunk in response:
        t = time.thread_time()
        renderer.feed(chunk)
        cpu += time.thread_time() - t
    t = time.thread_time()
    renderer.finish()
    cpu += time.thread_time() - t
    wall = time.perf_counter() - start
    assert response.text_so_far == text, "the answer did not arrive whole"
    return cpu, wall, renderer.refreshes


def stream_only(server, reply, text: str) -> float:
    """Wall time to receive ``text`` from the local server without displaying it."""
    from chatrepl.conversation import Conversation
    from chatrepl.providers.registry import get_backend

    server.push(reply(text=text))
    start = time.perf_counter()
    Conversation(get_backend("openai:bench")).prompt("write it all").text()
    return time.perf_counter() - start


def render_once(text: str) -> float:
    """CPU seconds to print the whole answer as Markdown once (rich's Markdown)."""
    from rich.markdown import Markdown

    out = console()
    return _cpu(lambda: out.print(Markdown(text, code_theme="monokai")))


# --- the naive display ----------------------------------------------------------------------


def naive_frame(text: str) -> float:
    """CPU seconds of one frame of ``Live(Markdown(text))``."""
    from rich.live import Live
    from rich.markdown import Markdown

    live = Live(console=console(), auto_refresh=False)
    live.start()
    try:
        return _cpu(lambda: live.update(Markdown(text), refresh=True))
    finally:
        live.stop()


def naive_at_rate(pieces: list[str], samples: int = 20) -> tuple[float, float, int | None]:
    """The naive display at RATE a second, refreshed NAIVE_FPS times a second.

    Its 1,000 frames would take minutes, so ``samples`` frames spread over the answer are
    timed and the total is integrated from them (each frame re-parses and re-renders
    everything so far, so a frame's cost follows the length). Returns the estimated CPU
    seconds, the last frame's CPU seconds, and the first token from which one frame costs
    more than the time between two frames (it cannot keep up), or None.
    """
    per_frame = RATE // NAIVE_FPS
    frames = len(pieces) // per_frame
    step = max(1, frames // samples)
    points = []
    for f in range(step, frames + 1, step):
        points.append((f, naive_frame("".join(pieces[: f * per_frame]))))
    total = 0.0
    prev_f, prev_cost = 0, 0.0
    behind = None
    for f, cost in points:
        total += (f - prev_f) * (prev_cost + cost) / 2
        if behind is None and cost > 1 / NAIVE_FPS:
            # interpolate where a frame first costs more than 1/NAIVE_FPS
            share = (1 / NAIVE_FPS - prev_cost) / (cost - prev_cost) if cost != prev_cost else 1
            behind = int((prev_f + share * (f - prev_f)) * per_frame)
        prev_f, prev_cost = f, cost
    return total, points[-1][1], behind


def naive_from_server(server, reply, text: str) -> tuple[float, float]:
    """CPU and wall time of the naive display for ``text`` from the server, 10 frames/s."""
    from rich.live import Live
    from rich.markdown import Markdown

    from chatrepl.conversation import Conversation
    from chatrepl.providers.registry import get_backend

    server.push(reply(text=text))
    response = Conversation(get_backend("openai:bench")).prompt("write it all")
    live = Live(console=console(), auto_refresh=False)
    cpu, last, so_far = 0.0, float("-inf"), []
    start = time.perf_counter()
    live.start()
    for chunk in response:
        so_far.append(chunk)
        if time.monotonic() - last >= 1 / NAIVE_FPS:
            t = time.thread_time()
            live.update(Markdown("".join(so_far)), refresh=True)
            cpu += time.thread_time() - t
            last = time.monotonic()  # as Live's refresh thread: the interval after each frame
    t = time.thread_time()
    live.update(Markdown("".join(so_far)), refresh=True)
    live.stop()
    cpu += time.thread_time() - t
    return cpu, time.perf_counter() - start


def peak_memory(fn: Callable[[], object]) -> int:
    """Peak bytes Python allocated while ``fn`` ran (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --- the section ----------------------------------------------------------------------------


def run(repeat: int = 7, quick: bool = False) -> Section:
    section = Section(f"Streaming display ({N:,}-token Markdown answer, {WIDTH}×{HEIGHT})")
    os.environ.setdefault("CHATREPL_HOME", tempfile.mkdtemp(prefix="chatrepl-bench-home-"))
    os.environ["TERM"] = "xterm-256color"
    os.environ.pop("NO_COLOR", None)
    text = markdown_answer(N)
    half = markdown_answer(N // 2)
    pieces, half_pieces = tokens(text), tokens(half)
    server, reply = fake_server()
    server.start()
    os.environ["OPENAI_BASE_URL"] = server.openai_url
    os.environ["OPENAI_API_KEY"] = "sk-bench"
    try:
        rate, rate_half, once, refreshes = [], [], [], 0
        burst, burst_wall, burst_half, plain_wall, burst_refreshes = [], [], [], [], 0
        naive_burst, naive_burst_wall = [], []
        for i in range(repeat + 1):  # one warm-up round
            cpu, refreshes = stream_at_rate(pieces)
            cpu_half, _ = stream_at_rate(half_pieces)
            cpu_once = render_once(text)
            b_cpu, b_wall, burst_refreshes = stream_from_server(server, reply, text)
            b_half, _, _ = stream_from_server(server, reply, half)
            p_wall = stream_only(server, reply, text)
            if i:
                rate.append(cpu)
                rate_half.append(cpu_half)
                once.append(cpu_once)
                burst.append(b_cpu)
                burst_wall.append(b_wall)
                burst_half.append(b_half)
                plain_wall.append(p_wall)
        naive_runs = 1 if quick else 3
        naive = [naive_at_rate(pieces) for _ in range(naive_runs)]
        for _ in range(naive_runs):
            cpu, wall = naive_from_server(server, reply, text)
            naive_burst.append(cpu)
            naive_burst_wall.append(wall)
        mem_rate = peak_memory(lambda: stream_at_rate(pieces))
        mem_burst = peak_memory(lambda: stream_from_server(server, reply, text))
        mem_once = peak_memory(lambda: render_once(text))
        mem_naive = peak_memory(lambda: naive_frame(text))
    finally:
        server.stop()

    seconds = N / RATE
    r, rh, o = Stat(rate), Stat(rate_half), Stat(once)
    naive_total = Stat([n[0] for n in naive])
    naive_last = Stat([n[1] for n in naive])
    behind = naive[0][2]
    section.add(
        f"at {RATE} tokens/s: display CPU over the {seconds:.0f} s answer",
        r,
        beside=f"naive Live(Markdown) at {NAIVE_FPS}/s: ≈ {naive_total.fmt()} "
        f"({naive_total.median / seconds:.0%} of a core; a frame costs "
        f"{naive_last.fmt()} at the end"
        + (
            f", more than 1/{NAIVE_FPS} s from token {behind:,} on: it cannot keep up)"
            if behind
            else ")"
        ),  # fmt: skip
        target="≤ 5 s (5% of a core)",
        met=r.median <= 0.05 * seconds,
        if_missed=PROFILE,
    )
    section.add(
        f"at {RATE} tokens/s: share of one core",
        Stat([v / seconds * 100 for v in rate], "%"),
        beside=f"{refreshes:,} redraws; naive: {naive_total.median / seconds:.0%}",
    )
    section.add(
        f"at {RATE} tokens/s: time per token",
        Stat([v / N for v in rate]),
    )
    section.add(
        f"at {RATE} tokens/s: linear? {N // 2:,} → {N:,} tokens",
        None,
        value=f"{r.median / rh.median:.2f}×",
        beside=f"{N // 2:,} tokens: {rh.fmt()}",
        target="≈ 2× (≤ 2.5×)",
        met=r.median / rh.median <= 2.5,
        if_missed=PROFILE,
    )
    b, bh = Stat(burst), Stat(burst_half)
    naive_b = Stat(naive_burst)
    section.add(
        "all at once (local server): display CPU",
        b,
        beside=f"{b.median / o.median:.2f}× one final render; naive Live(Markdown) at "
        f"{NAIVE_FPS}/s: {naive_b.fmt()} ({naive_b.median / o.median:.1f}×)",
        target="≤ 3× one final render",
        met=b.median <= 3 * o.median,
        if_missed=PROFILE,
    )
    section.add(
        "all at once: wall time of the answer, displayed",
        Stat(burst_wall),
        beside=f"not displayed: {Stat(plain_wall).fmt()}; naive: {Stat(naive_burst_wall).fmt()}",
    )
    section.add("all at once: time per token", Stat([v / N for v in burst]),
                beside=f"{burst_refreshes} redraws")  # fmt: skip
    section.add(
        f"all at once: linear? {N // 2:,} → {N:,} tokens",
        None,
        value=f"{b.median / bh.median:.2f}×",
        beside=f"{N // 2:,} tokens: {bh.fmt()}",
        target="≈ 2× (≤ 2.5×)",
        met=b.median / bh.median <= 2.5,
        if_missed=PROFILE,
    )
    section.add("the whole answer rendered once (rich Markdown)", o)
    section.add(
        "peak memory of the display (Python allocations)",
        None,
        value=f"{fmt(mem_rate, 'B')} at {RATE}/s, {fmt(mem_burst, 'B')} all at once",
        beside=f"one final render: {fmt(mem_once, 'B')}; one naive frame: {fmt(mem_naive, 'B')}",
    )
    section.notes += [
        f"Each chatrepl figure: {repeat} runs after one warm-up. The naive display at {RATE}/s "
        f"would redraw {N // (RATE // NAIVE_FPS):,} frames, each re-parsing and re-rendering "
        f"all the text so far: its CPU is integrated from 20 frames timed along the answer "
        f"({naive_runs} run(s)); all at once it was run for real ({naive_runs} run(s)).",
        "Display CPU is the main thread's CPU time inside the renderer's start/feed/finish "
        "(time.thread_time); the server thread and the HTTP client are not counted. Peak "
        "memory is tracemalloc's peak of Python allocations during one run, not the RSS.",
    ]
    return section

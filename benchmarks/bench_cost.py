"""What prompt caching saves: a 50-turn conversation with an Anthropic model, caching on and off.

The server is local and bills as Anthropic does (documented in "Prompt caching"): a request
may mark up to 4 ``cache_control`` breakpoints; the prefix up to a breakpoint is cached if it
holds at least the model's minimum (1,024 tokens; 2,048 for Haiku), for 5 minutes, refreshed
when read; a request reads the longest cached prefix among its breakpoints and writes the rest
up to its last breakpoint. ``message_start`` reports ``input_tokens`` (uncached),
``cache_creation_input_tokens`` and ``cache_read_input_tokens``. Tokens are counted as four
characters each, the same on both runs.

Each run drives chatrepl's own library (``Conversation`` over the ``anthropic`` provider with
``ANTHROPIC_BASE_URL`` pointing here), saves to a store, and compares the bill the server
computed with the cost chatrepl saved for the calls (``Store.spending``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .common import Section

MODEL = "claude-sonnet-4-5"
#: Dollars per million tokens of MODEL (Anthropic's published prices): input, output, cache
#: read (0.1×), cache write (1.25×, the 5-minute cache).
PRICES = (3.00, 15.00, 0.30, 3.75)
CACHE_LIFETIME = 300.0  # seconds; refreshed by each read
CACHE_MINIMUM = {"haiku": 2048}  # tokens; 1,024 for the other models
MAX_BREAKPOINTS = 4


def tokens(text: str) -> int:
    """Four characters a token, rounded up (the same rule on every run)."""
    return -(-len(text) // 4)


@dataclass
class Bill:
    """What the server charged for one request."""

    uncached: int
    written: int
    read: int
    output: int

    @property
    def cost(self) -> float:
        i, o, r, w = PRICES
        return (self.uncached * i + self.written * w + self.read * r + self.output * o) / 1e6


@dataclass
class BillingServer:
    """An Anthropic ``/v1/messages`` server that streams a fixed answer and bills the prompt
    cache as Anthropic does. ``clock`` gives seconds (tests of expiry may pass their own)."""

    answer: str
    clock: Callable[[], float] = time.monotonic
    bills: list[Bill] = field(default_factory=list)
    marks: list[int] = field(default_factory=list)  # breakpoints of each request
    cache: dict[str, float] = field(default_factory=dict)  # prefix hash → expiry

    def bill(self, body: dict[str, Any]) -> Bill:
        units = _units(body)
        total = sum(n for n, _, _ in units)
        ends, running, digest = [], 0, hashlib.sha256()
        for n, text, marked in units:
            running += n
            digest.update(text.encode())
            if marked:
                ends.append((running, digest.copy().hexdigest()))
        if len(ends) > MAX_BREAKPOINTS:
            raise ValueError(f"{len(ends)} cache_control blocks (at most {MAX_BREAKPOINTS})")
        self.marks.append(len(ends))
        now = self.clock()
        minimum = next((n for k, n in CACHE_MINIMUM.items() if k in body.get("model", "")), 1024)
        read = 0
        for size, key in reversed(ends):  # the longest cached prefix is read
            if self.cache.get(key, 0) > now:
                read = size
                self.cache[key] = now + CACHE_LIFETIME
                break
        written = 0
        for size, key in ends:
            if size >= minimum and size > read and self.cache.get(key, 0) <= now:
                self.cache[key] = now + CACHE_LIFETIME
                written = size - read  # up to the last breakpoint written
        return Bill(total - read - written, written, read, tokens(self.answer))

    def __enter__(self) -> BillingServer:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"


def _units(body: dict[str, Any]) -> list[tuple[int, str, bool]]:
    """The prompt in Anthropic's cache order (tools, system, messages) as blocks: tokens, the
    text that identifies the block, and whether it carries a cache_control mark."""
    units: list[tuple[int, str, bool]] = []
    for tool in body.get("tools", []):
        text = json.dumps({k: v for k, v in tool.items() if k != "cache_control"})
        units.append((tokens(text), text, "cache_control" in tool))
    system = body.get("system")
    blocks = [{"type": "text", "text": system}] if isinstance(system, str) else system or []
    for block in blocks:
        units.append(
            (tokens(block.get("text", "")), block.get("text", ""), "cache_control" in block)
        )
    for message in body.get("messages", []):
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        for block in blocks:
            plain = {k: v for k, v in block.items() if k != "cache_control"}
            text = block.get("text") if block.get("type") == "text" else json.dumps(plain)
            text = f"{message.get('role')}:{text}"
            units.append((tokens(text), text, "cache_control" in block))
    return units


def _handler(server: BillingServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            bill = server.bill(body)
            server.bills.append(bill)
            usage = {
                "input_tokens": bill.uncached,
                "cache_creation_input_tokens": bill.written,
                "cache_read_input_tokens": bill.read,
                "output_tokens": 1,
            }
            message = {"id": "msg_bench", "type": "message", "role": "assistant",
                       "model": body.get("model"), "content": [], "stop_reason": None,
                       "usage": usage}  # fmt: skip
            events = [
                ("message_start", {"type": "message_start", "message": message}),
                ("content_block_start", {"type": "content_block_start", "index": 0,
                                         "content_block": {"type": "text", "text": ""}}),
                ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                         "delta": {"type": "text_delta", "text": server.answer}}),
                ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                ("message_delta", {"type": "message_delta",
                                   "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                   "usage": {"output_tokens": bill.output}}),
                ("message_stop", {"type": "message_stop"}),
            ]  # fmt: skip
            data = "".join(f"event: {e}\ndata: {json.dumps(d)}\n\n" for e, d in events).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


#: A persona long enough to be cached from the first turn (about 1,500 tokens).
SYSTEM = " ".join(
    f"Rule {n}: answer plainly, cite the source you used, and keep each paragraph short."
    for n in range(1, 80)
)


def converse(turns: int, cache: bool, work: Path) -> tuple[BillingServer, float | None, int]:
    """``turns`` prompts through chatrepl to the billing server; the server (with its bills),
    the cost chatrepl saved for them, and the breakpoints of the last request."""
    from chatrepl.conversation import Conversation
    from chatrepl.models import get_model
    from chatrepl.spending import total
    from chatrepl.store import Store

    answer = " ".join(["The answer goes on with a sentence of ordinary length."] * 12)
    home = work / ("cache-on" if cache else "cache-off")
    home.mkdir(parents=True)
    with BillingServer(answer) as server:
        config = f'[providers.anthropic]\nbase_url = "{server.url}"\n'
        if not cache:
            config += "prompt_cache = false\n"
        (home / "config.toml").write_text(config)
        saved = {k: os.environ.get(k) for k in ("CHATREPL_HOME", "ANTHROPIC_API_KEY")}
        os.environ.update(CHATREPL_HOME=str(home), ANTHROPIC_API_KEY="sk-ant-bench-0123456789")
        try:
            store = Store(home / "chatrepl.db")
            c = Conversation(get_model(f"anthropic:{MODEL}"), system=SYSTEM, store=store)
            for n in range(turns):
                prompt = f"Question {n}: " + " ".join(["what else should I know here?"] * 10)
                c.prompt(prompt, max_tokens=400).text()
            cost = total(store.spending()).cost
            store.close()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return server, cost, server.marks[-1] if server.marks else 0


def run(turns: int = 50) -> Section:
    section = Section("Prompt caching: what a conversation costs")
    work = Path(tempfile.mkdtemp(prefix="chatrepl-bench-cost-"))
    results = {}
    for cache in (True, False):
        results[cache] = converse(turns, cache, work)
    on, off = results[True][0], results[False][0]
    for cache, (server, saved, marks) in results.items():
        bills = server.bills
        uncached = sum(b.uncached for b in bills)
        written = sum(b.written for b in bills)
        read = sum(b.read for b in bills)
        billed = sum(b.cost for b in bills)
        section.add(
            f"{turns} turns, caching {'on' if cache else 'off'}: input tokens billed",
            None,
            value=f"{uncached + written + read:,}",
            beside=f"{uncached:,} uncached, {written:,} written to the cache, {read:,} read "
            f"from it; {marks} cache marks in the last request",
        )
        section.add(
            f"{turns} turns, caching {'on' if cache else 'off'}: cost billed",
            None,
            value=f"${billed:.4f}",
            beside=f"chatrepl saved ${saved or 0:.4f} for the same calls",
            target="chatrepl's saved cost = the bill",
            met=saved is not None and abs(saved - billed) < 1e-9,
            if_missed="The cost chatrepl saves for a call comes from the usage the server "
            "reports: the input counted whole (uncached, cache writes and reads) and priced "
            "per kind (chatrepl/pricing.py).",
        )
    saving = 1 - sum(b.cost for b in on.bills) / sum(b.cost for b in off.bills)
    section.add(
        "what caching saves",
        None,
        value=f"{100 * saving:.0f} %",
        target="caching cheaper than no caching",
        met=saving > 0,
        if_missed="No request carried cache_control marks, or their prefixes were too short "
        "to cache: see providers/anthropic.py's mark_cache.",
    )
    section.notes.append(
        f"A {turns}-turn conversation with anthropic:{MODEL} (${PRICES[0]:g} input, "
        f"${PRICES[3]:g} cache write, ${PRICES[2]:g} cache read, ${PRICES[1]:g} output per "
        "million tokens) through chatrepl's library to a local server that bills as Anthropic "
        "does: breakpoints at chatrepl's cache_control marks, a 1,024-token minimum, a "
        "5-minute cache refreshed on use. A persona of about 1,500 tokens, prompts of about "
        "80 tokens, answers of about 150; tokens are four characters each. Caching off is "
        "`prompt_cache = false` in the provider's config. These are counts, not timings: the "
        "machine's load does not change them."
    )
    return section

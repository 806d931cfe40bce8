"""The HTML export, opened in a real headless browser (Debian's chromium, installed by .ci/run):
the page renders the conversation, every branch is in it, images are embedded, and nothing in
the conversation runs script. A control page proves the browser here does run scripts."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import stat
import struct
import subprocess
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_chatrepl
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from chatrepl.export_html import to_html
from chatrepl.frontend import load_conversation
from chatrepl.providers.registry import get_backend
from chatrepl.records import ConversationSummary, Part, TurnRecord
from chatrepl.store import Store

pytestmark = pytest.mark.timeout(120)

#: Each would change the page if it ran: the title, or a new element in the body.
HOSTILE = (
    "<script>document.title='pwned'</script>\n\n"
    "<img src=x onerror=\"document.body.appendChild(document.createElement('pwned'))\">\n\n"
    "[click me](javascript:document.title='pwned') and <javascript:document.title='pwned'>\n\n"
    '<a href="javascript:alert(1)">raw link</a> ![tracker](https://example.invalid/t.png)\n\n'
    "```html\n<script>document.title='pwned'</script>\n```\n"
)


CID = "01JD8X0000AAAABBBBCCCCDDDD"


def summary(title: str) -> ConversationSummary:
    return ConversationSummary(
        id=CID, title=title, title_source="user", model="openai:gpt-4o-mini",
        system="You are a goat", created="2025-01-31T14:02:05.123+00:00",
        updated="2025-01-31T14:05:00.000+00:00",
    )  # fmt: skip


def turn(n: int, prompt: str, parts: list[Part], parent_id: str | None = None) -> TurnRecord:
    return TurnRecord(
        id=f"01JD8X0000AAAABBBBCCCCDD{n:02d}", conversation_id=CID,
        parent_id=parent_id or (f"01JD8X0000AAAABBBBCCCCDD{n - 1:02d}" if n > 1 else None),
        model="openai:gpt-4o-mini", prompt=prompt, system="You are a goat",
        response="".join(p.text for p in parts if p.kind == "text"), options={},
        input_tokens=10, output_tokens=20, status="complete", error=None,
        started=f"2025-01-31T14:0{n}:00.000+00:00", duration_ms=1500, ttft_ms=200, parts=parts,
    )  # fmt: skip


def png_bytes() -> bytes:
    """A valid 2×2 grey PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x80\x80" * 2)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def chromium_dom(path: Path) -> str:
    """The DOM of ``path`` after chromium has loaded it (and run whatever it would run)."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("chromium is not on this machine (.ci/run installs it with apt-get)")
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [
                binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", f"--user-data-dir={profile}", "--dump-dom",
                path.resolve().as_uri(),
            ],
            capture_output=True, text=True, timeout=90,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def conversation() -> tuple:
    """A conversation with hostile answers, reasoning, a tool call, an image, a command's
    output and a branch: its summary, its path, every turn, and its files."""
    png = png_bytes()
    sha = "a" * 64
    first = turn(
        1,
        "Show me <b>bold</b> & code",
        [
            Part("prompt", "Show me <b>bold</b> & code"),
            Part("attachment", "", {"sha256": sha, "name": 'x"><script>1</script>.png',
                                    "mime": "image/png", "size": len(png)}),  # fmt: skip
            Part(
                "attachment",
                "$ ls\nREADME.md\n<script>document.title='pwned'</script>",
                {"command": "ls", "status": 0, "name": "$ ls", "mime": "text/plain"},
            ),
            Part("reasoning", "thinking about <script>document.title='pwned'</script>", call=1),
            Part("tool_call", "", {"id": "c1", "name": "read_file<script>",
                                   "arguments": {"path": "</pre><script>x</script>"}}, 1),  # fmt: skip
            Part("tool_result", "<img src=x onerror=alert(1)>", {"call_id": "c1",
                                                                 "name": "read_file"}, 1),  # fmt: skip
            Part("text", "Here:\n\n" + HOSTILE + "\n```python\ndef visible_answer():\n    pass\n```", call=2),
        ],
    )  # fmt: skip
    old = turn(2, "the first try", [Part("prompt", "the first try"),
                                                 Part("text", "an abandoned answer", call=1)])  # fmt: skip
    new = turn(3, "the second try", [Part("prompt", "the second try"),
               Part("text", "the kept answer", call=1)], parent_id=first.id)  # fmt: skip
    every = [first, old, new]
    return summary("<script>document.title='pwned'</script>"), [first, new], every, {sha: png}


def test_the_page_renders_folds_branches_embeds_images_and_runs_no_script(
    tmp_path: Path,
) -> None:
    head, path, every, files = conversation()
    page = to_html(head, path, every, files.get)
    file = tmp_path / "conversation.html"
    file.write_text(page)
    dom = chromium_dom(file)

    # nothing ran: the title is the escaped text, no element was added, no script element
    title = re.search(r"<title>(.*?)</title>", dom, re.S)
    assert title and title.group(1) == "&lt;script&gt;document.title='pwned'&lt;/script&gt;"
    assert "<pwned" not in dom and "<script" not in dom.lower()
    assert not re.search(r"<[^>]+\son\w+=", dom)  # no event handler attribute anywhere
    links = re.findall(r'<a\s[^>]*href="([^"]*)"', dom)
    assert links and not [link for link in links if "javascript" in link.lower()]
    assert 'src="https://example.invalid' not in dom  # a remote image is a link, not fetched

    # it shows the conversation: text, code highlighted, folds, the image, both branches
    assert "Here:" in dom and "the kept answer" in dom and "the first try" in dom
    assert re.search(
        r'<span class="k">def</span>(<span class="w">)? (</span>)?<span class="nf">visible_answer<',
        dom,
    )
    assert re.search(r"<details class=\"reasoning\"><summary>Reasoning</summary>", dom)
    assert re.search(r"<details class=\"tool\"><summary>Tool call <code>read_file", dom)
    assert "1 other branch from here" in dom and "an abandoned answer" in dom
    assert re.search(r'<img class="attached" alt="[^"]*" src="data:image/png;base64,', dom)
    assert base64.b64encode(files["a" * 64]).decode() in dom
    assert "Output of <code>$ ls</code>" in dom and "README.md" in dom
    assert 'http-equiv="Content-Security-Policy"' in dom


def test_a_control_page_shows_the_browser_runs_scripts_here(tmp_path: Path) -> None:
    """Without the escaping, the same text does run: the test above could fail."""
    file = tmp_path / "unsafe.html"
    file.write_text(f"<!DOCTYPE html><html><head><title>t</title></head><body>{HOSTILE}</body>")
    dom = chromium_dom(file)
    assert "<title>pwned</title>" in dom or "<pwned>" in dom


def test_export_command_writes_html_0600_and_repl_export_picks_it_from_the_name(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = run_chatrepl("-m", "echo", "-p", "<script>document.title='pwned'</script> hello")
    assert asked.returncode == 0, asked.stderr
    store = Store(home / "chatrepl.db", create=False)
    cid = store.recent(1)[0].id
    out = tmp_path / "shared.html"
    done = run_chatrepl("export", cid[:12], "--format", "html", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "&lt;script&gt;" in page
    dom = chromium_dom(out)
    assert "hello" in dom and "<pwned" not in dom and "<title>pwned" not in dom

    from chatrepl.repl.app import Repl

    monkeypatch.chdir(tmp_path)
    with create_pipe_input() as pipe:
        repl = Repl(
            store,
            load_conversation(store, cid, fallback=get_backend("echo"), warn=print),
            console=Console(file=io.StringIO(), width=200, color_system=None),
            input=pipe,
            output=DummyOutput(),
            history=InMemoryHistory(),
        )
        repl.handle("/export page.html")
    assert (tmp_path / "page.html").read_text().startswith("<!DOCTYPE html>")
    assert stat.S_IMODE((tmp_path / "page.html").stat().st_mode) == 0o600
    assert "Exported 1 turn" in repl.console.file.getvalue()


@pytest.fixture(autouse=True)
def _no_stray_display() -> Iterator[None]:
    """chromium must not look for a display server."""
    old = os.environ.pop("DISPLAY", None)
    yield
    if old is not None:
        os.environ["DISPLAY"] = old

"""A library's noise never reaches the screen: an MCP server that writes lines that are not MCP
on its stdout, or an HTTP endpoint that answers nonsense, is one line in ``chatrepl tools
--start`` (and nothing on stderr), never a traceback per line of junk."""

from __future__ import annotations

import http.server
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_chatrepl

pytest.importorskip("mcp", reason="the mcp extra is not installed: pip install -e '.[dev,mcp]'")
pytestmark = pytest.mark.timeout(120)

NOISY = Path(__file__).parent.parent / "mcp_noisy_server.py"

#: What the nonsense endpoint answers, by path: content type and body.
NONSENSE = {
    "/html": ("text/html", b"<html><body>Welcome to nginx!</body></html>"),
    "/json": ("application/json", b'{"hello": "world"}'),
    "/broken": ("application/json", b'{"jsonrpc": "2.0", "id": '),
    "/events": ("text/event-stream", b'data: not json at all\n\ndata: {"x": 1}\n\n'),
}


class Nonsense(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        self.rfile.read(int(self.headers.get("content-length") or 0))
        kind, body = NONSENSE.get(self.path.split("?")[0], ("text/plain", b"what?"))
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(405)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_DELETE = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def nonsense() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Nonsense)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def configure(home: Path, servers: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(servers)


def stdio(name: str, *args: str, timeout: float | None = None) -> str:
    quoted = ", ".join(f'"{a}"' for a in [str(NOISY), *args])
    limit = f"timeout = {timeout}\n" if timeout else ""
    return f'[mcp.servers.{name}]\ncommand = "{sys.executable}"\nargs = [{quoted}]\n{limit}'


def rows(out) -> dict[str, str]:
    """``chatrepl tools --start`` lines by name: the rest of the line."""
    found = {}
    for line in out.stdout.splitlines():
        name, _, rest = line.partition("\t")
        found[name] = rest
    return found


def test_junk_on_stdout_then_silence_is_one_line_and_nothing_on_stderr(home):
    configure(home, stdio("junk", "--junk", "3000", timeout=5))
    out = run_chatrepl("tools", "--start", timeout=90)
    assert out.returncode == 0 and out.stderr == ""
    line = rows(out)["junk"]
    assert "did not start within 5 s" in line
    assert "'debug: warming up the frobnicator, step 0' on its standard output" in line
    assert "Traceback" not in out.stdout


def test_a_server_with_a_banner_on_stdout_still_works_quietly(home):
    configure(home, stdio("chatty", "--junk", "50", "--then-serve"))
    out = run_chatrepl("tools", "--start", timeout=90)
    assert out.returncode == 0 and out.stderr == ""
    assert rows(out)["chatty.echo"].startswith("chatty\tAnswer with the text")


def test_a_noisy_server_used_in_a_prompt_prints_no_traceback(home):
    configure(home, stdio("chatty", "--junk", "200", "--then-serve"))
    out = run_chatrepl("-m", "echo:echo", "-T", "chatty", "-p", "hello", timeout=90)
    assert out.returncode == 0, out.stderr
    assert out.stderr == "" and out.stdout.strip() == "hello"


@pytest.mark.parametrize(
    "path, says",
    [
        ("/html", "it sent text/html instead of JSON or an event stream"),
        ("/json", "its answer is not an MCP message"),
        ("/broken", "its answer is not an MCP message"),
        ("/events", "it sent an event stream whose events are not MCP messages"),
    ],
)
def test_an_http_endpoint_answering_nonsense_is_one_line(home, nonsense, path, says):
    configure(home, f'[mcp.servers.web]\nurl = "{nonsense}{path}"\n')
    out = run_chatrepl("tools", "--start", timeout=90)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert rows(out)["web"] == (
        f"web\tMCP server web ({nonsense}{path}) did not answer as an MCP server does: {says}."
    )

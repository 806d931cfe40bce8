"""Secrets on the new paths: a ``${VAR}`` value in an MCP server's args, an attachment URL's
``?key=``, a ``--db postgresql://user:password@…`` quoted by a usage error, a PostgreSQL
failure: none reaches a message, a listing or the store. URLs are shown by one rule (SPEC,
"Secrets in URLs"): credentials and the values of query parameters named like a secret as
``***``."""

from __future__ import annotations

import http.server
import socket
import sys
import threading
from pathlib import Path

import pytest
from conftest import child_env, run_chatrepl

TOKEN = "tok-7f3a9c2e51"
PASSWORD = "pw-Qx81zL4m"


# --- one rule for showing a URL ----------------------------------------------------------------


@pytest.mark.parametrize(
    "url, shown",
    [
        (
            f"postgresql://me:{PASSWORD}@db.example.com:5432/chat?sslmode=require",
            "postgresql://***@db.example.com:5432/chat?sslmode=require",
        ),
        (
            f"https://files.example.com/a.png?KEY={TOKEN}&size=2",
            "https://files.example.com/a.png?KEY=***&size=2",
        ),
        (
            f"https://x.io/p?api_key={TOKEN}&apikey={TOKEN}&Token={TOKEN}&access_token={TOKEN}",
            "https://x.io/p?api_key=***&apikey=***&Token=***&access_token=***",
        ),
        (
            f"https://x.io/p?secret={TOKEN}&password={TOKEN}&sig={TOKEN}&Signature={TOKEN}&q=goats",
            "https://x.io/p?secret=***&password=***&sig=***&Signature=***&q=goats",
        ),
        (
            f"https://s3.example.com/b/k?X-Amz-Signature={TOKEN}&X-Amz-Date=20250101",
            "https://s3.example.com/b/k?X-Amz-Signature=***&X-Amz-Date=20250101",
        ),
        (f"https://{TOKEN}@git.example.com/repo", "https://***@git.example.com/repo"),
        ("https://example.com/plain?page=2#top", "https://example.com/plain?page=2#top"),
    ],
)
def test_public_url_follows_the_spec(url, shown):
    from chatrepl.text import public_url, scrub, url_secrets

    assert public_url(url) == shown
    assert public_url(shown) == shown  # showing twice changes nothing
    assert TOKEN not in public_url(url) and PASSWORD not in public_url(url)
    assert scrub(f"failed at {url} !", url_secrets(url)).count(TOKEN) == 0


def test_urls_inside_text_are_hidden():
    from chatrepl.text import hide_urls

    text = f"error: unrecognized arguments: --db postgresql://me:{PASSWORD}@h/db 'https://a/b?token={TOKEN}'"
    assert hide_urls(text) == (
        "error: unrecognized arguments: --db postgresql://***@h/db 'https://a/b?token=***'"
    )


# --- usage errors ------------------------------------------------------------------------------

URL = f"postgresql://me:{PASSWORD}@db.example.com/chat"


@pytest.mark.parametrize(
    "args",
    [
        ["models", "--db", URL],
        ["tools", "--db", URL],
        ["--db", URL, "models"],
        ["models", "--json", URL],
        [URL],
        ["db", "copy", "x.db", "y.db", "--db", URL],
    ],
)
def test_a_usage_error_never_quotes_a_password(args):
    out = run_chatrepl(*args)
    assert out.returncode == 2, out.stderr
    assert PASSWORD not in out.stderr + out.stdout
    assert "postgresql://***@db.example.com/chat" in out.stderr


# --- attachments -------------------------------------------------------------------------------


class Missing(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_failed_download_never_shows_the_urls_key(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Missing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        urls = [
            f"http://127.0.0.1:{server.server_address[1]}/photo.png?key={TOKEN}",
            f"http://127.0.0.1:{closed_port()}/photo.png?key={TOKEN}",
            f"http://user:{PASSWORD}@127.0.0.1:{closed_port()}/photo.png",
        ]
        db = tmp_path / "c.db"
        for url in urls:
            out = run_chatrepl("--db", str(db), "-m", "echo:echo", "-a", url, "-p", "look")
            assert out.returncode == 1
            assert TOKEN not in out.stderr and PASSWORD not in out.stderr, out.stderr
            assert "***" in out.stderr and out.stderr.count("\n") == 1
    finally:
        server.shutdown()
        server.server_close()
    if db.exists():
        assert TOKEN.encode() not in db.read_bytes()


# --- MCP servers: ${VAR} values --------------------------------------------------------------

NOISY = Path(__file__).parent.parent / "mcp_noisy_server.py"


def test_an_expanded_variable_in_args_never_shows(home):
    pytest.importorskip("mcp", reason="the mcp extra is not installed: pip install -e '.[dev,mcp]'")
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f'[mcp.servers.teller]\ncommand = "{sys.executable}"\n'
        f'args = ["{NOISY}", "--tell-args", "--token=${{TELLER_TOKEN}}"]\n'
    )
    env = {"TELLER_TOKEN": TOKEN}
    for args in (["tools", "--start"], ["tools", "--start", "--json"]):
        out = run_chatrepl(*args, env=child_env(**env))
        assert out.returncode == 0, out.stderr
        assert TOKEN not in out.stdout + out.stderr
        assert "fatal: the token --token=*** was refused" in out.stdout
    db = home / "c.db"
    out = run_chatrepl(
        "--db", str(db), "-m", "echo:echo", "-T", "teller", "-p", "hi", env=child_env(**env)
    )
    assert TOKEN not in out.stdout + out.stderr
    assert "teller" in out.stderr
    assert TOKEN.encode() not in db.read_bytes()

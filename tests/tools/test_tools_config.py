"""The [tools] and [mcp] parts of config.toml, the mcpServers JSON file, ${VAR} expansion."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chatrepl.errors import ConfigError
from chatrepl.settings import load_config
from chatrepl.text import public_url
from chatrepl.tools.tool_settings import expanded, tools_config

CONFIG = """
[mcp]
servers_file = "other.json"
[mcp.servers.time]
command = "mcp-server-time"
args = ["--local-timezone", "${ZONE}"]
[mcp.servers.docs]
url = "https://user:pw@example.com/mcp?key=secret"
headers = { Authorization = "Bearer ${DOCS_TOKEN}" }
[tools]
enabled = ["now"]
auto_approve = ["now", "time.*"]
timeout = 5
"""


def test_config_and_servers_file(home: Path) -> None:
    home.mkdir(parents=True)
    (home / "config.toml").write_text(CONFIG, "utf-8")
    (home / "other.json").write_text(
        json.dumps(
            {"mcpServers": {"fs": {"command": "npx", "args": ["-y", "x"], "env": {"A": "1"}}}}
        )
    )
    config = tools_config(load_config(), base=home)
    assert config.enabled == ["now"] and config.auto_approve == ["now", "time.*"]
    assert config.timeout == 5.0
    assert set(config.servers) == {"fs", "time", "docs"}
    assert config.servers["fs"].env == {"A": "1"} and config.servers["fs"].origin.endswith(
        "other.json"
    )
    assert config.servers["docs"].transport == "http"
    assert config.servers["docs"].where() == "https://***@example.com/mcp?key=***"


def test_variables_expand_when_the_server_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    config = tools_config(
        {"mcp": {"servers": {"docs": {"url": "https://e.com/${P}", "headers": {"A": "B ${T}"}}}}}
    )
    monkeypatch.setenv("P", "mcp")
    monkeypatch.delenv("T", raising=False)
    with pytest.raises(
        ConfigError, match="environment variable T \\(used in its headers\\) is not set"
    ):
        expanded(config.servers["docs"])
    monkeypatch.setenv("T", "tok")
    server = expanded(config.servers["docs"])
    assert server.url == "https://e.com/mcp" and server.headers == {"A": "B tok"}


@pytest.mark.parametrize(
    "config, message",
    [
        ({"tools": {"enabled": 3}}, "list of tool names"),
        ({"tools": {"timeout": -1}}, "timeout must be"),
        ({"mcp": {"servers": {"a.b": {"command": "x"}}}}, "letters, digits"),
        ({"mcp": {"servers": {"a": {}}}}, "either a command"),
        ({"mcp": {"servers": {"a": {"command": "x", "url": "http://y"}}}}, "either a command"),
        ({"mcp": {"servers": {"a": {"command": "x", "args": "no"}}}}, "list of text"),
        ({"mcp": {"servers": {"a": {"url": "http://y", "type": "sse"}}}}, "SSE"),
        ({"mcp": {"servers_file": "/no/such/file.json"}}, "does not exist"),
    ],
)
def test_bad_config_is_one_sentence(config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        tools_config(config)


def test_public_url_hides_secrets() -> None:
    shown = public_url("https://a:b@h.io:8443/p?token=x&page=2#f")
    assert shown == "https://***@h.io:8443/p?token=***&page=2#f"


def test_loading_config_with_servers_imports_no_mcp(home: Path) -> None:
    home.mkdir(parents=True)
    (home / "config.toml").write_text(CONFIG.replace('servers_file = "other.json"', ""), "utf-8")
    code = (
        "import sys; from chatrepl.settings import load_config; from chatrepl.tools.toolbox import Toolbox;"
        "box = Toolbox(load_config()); box.enable('now'); box.listing();"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mcp', 'pydantic', 'anyio', 'httpx2')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_tools_command_lists_without_starting_servers(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from chatrepl.cli import main

    home.mkdir(parents=True)
    (home / "config.toml").write_text(
        '[mcp.servers.gone]\ncommand = "chatrepl-no-such-server"\n', "utf-8"
    )
    assert main(["tools"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["now", "read_file", "search_history", "gone"]
    assert "--start lists its tools" in lines[-1]
    assert main(["tools", "--start", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[-1]["error"] == (
        "MCP server gone could not start: the command 'chatrepl-no-such-server' was not found."
    )

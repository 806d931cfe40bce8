"""MCP against real servers: mcp-server-time (PyPI, stdio), @modelcontextprotocol/server-everything
(npm, stdio and streamable HTTP), and a tiny server of ours that dies mid-call."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatrepl.records import ToolCall
from chatrepl.tools import ApprovalPolicy, Runner, ToolError
from chatrepl.tools.mcp import MCPManager
from chatrepl.tools.tool_settings import ServerConfig
from chatrepl.tools.toolbox import Toolbox

pytest.importorskip("mcp", reason="the mcp extra is not installed: pip install -e '.[dev,mcp]'")
pytestmark = pytest.mark.timeout(120)

HERE = Path(__file__).parent.parent  # tests/
NPM_CACHE = Path(os.environ.get("CHATREPL_NPM_CACHE", "~/.cache/chatrepl-npm")).expanduser()
EVERYTHING = NPM_CACHE / "node_modules/@modelcontextprotocol/server-everything/dist/index.js"


def time_command() -> str:
    found = Path(sys.executable).parent / "mcp-server-time"
    command = str(found) if found.exists() else shutil.which("mcp-server-time")
    assert command, "mcp-server-time is not installed (.ci/run installs it with the mcp extra)"
    return command


@pytest.fixture(scope="module")
def everything() -> Path:
    """server-everything's entry point, installed with npm into the cache if missing."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js and npm are not on this machine: server-everything cannot run")
    if not EVERYTHING.exists():
        NPM_CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(NPM_CACHE),
             "@modelcontextprotocol/server-everything"],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    return EVERYTHING


@pytest.fixture
def manager() -> Iterator[MCPManager]:
    m = MCPManager({})
    yield m
    m.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def everything_http(everything: Path) -> Iterator[str]:
    """server-everything in streamable HTTP mode on a free loopback port; its /mcp URL."""
    port = free_port()
    process = subprocess.Popen(
        ["node", str(everything), "streamableHttp"],
        env={**os.environ, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, "server-everything exited on start"
                assert time.monotonic() < deadline, "server-everything did not listen in 30 s"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(10)


def add(manager: MCPManager, config: ServerConfig) -> None:
    manager.servers[config.name] = config


# --- mcp-server-time over stdio --------------------------------------------------------------


def test_time_server_tools_are_listed_and_called(manager: MCPManager) -> None:
    add(manager, ServerConfig("time", command=time_command(), args=("--local-timezone", "UTC")))
    tools = {t.name: t for t in manager.tools("time")}
    assert set(tools) == {"time.get_current_time", "time.convert_time"}
    current = tools["time.get_current_time"]
    assert current.wire_name == "time__get_current_time"
    assert current.parameters["required"] == ["timezone"]
    text = current.call({"timezone": "Europe/Paris"})
    assert '"timezone": "Europe/Paris"' in text
    converted = tools["time.convert_time"].call(
        {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}
    )
    assert "21:00" in converted


def test_an_error_result_from_the_server_is_an_error(manager: MCPManager) -> None:
    add(manager, ServerConfig("time", command=time_command()))
    with pytest.raises(ToolError, match="Invalid timezone"):
        manager.call("time", "get_current_time", {"timezone": "Nowhere/Special"})


def test_through_the_runner_with_approval_by_pattern(manager: MCPManager) -> None:
    box = Toolbox({"mcp": {"servers": {"time": {"command": time_command()}}}})
    try:
        tools = box.enable("time.get_current_time")
        runner = Runner(tools, approve=ApprovalPolicy(auto_approve=["time.*"], ask=None))
        part = runner.run(
            ToolCall(id="c1", name="time__get_current_time", arguments={"timezone": "UTC"})
        )
        assert part.data == {"call_id": "c1", "name": "time__get_current_time", "is_error": False}
        assert '"timezone": "UTC"' in part.text
        listing = {row["name"] for row in box.listing()}
        assert "time.convert_time" in listing  # a running server lists its tools
    finally:
        box.close()


def test_a_server_starts_on_first_use_only(manager: MCPManager) -> None:
    add(manager, ServerConfig("time", command=time_command()))
    assert not manager.running("time")
    manager.tools("time")
    assert manager.running("time")
    manager.close()
    assert not manager.running("time")


# --- server-everything over stdio and streamable HTTP ---------------------------------------


def test_everything_over_stdio(manager: MCPManager, everything: Path) -> None:
    add(manager, ServerConfig("ev", command="node", args=(str(everything), "stdio")))
    names = {t.name for t in manager.tools("ev")}
    assert {"ev.echo", "ev.get-sum", "ev.get-tiny-image"} <= names
    assert manager.call("ev", "echo", {"message": "hello"}) == "Echo: hello"
    image = manager.call("ev", "get-tiny-image", {})
    assert "[image: image/png" in image


def test_everything_over_streamable_http(manager: MCPManager, everything_http: str) -> None:
    add(manager, ServerConfig("web", url=everything_http, headers={"X-Test": "1"}))
    tools = {t.name: t for t in manager.tools("web")}
    assert tools["web.get-sum"].call({"a": 2, "b": 40}) == "The sum of 2 and 40 is 42."


def test_headers_expand_and_never_show(
    manager: MCPManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()  # nothing listens here
    monkeypatch.setenv("DOCS_TOKEN", "s3cr3t-token-value")
    add(
        manager,
        ServerConfig(
            "docs",
            url=f"http://127.0.0.1:{port}/mcp?key=${{DOCS_TOKEN}}",
            headers={"Authorization": "Bearer ${DOCS_TOKEN}"},
        ),
    )
    with pytest.raises(ToolError) as caught:
        manager.tools("docs")
    where = f"http://127.0.0.1:{port}/mcp?key=***"
    assert str(caught.value) == f"MCP server docs could not be reached at {where}."
    assert "s3cr3t" not in str(caught.value)


def test_an_unset_variable_is_one_sentence(
    manager: MCPManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_SUCH_TOKEN", raising=False)
    add(
        manager,
        ServerConfig("docs", url="http://127.0.0.1:9/mcp", headers={"A": "${NO_SUCH_TOKEN}"}),
    )
    with pytest.raises(ToolError, match="environment variable NO_SUCH_TOKEN .* is not set"):
        manager.tools("docs")


# --- failures ---------------------------------------------------------------------------------


def test_a_command_that_does_not_exist(manager: MCPManager) -> None:
    add(manager, ServerConfig("gone", command="chatrepl-no-such-mcp-server"))
    with pytest.raises(ToolError) as caught:
        manager.tools("gone")
    assert str(caught.value) == (
        "MCP server gone could not start: the command 'chatrepl-no-such-mcp-server' was not found."
    )
    box = Toolbox({"mcp": {"servers": {"gone": {"command": "chatrepl-no-such-mcp-server"}}}})
    assert box.enable_configured(["gone"]) == [str(caught.value)]
    rows = box.listing(start_servers=True)
    assert rows[-1] == {
        "name": "gone",
        "source": "gone",
        "kind": "server",
        "error": str(caught.value),
    }
    box.close()


def dying(manager: MCPManager, *args: str) -> None:
    add(
        manager,
        ServerConfig("d", command=sys.executable, args=(str(HERE / "mcp_dying_server.py"), *args)),
    )


def test_a_server_that_exits_at_start_says_why(manager: MCPManager) -> None:
    dying(manager, "--exit-at-start")
    with pytest.raises(
        ToolError,
        match=r"exited or failed while starting \(it said: fatal: the token file is missing\)",
    ):
        manager.tools("d")


def test_a_server_dying_mid_call_is_an_error_result_and_restarts(manager: MCPManager) -> None:
    dying(manager)
    runner = Runner(manager.tools("d"))
    part = runner.run(ToolCall(id="c1", name="d__die", arguments={}))
    assert part.data["is_error"] is True
    assert part.text == (
        "Error: MCP server d stopped during the call (it said: dying now); "
        "it will be restarted on the next call."
    )
    again = runner.run(ToolCall(id="c2", name="d__ok", arguments={"text": "after"}))
    assert again.text == "ok: after" and not again.data["is_error"]


def test_a_hanging_call_hits_the_runners_limit_and_is_cancelled(manager: MCPManager) -> None:
    dying(manager)
    runner = Runner(manager.tools("d"), timeout=1)
    part = runner.run(ToolCall(id="c1", name="d__hang", arguments={}))
    assert part.data["is_error"] and "longer than 1 s" in part.text
    assert runner.run(ToolCall(id="c2", name="d__ok", arguments={"text": "x"})).text == "ok: x"


def test_ctrl_c_interrupts_an_mcp_call(manager: MCPManager) -> None:
    dying(manager)
    runner = Runner(manager.tools("d"))
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    part = runner.run(ToolCall(id="c1", name="d__hang", arguments={}), cancel)
    assert part.data["is_error"] and part.text.startswith("Interrupted")


def test_close_stops_the_server_processes(manager: MCPManager) -> None:
    dying(manager)
    manager.tools("d")
    children = _children()
    assert any("mcp_dying_server.py" in c for c in children)
    manager.close()
    assert not any("mcp_dying_server.py" in c for c in _children())


def _children() -> list[str]:
    """The command lines of this process's live children."""
    out = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z" and int(fields[1]) == os.getpid():
                out.append((status.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, IndexError, ValueError):
            continue
    return out

"""A tiny MCP server (stdio) for the tests: ``ok`` answers, ``die`` exits mid-call, ``hang``
never answers; with ``--exit-at-start`` it complains on stderr and exits before speaking."""

from __future__ import annotations

import os
import sys
import time

if "--exit-at-start" in sys.argv:
    print("fatal: the token file is missing", file=sys.stderr)
    sys.exit(1)

from mcp.server.mcpserver import MCPServer  # noqa: E402

server = MCPServer("dying")


@server.tool()
def ok(text: str) -> str:
    """Answer with the text."""
    return f"ok: {text}"


@server.tool()
def die() -> str:
    """Exit in the middle of the call."""
    print("dying now", file=sys.stderr, flush=True)
    os._exit(3)


@server.tool()
def hang() -> str:
    """Never answer (well, not for a minute)."""
    time.sleep(60)
    return "late"


@server.tool()
def fail() -> str:
    """Raise: the SDK reports it as an error result."""
    raise RuntimeError("the gears jammed")


if __name__ == "__main__":
    server.run()

"""Tools a model may call: plain functions, the built-ins and MCP servers' tools.

    function.py   Tool, Tool.from_function (the JSON schema from type hints and docstring)
    builtin.py    now, read_file, search_history
    approval.py   ApprovalPolicy: pre-approved patterns, "always", approve-all, no terminal
    runner.py     Runner: one call → approval → run with a time limit → a tool_result Part
    tool_settings.py  [tools] and [mcp] of config.toml, the mcpServers JSON file, ${VAR}
    mcp.py        MCPManager: servers over stdio and streamable HTTP (the ``mcp`` extra)
    toolbox.py    Toolbox: names → tools (-T, /tools, [tools] enabled), the listing

Nothing heavy is imported here: ``mcp`` only when a server starts.
"""

from ..errors import ToolError
from .approval import Answer, ApprovalPolicy, Decision, approve_all
from .function import Tool, as_tool
from .runner import Runner

__all__ = [
    "Answer",
    "ApprovalPolicy",
    "Decision",
    "Runner",
    "Tool",
    "ToolError",
    "approve_all",
    "as_tool",
]

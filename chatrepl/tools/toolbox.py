"""Which tools exist and which are on: built-in names, ``SERVER`` (every tool of an MCP server)
and ``SERVER.TOOL``, as given to ``-T``, ``/tools on|off`` and ``[tools] enabled``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, ToolError
from .approval import ApprovalPolicy, Ask
from .builtin import builtin_tools
from .function import Tool
from .runner import Runner
from .tool_settings import ToolsConfig, tools_config

if TYPE_CHECKING:
    from ..store import Store
    from .mcp import MCPManager


class Toolbox:
    """The tools a session can use, and those enabled in it.

    Args:
        config: the loaded config.toml (``chatrepl.settings.load_config()``) or a ToolsConfig.
        store: the store ``search_history`` searches (without one it does not exist).
    """

    def __init__(
        self, config: dict[str, Any] | ToolsConfig | None = None, store: Store | None = None
    ):
        self.config = config if isinstance(config, ToolsConfig) else tools_config(config or {})
        self.builtins = builtin_tools(store)
        self._mcp: MCPManager | None = None
        self.enabled: dict[str, Tool] = {}  # by display name, in the order enabled
        self._runners: list[Runner] = []

    @property
    def mcp(self) -> MCPManager:
        """The MCP servers' manager (created on first use; no server starts until asked)."""
        if self._mcp is None:
            from .mcp import MCPManager

            self._mcp = MCPManager(self.config.servers)
        return self._mcp

    def close(self) -> None:
        """Stop every MCP server that was started."""
        if self._mcp is not None:
            self._mcp.close()

    def names(self) -> list[str]:
        """What may be enabled without starting a server: built-ins, then server names."""
        return [*self.builtins, *self.config.servers]

    def resolve(self, name: str) -> list[Tool]:
        """The tools ``name`` stands for (starting its MCP server if it names one).

        Raises ConfigError for an unknown name (one sentence listing what exists) and ToolError
        for a server that cannot start.
        """
        if name in self.builtins:
            return [self.builtins[name]]
        server, _, tool = name.partition(".")
        if server in self.config.servers:
            tools = self.mcp.tools(server)
            if not tool:
                return tools
            found = [t for t in tools if t.name == name]
            if not found:
                have = ", ".join(t.name for t in tools) or "none"
                raise ConfigError(f"MCP server {server} has no tool {tool!r} (its tools: {have}).")
            return found
        raise ConfigError(f"There is no tool {name!r}; {self.describe_names()}.")

    def describe_names(self) -> str:
        """One clause naming what can be enabled."""
        builtins = ", ".join(self.builtins)
        servers = ", ".join(self.config.servers)
        text = f"built-in tools: {builtins}"
        if servers:
            text += f"; MCP servers (SERVER or SERVER.TOOL): {servers}"
        else:
            text += "; no MCP server is configured"
        return text

    def enable(self, name: str) -> list[Tool]:
        """Turn on the tools ``name`` stands for; returns them."""
        tools = self.resolve(name)
        for tool in tools:
            self.enabled[tool.name] = tool
            for runner in self._runners:
                runner.add(tool)
        return tools

    def disable(self, name: str) -> list[Tool]:
        """Turn off the enabled tools ``name`` stands for (never starts a server); returns them."""
        gone = [t for n, t in self.enabled.items() if n == name or (t.source == name and "." in n)]
        if not gone:
            on = ", ".join(self.enabled) or "none"
            raise ConfigError(f"The tool {name!r} is not on (on: {on}).")
        for tool in gone:
            del self.enabled[tool.name]
            for runner in self._runners:
                runner.remove(tool)
        return gone

    def runner(self, approve_all: bool = False, ask: Ask | None = None, **options: Any) -> Runner:
        """A Runner over the enabled tools (kept in step with enable / disable), approving by
        ``[tools] auto_approve``, ``approve_all`` (``--auto-approve``) and ``ask`` (the REPL's
        question; ``None`` with no terminal); ``[tools] timeout`` unless ``timeout=`` is given."""
        policy = ApprovalPolicy(self.config.auto_approve, approve_all=approve_all, ask=ask)
        if self.config.timeout and "timeout" not in options:
            options["timeout"] = self.config.timeout
        runner = Runner(self.enabled.values(), approve=policy, **options)
        self._runners.append(runner)
        return runner

    def enable_configured(self, extra: list[str] = ()) -> list[str]:  # type: ignore[assignment]
        """Enable ``[tools] enabled`` and then ``extra`` (``-T``); returns one sentence per name
        that failed (unknown, or a server that would not start) instead of raising."""
        problems = []
        for name in [*self.config.enabled, *extra]:
            try:
                self.enable(name)
            except (ConfigError, ToolError) as exc:
                problems.append(str(exc))
        return problems

    def listing(self, start_servers: bool = False) -> list[dict[str, Any]]:
        """Every tool that exists, for ``chatrepl tools`` and ``/tools``: name, source,
        description, enabled; MCP servers' tools only when ``start_servers`` (else one row per
        server, with an ``error`` when it would not start)."""
        rows: list[dict[str, Any]] = [
            _row(t, t.name in self.enabled) for t in self.builtins.values()
        ]
        for server, config in self.config.servers.items():
            running = self._mcp is not None and self._mcp.running(server)
            failed = self._mcp.failure(server) if self._mcp is not None else None
            if failed:  # tried this session (-T, /tools on): why it is not running
                rows.append({"name": server, "source": server, "kind": "server", "error": failed})
            elif start_servers or running:
                try:
                    tools = self.mcp.tools(server)
                except ToolError as exc:
                    rows.append(
                        {"name": server, "source": server, "kind": "server", "error": str(exc)}
                    )
                    continue
                rows.extend(_row(t, t.name in self.enabled) for t in tools)
            else:
                rows.append(
                    {
                        "name": server,
                        "source": server,
                        "kind": "server",
                        "transport": config.transport,
                        "where": config.where(),
                    }
                )
        return rows


def _row(tool: Tool, enabled: bool) -> dict[str, Any]:
    return {
        "name": tool.name,
        "source": tool.source,
        "kind": "tool",
        "description": tool.description,
        "enabled": enabled,
        "parameters": tool.parameters,
    }

"""The ``[tools]`` and ``[mcp]`` parts of config.toml, and the ``mcpServers`` JSON file other
clients use, read into plain records. No MCP code is imported here.

    [tools]
    enabled = ["now"]                   # on in every conversation
    auto_approve = ["now", "time.*"]    # run without asking
    timeout = 30                        # seconds a call may take
    [mcp]
    servers_file = "~/.cursor/mcp.json" # also use the servers of this file
    [mcp.servers.time]
    command = "mcp-server-time"
    args = ["--local-timezone", "UTC"]
    env = { TZ = "UTC" }
    [mcp.servers.docs]
    url = "https://example.com/mcp"
    headers = { Authorization = "Bearer ${DOCS_TOKEN}" }

``${VAR}`` in a command, its args, env, a url or headers is replaced from the environment when
the server starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..files import user_path

SERVER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: The largest MCP servers file read, in bytes (a JSON file of a few servers is a few KB).
SERVERS_FILE_LIMIT = 4 * 1024 * 1024


@dataclass(frozen=True)
class ServerConfig:
    """One MCP server: a command to run (stdio) or a URL (streamable HTTP)."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None  # seconds to start (default: the manager's)
    origin: str = "config.toml"

    @property
    def transport(self) -> str:
        return "stdio" if self.command else "http"

    def where(self) -> str:
        """The command or the URL, without secrets (credentials and secret query values as
        ``***``), for messages; ``${VAR}`` is shown as written, never expanded."""
        from ..text import public_url

        if self.command:
            return self.command
        return public_url(self.url or "")


@dataclass
class ToolsConfig:
    """What config.toml says about tools."""

    enabled: list[str] = field(default_factory=list)
    auto_approve: list[str] = field(default_factory=list)
    timeout: float | None = None
    servers: dict[str, ServerConfig] = field(default_factory=dict)


def secrets_of(server: ServerConfig) -> list[str]:
    """What must never be shown of ``server``: every value a ``${VAR}`` of it stands for, its
    env and header values, and the credentials and secret query values of its URL."""
    from ..text import url_secrets

    written = [server.command or "", *server.args, server.cwd or "", server.url or ""]
    written += [*server.env.values(), *server.headers.values()]
    found = [os.environ.get(name, "") for text in written for name in _VAR.findall(text)]
    found += [*server.env.values(), *server.headers.values()]
    url = server.url or ""
    with contextlib.suppress(ConfigError):
        url = expand(url, server.name, "url")
    found += url_secrets(url)
    return [f for f in dict.fromkeys(found) if f and "${" not in f]


def expand(value: str, server: str, what: str) -> str:
    """``value`` with each ``${VAR}`` replaced from the environment; an unset one is an error."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(
                f"MCP server {server}: the environment variable {name} (used in its {what}) is not set."
            )
        return os.environ[name]

    return _VAR.sub(replace, value)


def expanded(server: ServerConfig) -> ServerConfig:
    """``server`` with every ``${VAR}`` replaced (done when it starts, not when config loads)."""
    n = server.name
    return ServerConfig(
        name=n,
        command=expand(server.command, n, "command") if server.command else None,
        args=tuple(expand(a, n, "args") for a in server.args),
        env={k: expand(v, n, "env") for k, v in server.env.items()},
        cwd=expand(server.cwd, n, "cwd") if server.cwd else None,
        url=expand(server.url, n, "url") if server.url else None,
        headers={k: expand(v, n, "headers") for k, v in server.headers.items()},
        timeout=server.timeout,
        origin=server.origin,
    )


def tools_config(config: dict[str, Any], base: Path | None = None) -> ToolsConfig:
    """The tools part of a loaded config (``chatrepl.settings.load_config()``); one clear
    sentence (ConfigError) for anything malformed."""
    tools = config.get("tools", {})
    if not isinstance(tools, dict):
        raise ConfigError("config.toml: [tools] must be a table.")
    result = ToolsConfig(
        enabled=_names(tools.get("enabled", []), "[tools] enabled"),
        auto_approve=_names(tools.get("auto_approve", []), "[tools] auto_approve"),
    )
    if "timeout" in tools:
        timeout = tools["timeout"]
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigError("config.toml: [tools] timeout must be a number of seconds above 0.")
        result.timeout = float(timeout)
    mcp = config.get("mcp", {})
    if not isinstance(mcp, dict):
        raise ConfigError("config.toml: [mcp] must be a table.")
    if file := mcp.get("servers_file"):
        if not isinstance(file, str):
            raise ConfigError("config.toml: [mcp] servers_file must be a path.")
        result.servers.update(servers_file(user_path(file), base))
    servers = mcp.get("servers", {})
    if not isinstance(servers, dict):
        raise ConfigError("config.toml: [mcp.servers] must be a table of servers.")
    for name, entry in servers.items():
        result.servers[name] = server_config(name, entry, "config.toml")
    return result


def servers_file(path: Path, base: Path | None = None) -> dict[str, ServerConfig]:
    """The servers of an ``mcpServers`` JSON file (Claude Desktop, Cursor, VS Code's ``servers``)."""
    from ..files import NotRegularFileError, read_regular
    from ..text import make_safe

    if base is not None and not path.is_absolute():
        path = base / path
    shown = make_safe(str(path))
    try:
        content = read_regular(path, SERVERS_FILE_LIMIT)
        if len(content) > SERVERS_FILE_LIMIT:
            raise ConfigError(
                f"The MCP servers file {shown} is larger than {SERVERS_FILE_LIMIT // 2**20} MB: "
                "it cannot be a servers file."
            )
        data = json.loads(content)
    except FileNotFoundError:
        raise ConfigError(f"config.toml: the MCP servers file {shown} does not exist.") from None
    except NotRegularFileError as exc:
        raise ConfigError(
            f"config.toml: the MCP servers file {shown} is {exc.what}, not a regular file."
        ) from None
    except RecursionError:
        raise ConfigError(
            f"Cannot read the MCP servers file {shown}: it is nested too deeply to be a "
            "servers file."
        ) from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not valid JSON"
        raise ConfigError(f"Cannot read the MCP servers file {shown}: {reason}.") from None
    entries = data.get("mcpServers", data.get("servers")) if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise ConfigError(f"{path} has no mcpServers object of servers.")
    return {name: server_config(name, entry, str(path)) for name, entry in entries.items()}


def server_config(name: str, entry: Any, origin: str) -> ServerConfig:
    """One server's table (or JSON object) as a ServerConfig."""
    where = f"{origin}: MCP server {name!r}"
    if not SERVER_NAME.match(str(name)):
        raise ConfigError(
            f"{where}: a server name may hold only letters, digits, - and _ (it prefixes its "
            "tools' names, as in time.get_current_time)."
        )
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a table with a command or a url.")
    command, url = entry.get("command"), entry.get("url")
    if bool(command) == bool(url):
        raise ConfigError(f"{where} needs either a command (stdio) or a url (streamable HTTP).")
    kind = entry.get("type", entry.get("transport"))
    if kind in ("sse",):
        raise ConfigError(f"{where}: the old SSE transport is not supported; use streamable HTTP.")
    timeout = entry.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)):
        raise ConfigError(f"{where}: timeout must be a number of seconds.")
    return ServerConfig(
        name=name,
        command=_text(command, where, "command"),
        args=tuple(_strings(entry.get("args", []), where, "args")),
        env=_table(entry.get("env", {}), where, "env"),
        cwd=_text(entry.get("cwd"), where, "cwd"),
        url=_text(url, where, "url"),
        headers=_table(entry.get("headers", {}), where, "headers"),
        timeout=float(timeout) if timeout is not None else None,
        origin=origin,
    )


def _text(value: Any, where: str, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {what} must be text.")
    return value


def _strings(value: Any, where: str, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: {what} must be a list of text.")
    return value


def _table(value: Any, where: str, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"{where}: {what} must be a table of text values.")
    return {str(k): v for k, v in value.items()}


def _names(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f'config.toml: {what} must be a list of tool names, e.g. ["now"].')
    return value

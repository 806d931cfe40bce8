"""MCP servers as tools, through the official SDK (the ``mcp`` extra).

An :class:`MCPManager` owns one background thread running an asyncio loop. A server starts on
first use (its tools listed, or one called): stdio (a command) or streamable HTTP (a URL). Each
server lives in one task that holds the SDK's ``Client`` open until :meth:`MCPManager.close`
(run at exit) stops it. Every failure (a command not found, a server that exits, an HTTP error,
a time-out, a server dying mid-call) becomes :class:`~chatrepl.errors.ToolError` with one
sentence; header values never appear in one.

``mcp`` is imported only inside the coroutines that start a server: configuring servers costs
nothing until one is used.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import threading
from concurrent.futures import Future
from contextvars import ContextVar
from typing import IO, Any

from ..errors import ConfigError, ToolError
from ..text import make_safe, scrub, shorten
from .function import Tool
from .tool_settings import ServerConfig, expanded, secrets_of

#: Seconds a server may take to start and list its tools.
START_TIMEOUT = 30.0
#: Seconds a call may take when the caller gives no limit.
CALL_TIMEOUT = 60.0
#: The loggers the SDK and its HTTP client write to: what they say is kept from the screen.
SDK_LOGGERS = ("mcp", "client", "httpx", "httpx2", "httpcore", "anyio")

#: The server whose task is running (the SDK's tasks inherit it): who a log record is about.
_CURRENT: ContextVar[_Server | None] = ContextVar("chatrepl_mcp_server", default=None)


class _Noise(logging.Handler):
    """Takes what the SDK logs (a traceback per line of junk a server prints, say) off the
    screen; the first thing about a server is kept on it, to say in one sentence."""

    def emit(self, record: logging.LogRecord) -> None:
        server = _CURRENT.get()
        if server is not None and not server.noise and record.levelno >= logging.WARNING:
            server.noise = _noise_of(record)


def _noise_of(record: logging.LogRecord) -> str:
    """What a log record of the SDK says about the server, in a few words."""
    exc = record.exc_info[1] if record.exc_info else None
    errors = getattr(exc, "errors", None)
    if "parse JSONRPC" in record.getMessage() and callable(errors):
        with contextlib.suppress(Exception):
            line = str(errors()[0].get("input", ""))
            return f"it wrote {make_safe(shorten(line, 80))!r} on its standard output"
    return ""


def _quiet_sdk() -> None:
    """Keep the SDK's log records (tracebacks included) off stderr, once per process."""
    for name in SDK_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(h, _Noise) for h in logger.handlers):
            logger.addHandler(_Noise())
        logger.propagate = False


class _Server:
    """One running server, on the manager's loop."""

    def __init__(self, config: ServerConfig):
        self.config = config
        self.client: Any = None
        self.stop: asyncio.Event | None = None
        self.task: asyncio.Task[None] | None = None
        self.tools: list[Any] = []
        self.errlog: IO[str] | None = None
        self.noise = ""  # the first thing the SDK complained of about this server

    @property
    def alive(self) -> bool:
        return self.task is not None and not self.task.done() and self.client is not None

    def last_error_line(self) -> str:
        """The last line the server wrote to stderr (made safe), or ``""``."""
        if self.errlog is None:
            return ""
        try:
            self.errlog.flush()
            self.errlog.seek(0)
            lines = [line.strip() for line in self.errlog.read()[-4000:].splitlines()]
        except (OSError, ValueError):
            return ""
        lines = [line for line in lines if line]
        return make_safe(shorten(lines[-1], 200)) if lines else ""

    async def run(self, ready: asyncio.Future[None]) -> None:
        """Start the server, list its tools, then hold it open until ``stop`` is set."""
        self.stop = asyncio.Event()
        _CURRENT.set(self)
        try:
            from mcp import Client

            async with self._transport() as transport, Client(transport) as client:
                self.tools = await _list_tools(client)
                self.client = client
                ready.set_result(None)
                await self.stop.wait()
        except BaseException as exc:  # noqa: BLE001 - reported once, through ``ready``
            if not ready.done():
                ready.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                raise
        finally:
            self.client = None

    def _transport(self) -> Any:
        from contextlib import asynccontextmanager

        config = self.config

        @asynccontextmanager
        async def transport() -> Any:
            if config.command:
                import tempfile

                from mcp.client.stdio import StdioServerParameters, stdio_client

                self.errlog = tempfile.TemporaryFile(  # noqa: SIM115 - closed by the manager
                    "w+", encoding="utf-8", errors="replace"
                )
                params = StdioServerParameters(
                    command=config.command,
                    args=list(config.args),
                    env=config.env or None,
                    cwd=config.cwd,
                    encoding_error_handler="replace",
                )
                yield stdio_client(params, errlog=self.errlog)
            else:
                import httpx2
                from mcp.client.streamable_http import streamable_http_client

                timeout = httpx2.Timeout(30.0, read=300.0)
                async with httpx2.AsyncClient(headers=config.headers, timeout=timeout) as http:
                    yield streamable_http_client(config.url or "", http_client=http)

        return transport()


async def _list_tools(client: Any) -> list[Any]:
    tools: list[Any] = []
    cursor = None
    for _ in range(100):  # pages; a server that never stops paging cannot hang us
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


class MCPManager:
    """The configured MCP servers: started on first use, stopped by :meth:`close` (or at exit).

    Args:
        servers: the servers by name (``tools_config(config).servers``).
        start_timeout: seconds a server may take to start and list its tools.
    """

    def __init__(self, servers: dict[str, ServerConfig], start_timeout: float = START_TIMEOUT):
        self.servers = dict(servers)
        self.start_timeout = start_timeout
        self._running: dict[str, _Server] = {}
        self._failed: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()
        self._closed = False

    # --- the loop ----------------------------------------------------------------------------

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                _quiet_sdk()
                loop = asyncio.new_event_loop()
                # an SDK task failing after its server is gone: nothing for the screen
                loop.set_exception_handler(lambda loop, context: None)
                thread = threading.Thread(target=loop.run_forever, name="chatrepl-mcp", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
                atexit.register(self.close)
            return self._loop

    def _submit(self, coro: Any) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self._ensure_loop())

    @staticmethod
    def _wait(future: Future[Any], timeout: float, cancel: threading.Event | None) -> Any:
        """The future's result; on a time-out or ``cancel`` it is cancelled and TimeoutError /
        InterruptedError raised."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            try:
                return future.result(timeout=0.05)
            except TimeoutError:
                if future.done():
                    raise
                if cancel is not None and cancel.is_set():
                    future.cancel()
                    raise InterruptedError from None
                if time.monotonic() >= deadline:
                    future.cancel()
                    raise

    # --- servers -----------------------------------------------------------------------------

    def server(self, name: str) -> ServerConfig:
        """The configuration of server ``name``; unknown: one sentence naming those that exist."""
        if name not in self.servers:
            known = ", ".join(sorted(self.servers)) or "none is configured"
            raise ConfigError(f"There is no MCP server named {name!r} (servers: {known}).")
        return self.servers[name]

    def running(self, name: str) -> bool:
        """Whether server ``name`` is up."""
        server = self._running.get(name)
        return bool(server and server.alive)

    def failure(self, name: str) -> str | None:
        """Why server ``name`` could not start (one sentence), or ``None``."""
        return self._failed.get(name)

    def start(self, name: str) -> _Server:
        """Server ``name``, started if it is not running; ToolError if it cannot start."""
        config = self.server(name)
        with self._lock:
            if self._closed:
                raise ToolError("chatrepl is shutting down; MCP servers are stopped.")
            server = self._running.get(name)
            if server is not None and server.alive:
                return server
            if name in self._failed:
                raise ToolError(self._failed[name])
            try:
                ready_config = expanded(config)
            except ConfigError as exc:
                raise ToolError(str(exc)) from None
            try:
                import mcp  # noqa: F401 - only to say clearly that the extra is missing
            except ImportError:
                raise ToolError(
                    f"MCP server {name} needs the mcp extra: pip install 'chatrepl[mcp]'."
                ) from None
            server = _Server(ready_config)
            loop = self._ensure_loop()

            async def launch() -> None:
                ready: asyncio.Future[None] = loop.create_future()
                server.task = asyncio.ensure_future(server.run(ready))
                await ready

            timeout = config.timeout or self.start_timeout
            try:
                self._wait(self._submit(launch()), timeout, None)
            except BaseException as exc:  # noqa: BLE001 - becomes one sentence
                said = server.last_error_line()
                self._stop(server)
                if isinstance(exc, KeyboardInterrupt):
                    raise
                message = start_error(config, exc, timeout, said, server.noise)
                message = scrub(message, secrets_of(config))
                self._failed[name] = message
                raise ToolError(message) from None
            self._running[name] = server
            return server

    def tools(self, name: str) -> list[Tool]:
        """The tools of server ``name`` (started if needed), named ``name.tool``."""
        server = self.start(name)
        return [self._tool(name, t) for t in server.tools]

    def _tool(self, server: str, spec: Any) -> Tool:
        tool_name = str(spec.name)
        schema = spec.input_schema if isinstance(spec.input_schema, dict) else {}
        schema = dict(schema) or {"type": "object", "properties": {}}
        schema.setdefault("type", "object")

        def caller(arguments: dict[str, Any], cancel: threading.Event) -> str:
            return self.call(server, tool_name, arguments, cancel)

        return Tool(
            name=f"{server}.{make_safe(tool_name)}",
            description=str(spec.description or ""),
            parameters=schema,
            caller=caller,
            source=server,
        )

    def call(
        self,
        server_name: str,
        tool: str,
        arguments: dict[str, Any],
        cancel: threading.Event | None = None,
        timeout: float = CALL_TIMEOUT,
    ) -> str:
        """Call ``tool`` of ``server_name``; its result as text. ToolError on any failure
        (``is_error`` results included)."""
        server = self.start(server_name)
        client = server.client

        async def run() -> Any:
            return await client.call_tool(tool, arguments)

        try:
            result = self._wait(self._submit(run()), timeout, cancel)
        except InterruptedError:
            raise ToolError("interrupted by the user.") from None
        except TimeoutError:
            raise ToolError(
                f"MCP server {server_name} did not answer within {timeout:g} s."
            ) from None
        except BaseException as exc:  # noqa: BLE001 - becomes one sentence
            if isinstance(exc, KeyboardInterrupt):
                raise
            secrets = secrets_of(self.server(server_name))
            raise ToolError(scrub(self._call_error(server, exc), secrets)) from None
        text = result_text(result)
        if getattr(result, "is_error", False):
            raise ToolError(text or "the tool reported an error.")
        return text

    def _call_error(self, server: _Server, exc: BaseException) -> str:
        name = server.config.name
        leaf = _leaf(exc)
        import time

        time.sleep(0.1)  # let a dead server's task notice the end of its pipes
        if not server.alive or _is_closed(leaf):
            detail = server.last_error_line()
            self._stop(server)
            self._running.pop(name, None)
            return (
                f"MCP server {name} stopped during the call"
                + (f" (it said: {detail})" if detail else "")
                + "; it will be restarted on the next call."
            )
        code = getattr(leaf, "code", None)
        message = make_safe(shorten(str(leaf) or type(leaf).__name__, 300))
        if code is not None:
            return f"MCP server {name} refused the call: {message}"
        return f"MCP server {name} failed: {type(leaf).__name__}: {message}"

    def _stop(self, server: _Server) -> None:
        loop = self._loop
        if loop is None or server.task is None or server.task.done():
            self._close_log(server)
            return

        async def stop() -> None:
            if server.stop is not None:
                server.stop.set()
            assert server.task is not None
            try:
                await asyncio.wait_for(asyncio.shield(server.task), 5)
            except BaseException:  # noqa: BLE001 - stopping anyway
                server.task.cancel()
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(server.task, 2)

        with contextlib.suppress(BaseException):  # the loop may be going away
            asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=10)
        self._close_log(server)

    @staticmethod
    def _close_log(server: _Server) -> None:
        if server.errlog is not None:
            # a scratch file: a close that fails (a call cut short by Ctrl-C may leave its
            # buffer unflushable: ValueError) must not end chatrepl's exit in a traceback
            with contextlib.suppress(OSError, ValueError):
                server.errlog.close()

    def close(self) -> None:
        """Stop every server and the loop; safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            servers = list(self._running.values())
            self._running.clear()
        for server in servers:
            self._stop(server)
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
            if not thread.is_alive():
                loop.close()
        atexit.unregister(self.close)

    def __enter__(self) -> MCPManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- results and errors ------------------------------------------------------------------------


def result_text(result: Any) -> str:
    """An MCP ``CallToolResult`` as the text a model reads: text content as is, other content
    described in one line, structured content as JSON when there is nothing else."""
    pieces: list[str] = []
    for block in getattr(result, "content", None) or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            pieces.append(block.text)
        elif kind in ("image", "audio"):
            size = len(getattr(block, "data", "") or "") * 3 // 4
            pieces.append(f"[{kind}: {getattr(block, 'mime_type', '?')}, about {size} bytes]")
        elif kind == "resource_link":
            pieces.append(f"[resource: {block.uri} {getattr(block, 'name', '')}]".strip())
        elif kind == "resource":
            resource = block.resource
            text = getattr(resource, "text", None)
            pieces.append(text if text is not None else f"[resource: {resource.uri}]")
        else:
            pieces.append(f"[{kind or 'content'}]")
    structured = getattr(result, "structured_content", None)
    if not pieces and structured is not None:
        pieces.append(json.dumps(structured, ensure_ascii=False, default=str))
    return "\n".join(pieces)


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside (possibly nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _is_closed(exc: BaseException) -> bool:
    text = str(exc).lower()
    names = type(exc).__name__
    return (
        "closed" in text
        or "broken" in text
        or names in ("ClosedResourceError", "BrokenResourceError", "EndOfStream")
    )


def start_error(
    config: ServerConfig, exc: BaseException, timeout: float, stderr: str, noise: str = ""
) -> str:
    """One sentence for a server that would not start: ``stderr`` is the last line it wrote
    there, ``noise`` what the SDK made of lines on its stdout that were not MCP."""
    leaf = _leaf(exc)
    name, where = config.name, make_safe(config.where())
    if stderr:
        said = f" (it said: {stderr})"
    elif noise:
        said = f" ({noise}, where only MCP messages belong)"
    else:
        said = ""
    if isinstance(leaf, TimeoutError | asyncio.TimeoutError):
        return f"MCP server {name} ({where}) did not start within {timeout:g} s{said}."
    if isinstance(leaf, FileNotFoundError):
        return f"MCP server {name} could not start: the command {where!r} was not found."
    if isinstance(leaf, PermissionError):
        return f"MCP server {name} could not start: permission to run {where!r} is denied."
    status = getattr(getattr(leaf, "response", None), "status_code", None)
    if status is not None:
        return f"MCP server {name} ({where}) answered HTTP {status}."
    kind = type(leaf).__name__
    if "Connect" in kind:
        return f"MCP server {name} could not be reached at {where}."
    if config.command and noise and not stderr:
        return f"MCP server {name} ({where}) does not speak MCP{said}."
    if config.command:
        return f"MCP server {name} ({where}) exited or failed while starting{said}."
    if answer := _not_mcp(str(leaf)):
        return f"MCP server {name} ({where}) did not answer as an MCP server does: {answer}."
    message = make_safe(shorten(str(leaf).splitlines()[0] if str(leaf) else kind, 200))
    return f"MCP server {name} ({where}) failed to start: {message.rstrip('.')}."


def _not_mcp(said: str) -> str:
    """What an HTTP endpoint sent instead of MCP, in words; ``""`` if the SDK said otherwise."""
    if said.startswith("Unexpected content type:"):
        kind = make_safe(shorten(said.partition(":")[2].strip(), 60)) or "no content type"
        return f"it sent {kind} instead of JSON or an event stream"
    if said.startswith("Failed to parse JSON response"):
        return "its answer is not an MCP message"
    if said.startswith("Failed to parse SSE message"):
        return "it sent an event stream whose events are not MCP messages"
    return ""

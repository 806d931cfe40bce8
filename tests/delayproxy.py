"""A TCP proxy on loopback that puts a server far away: every chunk waits ``delay`` seconds in
each direction, and the proxy counts the round trips the client makes.

A round trip is a *flight*: the client sends after it has heard from the server (or for the first
time on a connection), and the server answers. Statements pipelined into one flight count once,
however many there are; a statement that waits for the answer to the one before costs a flight
of its own. A flight is counted when its answer reaches the proxy, before the client can see it,
so the count is settled whenever the client has its answer; what the client sends without
waiting for an answer (PostgreSQL's Terminate when it closes) is not a round trip and is not
counted. ``cut()`` drops every connection at once, as a server that goes away does.

    with DelayProxy("127.0.0.1", 5432, delay=0.015) as proxy:   # 30 ms a round trip
        url = f"postgresql://…@127.0.0.1:{proxy.port}/db"
        before = proxy.flights
        ...
        print(proxy.flights - before)
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType


class DelayProxy:
    """Forwards ``127.0.0.1:port`` to ``host:target_port``, ``delay`` seconds each way."""

    def __init__(self, host: str, target_port: int, delay: float = 0.0):
        self.host, self.target_port, self.delay = host, target_port, delay
        self.port = 0
        self.flights = 0
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="delay-proxy", daemon=True)

    # --- the life of the proxy -------------------------------------------------------------------

    def __enter__(self) -> DelayProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def cut(self) -> None:
        """Drop every open connection at once (a server, or the network, gone away)."""
        self._loop.call_soon_threadsafe(self._cut)

    def _cut(self) -> None:
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._writers.clear()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._accept, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._server.close()
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()

    # --- one connection ----------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        # who spoke last on this connection: the server answering the client ends a flight
        last = ["server"]
        with contextlib.suppress(asyncio.CancelledError):  # the proxy closing
            await asyncio.gather(
                self._pipe(reader, up_writer, last, "client"),
                self._pipe(up_reader, writer, last, "server"),
                return_exceptions=True,
            )

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        last: list[str],
        side: str,
    ) -> None:
        """Copy ``reader`` to ``writer``, each chunk delivered ``delay`` after it arrived."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, chunk = await queue.get()
                if not chunk:
                    with contextlib.suppress(Exception):
                        writer.write_eof()
                    return
                wait = due - self._loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(chunk)
                await writer.drain()

        sender = asyncio.ensure_future(deliver())
        try:
            while True:
                chunk = await reader.read(65536)
                if side == "server" and chunk and last[0] == "client":
                    self.flights += 1
                if chunk:
                    last[0] = side
                queue.put_nowait((self._loop.time() + self.delay, chunk))
                if not chunk:
                    break
            await sender
        except (ConnectionError, OSError, asyncio.CancelledError):
            sender.cancel()
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

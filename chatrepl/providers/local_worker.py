"""The process that runs a local model: ``python -m chatrepl.providers.local_worker``.

chatrepl starts one per loaded model (see :mod:`.local`) and talks to it in JSON lines: commands
on its stdin, events on its stdout. llama.cpp runs only here, so a native crash (a bad build, an
instruction the CPU faults on) ends this process and not the chat.

Commands, one JSON object a line:

- ``{"op": "load", "path": str | null, "options": {...}}``: load the model (once; ``null`` is
  the packaged one). Answers ``{"ev": "loaded", "info": {...}}`` or an error.
- ``{"op": "generate", "messages": [{"role", "content"}], "sampling": {...}}``: streams
  ``{"ev": "text", "text"}`` and ``{"ev": "usage", "input", "output"}``, then
  ``{"ev": "done", "finish": "stop" | "length" | "cancelled"}`` or an error.
- ``{"op": "prompt", "messages": [...]}``: the prompt text the model would be given, as
  ``{"ev": "prompt", "text", "tokens", "stop"}`` (what a chat template made of the messages).
- ``{"op": "cancel", "target": id}``: stop generation ``id`` between two tokens (at once,
  while it runs; before it starts, if it has not yet).

Every command carries an ``"id"``, and every event answering it carries the same ``"id"``.

An error is ``{"ev": "error", "kind": "ConfigError" | "ContextTooLongError" | "ProviderError",
"message": one sentence}``. End of stdin ends the process.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import signal
import sys
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .. import errors
from .local import DEFAULT_N_CTX, default_threads, packaged_model_path, render_prompt

#: The last errors llama.cpp logged: the reason a load failed is in there.
_LOG: deque[str] = deque(maxlen=20)
_log_callback: Any = None


def _quiet_llama() -> None:
    """Route llama.cpp's C logging into :data:`_LOG` (errors only) instead of stderr."""
    global _log_callback
    import ctypes

    import llama_cpp
    import llama_cpp._logger  # noqa: F401 - installs its own callback first; ours replaces it

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        if level == 4:  # GGML_LOG_LEVEL_ERROR; the rest (debug, info, warnings) is chatter
            _LOG.append(text.decode("utf-8", "replace").strip())

    _log_callback = callback  # keep a reference: C holds only a pointer
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))


@contextlib.contextmanager
def _no_extra_buffer_types() -> Iterator[None]:
    """Load with ``use_extra_bufts`` off: no CPU-specific weight repacking (AMX and the like).

    On CPUs with AMX, a llama.cpp built for the machine repacks weights for AMX tiles by
    default, and that path faults on some of them (Sapphire Rapids cloud machines). Llama()
    has no argument for it, so the default model parameters it starts from are adjusted.
    """
    import llama_cpp.llama_cpp as lib

    real = lib.llama_model_default_params

    def params() -> Any:
        p = real()
        p.use_extra_bufts = False
        return p

    lib.llama_model_default_params = params
    try:
        yield
    finally:
        lib.llama_model_default_params = real


class Loaded:
    """A model in memory and how to turn messages into its prompt."""

    def __init__(self, llm: Any, label: str, template: str, formatter: Any = None):
        self.llm = llm
        self.label = label
        self.template = template
        self.formatter = formatter


def load(path: str | None, options: dict[str, Any]) -> Loaded:
    """The model at ``path`` (``None``: the packaged one) with load ``options``."""
    try:
        from llama_cpp import Llama
    except ImportError as exc:  # installed but broken, e.g. a missing shared library
        from .local import LOCAL_INSTALL

        raise errors.ConfigError(
            f"llama-cpp-python is installed but cannot be imported ({exc}): "
            f"reinstall it with {LOCAL_INSTALL}."
        ) from exc
    _quiet_llama()
    label = Path(path).name if path else "gemma3-270m"
    file = Path(path) if path else packaged_model_path()
    threads = options.get("n_threads") or default_threads()
    _LOG.clear()
    try:
        with _no_extra_buffer_types():
            llm = Llama(
                model_path=str(file),
                n_ctx=options.get("n_ctx", DEFAULT_N_CTX),
                n_threads=threads,
                n_threads_batch=options.get("n_threads_batch", threads),
                n_batch=options.get("n_batch", 512),
                n_gpu_layers=options.get("n_gpu_layers", 0),
                verbose=False,
            )
    except (ValueError, RuntimeError, OSError) as exc:
        raise errors.ProviderError(
            f"llama.cpp could not load {file}{_load_failure()}: is it a complete GGUF model file?"
        ) from exc
    template = options.get("template", "auto")
    has_own = "tokenizer.chat_template" in (llm.metadata or {})
    if template == "auto":
        template = "model" if has_own else "qa"
    loaded = Loaded(llm, label, template)
    if template == "model":
        if not has_own:
            raise errors.ConfigError(
                f'{label} has no chat template of its own: use template = "qa".'
            )
        loaded.formatter = _model_formatter(llm)
    return loaded


def _load_failure() -> str:
    """Why llama.cpp failed, from its error log: ``" (invalid magic characters …)"`` or ``""``."""
    for line in _LOG:
        if line and "failed to load model" not in line:
            reason = line.split(": ", 1)[-1] if ": " in line else line
            return f" ({reason.rstrip('.')})"
    return ""


def _model_formatter(llm: Any) -> Any:
    """The GGUF's own Jinja chat template, as llama-cpp-python builds it for its chat API."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    def text(token: int) -> str:
        if token < 0:
            return ""
        return str(llm.detokenize([token], special=True).decode("utf-8", "replace"))

    return Jinja2ChatFormatter(
        template=llm.metadata["tokenizer.chat_template"],
        eos_token=text(llm.token_eos()),
        bos_token=text(llm.token_bos()),
        stop_token_ids=[llm.token_eos()],
    )


def prompt_tokens(loaded: Loaded, messages: list[dict[str, str]]) -> tuple[list[int], list[str]]:
    """The prompt's tokens and the stop strings, by the model's template or ours."""
    llm = loaded.llm
    if loaded.template == "model":
        try:
            result = loaded.formatter(messages=messages)
        except Exception as exc:  # a template that fails on these messages (jinja2 errors)
            raise errors.ProviderError(
                f"{loaded.label}'s chat template failed on this conversation ({exc}): "
                'try template = "chat".'
            ) from exc
        stop = (
            result.stop if isinstance(result.stop, list) else [result.stop] if result.stop else []
        )
        tokens = llm.tokenize(
            result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
        )
        return tokens, stop
    from ..records import Message

    text, stop = render_prompt(
        [Message(m["role"], m["content"]) for m in messages], loaded.template
    )
    # special=False: text a user typed that looks like a control token stays plain text
    return llm.tokenize(text.encode("utf-8"), add_bos=True, special=False), stop


class _Watch:
    """A llama-cpp stopping criterion: counts the tokens sampled and stops on ``cancel``."""

    def __init__(self, cancel: threading.Event):
        self.cancel = cancel
        self.count = 0

    def __call__(self, input_ids: Any, logits: Any) -> bool:
        self.count += 1
        return self.cancel.is_set()


def generate(
    loaded: Loaded,
    messages: list[dict[str, str]],
    sampling: dict[str, Any],
    cancel: threading.Event,
) -> Iterator[dict[str, Any]]:
    """The events of one answer (text, usage, done), stopping between tokens on ``cancel``."""
    from llama_cpp import StoppingCriteriaList

    llm = loaded.llm
    tokens, stop = prompt_tokens(loaded, messages)
    extra = sampling.pop("stop", None)
    stop = stop + ([extra] if isinstance(extra, str) else list(extra or []))
    if sampling.get("seed") is None:
        # llama-cpp-python would reuse one seed for every call: /retry should differ
        sampling["seed"] = random.randrange(2**31)
    watch = _Watch(cancel)
    usage = {"ev": "usage", "input": len(tokens), "output": 0}
    try:
        parts = llm.create_completion(
            tokens,
            stream=True,
            stop=stop,
            stopping_criteria=StoppingCriteriaList([watch]),
            **sampling,
        )
        started = False
        spaces = ""  # whitespace held back: an answer neither starts nor ends with it
        finish = "stop"
        for part in parts:
            choice = part["choices"][0]
            text = choice["text"]
            finish = choice.get("finish_reason") or finish
            if not started:
                text = text.lstrip()
                started = bool(text)
            body = text.rstrip()
            if body:  # the usage so far rides along: an interrupted answer keeps its count
                yield {"ev": "text", "text": spaces + body}
                yield {**usage, "output": watch.count}
                spaces = text[len(body) :]
            else:
                spaces += text
            if cancel.is_set():
                break
    except ValueError as exc:
        if "context window" in str(exc):
            raise errors.ContextTooLongError(
                f"The conversation ({len(tokens)} tokens) is too long for {loaded.label}'s "
                f"context of {llm.n_ctx()} tokens: start a /new conversation, /undo some "
                "turns, or raise n_ctx in [providers.local] of config.toml."
            ) from exc
        raise errors.ProviderError(f"llama.cpp failed: {exc}.") from exc
    yield {**usage, "output": watch.count}
    yield {"ev": "done", "finish": "cancelled" if cancel.is_set() else finish}


class Server:
    """The command loop: one model, loaded once, answering one request at a time."""

    def __init__(self, out: IO[str]):
        self.out = out
        self.loaded: Loaded | None = None
        self.commands: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.cancels: dict[Any, threading.Event] = {}  # per generation, set by "cancel"
        self.gone = False  # stdin closed: chatrepl is gone
        self.current: Any = None  # the id of the command being answered, echoed in its events

    def send(self, event: dict[str, Any]) -> None:
        self.out.write(json.dumps({**event, "id": self.current}) + "\n")
        self.out.flush()

    def read(self, stdin: IO[str]) -> None:
        """Read commands (a thread): ``cancel`` acts at once, the others wait their turn."""
        for line in stdin:
            with contextlib.suppress(ValueError):
                command = json.loads(line)
                if command.get("op") == "cancel":
                    self.cancel_event(command.get("target")).set()
                    continue
                self.commands.put(command)
        self.gone = True  # chatrepl is gone: stop and exit
        for event in list(self.cancels.values()):
            event.set()
        self.commands.put(None)

    def cancel_event(self, number: Any) -> threading.Event:
        """The event that cancels generation ``number`` (made by whichever asks first)."""
        event = self.cancels.setdefault(number, threading.Event())
        if self.gone:
            event.set()
        return event

    def serve(self) -> None:
        while (command := self.commands.get()) is not None:
            self.current = command.get("id")
            try:
                self.handle(command)
            except errors.ChatreplError as exc:
                self.send({"ev": "error", "kind": type(exc).__name__, "message": str(exc)})
            except Exception as exc:  # a bug here must still come back as one sentence
                self.send(
                    {
                        "ev": "error",
                        "kind": "ProviderError",
                        "message": f"The local model failed: {type(exc).__name__}: {exc}.",
                    }
                )

    def handle(self, command: dict[str, Any]) -> None:
        op = command.get("op")
        if op == "load":
            if self.loaded is None:
                self.loaded = load(command.get("path"), command.get("options") or {})
            llm = self.loaded.llm
            info = {
                "template": self.loaded.template,
                "n_ctx": llm.n_ctx(),
                "n_threads": llm.context_params.n_threads,
                "use_extra_bufts": bool(llm.model_params.use_extra_bufts),
                "pid": os.getpid(),
            }
            self.send({"ev": "loaded", "info": info})
            return
        if self.loaded is None:
            raise errors.ProviderError("The local model was asked for an answer before loading.")
        if op == "prompt":
            tokens, stop = prompt_tokens(self.loaded, command["messages"])
            text = self.loaded.llm.detokenize(tokens, special=True).decode("utf-8", "replace")
            self.send({"ev": "prompt", "text": text, "tokens": len(tokens), "stop": stop})
        elif op == "generate":
            cancel = self.cancel_event(self.current)
            try:
                sampling = dict(command.get("sampling") or {})
                for event in generate(self.loaded, command["messages"], sampling, cancel):
                    self.send(event)
            finally:
                self.cancels.pop(self.current, None)


def main() -> None:
    """Serve commands on stdin until it closes."""
    # Ctrl-C in the terminal is chatrepl's to handle: it sends "cancel" when it means to stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The protocol gets its own copy of stdout; file descriptor 1 then points at stderr, so
    # that nothing llama.cpp prints can break a line of it.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    server = Server(out)
    threading.Thread(target=server.read, args=(sys.stdin,), daemon=True).start()
    try:
        server.serve()
    finally:
        # skip llama-cpp-python's teardown at exit: its __del__ can fail on a torn-down module
        with contextlib.suppress(OSError):
            out.flush()
        os._exit(0)


if __name__ == "__main__":
    main()

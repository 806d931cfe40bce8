"""The library's front door: ``get_model(name)`` gives a Model that starts conversations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .conversation import Conversation, Response

if TYPE_CHECKING:
    from .providers.base import Backend
    from .store import Store


class Model:
    """A model ready to chat: a provider's model, and ``conversation()`` to start one.

    Args:
        backend: the provider's model (``chatrepl.providers``) that answers.
    """

    def __init__(self, backend: Backend):
        self.backend = backend

    @property
    def name(self) -> str:
        """The model's name at the provider, e.g. ``gpt-4o-mini``."""
        return self.backend.name

    @property
    def provider(self) -> str:
        """The provider's name, e.g. ``openai`` or a name from config.toml."""
        return self.backend.provider

    @property
    def full_name(self) -> str:
        """The name a user types: ``provider:model``."""
        return self.backend.full_name

    def conversation(self, system: str | None = None, store: Store | None = None) -> Conversation:
        """A new conversation with this model."""
        return Conversation(self.backend, system=system, store=store)

    def prompt(self, text: str, system: str | None = None, **options: Any) -> Response:
        """One prompt in a conversation of its own."""
        return self.conversation(system=system).prompt(text, **options)

    def __getattr__(self, name: str) -> Any:  # stream, close, preload …: the backend's own
        return getattr(self.backend, name)

    def __str__(self) -> str:
        return self.full_name

    def __repr__(self) -> str:
        return f"<Model {self.full_name}>"


def get_model(name: str | None = None) -> Model:
    """The model called ``name`` (``provider:model`` or an alias); the default when ``None``."""
    from .providers.registry import get_backend

    return Model(get_backend(name))

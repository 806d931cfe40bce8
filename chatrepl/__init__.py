"""chatrepl: a terminal chat client for large language models, and a small library.

    import chatrepl
    c = chatrepl.get_model("openai:gpt-4o-mini").conversation()
    print(c.prompt("Three names for a pet goat").text())

The names below are imported lazily so ``chatrepl --version`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .conversation import Conversation, Response
    from .errors import ChatreplError
    from .models import Model, get_model
    from .store import Store

__all__ = [
    "ChatreplError",
    "Conversation",
    "Model",
    "Response",
    "Store",
    "__version__",
    "get_model",
]

_WHERE = {
    "Conversation": "conversation",
    "Response": "conversation",
    "ChatreplError": "errors",
    "Model": "models",
    "get_model": "models",
    "Store": "store",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module 'chatrepl' has no attribute {name!r}")

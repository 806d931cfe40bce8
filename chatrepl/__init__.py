"""chatrepl: a terminal chat client for large language models, and a small library.

    import chatrepl
    c = chatrepl.get_model("openai:gpt-4o-mini").conversation()
    print(c.prompt("Three names for a pet goat").text())

The names below are imported lazily so ``chatrepl --version`` stays fast: nothing here
imports ``typing`` (or anything else) before the command line answers.
"""

from ._version import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (type checkers know it)
if TYPE_CHECKING:
    from typing import Any

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


def __getattr__(name: str) -> "Any":
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module 'chatrepl' has no attribute {name!r}")

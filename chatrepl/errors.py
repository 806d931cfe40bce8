"""Every error chatrepl raises on purpose. Each message is one sentence a user can act on.

ChatreplError
├── ConfigError            a malformed config.toml or keys.json, an unknown provider or model
├── BudgetError            a request that would pass a budget of config.toml: not sent
├── UsageError             a command line that cannot be done as asked (exit status 2)
├── OptionError            a model option whose name or value cannot be sent
├── AttachmentError        a file or URL that cannot be staged or sent
├── ToolError              a tool failed; the model is told the sentence
├── StoreError             the database cannot be used
│   ├── NewerDatabaseError     written by a newer chatrepl; left untouched
│   ├── NotFoundError          no conversation with that id or prefix
│   └── AmbiguousIdError       a prefix that matches several conversations
└── ProviderError          a model service failed; ``retryable`` says if trying again may help
    ├── ConnectError           the server cannot be reached
    ├── ResponseTimeoutError   the server stopped answering
    ├── AuthError              401/403: the key is missing or rejected
    ├── ModelNotFoundError     404: no such model (or a wrong base URL)
    ├── ContextTooLongError    413, or a 400 that says the prompt is too long
    ├── RateLimitError         429 after the retries ran out
    ├── QuotaError             429 insufficient_quota or 402: out of credit, never retried
    ├── ServerError            5xx, or an error event inside the stream
    ├── BadRequestError        another 4xx
    │   └── ToolsUnsupportedError  the model or server does not take tools
    └── StreamError            a malformed stream, or one that ended early
"""

from __future__ import annotations


class ChatreplError(Exception):
    """Base of all errors chatrepl raises on purpose; ``str()`` is the sentence to show."""


class BudgetError(ChatreplError):
    """A request that would pass a ``[budget]`` of config.toml; it was not sent."""


class ConfigError(ChatreplError):
    """The configuration cannot be used as it is."""


class UsageError(ChatreplError):
    """The command line asks for something that cannot be done as asked (exit status 2)."""


class OptionError(ChatreplError):
    """An option name or value that cannot be sent."""


class AttachmentError(ChatreplError):
    """An attachment cannot be staged or sent (the message names it and says why)."""


class ToolError(ChatreplError):
    """A tool failed in a way the model should be told; ``str()`` is the one sentence."""


class StoreError(ChatreplError):
    """The database cannot be used."""


class NewerDatabaseError(StoreError):
    """The database was written by a newer chatrepl."""


class NotFoundError(StoreError):
    """No conversation matches the id."""


class AmbiguousIdError(StoreError):
    """A prefix matches more than one conversation."""

    def __init__(self, message: str, candidates: list[str]):
        super().__init__(message)
        self.candidates = candidates


class ProviderError(ChatreplError):
    """A model service failed."""

    retryable = False

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class ConnectError(ProviderError):
    retryable = True


class ResponseTimeoutError(ProviderError):
    """The server stopped answering (no byte within the read time-out)."""

    retryable = True


class AuthError(ProviderError):
    pass


class ModelNotFoundError(ProviderError):
    pass


class ContextTooLongError(ProviderError):
    pass


class RateLimitError(ProviderError):
    retryable = True


class QuotaError(ProviderError):
    """The account is out of quota or credit: waiting and trying again will not help."""


class ServerError(ProviderError):
    retryable = True


class BadRequestError(ProviderError):
    pass


class StreamError(ProviderError):
    pass


class ToolsUnsupportedError(BadRequestError):
    """Tools were offered to a model or server that does not take them."""

"""Context windows of well-known models, for servers that do not say (the last resort)."""

from __future__ import annotations

#: name prefix → context window in tokens; the longest matching prefix wins.
KNOWN_CONTEXT: dict[str, int] = {
    "gpt-4o": 128_000,
    "gpt-4.1": 1_047_576,
    "gpt-4-turbo": 128_000,
    "gpt-4": 8_192,
    "gpt-3.5-turbo": 16_385,
    "gpt-5": 400_000,
    "o1": 200_000,
    "o3": 200_000,
    "o4-mini": 200_000,
    "claude-": 200_000,
    "deepseek-chat": 128_000,
    "deepseek-reasoner": 128_000,
    "llama3.1": 131_072,
    "llama3.2": 131_072,
    "llama3.3": 131_072,
    "qwen2.5": 32_768,
    "qwen3": 40_960,
    "gemma3": 131_072,
    "mistral": 32_768,
}


def known_context_window(model: str) -> int | None:
    """The context window of ``model`` from the table above, or ``None``.

    A vendor prefix (``openai/gpt-4o`` on OpenRouter) and a tag (``llama3.2:3b``) are ignored.
    """
    name = model.rsplit("/", 1)[-1].lower()
    best = max((p for p in KNOWN_CONTEXT if name.startswith(p)), key=len, default=None)
    return KNOWN_CONTEXT[best] if best else None

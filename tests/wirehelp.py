"""Helpers for the wire tests: stream a model into a list of events."""

from __future__ import annotations

import threading

from chatrepl.records import Message, ReasoningDelta, RefusalDelta, TextDelta

KEY = "sk-test-key-0123456789"
ANTHROPIC_KEY = "sk-ant-test-key-0123456789"


def events(model, messages=None, tools=None, options=None) -> list:
    """Every event of one call."""
    messages = messages or [Message("user", "hello world")]
    return list(model.stream(messages, options or {}, threading.Event(), tools=tools))


def joined(got: list, kind=TextDelta) -> str:
    """The text of every event of one kind, joined."""
    return "".join(e.text for e in got if type(e) is kind)


def reasoning(got: list) -> str:
    return joined(got, ReasoningDelta)


def refusal(got: list) -> str:
    return joined(got, RefusalDelta)


def of(got: list, kind) -> list:
    return [e for e in got if isinstance(e, kind)]

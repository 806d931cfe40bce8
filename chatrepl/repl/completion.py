"""Tab completion: commands, then ids and titles, model names or words after a command.

The first word is completed here rather than with prompt-toolkit's ``NestedCompleter``, which
treats ``/`` as a word separator and so never completes ``/mo`` to ``/model``. Conversations
and models come from callables that return cached lists: nothing here touches the database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from ..text import make_safe, shorten

if TYPE_CHECKING:
    from ..store import ConversationSummary
    from .commands import Command


class ChatCompleter(Completer):
    """Completes ``/command`` and its argument.

    Args:
        commands: the registered commands (name → Command); each says what its argument is.
        conversations: returns the cached recent conversations, newest first.
        models: returns the model names to offer after ``/model``.
        model_status: the note shown beside a model name (``ready``, ``no-key`` …).
    """

    def __init__(
        self,
        commands: dict[str, Command],
        conversations: Callable[[], Sequence[ConversationSummary]],
        models: Callable[[], Sequence[str]],
        model_status: Callable[[str], str] | None = None,
    ):
        self.commands = commands
        self.conversations = conversations
        self.models = models
        self.model_status = model_status

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterator[Completion]:
        text = document.text_before_cursor
        if not text.startswith("/") or text.startswith("//") or "\n" in text:
            return
        head, space, rest = text.partition(" ")
        if not space:
            yield from self._command_names(head[1:])
            return
        command = self._find(head[1:].lower())
        if command is None:
            return
        arg = rest.lstrip()
        kind = command.completes
        if kind == "conversation":
            yield from self._conversation_ids(arg)
        elif kind == "model":
            yield from _matching(arg, self.models(), meta=self.model_status)
        elif kind == "command":
            yield from _matching(arg.lstrip("/"), self._names(), meta=self._meta)
        elif kind == "path":
            yield from _paths(arg, complete_event)
        elif isinstance(kind, tuple):
            yield from _matching(arg, kind)

    # --- parts --------------------------------------------------------------------------------

    def _names(self) -> list[str]:
        names = []
        for command in self.commands.values():
            names += [command.name, *command.aliases]
        return names

    def _meta(self, name: str) -> str:
        command = self._find(name)
        return command.help if command else ""

    def _find(self, name: str) -> Command | None:
        for command in self.commands.values():
            if name == command.name or name in command.aliases:
                return command
        return None

    def _command_names(self, word: str) -> Iterator[Completion]:
        word = word.lower()
        for name in self._names():
            if name.startswith(word):
                command = self._find(name)
                hint = f" {command.args}" if command and command.args else ""
                yield Completion(
                    "/" + name + (" " if command and command.args else ""),
                    start_position=-len(word) - 1,
                    display="/" + name + hint,
                    display_meta=command.help if command else "",
                )

    def _conversation_ids(self, arg: str) -> Iterator[Completion]:
        typed = arg.strip().lower()
        for s in self.conversations():
            title = s.title or ""
            if s.id.lower().startswith(typed) or typed in title.lower():
                label = make_safe(shorten(title, 40)) if title else "(untitled)"
                yield Completion(
                    s.id,
                    start_position=-len(arg),
                    display=f"{s.id[:10]}  {label}",
                    display_meta=f"{s.turns} turn{'' if s.turns == 1 else 's'} · {s.model}",
                )
        if "last".startswith(typed):
            yield Completion(
                "last",
                start_position=-len(arg),
                display_meta="the most recent other conversation",
            )


def _paths(arg: str, event: CompleteEvent) -> Iterator[Completion]:
    """Files and folders that complete the path typed (``~`` is the home folder)."""
    from prompt_toolkit.completion import PathCompleter

    if "://" in arg:
        return
    yield from PathCompleter(expanduser=True).get_completions(Document(arg), event)


def _matching(
    arg: str, words: Iterable[str], meta: Callable[[str], str] | None = None
) -> Iterator[Completion]:
    """``words`` that start with ``arg``, then those that merely contain it."""
    typed = arg.lower()
    words = list(dict.fromkeys(words))
    first = [w for w in words if w.lower().startswith(typed)]
    then = [w for w in words if typed and typed in w.lower() and w not in first]
    for word in first + then:
        yield Completion(word, start_position=-len(arg), display_meta=meta(word) if meta else "")

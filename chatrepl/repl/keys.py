"""The keys of the input line: Enter sends, Esc-Enter adds a line, Ctrl-C clears."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..text import valid_text

if TYPE_CHECKING:
    from prompt_toolkit.key_binding import KeyBindings

#: What each key does, for /help and the manual (docs/guide/repl.md).
KEYS: tuple[tuple[str, str], ...] = (
    ("Enter", "send the message (or run the command)"),
    ("Esc Enter, Alt-Enter", "add a new line; a multi-line paste stays one message"),
    ("Ctrl-C", "clear the line; while an answer streams, stop it (what arrived is kept)"),
    ("Ctrl-D", "leave (on an empty line)"),
    ("Tab", "complete commands, conversation ids and titles, model names"),
    ("Up, Down", "earlier messages (history is kept across runs); Ctrl-R searches it"),
    ("Ctrl-X Ctrl-E", "edit the line in $VISUAL / $EDITOR"),
    ("//text", "send a message that begins with /"),
    ("!command", "run a shell command; its output goes with your next prompt"),
    ("\\!text", "send a message that begins with ! (a pasted line starting with ! is one)"),
)

#: Shown when Ctrl-C is pressed on an empty line.
HOW_TO_LEAVE = "(Ctrl-D or /exit leaves.)"


class Pasted:
    """Whether the line's first visible character came from a paste (bracketed paste): a
    pasted line that starts with ``!`` is a message, not a command to run."""

    def __init__(self) -> None:
        self.at_start = False

    def text_changed(self, buffer) -> None:  # noqa: ANN001 - prompt-toolkit's Buffer
        """An emptied line (Ctrl-C, deleted, sent) starts afresh."""
        if not buffer.text.strip():
            self.at_start = False


def key_bindings(pasted: Pasted | None = None) -> KeyBindings:
    """Bindings over prompt-toolkit's defaults (the session is multi-line, so Enter is ours);
    ``pasted`` learns whether a paste began the line."""
    from prompt_toolkit.key_binding import KeyBindings
    from prompt_toolkit.keys import Keys

    kb = KeyBindings()

    @kb.add(Keys.BracketedPaste)
    def _paste(event) -> None:  # noqa: ANN001 - as prompt-toolkit's own, noting where it went
        buffer = event.current_buffer
        first = not buffer.document.text_before_cursor.strip()
        buffer.insert_text(event.data.replace("\r\n", "\n").replace("\r", "\n"))
        if pasted is not None and first and event.data.strip():
            pasted.at_start = True

    # Enter and Esc-Enter carry the same (empty) filter: neither can shadow the other.
    @kb.add("enter")
    @kb.add("c-j")  # some terminals send LF for Enter
    def _send(event) -> None:  # noqa: ANN001 - prompt-toolkit's KeyPressEvent
        buffer = event.current_buffer
        # prompt-toolkit keeps typed bytes that are not UTF-8 as lone surrogates, which the
        # history file (and every later write) cannot encode: they become U+FFFD here.
        if (valid := valid_text(buffer.text)) != buffer.text:
            buffer.text = valid
        buffer.validate_and_handle()

    @kb.add("escape", "enter")
    def _newline(event) -> None:  # noqa: ANN001
        event.current_buffer.insert_text("\n")

    @kb.add("tab")
    def _complete(event) -> None:  # noqa: ANN001
        complete(event.current_buffer)

    @kb.add("c-c")
    def _clear(event) -> None:  # noqa: ANN001
        buffer = event.current_buffer
        if pasted is not None:
            pasted.at_start = False
        if buffer.text:
            buffer.reset()
        else:
            event.app.exit(exception=KeyboardInterrupt, style="class:aborting")

    return kb


def complete(buffer) -> None:  # noqa: ANN001 - prompt-toolkit's Buffer
    """Tab as in a shell: one candidate is inserted, several insert what they share and show.

    Completions are computed here, synchronously, rather than by prompt-toolkit's background
    completion, which a fast typist's Tab could race (and lose) against complete-while-typing.
    """
    from prompt_toolkit.completion import CompleteEvent, get_common_complete_suffix

    state = buffer.complete_state
    if state is not None and state.completions:
        if len(state.completions) == 1:
            buffer.apply_completion(state.completions[0])
        else:
            buffer.complete_next()
        return
    if buffer.completer is None:
        return
    event = CompleteEvent(completion_requested=True)
    completions = list(buffer.completer.get_completions(buffer.document, event))
    if not completions:
        if not buffer.text.startswith("/"):
            buffer.insert_text("\t")
        return
    if len(completions) == 1:
        buffer.apply_completion(completions[0])
        return
    if common := get_common_complete_suffix(buffer.document, completions):
        buffer.insert_text(common, fire_event=False)
    buffer.start_completion(complete_event=event)  # show the menu of what is left

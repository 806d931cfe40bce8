"""Attachments on the wire: how a staged file reads in a request (a note in its place, text
inlined with its name), the body that carries the bytes as base64 without ever holding the
base64 text, and the sentences for a file a model cannot take or a server refused.

Reading, checking and staging files is :mod:`chatrepl.attachments`; each vendor module places
the blocks in its own shape (``openai.user_content``, ``anthropic.user_blocks``) and puts
:class:`Base64Data` where the bytes go; :class:`StreamedJSON` encodes them while the request is
sent, so a large file is never held as base64 text, nor as a JSON string, nor as request bytes.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..attachments import kind, name, quoted
from ..errors import AttachmentError, ChatreplError
from ..records import Message, Part

_CHUNK = 3 * 21846  # bytes base64-encoded at a time (a multiple of 3: no padding inside)


def note(part: Part) -> str | None:
    """The line a model reads instead of an attachment that is not sent, else ``None``."""
    if part.data.get("omitted"):
        return f"[{name(part)} was attached earlier; it is not sent again]"
    if part.data.get("missing") or "content" not in part.data:
        return f"[{name(part)} was attached, but its content is not available here]"
    return None


def inline_text(part: Part) -> str:
    """A text attachment inlined in the prompt, between lines that name it (a command's
    output is already ``$ CMD`` and the output: as it is)."""
    text = bytes(part.data["content"]).decode("utf-8", "replace")
    if "command" in part.data:
        return text.rstrip()
    return f"[file {name(part)}]\n{text.rstrip()}\n[end of file {name(part)}]"


def text_content(part: Part) -> str:
    """A text attachment's content as text."""
    return bytes(part.data["content"]).decode("utf-8", "replace")


def unsupported(part: Part, where: str) -> AttachmentError:
    """The sentence for an attachment ``where`` (a model, a server) cannot take."""
    return AttachmentError(
        f"{where} cannot take the {kind(part).upper() if kind(part) == 'pdf' else kind(part)} "
        f"{quoted(name(part))}: the prompt is saved; ask again without the file, or with a "
        "model that reads it (/model)."
    )


_REJECT_WORDS = (
    "image",
    "file",
    "pdf",
    "document",
    "unsupported",
    "not supported",
    "multimodal",
    "vision",
    "mmproj",
    "media",
)


def rejected(error: ChatreplError, messages: list[Message], where: str) -> AttachmentError | None:
    """When a server refused a request that carried attachments with words about them: one
    sentence naming the files; else ``None``."""
    from ..errors import BadRequestError, ServerError

    sent = [
        p
        for m in messages
        for p in m.parts
        if p.kind == "attachment" and "content" in p.data and kind(p) != "text"
    ]
    said = str(error).lower()
    if not sent or not isinstance(error, BadRequestError | ServerError):
        return None
    if not any(word in said for word in _REJECT_WORDS):
        return None
    names = ", ".join(quoted(name(p)) for p in sent)
    detail = str(error).rstrip(".")
    return AttachmentError(
        f"{where} did not accept the attachment{'s' if len(sent) > 1 else ''} {names} "
        f"({detail}): the prompt is saved; ask again without it or with a model that reads it."
    )


@dataclass(frozen=True)
class Base64Data:
    """Where a provider's request carries ``content`` as base64 (after ``prefix``, e.g. a
    ``data:`` URL's head); encoded only while the request is sent."""

    content: bytes
    prefix: str = ""

    @property
    def encoded_length(self) -> int:
        return len(self.prefix.encode()) + 4 * ((len(self.content) + 2) // 3)


class StreamedJSON:
    """A JSON request body whose :class:`Base64Data` values are encoded piece by piece as it is
    sent: the whole body never exists in memory. Its length is known in advance (sent as
    Content-Length); it can be sent again (a retry) and gives the same bytes."""

    def __init__(self, body: dict[str, Any]):
        nonce = secrets.token_hex(8)
        self.blobs: list[Base64Data] = []

        def placeholder(value: Any) -> str:
            if not isinstance(value, Base64Data):
                raise TypeError(f"{type(value).__name__} cannot be sent as JSON")
            self.blobs.append(value)
            return f"\x00{nonce}:{len(self.blobs) - 1}\x00"

        text = json.dumps(body, default=placeholder, ensure_ascii=False)
        marks = re.split(r"\\u0000" + nonce + r":(\d+)\\u0000", text)
        self.pieces: list[bytes | Base64Data] = []
        for n, piece in enumerate(marks):
            self.pieces.append(self.blobs[int(piece)] if n % 2 else piece.encode("utf-8"))
        self.length = sum(
            p.encoded_length if isinstance(p, Base64Data) else len(p) for p in self.pieces
        )

    def headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", "Content-Length": str(self.length)}

    def __iter__(self) -> Iterator[bytes]:
        for piece in self.pieces:
            if not isinstance(piece, Base64Data):
                yield piece
                continue
            yield piece.prefix.encode()
            view = memoryview(piece.content)
            for start in range(0, len(view), _CHUNK):
                yield base64.b64encode(view[start : start + _CHUNK])

    def json(self) -> Any:
        """The whole body parsed (for tests and debugging: this builds it all in memory)."""
        return json.loads(b"".join(self))


def request_content(body: dict[str, Any], messages: list[Message]) -> dict[str, Any] | StreamedJSON:
    """``body`` as sent: itself, or streamed when ``messages`` carry attachment bytes."""
    if any("content" in p.data for m in messages for p in m.parts if p.kind == "attachment"):
        return StreamedJSON(body)
    return body

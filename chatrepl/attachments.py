"""Files sent with a prompt: loading (a path, an http(s) URL, or ``-`` for stdin), telling the
kind, limits, and keeping the bytes once by their hash.

A staged attachment is a :class:`~chatrepl.records.Part` of kind ``attachment`` whose data holds
``sha256``, ``name``, ``mime`` and ``size``, never the bytes: those live once in the store's
attachments table (or, for a conversation without a store, in this process). When a request is
built, :func:`resolve` gives the messages transient copies of those parts carrying the bytes
(``data["content"]``); how the providers put them on the wire is
:mod:`chatrepl.providers.attach_wire`.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .errors import AttachmentError, ConfigError
from .files import user_path
from .records import Message, Part

if TYPE_CHECKING:
    from .store import Store

MB = 1024 * 1024
DEFAULT_MAX_SIZE_MB = 20
DEFAULT_MAX_FILES = 10
RESEND = ("all", "last")
FETCH_TIMEOUT = 30.0  # seconds to fetch a URL
_CHUNK = 3 * 21846  # bytes base64-encoded at a time (a multiple of 3: no padding inside)

#: the image types every supported provider takes
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")
PDF = "application/pdf"
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", PDF),
)
_LOOKS_LIKE = {
    ".png": "a PNG image",
    ".jpg": "a JPEG image",
    ".jpeg": "a JPEG image",
    ".webp": "a WebP image",
    ".gif": "a GIF image",
    ".pdf": "a PDF",
}
#: what was held for conversations without a store, by hash
_MEMORY: dict[str, bytes] = {}


@dataclass(frozen=True)
class Settings:
    """The ``[attachments]`` table of config.toml."""

    max_bytes: int = DEFAULT_MAX_SIZE_MB * MB
    max_files: int = DEFAULT_MAX_FILES
    #: ``all``: every attachment of the history is sent again; ``last``: only those of the
    #: newest turn that has any (earlier ones become a one-line note).
    resend: str = "all"


def settings(config: dict[str, Any] | None = None) -> Settings:
    """The attachment settings of ``config`` (config.toml by default).

    Raises:
        ConfigError: a setting has the wrong type or value.
    """
    if config is None:
        from .settings import load_config

        config = load_config()
    table = config.get("attachments", {})
    if not isinstance(table, dict):
        raise ConfigError("config.toml: [attachments] must be a table.")
    size = table.get("max_size_mb", DEFAULT_MAX_SIZE_MB)
    files = table.get("max_files", DEFAULT_MAX_FILES)
    resend = table.get("resend", "all")
    if isinstance(size, bool) or not isinstance(size, int | float) or size <= 0:
        raise ConfigError("config.toml: [attachments] max_size_mb must be a positive number.")
    if isinstance(files, bool) or not isinstance(files, int) or files < 1:
        raise ConfigError("config.toml: [attachments] max_files must be a whole number above 0.")
    if resend not in RESEND:
        raise ConfigError('config.toml: [attachments] resend must be "all" or "last".')
    return Settings(int(size * MB), files, resend)


# --- telling the kind -----------------------------------------------------------------------


def detect(content: bytes, name: str) -> str:
    """The MIME type of ``content``: by its magic bytes, else text if it is UTF-8 text.

    Raises:
        AttachmentError: a binary file of a kind chatrepl cannot send, or a file whose name
            promises a kind its bytes are not.
    """
    for magic, mime in _MAGIC:
        if content.startswith(magic):
            return mime
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    suffix = Path(name).suffix.lower()
    if suffix in _LOOKS_LIKE:
        raise AttachmentError(
            f"{quoted(name)} is named like {_LOOKS_LIKE[suffix]} but its content is not one."
        )
    if _is_text(content):
        guessed = mimetypes.guess_type(name)[0] or ""
        return guessed if guessed.startswith("text/") else "text/plain"
    raise AttachmentError(
        f"{quoted(name)} is a binary file of a kind chatrepl cannot send: attach images "
        "(PNG, JPEG, WebP, GIF), PDFs or text files."
    )


def _is_text(content: bytes) -> bool:
    if b"\x00" in content[:65536]:
        return False
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def kind(part: Part) -> str:
    """``image``, ``pdf`` or ``text``: how a provider sends the attachment."""
    mime = str(part.data.get("mime", ""))
    if mime in IMAGE_TYPES:
        return "image"
    if mime == PDF:
        return "pdf"
    return "text"


def name(part: Part) -> str:
    """The attachment's file name."""
    return str(part.data.get("name") or "file")


def describe(part: Part) -> str:
    """``photo.png (image, 1.2 MB)``: an attachment as a person reads it; a command's output
    (``!CMD``) as ``'$ ls' (output, 2 KB, exit status 1)``."""
    if "command" in part.data:
        status = part.data.get("status")
        how = ", stopped" if status is None else f", exit status {status}" if status else ""
        size = human_size(int(part.data.get("size") or 0))
        return f"{quoted(name(part))} (output, {size}{how})"
    return f"{quoted(name(part))} ({kind(part)}, {human_size(int(part.data.get('size') or 0))})"


def human_size(n: int) -> str:
    """``512 B``, ``14 KB``, ``20.0 MB``."""
    if n < 1024:
        return f"{n} B"
    if n < MB:
        return f"{n / 1024:.0f} KB"
    return f"{n / MB:.1f} MB"


def quoted(text: str) -> str:
    """A file name or source fit to quote in a message: shortened, controls made visible."""
    from .text import make_safe, shorten

    return "'" + make_safe(shorten(text, 60)) + "'"


def _shown_path(path: str) -> str:
    """A path as a message quotes it: its end (the file's name) kept when it is long."""
    from .text import make_safe

    line = " ".join(path.split())
    return "'" + make_safe(line if len(line) <= 60 else "…" + line[-59:]) + "'"


# --- loading -----------------------------------------------------------------------------------


@dataclass
class Loaded:
    """An attachment read once: its part (no bytes) and its bytes."""

    part: Part
    content: bytes


def load(
    source: str,
    limits: Settings | None = None,
    stdin: BinaryIO | None = None,
    keys: Sequence[str] = (),
) -> Loaded:
    """Read ``source`` (a path, an http(s) URL, or ``-`` for stdin) once, within the limits;
    ``keys``: values blanked out of a text file (known keys, see :mod:`chatrepl.redact`).

    Raises:
        AttachmentError: it cannot be read, is too large, or is of a kind chatrepl cannot send.
    """
    limits = limits or settings()
    if source == "-":
        content = (stdin or sys.stdin.buffer).read(limits.max_bytes + 1)
        label = "stdin"
        _check_size(len(content), limits, "What came on stdin")
        if not content:
            raise AttachmentError("Nothing came on stdin to attach.")
    elif re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", source):
        content, label = _fetch(source, limits)
    else:
        content, label = _read_file(source, limits)
    mime = detect(content, label)
    if keys and mime not in IMAGE_TYPES and mime != PDF:
        content = _without(content, keys)
    from .text import valid_text

    data = {
        "sha256": hashlib.sha256(content).hexdigest(),
        "name": valid_text(label),
        "mime": mime,
        "size": len(content),
    }
    return Loaded(Part("attachment", "", data, 0), content)


def _without(content: bytes, keys: Sequence[str]) -> bytes:
    """Text ``content`` with each of ``keys`` as ``***`` (before it is hashed, kept or sent)."""
    for key in keys:
        if key:
            content = content.replace(key.encode("utf-8"), b"***")
    return content


def _check_size(size: int, limits: Settings, what: str) -> None:
    if size > limits.max_bytes:
        raise AttachmentError(
            f"{what} is larger than the limit of {human_size(limits.max_bytes)} an attachment "
            "(max_size_mb in [attachments] of config.toml)."
        )


def _read_file(source: str, limits: Settings) -> tuple[bytes, str]:
    from .files import NotRegularFileError, check_regular, read_regular

    path = user_path(source)
    shown = _shown_path(source)
    try:
        _check_size(check_regular(path).st_size, limits, shown)
        content = read_regular(path, limits.max_bytes)
    except FileNotFoundError:
        raise AttachmentError(f"There is no file {shown}.") from None
    except NotRegularFileError as exc:
        if exc.what == "a folder":
            raise AttachmentError(f"{shown} is a folder: attach a file.") from None
        raise AttachmentError(
            f"{shown} is {exc.what}, not a regular file: attach a file (or use - to send "
            "what comes on stdin)."
        ) from None
    except OSError as exc:
        raise AttachmentError(f"Cannot read {shown}: {exc.strerror or exc}.") from None
    _check_size(len(content), limits, shown)
    return content, path.name


def _plain(said: str) -> str:
    """A network library's reason in words: ``[Errno 111] Connection refused`` is
    ``connection refused``."""
    said = re.sub(r"^\[Errno -?\d+\]\s*", "", said.strip())
    return said[:1].lower() + said[1:] if said[1:2].islower() else said  # not "SSL: …"


def _fetch(url: str, limits: Settings) -> tuple[bytes, str]:
    """Download ``url`` (only because the user gave it), stopping at the size limit."""
    import httpx

    from .text import public_url, scrub, shorten, url_secrets

    shown = quoted(public_url(url))
    if not url.lower().startswith(("http://", "https://")):
        raise AttachmentError(f"Cannot attach {shown}: only http and https URLs are fetched.")
    try:
        client = httpx.Client(timeout=FETCH_TIMEOUT, follow_redirects=True)
        with client, client.stream("GET", url) as response:
            if response.status_code >= 400:
                raise AttachmentError(
                    f"Cannot attach {shown}: the server answered HTTP {response.status_code}."
                )
            declared = response.headers.get("content-length", "")
            if declared.isascii() and declared.isdigit():
                _check_size(int(declared), limits, shown)
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                _check_size(size, limits, shown)
                chunks.append(chunk)
            final = str(response.url)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        said = scrub(_plain(str(exc)) or type(exc).__name__, url_secrets(url))
        raise AttachmentError(f"Cannot fetch {shown}: {shorten(said, 120).rstrip('.')}.") from None
    content = b"".join(chunks)
    chunks.clear()
    label = final.split("?")[0].split("#")[0].rstrip("/").rsplit("/", 1)[-1]
    return content, label if "." in label else "download"


# --- keeping -----------------------------------------------------------------------------------


def stage(
    source: str,
    store: Store | None,
    staged: list[Part] | None = None,
    limits: Settings | None = None,
    stdin: BinaryIO | None = None,
    keys: Sequence[str] = (),
) -> Part:
    """Load ``source`` and keep its bytes (in ``store``, once by hash); its part, to pass as
    ``attachments=[...]`` with the next prompt. ``staged``: the parts already staged;
    ``keys``: values blanked out of a text file.

    Raises:
        AttachmentError: too many files, or ``source`` cannot be loaded.
    """
    limits = limits or settings()
    staged = staged or []
    # a folder's files (data "from") and a command's output are capped by their own limits
    files = [p for p in staged if "from" not in p.data and "command" not in p.data]
    if len(files) >= limits.max_files:
        raise AttachmentError(
            f"At most {limits.max_files} files go with one prompt "
            "(max_files in [attachments] of config.toml): send this prompt first."
        )
    loaded = load(source, limits, stdin, keys)
    keep(loaded, store)
    return loaded.part


def keep(loaded: Loaded, store: Store | None) -> None:
    """Keep ``loaded``'s bytes once: in ``store``, or in this process without one."""
    data = loaded.part.data
    if store is not None:
        store.put_attachment(data["sha256"], data["mime"], loaded.content)
    else:
        _MEMORY[data["sha256"]] = loaded.content


def content_of(sha256: str, store: Store | None) -> bytes | None:
    """The bytes of the attachment with this hash, or ``None`` if they were never kept here."""
    if store is not None:
        found = store.attachment(sha256)
        if found is not None:
            return found
    return _MEMORY.get(sha256)


# --- handing them to a provider -------------------------------------------------------------


def resolve(
    messages: list[Message], store: Store | None, resend: str | None = None
) -> list[Message]:
    """``messages`` with each attachment part replaced by a transient copy for the provider:
    with ``data["content"]`` (the bytes), or ``data["omitted"]`` (an earlier turn's attachment
    that ``resend = "last"`` leaves out), or ``data["missing"]`` (bytes not kept here).

    The copies are never saved; the parts of the turns are left as they are.
    """
    attached = [n for n, m in enumerate(messages) if any(p.kind == "attachment" for p in m.parts)]
    if not attached:
        return messages
    if resend is None:
        resend = settings().resend
    newest = attached[-1]
    out = list(messages)
    for n in attached:
        message = messages[n]
        parts = []
        for p in message.parts:
            if p.kind != "attachment":
                parts.append(p)
                continue
            data = dict(p.data)
            if resend == "last" and n != newest:
                data["omitted"] = True
            elif "command" in data:  # a command's output (!CMD): its text is the part's own
                data["content"] = p.text.encode("utf-8")
            elif (content := content_of(str(data.get("sha256", "")), store)) is not None:
                data["content"] = content
            else:
                data["missing"] = True
            parts.append(Part(p.kind, p.text, data, p.call))
        out[n] = Message(message.role, message.content, tuple(parts))
    return out

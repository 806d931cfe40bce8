"""Plain-text helpers shared by every front end: making untrusted model text safe to show."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

# C0 controls except tab and newline, DEL, and the C1 range (which some terminals obey too).
_CONTROL = "\x00-\x08\x0b-\x1f\x7f-\x9f"
# Invisible format characters (Unicode's Cf), and the line and paragraph separators: bidi
# embeddings, overrides and isolates (U+202A-E, U+2066-9), the marks (U+200E/F, U+061C),
# zero-width space, word joiner, BOM, interlinear annotations, tags. They reorder or hide text,
# so what a terminal shows would differ from what was sent. Zero-width (non-)joiners U+200C/D
# stay: emoji sequences and several scripts need them, and they move nothing.
_FORMAT = (
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b\u200e\u200f"
    "\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    "\U000e0020-\U000e007f"
)
_SURROGATE_RANGE = "\ud800-\udfff"
_UNSAFE = re.compile(f"[{_CONTROL}{_FORMAT}{_SURROGATE_RANGE}]")
_SURROGATE = re.compile(f"[{_SURROGATE_RANGE}]")
ERROR_WIDTH = 300  # characters an error sentence may take before it is shortened


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code == 0x1B:
        return "^["
    if code < 0x20:
        return "^" + chr(code + 0x40)
    if code == 0x7F:
        return "^?"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if 0xD800 <= code <= 0xDFFF:
        return "\ufffd"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def make_safe(text: object) -> str:
    """``text`` with everything that could drive or deceive a terminal made visible.

    Newlines and tabs are kept. Controls become caret notation (ESC is ``^[``, so an escape
    sequence is shown as text and can never move the cursor, clear the screen, set a title or
    write the clipboard; a carriage return is ``^M``, so a line cannot be overwritten); C1
    controls become ``\\x9b``; bidi controls and other invisible format characters become
    ``\\u202e``, so text cannot be reordered or hidden; a lone surrogate (a byte that was not
    UTF-8) becomes U+FFFD. Anything that is not a string (a number or a list where a server
    should have sent a string) is shown as ``str()`` of it, cleaned the same way.
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    return _UNSAFE.sub(_visible, text)


def safe_error(text: object, width: int = ERROR_WIDTH) -> str:
    """One line for an error message: cleaned like :func:`make_safe`, whitespace collapsed,
    at most ``width`` characters."""
    return shorten(make_safe(text), width)


def valid_text(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD: always valid to encode as UTF-8.

    Python keeps bytes that were not UTF-8 (typed in a terminal, given on the command line, in
    an imported file) as lone surrogates, which SQLite and a UTF-8 terminal refuse; they become
    the replacement character, as invalid UTF-8 on stdin does. For text that is stored; text
    that is shown goes through :func:`make_safe`, which does this too.
    """
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def shorten(text: str, width: int) -> str:
    """One line of at most ``width`` characters, whitespace collapsed, with an ellipsis if cut."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: max(width - 1, 0)] + "…"


def parse_time(iso: str | None) -> datetime | None:
    """A stored timestamp as an aware datetime (UTC when it names no zone), or ``None``."""
    from datetime import UTC, datetime

    if not iso:
        return None
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def now() -> str:
    """The current UTC time as ISO 8601 with milliseconds (how every timestamp is stored)."""
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="milliseconds")


def is_blank(text: str) -> bool:
    """Whether ``text`` has nothing to answer: only whitespace and invisible characters."""
    import unicodedata

    return all(c.isspace() or unicodedata.category(c) in ("Cf", "Cc") for c in text)


def json_text(data: object) -> str:
    """``data`` as indented JSON, every character that could drive a terminal (controls, bidi
    and other format characters, lone surrogates) written as a ``\\uXXXX`` escape: the same
    data to a JSON reader, inert on a screen."""
    import json

    text = json.dumps(data, indent=2, ensure_ascii=False)
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n"


CHARS_PER_TOKEN = 4  # the usual estimate for English text and code


def estimate_tokens(text: str | int) -> int:
    """A rough token count of ``text`` (or of that many characters): characters / 4, rounded up."""
    chars = text if isinstance(text, int) else len(text)
    return -(-chars // CHARS_PER_TOKEN)


# --- secrets -------------------------------------------------------------------------------------

#: Query parameters whose values are secrets (compared in lower case, ``-`` read as ``_``); a name
#: ending in ``_key``, ``_token``, ``_secret``, ``_password`` or ``_signature`` is one too.
SECRET_PARAMETERS = frozenset(
    ("key", "api_key", "apikey", "token", "access_token", "secret", "password", "sig", "signature")
)
_SECRET_ENDINGS = ("_key", "_token", "_secret", "_password", "_signature")
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>`]+")
HIDDEN = "***"
#: Secrets shorter than this are not blanked out of text (``a`` everywhere would garble it).
SHORTEST_SECRET = 4


def is_secret_parameter(name: str) -> bool:
    """Whether a URL's query parameter of this name holds a secret (``key``, ``X-Amz-Signature``)."""
    from urllib.parse import unquote_plus

    name = unquote_plus(name).strip().lower().replace("-", "_")
    return name in SECRET_PARAMETERS or name.endswith(_SECRET_ENDINGS)


def public_url(url: str) -> str:
    """``url`` fit to show: its credentials (``user:password@``) and the values of query
    parameters named like a secret shown as ``***``; all else as it is. The one function every
    message, listing and record uses to show a URL."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an invalid URL)"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = HIDDEN + "@" + netloc.rpartition("@")[2]
    query = "&".join(
        f"{name}={HIDDEN}" if eq and is_secret_parameter(name) else f"{name}{eq}{value}"
        for name, eq, value in (p.partition("=") for p in parts.query.split("&") if p)
    )
    fragment = parts.fragment
    if fragment and any(is_secret_parameter(p.partition("=")[0]) for p in fragment.split("&")):
        fragment = HIDDEN  # an OAuth-style #access_token=…
    return urlunsplit(parts._replace(netloc=netloc, query=query, fragment=fragment))


def url_secrets(url: str) -> list[str]:
    """The secrets written in ``url`` (what :func:`public_url` hides), as written and decoded,
    longest first: to blank them out of text that quotes the URL some other way."""
    from urllib.parse import unquote, unquote_plus, urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found: list[str] = []
    userinfo = parts.netloc.rpartition("@")[0]
    user, colon, password = userinfo.partition(":")
    if colon:  # the password and the pair; a user name beside a password is no secret
        found += [userinfo, unquote(userinfo), password, unquote(password)]
    elif user:  # a token written as the user name
        found += [user, unquote(user)]
    for piece in (parts.query + "&" + parts.fragment).split("&"):
        name, eq, value = piece.partition("=")
        if eq and is_secret_parameter(name):
            found += [value, unquote_plus(value)]
    return sorted({s for s in found if len(s) >= SHORTEST_SECRET}, key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str], shortest: int = SHORTEST_SECRET) -> str:
    """``text`` with each secret, and each word of a secret of several words (a bearer
    token's), as ``***``; those shorter than ``shortest`` are left (they would garble text)."""
    pieces = {p for s in secrets for p in (s, *s.split()) if len(p) >= shortest}
    for piece in sorted(pieces, key=len, reverse=True):
        text = text.replace(piece, HIDDEN)
    return text


def hide_urls(text: str) -> str:
    """``text`` with every URL in it shown by :func:`public_url` (an argument quoted back by a
    usage error, a library's message that names the address it failed on)."""
    return _URL.sub(lambda m: public_url(m.group()), text)


#: What ends a sentence already, before any closing quotes or brackets.
_ENDED = re.compile(r"[.!?…:;][\"'”’»)\]]*$")


def sentence(text: str) -> str:
    """``text`` ended as a sentence: trailing white space dropped, and a period added unless
    it ends in punctuation already (``pirate.`` stays, never ``pirate..``)."""
    text = text.rstrip()
    return text if not text or _ENDED.search(text) else text + "."

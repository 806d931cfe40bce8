"""The built-in tools, off until enabled: ``now``, ``read_file`` (read-only) and
``search_history`` (the user's own saved conversations)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ToolError
from ..files import user_path
from .function import Tool

if TYPE_CHECKING:
    from ..store import Store

#: The largest file ``read_file`` reads, in bytes.
READ_LIMIT = 256 * 1024
BUILTIN_NAMES = ("now", "read_file", "search_history")


def now() -> str:
    """The current date and time, in UTC and in the user's local time zone."""
    from datetime import UTC, datetime

    utc = datetime.now(UTC)
    local = utc.astimezone()
    return (
        f"UTC: {utc.isoformat(timespec='seconds')} ({utc:%A})\n"
        f"local: {local.isoformat(timespec='seconds')} ({local:%A}, {local.tzname()})"
    )


def read_file(path: str, max_bytes: int = READ_LIMIT) -> str:
    """Read a text file on the user's machine (read-only; text files only, up to 256 KiB).

    Args:
        path: the file's path; ~ is the user's home folder.
        max_bytes: read at most this many bytes (at most 262144).
    """
    file = user_path(path)
    limit = max(1, min(int(max_bytes), READ_LIMIT))
    try:
        if file.is_dir():
            raise ToolError(f"{path} is a folder, not a file.")
        if file.exists() and not file.is_file():
            raise ToolError(f"{path} is not a regular file.")
        with file.open("rb") as f:  # read only: this tool never opens a file for writing
            data = f.read(READ_LIMIT + 1)
    except FileNotFoundError:
        raise ToolError(f"there is no file {path}.") from None
    except PermissionError:
        raise ToolError(f"permission to read {path} is denied.") from None
    except OSError as exc:
        raise ToolError(f"cannot read {path}: {exc.strerror or exc}.") from None
    if b"\0" in data[:8192]:
        raise ToolError(f"{path} is a binary file; only text files can be read.")
    if len(data) > READ_LIMIT:
        size = file.stat().st_size
        raise ToolError(f"{path} is too large ({size} bytes; the limit is {READ_LIMIT}).")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ToolError(f"{path} is not UTF-8 text; only text files can be read.") from None
    if len(data) > limit:
        text = data[:limit].decode("utf-8", "ignore") + f"\n[cut at {limit} of {len(data)} bytes]"
    return text


def search_history_tool(store: Store | None, limit: int = 10) -> Tool:
    """The ``search_history`` tool over ``store`` (without one, each call is an error)."""

    def search_history(query: str, n: int = 5) -> str:
        """Search the user's own saved chatrepl conversations (prompts and answers) by words.

        Returns matching conversations with their ids, titles, dates and a snippet.

        Args:
            query: words that must all occur in a turn.
            n: how many matches to return (at most 10).
        """
        if store is None:
            raise ToolError("there is no store of saved conversations to search.")
        hits = store.search(query, max(1, min(int(n), limit)), marks=("**", "**"))
        if not hits:
            return f"No saved conversation matches {query!r}."
        lines = []
        for hit in hits:
            title = hit.title or "(untitled)"
            snippet = " ".join(hit.snippet.split())
            lines.append(f"- {hit.conversation_id} {title!r} {hit.started[:10]}: {snippet}")
        return "\n".join(lines)

    tool = Tool.from_function(search_history)
    tool.source = "builtin"
    return tool


def builtin_tools(store: Store | None = None) -> dict[str, Tool]:
    """Every built-in tool by name; ``search_history`` searches ``store``."""
    tools = {
        "now": Tool.from_function(now),
        "read_file": Tool.from_function(read_file),
        "search_history": search_history_tool(store),
    }
    for tool in tools.values():
        tool.source = "builtin"
    return tools

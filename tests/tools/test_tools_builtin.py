"""The built-in tools: now, read_file (read-only, text only, capped), search_history over a
real store of saved conversations; and enabling tools by name."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest

from chatrepl.conversation import Conversation
from chatrepl.errors import ConfigError, ToolError
from chatrepl.providers.registry import get_backend
from chatrepl.store import Store
from chatrepl.tools.builtin import READ_LIMIT, builtin_tools
from chatrepl.tools.toolbox import Toolbox


def test_now_gives_utc_and_local_time() -> None:
    text = builtin_tools()["now"].call({})
    utc_line, local_line = text.splitlines()
    moment = datetime.fromisoformat(utc_line.split()[1])
    assert moment.utcoffset().total_seconds() == 0
    assert local_line.startswith("local: ")


def test_read_file_reads_text(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("first line\nsecond ✓\n", "utf-8")
    read = builtin_tools()["read_file"]
    assert read.call({"path": str(tmp_path / "notes.txt")}) == "first line\nsecond ✓\n"
    assert read.call({"path": str(tmp_path / "notes.txt"), "max_bytes": 5}).startswith(
        "first\n[cut at 5"
    )


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.txt", None, "there is no file"),
        ("image.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        ("big.log", b"a" * (READ_LIMIT + 10), "too large"),
        ("latin1.txt", "café".encode("latin-1"), "not UTF-8"),
    ],
)
def test_read_file_refuses_with_one_sentence(
    tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ToolError, match=message):
        builtin_tools()["read_file"].call({"path": str(path)})


def test_read_file_refuses_folders_and_never_writes(tmp_path: Path) -> None:
    read = builtin_tools()["read_file"]
    with pytest.raises(ToolError, match="folder"):
        read.call({"path": str(tmp_path)})
    path = tmp_path / "keep.txt"
    path.write_text("unchanged", "utf-8")
    os.utime(path, (1_000_000, 1_000_000))
    read.call({"path": str(path)})
    assert path.stat().st_mtime == 1_000_000 and path.read_text("utf-8") == "unchanged"
    with pytest.raises(ToolError):
        read.call({"path": str(tmp_path / "created.txt")})
    assert not (tmp_path / "created.txt").exists()


def test_read_file_has_no_way_to_write() -> None:
    params = builtin_tools()["read_file"].parameters["properties"]
    assert set(params) == {"path", "max_bytes"}


def test_search_history_finds_saved_conversations(tmp_path: Path) -> None:
    store = Store(tmp_path / "chat.db")
    goats = Conversation(get_backend("echo"), store=store)
    goats.prompt("names for a pet goat please").text()
    store.set_title(goats.id, "Goat names")
    other = Conversation(get_backend("echo"), store=store)
    other.prompt("the weather in Oslo").text()

    search = builtin_tools(store)["search_history"]
    text = search.call({"query": "goat"})
    assert goats.id in text and "'Goat names'" in text and "**goat**" in text
    assert other.id not in text
    assert "No saved conversation matches" in search.call({"query": "zebra"})


def test_search_history_without_a_store_is_an_error_result() -> None:
    with pytest.raises(ToolError, match="no store"):
        Toolbox({}).enable("search_history")[0].call({"query": "goat"})


def test_enabling_by_name_and_unknown_names(tmp_path: Path) -> None:
    box = Toolbox({"tools": {"enabled": ["now"]}}, store=Store(tmp_path / "c.db"))
    assert box.enable_configured(["read_file", "nonsense"]) == [
        "There is no tool 'nonsense'; built-in tools: now, read_file, search_history; "
        "no MCP server is configured."
    ]
    assert list(box.enabled) == ["now", "read_file"]
    assert [t.name for t in box.disable("now")] == ["now"]
    with pytest.raises(ConfigError, match="not on"):
        box.disable("now")
    assert {r["name"]: r["enabled"] for r in box.listing()} == {
        "now": False,
        "read_file": True,
        "search_history": False,
    }

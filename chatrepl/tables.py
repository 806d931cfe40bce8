"""Tables of conversations (``/list``, ``chatrepl list``, search results) that fit the terminal:
the ids a user types back are never cut to the same prefix, the number column is always there,
and long titles give way first."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .errors import AmbiguousIdError, StoreError
from .text import make_safe, shorten

if TYPE_CHECKING:
    from rich.table import Table

    from .store import Store

LEAST = 8  # characters an id is shown with at least
GAP = 2  # spaces between columns
#: Columns of numbers, right-aligned.
RIGHT = ("#", "turns", "calls", "input", "cached", "output", "cost")


def short_ids(ids: Sequence[str], store: Store | None = None, least: int = LEAST) -> dict[str, str]:
    """Each id cut to the shortest prefix (at least ``least`` long) that tells it from the other
    ``ids`` and, given the ``store``, from every conversation saved, so that ``/resume`` and
    ``-r`` take it back."""
    out: dict[str, str] = {}
    for i in ids:
        n = least
        while n < len(i) and any(o != i and o[:n] == i[:n] for o in ids):
            n += 1
        if store is not None:
            while n < len(i) and _ambiguous(store, i[:n]):
                n += 1
        out[i] = i[:n]
    return out


def unique_prefix(store: Store | None, conversation_id: str, least: int = 10) -> str:
    """``conversation_id`` shortened to a prefix no other saved conversation shares."""
    return short_ids([conversation_id], store, least)[conversation_id]


def _ambiguous(store: Store, prefix: str) -> bool:
    try:
        store.resolve(prefix)
    except AmbiguousIdError:
        return True
    except StoreError:
        return False
    return False


def one_line(text: object, width: int) -> str:
    """Outside text on one line of at most ``width`` characters, safe to show."""
    return shorten(make_safe(text), max(width, 1))


def fit(
    width: int,
    columns: Sequence[tuple[str, Sequence[str], str]],
    ends: dict[str, Sequence[str]] | None = None,
) -> Table:
    """A table of ``columns`` (header, cells already safe, kind) in ``width`` characters.

    Kinds: ``keep`` columns are never cut (ids, numbers); ``flex`` ones share what is left,
    the first (the title) giving way before the others; ``drop`` ones are left out when there
    is no room for them. ``ends`` (by header, one per row) are kept whole after a cell that
    is cut: a title gives way, its " (current)" mark does not.
    """
    from rich.table import Table

    ends = ends or {}

    def end(h: str, r: int) -> str:
        return ends[h][r] if h in ends else ""

    widths = {
        h: max([len(h), *(len(c) + len(end(h, r)) for r, c in enumerate(cells))])
        for h, cells, _ in columns
    }
    kept = [c for c in columns if c[2] == "keep"]
    flex = [c for c in columns if c[2] == "flex"]
    drop = [c for c in columns if c[2] == "drop"]
    shown = list(columns)

    def room() -> int:
        fixed = sum(widths[h] for h, _, k in shown if k != "flex")
        return width - fixed - GAP * (len(shown) - 1)

    # Leave out droppable columns, the last first, until every flexible one has a little room.
    for column in reversed(drop):
        if room() >= 8 * len(flex):
            break
        shown.remove(column)
    left = max(room(), 0)
    given: dict[str, int] = {}
    # The title (the first flexible column) gives way first, down to 10 characters; a model
    # name takes at most half of what is left, and is left out when there is no room for it.
    given: dict[str, int] = {}
    if flex:
        title = flex[0][0]
        least = min(widths[title], 10 + max((len(e) for e in ends.get(title, ())), default=0))
        for h, _, _ in flex[1:]:
            given[h] = min(widths[h], left // 2, max(left - least, 0))
            if given[h] < 5:
                shown.remove(next(c for c in shown if c[0] == h))
                left += GAP
                given.pop(h)
            else:
                left -= given[h]
        given[title] = max(min(widths[title], left), 1)
    table = Table(
        box=None, padding=(0, GAP // 2), show_edge=False, pad_edge=False, header_style="bold"
    )
    keep_names = {h for h, _, _ in kept}
    for h, _, _ in shown:
        w = given.get(h, widths[h])
        right = h in RIGHT
        table.add_column(
            h,
            no_wrap=h not in keep_names,
            min_width=w,
            max_width=w,
            overflow="fold" if h in keep_names else "ellipsis",
            justify="right" if right else "left",
        )
    rows = len(shown[0][1]) if shown else 0
    for r in range(rows):
        cells: list[Any] = []
        for h, values, _ in shown:
            w = given.get(h, widths[h])
            tail = end(h, r)
            cells.append(
                values[r] if h in keep_names else shorten(values[r], max(w - len(tail), 1)) + tail
            )
        table.add_row(*cells)
    return table


def conversation_table(
    rows: Sequence[Any],
    width: int,
    when: Callable[[str], str],
    store: Store | None = None,
    numbered: bool = True,
    current: str | None = None,
    least: int = LEAST,
) -> Table:
    """Conversations (summaries) as a table ``width`` wide: number, id, title, model, turns,
    last active. Ids are shown at least ``least`` characters long (26: whole)."""
    ids = short_ids([r.id for r in rows], store, least)
    titles = [one_line(r.title, 10_000) if r.title else "(untitled)" for r in rows]
    marks = [" (current)" if current and r.id == current else "" for r in rows]
    columns: list[tuple[str, Sequence[str], str]] = []
    if numbered:
        columns.append(("#", [str(i) for i in range(1, len(rows) + 1)], "keep"))
    columns += [
        ("id", [ids[r.id] for r in rows], "keep"),
        ("title", titles, "flex"),
        ("model", [one_line(r.model, 10_000) for r in rows], "flex"),
        ("turns", [str(r.turns) for r in rows], "keep"),
        ("last active", [when(r.updated) for r in rows], "drop"),
    ]
    return fit(width, columns, ends={"title": marks})


#: How a listing says that an MCP server's tools are listed once it runs: on the command line
#: and in the REPL.
LISTS_ITS_TOOLS = "--start lists its tools"
STARTS_IT = "/tools on {name} starts it"


def tool_about(row: dict[str, Any], idle: str = LISTS_ITS_TOOLS) -> str:
    """What one row of a tool listing says about the tool: the first sentence of its
    description, or why its MCP server is not running, or where the server is and ``idle``
    (how to see its tools)."""
    if row.get("kind") == "tool":
        lines = str(row.get("description") or "").strip().splitlines()
        first = lines[0] if lines else ""
        return first.split(". ")[0].strip()
    if row.get("error"):
        return str(row["error"])
    where = f": {row['where']}" if row.get("where") else ""
    return f"MCP server ({row.get('transport', '')}{where}); {idle.format(name=row['name'])}"


def tools_table(rows: Sequence[dict[str, Any]], width: int, states: bool = True) -> Table:
    """A tool listing (``Toolbox.listing`` rows) as a table ``width`` wide whose columns line up:
    on/off (``states``: the REPL's listing), the name, where it comes from, and what it does,
    cut with an ellipsis where it does not fit."""
    idle = STARTS_IT if states else LISTS_ITS_TOOLS
    names = [
        one_line(f"{r['name']}.*" if r.get("kind") == "server" else r["name"], 10_000) for r in rows
    ]
    columns: list[tuple[str, Sequence[str], str]] = []
    if states:
        marks = [
            "" if r.get("kind") == "server" else ("on" if r.get("enabled") else "off") for r in rows
        ]
        columns.append(("", marks, "keep"))
    columns += [
        ("tool", names, "keep"),
        ("about", [one_line(tool_about(r, idle), 10_000) for r in rows], "flex"),
        ("source", [one_line(r.get("source", ""), 10_000) for r in rows], "drop"),
    ]
    return fit(width, columns)

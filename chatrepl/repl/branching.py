"""The slash-commands of the conversation tree: alternatives, the tree view, switching branches,
rewriting an earlier prompt, forking."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ChatreplError
from ..text import make_safe, shorten
from .commands import command, plural
from .toolbar import SHORT_ID

if TYPE_CHECKING:
    from ..records import TreeNode
    from .session import Session

_MARK = {True: "●", False: "○"}


def _line(text: str, width: int = 60) -> str:
    return make_safe(shorten(" ".join(text.split()), width)) or "(empty)"


def _number(arg: str, most: int, what: str) -> int:
    if not (arg.isascii() and arg.isdigit()) or not 1 <= int(arg) <= most:
        raise ChatreplError(f"Give a number from 1 to {most}: {what}.")
    return int(arg)


@command("alt", "[N]", "the other answers at this turn; /alt N switches to one")
def cmd_alt(repl: Session, arg: str) -> None:
    """List the alternatives at the current turn: the answers `/retry` made and the prompts
    `/rewrite` put in its place, numbered, the current one marked. `/alt N` goes on from
    alternative N (and the newest turn of its branch); nothing is lost either way."""
    c = repl.conversation
    if not c.turns:
        repl.say("No turns yet.")
        return
    alternatives = c.alternatives()
    head = c.turns[-1].id
    if arg:
        n = _number(arg, len(alternatives), "/alt lists the alternatives")
        chosen = alternatives[n - 1]
        if chosen.id == head:
            repl.say("That is the current one.")
            return
        c.switch(chosen.id)
        repl.say(f"Switched to alternative {n} of {len(alternatives)}.")
        repl.show_resumed(1)
        repl.refresh()
        return
    if len(alternatives) < 2:
        repl.say("This turn has no alternatives: /retry asks again, /rewrite edits a prompt.")
        return
    for n, t in enumerate(alternatives, 1):
        current = t.id == head
        answer = t.response if hasattr(t, "response") else t.text_so_far
        status = f" [{t.status}]" if t.status != "complete" else ""
        start = f"{_MARK[current]} {n}. "
        # the terminal's width: the prompt takes up to two fifths, the answer the rest
        room = max(repl.console.width - len(start) - len(" → ") - len(status) - 1, 20)
        prompt = _line(t.prompt, room * 2 // 5)
        repl.say(
            f"{start}{prompt} → {_line(answer, room - len(prompt))}{status}",
            "bold" if current else "",
        )
    repl.say("/alt N switches.", "dim")


def tree_lines(nodes: list[TreeNode], path: set[str]) -> list[tuple[int, str, bool]]:
    """The tree as (number, line, on the path) rows: a turn with one child continues at its
    level, the children of a turn with several are indented under it."""
    children: dict[str | None, list[TreeNode]] = {}
    for node in nodes:
        children.setdefault(node.parent_id, []).append(node)
    number = {node.id: n for n, node in enumerate(nodes, 1)}
    rows: list[tuple[int, str, bool]] = []
    stack: list[tuple[TreeNode, int]] = [(n, 0) for n in reversed(children.get(None, []))]
    roots = len(children.get(None, []))
    if roots > 1:
        stack = [(n, 1) for n in reversed(children[None])]
    while stack:
        node, depth = stack.pop()
        kids = children.get(node.id, [])
        status = "" if node.status == "complete" else f" [{node.status}]"
        label = "summary of earlier turns" if node.kind == "summary" else _line(node.prompt, 50)
        rows.append((number[node.id], "  " * depth + f"{label}{status}", node.id in path))
        inner = depth + 1 if len(kids) > 1 else depth
        stack += [(k, inner) for k in reversed(kids)]
    return rows


@command("tree", "", "the conversation's branches, the current path marked")
def cmd_tree(repl: Session, arg: str) -> None:
    """Show every turn of the conversation as a compact tree: one line a turn (its prompt), the
    branches indented where they part, ● on the current path. `/switch N` goes on from turn N's
    branch."""
    c = repl.conversation
    nodes = c.tree()
    if not nodes:
        repl.say("No turns yet.")
        return
    path = {t.id for t in c.turns}
    for n, line, on_path in tree_lines(nodes, path):
        repl.say(f"{_MARK[on_path]} {n:>3} {line}", "bold" if on_path else "dim")
    branches = sum(1 for node in nodes if node.id not in path)
    repl.say(f"{plural(len(nodes), 'turn')}, {branches} off the current path.", "dim")


@command("switch", "N", "go on from the branch of turn N of /tree")
def cmd_switch(repl: Session, arg: str) -> None:
    """Go on from the branch through turn N (the numbers `/tree` shows): the conversation
    continues from that branch's newest turn."""
    c = repl.conversation
    nodes = c.tree()
    if not nodes:
        repl.say("No turns yet.")
        return
    n = _number(arg, len(nodes), "the turn numbers are those of /tree")
    c.switch(nodes[n - 1].id)
    repl.say(f"On the branch of turn {n} ({plural(len(c.turns), 'turn')} on the path).")
    repl.show_resumed(1)
    repl.refresh()


@command("rewrite", "[N]", "edit prompt N of the current path (default the last) and branch")
def cmd_rewrite(repl: Session, arg: str) -> None:
    """Put prompt N of the current path (1 is the first; default the last) on the input line to
    edit. Press Enter to send it: a new branch starts at that turn, and the old one stays
    (`/alt` switches back). Clear the line or press Ctrl-C to give up."""
    c = repl.conversation
    turns = c.turns
    if not turns:
        repl.say("No prompt to rewrite yet.")
        return
    n = _number(arg, len(turns), "prompts of the current path") if arg else len(turns)
    turn = turns[n - 1]
    repl.say(f"Editing prompt {n} of {len(turns)}: Enter sends it as a new branch.", "dim")

    def send(text: str) -> None:
        repl.show(c.edit(turn.id, text))

    repl.prefill(turn.prompt, send)


@command("fork", "", "a new conversation from the current path")
def cmd_fork(repl: Session, arg: str) -> None:
    """Start a new conversation holding a copy of the current path (its turns, persona and
    model); the original stays as it was."""
    old = repl.conversation
    if not old.turns:
        repl.say("Nothing to fork yet.")
        return
    new = old.fork()
    repl.switch_to(new)
    repl.say(
        f"Forked {plural(len(new.turns), 'turn')} into {new.id[:SHORT_ID]}; "
        f"the original ({old.id[:SHORT_ID]}) is unchanged."
    )

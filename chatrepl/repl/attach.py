"""``/attach``: stage files (a path or an http(s) URL) for the next prompt; ``--clear`` unstages.

What is staged stays in the session (``staged``) and shows in the toolbar until the next prompt
takes it; the bytes are already in the store, once by their hash.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ChatreplError
from .commands import command, plural

if TYPE_CHECKING:
    from .session import Session


@command("attach", "PATH|URL|--clear", "stage a file for the next prompt", completes="path")
def cmd_attach(repl: Session, arg: str) -> None:
    """Stage a file to go with your next prompt: an image (PNG, JPEG, WebP, GIF), a PDF or a
    text file, from a path (Tab completes it) or an http(s) URL (fetched now, once); a folder
    or a glob (`/attach 'src/**/*.py'`) stages its text files under their relative names.
    Stage several with several /attach; the toolbar shows them until the prompt is sent.
    `/attach` alone lists what is staged (a `!command`'s output too), `/attach --clear`
    unstages everything. Limits (size, count, a folder's total) and whether earlier turns'
    files are sent again are set in [attachments] of config.toml."""
    from ..attachments import describe

    staged = repl.staged
    arg = _unquoted(arg)
    if not arg:
        if not staged:
            repl.say("Nothing staged: /attach PATH or URL stages a file for the next prompt.")
            return
        for part in staged:
            repl.say(f"  {describe(part)}")
        repl.say(f"{plural(len(staged), 'file')} will go with your next prompt.", "dim")
        return
    if arg in ("--clear", "-c", "clear"):
        n = len(staged)
        staged.clear()
        repl.say(f"Unstaged {plural(n, 'file')}." if n else "Nothing was staged.")
        repl.refresh()
        return
    if arg == "-":  # stdin is the keyboard here: reading it would take the input line's keys
        repl.error(
            "/attach - would read stdin, which in the REPL is your keyboard: attach a file or "
            "a URL, or start chatrepl with -a - to attach what comes on stdin."
        )
        return
    _stage(repl, arg, "next")
    repl.refresh()


def stage_arguments(repl: Session, sources: list[str] | None) -> None:
    """Stage the files of ``-a`` for the first prompt; one that fails is said and skipped."""
    for source in sources or []:
        try:
            _stage(repl, source, "first")
        except ChatreplError as exc:
            repl.error(str(exc))
    repl.refresh()


def _stage(repl: Session, source: str, which: str) -> None:
    """Stage ``source`` (a file, or a folder's or glob's text files) for the ``which`` prompt,
    saying what was attached and what was left out."""
    from ..attachments import describe, human_size
    from ..expand import stage_any
    from ..redact import known_keys
    from ..text import make_safe, shorten

    found = stage_any(source, None if repl.no_log else repl.store, repl.staged, known_keys())
    for sentence in found.refused:
        repl.error(sentence)
    fresh = []
    for part in found.parts:
        if any(p.data.get("sha256") == part.data.get("sha256") for p in repl.staged):
            repl.say(f"{describe(part)} is already staged.")
            continue
        repl.staged.append(part)
        fresh.append(part)
    if len(fresh) == 1:
        repl.say(f"Attached {describe(fresh[0])}: it goes with your {which} prompt.")
    elif fresh:
        size = sum(int(p.data.get("size") or 0) for p in fresh)
        repl.say(
            f"Attached {plural(len(fresh), 'file')} ({human_size(size)}) from "
            f"'{make_safe(shorten(source, 60))}': they go with your {which} prompt."
        )
        for part in fresh:
            repl.say(f"  {describe(part)}", "dim")


def _unquoted(arg: str) -> str:
    """A path as typed, without the quotes around it (a path with spaces)."""
    arg = arg.strip()
    if len(arg) >= 2 and arg[0] == arg[-1] and arg[0] in "'\"":
        return arg[1:-1]
    return arg

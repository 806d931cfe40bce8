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
    text file, from a path (Tab completes it) or an http(s) URL (fetched now, once). Stage
    several with several /attach; the toolbar shows them until the prompt is sent.
    `/attach` alone lists what is staged, `/attach --clear` unstages everything. Limits (size,
    count) and whether earlier turns' files are sent again are set in [attachments] of
    config.toml."""
    from ..attachments import describe, stage

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
    part = stage(arg, repl.store, staged)
    if any(p.data.get("sha256") == part.data.get("sha256") for p in staged):
        repl.say(f"{describe(part)} is already staged.")
        return
    staged.append(part)
    repl.say(f"Attached {describe(part)}: it goes with your next prompt.")
    repl.refresh()


def stage_arguments(repl: Session, sources: list[str] | None) -> None:
    """Stage the files of ``-a`` for the first prompt; one that fails is said and skipped."""
    if not sources:
        repl.refresh()
        return
    from ..attachments import describe, stage  # not at start-up without -a

    for source in sources:
        try:
            part = stage(source, repl.store, repl.staged)
        except ChatreplError as exc:
            repl.error(str(exc))
            continue
        repl.staged.append(part)
        repl.say(f"Attached {describe(part)}: it goes with your first prompt.", "dim")
    repl.refresh()


def _unquoted(arg: str) -> str:
    """A path as typed, without the quotes around it (a path with spaces)."""
    arg = arg.strip()
    if len(arg) >= 2 and arg[0] == arg[-1] and arg[0] in "'\"":
        return arg[1:-1]
    return arg

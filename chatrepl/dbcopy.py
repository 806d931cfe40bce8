"""``chatrepl db copy SRC DST``: history from one store into another (SQLite files, PostgreSQL
URLs, either way), merged by id.

A conversation missing from DST is copied whole; one already there gets the turns it lacks, and
its own row only if SRC's is newer (``updated``); turns still pending in DST that ended in SRC
are brought up to date. Attachments go by content hash. Copying again changes nothing.

Each conversation is merged in one transaction of its own: a copy stopped at any point (Ctrl-C,
a kill, a lost connection) leaves whole conversations in DST, and running it again finishes
the copy, nothing lost or doubled. Two copies into one PostgreSQL database at once take turns
on each conversation.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields

from .records import ConversationRecord
from .store import Store

_RECORD_FIELDS = [f.name for f in fields(ConversationRecord)]


@dataclass
class Copied:
    """What a copy did."""

    conversations: int = 0
    new: int = 0
    updated: int = 0
    turns: int = 0
    grown: int = 0
    attachments: int = 0

    def sentence(self, src: str, dst: str) -> str:
        """One line for the user."""
        kept = self.conversations - self.new - self.updated
        return (
            f"Copied {_n(self.conversations, 'conversation')} from {src} to {dst}: "
            f"{self.new} new, {self.updated} updated, {kept} already up to date; "
            f"{_n(self.turns, 'turn')} added, {self.grown} brought up to date, "
            f"{_n(self.attachments, 'attachment')}."
        )


def copy(
    src: Store,
    dst: Store,
    step: Callable[[int, int], None] | None = None,
    done: Copied | None = None,
) -> Copied:
    """Merge every conversation of ``src`` into ``dst``; ``step(done, total)`` after each.
    ``done`` is counted in as the copy goes (what was done before an interruption)."""
    total = src.count()[0]
    summaries = src.recent(total) if total else []
    done = done if done is not None else Copied()
    hashes: set[str] = set()
    for n, summary in enumerate(reversed(summaries), 1):  # oldest first
        record = ConversationRecord(*(getattr(summary, name) for name in _RECORD_FIELDS))
        turns = src.turns(record.id, all_branches=True)
        for t in turns:
            for p in t.parts:
                sha = p.data.get("sha256") if p.kind == "attachment" else None
                if isinstance(sha, str) and sha not in hashes:
                    hashes.add(sha)
                    content = src.attachment(sha)
                    if content is not None:
                        mime = str(p.data.get("mime") or "application/octet-stream")
                        dst.put_attachment(sha, mime, content)
                        done.attachments += 1
        state, added, grown = dst.merge(record, turns)
        done.conversations += 1
        done.new += state == "new"
        done.updated += state == "updated"
        done.turns += added
        done.grown += grown
        if step:
            step(n, len(summaries))
    return done


def run(src_name: str | os.PathLike[str], dst_name: str | os.PathLike[str]) -> int:
    """Copy with a progress bar on a terminal, then print one line; the exit status."""
    src = Store(src_name, create=False)
    dst = Store(dst_name)
    shown = str(src.path), str(dst.path)
    done = Copied()
    try:
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            columns = ("copying", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
                task = bar.add_task("copy", total=None)
                copy(src, dst, lambda n, total: bar.update(task, completed=n, total=total), done)
        else:
            copy(src, dst, done=done)
    except KeyboardInterrupt:
        print(
            f"chatrepl: interrupted after {_n(done.conversations, 'conversation')}; each copied "
            "one is whole: run the same command again to finish (nothing is copied twice).",
            file=sys.stderr,
        )
        return 130
    src.close()
    dst.close()
    print(done.sentence(*shown))
    return 0


def _n(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"

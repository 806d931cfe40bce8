"""Turns whose end could not be written before chatrepl ended (the database's server gone, its
disk full), kept in a private file of the home folder until a chatrepl that opens the same
database writes them.

One file per database (``unsaved/<hash of the database's name>.json``, mode 0600): the turns as
the store would have written them. The database is named as the user is shown it (a file's
path, a ``postgresql://`` URL without its credentials), so the file holds no secret the
database would not.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from .errors import ChatreplError
from .records import CallRecord, Part, TurnRecord
from .settings import home, write_private


def _file(database: str) -> Path:
    return home() / "unsaved" / f"{hashlib.sha256(database.encode()).hexdigest()[:24]}.json"


def keep(database: str, turns: list[TurnRecord]) -> bool:
    """Keep ``turns`` for the next chatrepl that opens ``database``; whether it could."""
    body = {"database": database, "turns": [asdict(t) for t in turns]}
    try:
        write_private(_file(database), json.dumps(body, ensure_ascii=False, default=str))
    except (OSError, ChatreplError):  # no room there either: nothing more can be done
        return False
    return True


def take(database: str) -> list[TurnRecord]:
    """The turns kept for ``database`` (the file stays until ``forget``); none if unreadable."""
    try:
        body = json.loads(_file(database).read_text(encoding="utf-8"))
        return [_turn(t) for t in body["turns"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def forget(database: str) -> None:
    """The kept turns of ``database`` were written: remove their file."""
    _file(database).unlink(missing_ok=True)


def _turn(row: dict[str, Any]) -> TurnRecord:
    known = {f.name for f in fields(TurnRecord)}
    row = {k: v for k, v in row.items() if k in known}
    row["parts"] = [Part(**p) for p in row.get("parts", [])]
    row["calls"] = [CallRecord(**c) for c in row.get("calls", [])]
    return TurnRecord(**row)

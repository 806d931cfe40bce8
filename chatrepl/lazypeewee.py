"""peewee without the database drivers it would import up front.

peewee imports psycopg (and psycopg2) when they are installed, whatever database is opened:
~90 ms at every start once the ``postgres`` extra is installed, for nothing when the store is an
SQLite file. Imported through here, peewee sees no driver; ``chatrepl.postgres`` imports psycopg
itself, only for a ``postgresql://`` URL, and hands it to peewee.
"""

from __future__ import annotations

import sys

_DRIVERS = ("psycopg", "psycopg2", "psycopg2cffi")

if "peewee" in sys.modules:
    import peewee
else:
    _hidden = [name for name in _DRIVERS if name not in sys.modules]
    for _name in _hidden:
        sys.modules[_name] = None  # type: ignore[assignment]  # "import psycopg" fails at once
    try:
        import peewee
    finally:
        for _name in _hidden:
            del sys.modules[_name]

__all__ = ["peewee"]

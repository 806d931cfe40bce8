"""``python -m chatrepl``."""

from .cli import main

raise SystemExit(main())

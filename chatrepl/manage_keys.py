"""``chatrepl keys set | list | remove | path [NAME]``: API keys kept out of dotfiles.

A key is read without echo (or from a pipe) and never printed: not by ``list``, not in a
message."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .errors import ChatreplError


def main(argv: list[str]) -> int:
    """Run ``chatrepl keys ACTION …``; returns the exit status (2 for a usage error)."""
    from .manage import run_command

    return run_command(add_command, argv)


def add_command(commands: Any) -> None:
    """Register ``chatrepl keys ACTION``."""
    from .frontend import SubParser

    summary = (
        "API keys: stored in the system keyring (with the keyring extra) or in keys.json "
        "(mode 0600), looked up after the environment."
    )
    p = commands.add_parser(
        "keys",
        help="API keys: set, list, remove, path",
        description=summary,
        epilog="example: chatrepl keys set openai",
    )
    actions = p.add_subparsers(
        dest="action", required=True, metavar="ACTION", parser_class=SubParser
    )
    a = actions.add_parser(
        "set", help="store a key for NAME (typed without echo, or piped on stdin)"
    )
    a.add_argument("name", metavar="NAME", help="the provider's name, e.g. openai")
    a.set_defaults(handler=cmd_set)
    a = actions.add_parser("list", help="the names with a key, and where each is (never a key)")
    a.add_argument("--json", action="store_true", help="print JSON")
    a.set_defaults(handler=cmd_list)
    a = actions.add_parser("remove", help="forget NAME's key, wherever it is stored")
    a.add_argument("name", metavar="NAME")
    a.set_defaults(handler=cmd_remove)
    a = actions.add_parser("path", help="the keys.json file")
    a.set_defaults(handler=cmd_path)


def read_key(name: str) -> str:
    """The key typed at the terminal without echo, or the first line piped on stdin."""
    if sys.stdin.isatty():
        import getpass

        try:
            return getpass.getpass(f"Key for {name} (not shown): ")
        except EOFError:
            return ""
    return sys.stdin.buffer.read().decode("utf-8", errors="replace").strip().split("\n")[0]


def cmd_set(args: argparse.Namespace) -> int:
    from .apikeys import check_name, store

    name = check_name(args.name)
    stored = store(name, read_key(name))
    print(stored.sentence(name))
    if env := _env_of(name):
        import os

        if os.environ.get(env):
            print(f"Note: {env} is set in the environment, and is used before this key.")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    import os

    from .apikeys import stored_names
    from .manage import _line, _print_json

    rows = stored_names()
    for name, env in _envs().items():
        if os.environ.get(env):
            rows.setdefault(name, []).insert(0, f"environment ({env})")
    if args.json:
        _print_json([{"name": n, "stored": w} for n, w in sorted(rows.items())])
        return 0
    if not rows:
        print("No keys stored: `chatrepl keys set NAME` stores one.")
        return 0
    for name, where in sorted(rows.items()):
        sys.stdout.write(_line(name, ", ".join(where)) + "\n")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from .apikeys import remove
    from .text import make_safe

    removed = remove(args.name)
    if not removed:
        raise ChatreplError(f"No key named {make_safe(args.name)} is stored.")
    print(f"Removed the key for {make_safe(args.name)} from {' and '.join(removed)}.")
    return 0


def cmd_path(args: argparse.Namespace) -> int:
    from .apikeys import keys_path

    print(keys_path())
    return 0


def _envs() -> dict[str, str]:
    """Each provider's key variable (``openai`` → ``OPENAI_API_KEY``)."""
    try:
        from .providers.registry import providers

        return {
            n: str(i.settings["api_key_env"])
            for n, i in providers().items()
            if i.settings.get("api_key_env")
        }
    except ChatreplError:
        return {}


def _env_of(name: str) -> str | None:
    return _envs().get(name)

"""``chatrepl templates list | show | edit | path [NAME] [--json]``: the saved templates."""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from typing import Any

from .errors import ChatreplError

#: A new template opened by ``templates edit``: every field, commented out.
SKELETON = """\
# A chatrepl template (llm's fields). Uncomment what you need.
# system: You are a careful reviewer.
# prompt: "Review this: $input"
# model: openai:gpt-4o-mini
# options:
#   temperature: 0.2
# defaults:
#   tone: polite
# tools: [now]
# schema_object: {type: object, properties: {verdict: {type: string}}}
# extract: false
"""


def main(argv: list[str]) -> int:
    """Run ``chatrepl templates ACTION …``; returns the exit status (2 for a usage error)."""
    from .manage import run_command

    return run_command(add_command, argv)


def add_command(commands: Any) -> None:
    """Register ``chatrepl templates ACTION``."""
    from .frontend import SubParser

    summary = "The saved templates: list them, show or edit one, or print their folder."
    p = commands.add_parser(
        "templates",
        help=summary,
        description=summary,
        epilog="example: chatrepl templates show review",
    )
    actions = p.add_subparsers(
        dest="action", required=True, metavar="ACTION", parser_class=SubParser
    )
    a = actions.add_parser("list", help="every template, with its persona or prompt")
    a.add_argument("--json", action="store_true", help="print JSON")
    a.set_defaults(handler=cmd_list)
    a = actions.add_parser("show", help="one template's fields")
    a.add_argument("name", metavar="NAME")
    a.add_argument("--json", action="store_true", help="print JSON")
    a.set_defaults(handler=cmd_show)
    a = actions.add_parser(
        "edit", help="open a template in $VISUAL / $EDITOR (a new one if missing)"
    )
    a.add_argument("name", metavar="NAME")
    a.set_defaults(handler=cmd_edit)
    a = actions.add_parser("path", help="the folder templates are kept in (or one's file)")
    a.add_argument("name", metavar="NAME", nargs="?")
    a.set_defaults(handler=cmd_path)


def cmd_list(args: argparse.Namespace) -> int:
    from .manage import _line, _print_json
    from .templates import load, names
    from .text import make_safe, shorten

    rows = []
    for name in names():
        try:
            t = load(name)
        except ChatreplError as exc:
            rows.append({"name": name, "error": str(exc)})
            continue
        rows.append({"name": name, **t.fields()})
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("No templates yet: `chatrepl --save NAME -s PERSONA …` saves one.")
        return 0
    for row in rows:
        about = row.get("error") or row.get("system") or row.get("prompt") or ""
        what = "" if "error" in row else ("persona" if row.get("system") else "prompt")
        sys.stdout.write(
            _line(make_safe(row["name"]), what, make_safe(shorten(str(about), 70))) + "\n"
        )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from .manage import _print_json
    from .templates import dump, load, path_of
    from .text import make_safe

    template = load(args.name)
    if args.json:
        _print_json(
            {"name": template.name, "path": str(path_of(template.name)), **template.fields()}
        )
        return 0
    sys.stdout.write(f"# {make_safe(str(path_of(template.name)))}\n")
    sys.stdout.write(make_safe(dump(template)))
    return 0


def cmd_edit(args: argparse.Namespace) -> int:
    """Open the template in the editor; a new one starts from :data:`SKELETON`. Checked after."""
    from .frontend import say_error
    from .settings import write_private
    from .templates import folder, load, path_of
    from .text import make_safe

    path = path_of(args.name)
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not editor:
        raise ChatreplError(
            f"Set VISUAL or EDITOR to edit templates, or edit {make_safe(str(path))} yourself."
        )
    if not path.exists():
        folder().mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(path, SKELETON)
    try:
        status = subprocess.call([*shlex.split(editor), str(path)])
    except OSError as exc:
        raise ChatreplError(
            f"Cannot start the editor {make_safe(editor)}: {exc.strerror}."
        ) from None
    if status != 0:
        say_error(f"The editor exited with status {status}.")
        return 1
    load(args.name)  # one sentence if what was written is not a template
    print(f"Template {make_safe(args.name)} saved: {make_safe(str(path))}")
    return 0


def cmd_path(args: argparse.Namespace) -> int:
    from .templates import folder, path_of

    print(path_of(args.name) if args.name else folder())
    return 0

"""Templates on the command line: ``--save NAME`` writes the command as a template, ``-t NAME``
fills the command's persona, model, options, tools, schema and extraction from one (what the
command line says itself wins), and ``--param KEY VALUE`` fills its ``$params``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from .errors import ChatreplError

if TYPE_CHECKING:
    from .templates import Template


class UsageError(ChatreplError):
    """Flags that cannot go together (exit status 2)."""


def prepare(args: argparse.Namespace) -> int | None:
    """Read ``--schema``, then save the command as a template (``--save``: the exit status) or
    merge ``-t``'s template into ``args``; ``None`` when the command goes on.

    Sets ``args.schema_object`` (a dict or ``None``), ``args.params`` (a dict) and
    ``args.template_obj`` (the template or ``None``).
    """
    from .text import make_safe

    args.params = {str(k): v for k, v in (getattr(args, "param", None) or [])}
    args.schema_object = None
    args.template_obj = None
    if getattr(args, "schema", None) is not None:
        from .schema import read

        args.schema_object = read(args.schema)
    if getattr(args, "save", None):
        refused = [
            flag
            for flag, on in (("-t", args.template), ("-c", args.cont), ("-r", args.resume))
            if on
        ]
        if refused:
            raise UsageError(f"--save cannot be used with {', '.join(refused)}.")
        from .templates import save

        template = from_args(args)
        from .templates import path_of

        existed = path_of(template.name).exists()
        path = save(template)
        said = "Replaced" if existed else "Saved"
        print(f"{said} the template {make_safe(template.name)}: {make_safe(str(path))}")
        return 0
    if getattr(args, "template", None):
        merge(args, _load(args.template))
    elif args.params:
        raise UsageError("--param fills a template's $params: use it with -t NAME.")
    return None


def _load(name: str) -> Template:
    from .templates import load

    return load(name)


def from_args(args: argparse.Namespace) -> Template:
    """The template ``args`` describe (``--save``): persona, model, options, tools, schema,
    extraction, the prompt of ``-p``, and ``--param`` values as defaults."""
    from .templates import Template, check_name

    return Template(
        name=check_name(args.save),
        system=args.system or None,
        prompt=args.prompt or None,
        model=args.model or None,
        options=dict(getattr(args, "options", {}) or {}),
        defaults=dict(args.params),
        tools=list(args.tools or []),
        schema_object=args.schema_object,
        extract=bool(args.extract),
        extract_last=bool(args.extract_last),
    )


def merge(args: argparse.Namespace, template: Template) -> None:
    """Fill ``args`` from ``template`` where the command line said nothing itself."""
    from .model_options import OptionError, check

    args.template_obj = template
    if not args.model and template.model:
        args.model = template.model
    options: dict[str, Any] = {}
    for key, value in template.options.items():
        try:
            options[str(key)] = check(str(key), value)
        except OptionError as exc:
            raise ChatreplError(f"Template {template.name}: {exc}") from None
    args.options = {**options, **(getattr(args, "options", {}) or {})}
    args.tools = [*template.tools, *[t for t in args.tools or [] if t not in template.tools]]
    if args.schema_object is None and template.schema_object is not None:
        args.schema_object = template.schema_object
    if not (args.extract or args.extract_last):
        args.extract, args.extract_last = template.extract, template.extract_last


def fill(args: argparse.Namespace, prompt: str) -> str:
    """``prompt`` passed through ``-t``'s template (and its persona set, unless ``-s`` gave one)."""
    template = getattr(args, "template_obj", None)
    if template is None:
        return prompt
    text, system = template.apply(prompt, args.params)
    if args.system is None and system:
        args.system = system
    return text


def shaped(args: argparse.Namespace) -> bool:
    """Whether the answer is printed in a shape (``--schema``, ``-x``, ``--json``), not streamed."""
    return bool(
        getattr(args, "schema_object", None)
        or getattr(args, "extract", False)
        or getattr(args, "extract_last", False)
        or getattr(args, "json", False)
    )


def say_usage(message: str) -> int:
    """One sentence for a usage error; exit status 2."""
    from .frontend import say_error

    say_error(message)
    return 2

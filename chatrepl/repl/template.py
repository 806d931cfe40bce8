"""``/template NAME``: take a saved template's persona, model, options and tools from the next
turn on; its prompt (if it has one) wraps each later message as ``$input``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ChatreplError
from ..text import make_safe, shorten
from .commands import command

if TYPE_CHECKING:
    from ..templates import Template
    from .session import Session


@command(
    "template",
    "[NAME [KEY=VALUE…] | --clear]",
    "take a template's persona, model, options and tools from the next turn on",
    completes=("--clear",),
)
def cmd_template(repl: Session, arg: str) -> None:
    """`/template NAME` applies the saved template NAME (see `chatrepl templates list`) from the
    next turn on: its persona, model, options and tools; the history goes on. When it has a
    prompt, each message you send is put in it as `$input`; `KEY=VALUE` after the name fills its
    other `$params` (its `defaults` fill the rest). `/template` alone says which template is on
    and lists the saved ones; `/template --clear` stops wrapping messages (the persona, model and
    options stay until changed)."""
    from ..templates import load, names

    if not arg:
        _describe(repl, names())
        return
    if arg == "--clear":
        if repl.template is None:
            repl.say("No template is on.")
        else:
            repl.say(f"Template {make_safe(repl.template.name)} off: messages are sent as typed.")
        repl.template, repl.template_params = None, {}
        repl.refresh()
        return
    name, *pairs = arg.split()
    params = _params(pairs)
    template = load(name)
    _, system = template.apply("", params)  # checks every $param has a value, before any change
    _apply(repl, template, system)
    repl.template = template if template.prompt else None
    repl.template_params = params
    repl.refresh()


def _params(pairs: list[str]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise ChatreplError(
                f"'{make_safe(shorten(pair, 30))}' is not KEY=VALUE: /template NAME KEY=VALUE …"
            )
        params[key] = value
    return params


def _apply(repl: Session, template: Template, system: str | None) -> None:
    """Change the conversation as ``template`` says, and say what changed."""
    from ..model_options import OptionError, check

    options = {}
    for key, value in template.options.items():
        try:
            options[str(key)] = check(str(key), value)
        except OptionError as exc:
            raise ChatreplError(f"Template {template.name}: {exc}") from None
    model = None
    if template.model:
        from ..providers.registry import get_backend

        model = get_backend(template.model)
    c = repl.conversation
    said = [f"Template {make_safe(template.name)} from the next turn on"]
    if model is not None:
        c.set_model(model)
        said.append(f"model {make_safe(model.full_name)}")
    if system:
        c.set_system(system)
        said.append(f"persona: {make_safe(shorten(' '.join(system.split()), 50))}")
    if options:
        c.options.update(options)
        from ..model_options import shown

        said.append(f"options {make_safe(shown(options))}")
    if template.tools:
        box = repl.toolbox()
        for name in template.tools:
            box.enable(name)
        said.append(f"tools {make_safe(', '.join(template.tools))}")
    if template.prompt:
        said.append("each message goes into its prompt")
    repl.say("; ".join(said) + ".")


def _describe(repl: Session, saved: list[str]) -> None:
    if repl.template is not None:
        repl.say(f"Template on: {make_safe(repl.template.name)} (/template --clear stops it).")
    if not saved:
        repl.say("No saved templates: `chatrepl --save NAME -s PERSONA …` saves one.")
        return
    repl.say("Saved templates: " + make_safe(", ".join(saved)), "dim")
    repl.say("/template NAME applies one from the next turn on.", "dim")

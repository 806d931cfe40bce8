"""Templates: reusable personas and prompts, as YAML files in ``templates/`` under the home
folder, with llm's fields (so llm's saved templates work as they are).

``system`` and ``prompt`` may hold ``$input`` (the text the user gives) and named ``$params``
(filled by ``--param KEY VALUE``, else by ``defaults``); ``model``, ``options``, ``tools``,
``schema_object`` and ``extract`` / ``extract_last`` say how to ask. PyYAML is imported only
when a template is read or written.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import settings as cfg
from .errors import ChatreplError
from .files import user_path

#: The fields a template may have, and what each must be.
FIELDS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "system": (str, "text"),
    "prompt": (str, "text"),
    "model": (str, "text (provider:model or an alias)"),
    "options": (dict, "a mapping of option names to values"),
    "defaults": (dict, "a mapping of parameter names to values"),
    "tools": (list, "a list of tool names"),
    "schema_object": (dict, "a JSON schema (a mapping)"),
    "extract": (bool, "true or false"),
    "extract_last": (bool, "true or false"),
}
#: llm's fields chatrepl cannot use, and what each is.
LLM_ONLY = {
    "fragments": "fragments",
    "system_fragments": "system fragments",
    "functions": "Python functions as tools",
    "attachments": "attachments",
    "attachment_types": "attachments",
}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


class TemplateError(ChatreplError):
    """A template that is missing, cannot be read, or cannot be applied."""


@dataclass
class Template:
    """One template, as its YAML file says."""

    name: str
    system: str | None = None
    prompt: str | None = None
    model: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    tools: list[str] = field(default_factory=list)
    schema_object: dict[str, Any] | None = None
    extract: bool = False
    extract_last: bool = False

    def params(self) -> list[str]:
        """The ``$names`` its system and prompt use, ``input`` included, in order."""
        found: list[str] = []
        for text in (self.system, self.prompt):
            for m in string.Template.pattern.finditer(text or ""):
                name = m.group("named") or m.group("braced")
                if name and name not in found:
                    found.append(name)
        return found

    def needs_input(self) -> bool:
        """Whether it takes the user's text: it has no prompt, or its prompt says ``$input``."""
        return not self.prompt or "input" in self.params()

    def apply(self, text: str, params: dict[str, Any] | None = None) -> tuple[str, str | None]:
        """The prompt and the persona for the user's ``text`` (as llm: a prompt without
        ``$input`` gets the text on a line after it)."""
        values = {**self.defaults, **(params or {}), "input": text}
        missing = [p for p in self.params() if p not in values]
        if missing:
            names = ", ".join(f"${p}" for p in missing)
            raise TemplateError(
                f"Template {self.name} needs a value for {names}: give it with "
                f"--param {missing[0]} VALUE."
            )
        system = _fill(self.system, values) if self.system else None
        if not self.prompt:
            return text, system
        prompt = _fill(self.prompt, values)
        if "input" not in self.params() and text.strip():
            prompt = f"{prompt}\n{text}"
        return prompt, system

    def fields(self) -> dict[str, Any]:
        """The fields that are set, in llm's order: what the YAML file holds."""
        out: dict[str, Any] = {}
        for name in FIELDS:
            value = getattr(self, name)
            if value not in (None, False, [], {}):
                out[name] = value
        return out


def _fill(text: str, values: dict[str, Any]) -> str:
    return string.Template(text).safe_substitute({k: str(v) for k, v in values.items()})


def folder() -> Path:
    """Where templates are kept: ``templates/`` in the home folder."""
    return cfg.home() / "templates"


def check_name(name: str) -> str:
    """``name`` if it can name a template file, else one sentence."""
    from .text import make_safe, shorten

    if not _NAME.fullmatch(name) or name.endswith((".yaml", ".yml")):
        raise TemplateError(
            f"'{make_safe(shorten(name, 40))}' cannot name a template: use letters, digits, "
            "'_', '.' and '-' (no folder, no .yaml)."
        )
    return name


def path_of(name: str) -> Path:
    """The file of the template ``name``."""
    return folder() / f"{check_name(name)}.yaml"


def names() -> list[str]:
    """The saved templates, by name."""
    try:
        return sorted(p.stem for p in folder().glob("*.yaml") if _NAME.fullmatch(p.stem))
    except OSError:
        return []


def load(name: str) -> Template:
    """The template ``name`` (or a ``.yaml`` file given by its path)."""
    from .text import make_safe, shorten

    given = user_path(name)
    if name.endswith((".yaml", ".yml")) and given.is_file():
        path, name = given, given.stem
    else:
        try:
            path = path_of(name)
        except TemplateError:
            raise TemplateError(
                f"No template named '{make_safe(shorten(name, 40))}': "
                "`chatrepl templates list` shows them."
            ) from None
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise TemplateError(
            f"No template named {make_safe(name)}: `chatrepl templates list` shows them."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"Cannot read the template {make_safe(name)}: {exc}.") from None
    return parse(name, text)


def parse(name: str, text: str) -> Template:
    """The template ``name`` from its YAML ``text``; one sentence for each way it can be
    wrong (not YAML, not a mapping, an unknown field, a field of the wrong type)."""
    import yaml

    from .text import make_safe, shorten

    shown = make_safe(name)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1})" if where is not None else ""
        problem = make_safe(shorten(" ".join(str(getattr(exc, "problem", exc)).split()), 60))
        raise TemplateError(f"Template {shown} is not valid YAML{at}: {problem}.") from None
    if data is None:
        data = {}
    if isinstance(data, str):  # llm: a file holding only text is the prompt
        data = {"prompt": data}
    if not isinstance(data, dict):
        raise TemplateError(f"Template {shown} must be a mapping of fields (system, prompt, …).")
    for key, value in data.items():
        if key in LLM_ONLY:
            raise TemplateError(
                f"Template {shown} uses llm's {key} ({LLM_ONLY[key]}), which chatrepl does not "
                "support: remove that field."
            )
        if key not in FIELDS:
            raise TemplateError(
                f"Template {shown} has an unknown field '{make_safe(shorten(str(key), 30))}': "
                f"the fields are {', '.join(FIELDS)}."
            )
        want, said = FIELDS[key]
        if value is None:
            continue
        if not isinstance(value, want) or (isinstance(value, bool) and want is not bool):
            raise TemplateError(f"Template {shown}: {key} must be {said}.")
        if isinstance(value, list) and not all(isinstance(t, str) for t in value):
            raise TemplateError(f"Template {shown}: tools must be a list of tool names.")
    values = {k: v for k, v in data.items() if v is not None}
    return Template(name=name, **values)


def dump(template: Template) -> str:
    """The YAML text of ``template``."""
    import yaml

    return yaml.safe_dump(
        template.fields(), sort_keys=False, allow_unicode=True, default_flow_style=False
    )


def save(template: Template, path: Path | None = None) -> Path:
    """Write ``template`` to its file (mode 0600), making the folder if needed."""
    target = path or path_of(template.name)
    cfg.ensure_home()
    return cfg.write_private(target, dump(template))

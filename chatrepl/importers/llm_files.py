"""llm's saved templates (``templates/*.yaml``) and keys (``keys.json``), brought over by
``chatrepl import-llm`` (keys only with ``--keys``). llm's folder is only read.

A template whose name chatrepl already has is never overwritten: it is skipped unless it is the
same. llm's fields chatrepl cannot use (fragments, Python functions, attachments) are dropped,
and the report says so; a template left with nothing to do is not imported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ChatreplError

#: llm's entry in keys.json that is not a key.
NOTE = "// Note"


@dataclass
class Report:
    """What an import brought over, and what it could not."""

    imported: list[str] = field(default_factory=list)
    same: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # sentences: why each was left out
    dropped: list[str] = field(default_factory=list)  # sentences: fields left behind


def import_templates(llm_folder: Path) -> Report:
    """Copy llm's templates into chatrepl's templates folder."""
    import yaml

    from ..providers.registry import providers
    from ..templates import LLM_ONLY, TemplateError, parse, path_of, save
    from ..text import make_safe
    from .llm import model_name

    known = set(providers())
    report = Report()
    source = llm_folder / "templates"
    files = sorted(source.glob("*.yaml")) if source.is_dir() else []
    for file in files:
        name = file.stem
        shown = make_safe(name)
        try:
            data = yaml.safe_load(file.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            report.skipped.append(f"{shown}: not readable YAML")
            continue
        if isinstance(data, str):
            data = {"prompt": data}
        if not isinstance(data, dict):
            report.skipped.append(f"{shown}: not a mapping of fields")
            continue
        left = sorted(k for k in data if k in LLM_ONLY and data[k])
        data = {k: v for k, v in data.items() if k not in LLM_ONLY and k != "name"}
        if isinstance(data.get("model"), str):  # llm's model ids as chatrepl names
            named = model_name(data["model"], known)
            if named.startswith("llm:"):  # an alias or a plugin's model chatrepl cannot call
                left.append(f"its model {data.pop('model')}")
            else:
                data["model"] = named
        try:
            template = parse(name, yaml.safe_dump(data))
            target = path_of(name)
        except TemplateError as exc:
            report.skipped.append(f"{shown}: {exc}")
            continue
        if not template.fields():
            report.skipped.append(f"{shown}: only {', '.join(left) or 'empty fields'}")
            continue
        if target.exists():
            try:
                mine = parse(name, target.read_text("utf-8"))
            except (OSError, UnicodeDecodeError, ChatreplError):
                mine = None
            if mine is not None and mine.fields() == template.fields():
                report.same.append(name)
            else:
                report.skipped.append(f"{shown}: a different template of that name is here")
            continue
        save(template, target)
        report.imported.append(name)
        if left:
            report.dropped.append(f"{shown} without {', '.join(left)}")
    return report


def import_keys(llm_folder: Path) -> Report:
    """Copy llm's keys (never printed) into the keyring or keys.json."""
    from ..apikeys import KeyStoreError, lookup, store
    from ..text import make_safe

    report = Report()
    path = llm_folder / "keys.json"
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return report
    except (OSError, ValueError):
        report.skipped.append(f"{make_safe(str(path))} is not a JSON object of keys")
        return report
    if not isinstance(data, dict):
        report.skipped.append(f"{make_safe(str(path))} is not a JSON object of keys")
        return report
    for name, key in sorted(data.items()):
        if name == NOTE:
            continue
        shown = make_safe(str(name))
        if not isinstance(key, str) or not key.strip():
            report.skipped.append(f"{shown}: not a key")
            continue
        try:
            have = lookup(str(name))
        except ChatreplError:
            have = None
        if have == key.strip():
            report.same.append(str(name))
            continue
        if have is not None:
            report.skipped.append(f"{shown}: chatrepl has a different key for it (kept)")
            continue
        try:
            stored = store(str(name), key)
        except KeyStoreError as exc:
            report.skipped.append(f"{shown}: {exc}")
            continue
        report.imported.append(f"{shown} ({stored.where})")
    return report

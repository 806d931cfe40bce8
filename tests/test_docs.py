"""The manual cannot drift from the code: docs/architecture.md lists every module of the package,
each with the layer that pyproject.toml's contract gives it, and every relative link in
README.md and docs/ points to a file (and a heading) that exists."""

from __future__ import annotations

import re
import tomllib
import unicodedata
from pathlib import Path

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
PACKAGE = ROOT / "chatrepl"
DOCS = ROOT / "docs"
ARCHITECTURE = DOCS / "architecture.md"
#: The layer the architecture page gives a module the contract does not place.
NONE = "none"


# --- reading the page and the contract ---------------------------------------------------------


def cells(line: str) -> list[str]:
    """The cells of a Markdown table row; a ``|`` inside backticks or escaped is not a border."""
    found, cell, code, i = [], "", False, 0
    body = line.strip().strip("|")
    while i < len(body):
        ch = body[i]
        if ch == "\\" and body[i + 1 : i + 2] == "|":
            cell, i = cell + "|", i + 2
            continue
        if ch == "`":
            code = not code
        if ch == "|" and not code:
            found.append(cell.strip())
            cell = ""
        else:
            cell += ch
        i += 1
    return [*found, cell.strip()]


def table(text: str, header: list[str]) -> list[list[str]]:
    """The rows of the Markdown table in ``text`` whose header row is ``header``."""
    lines = text.splitlines()
    for n, line in enumerate(lines):
        if line.startswith("|") and [c.lower() for c in cells(line)] == header:
            rows = []
            for row in lines[n + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append(cells(row))
            return rows
    raise AssertionError(f"no table headed | {' | '.join(header)} |")


def code_spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def contract_layers() -> list[list[str]]:
    """The layers of the "layers" contract in pyproject.toml, top first, each its modules."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for contract in config["tool"]["importlinter"]["contracts"]:
        if contract["type"] == "layers":
            return [
                [m.strip().strip("()") for m in re.split(r"[:|]", layer) if m.strip()]
                for layer in contract["layers"]
            ]
    raise AssertionError("pyproject.toml has no layers contract")


def page_layers() -> list[tuple[str, list[str]]]:
    """The architecture page's layers: each its name and the contract's modules it says."""
    rows = table(ARCHITECTURE.read_text(), ["layer", "contract"])
    return [(row[0], code_spans(row[1]) if row[0] != NONE else []) for row in rows]


def page_modules() -> list[tuple[str, str, str]]:
    """The architecture page's modules: (path under chatrepl/, layer, job) for each row."""
    rows = table(ARCHITECTURE.read_text(), ["module", "layer", "job"])
    found = []
    for row in rows:
        assert len(row) == 3 and code_spans(row[0]), f"a malformed row of modules: {row}"
        found.append((code_spans(row[0])[0], row[1], row[2]))
    return found


def package_modules() -> list[str]:
    """Every .py file of the package, as a path under chatrepl/."""
    return sorted(
        p.relative_to(PACKAGE).as_posix()
        for p in PACKAGE.rglob("*.py")
        if "__pycache__" not in p.parts
    )


def dotted(path: str) -> str:
    """``repl/app.py`` → ``chatrepl.repl.app``; a package's ``__init__.py`` is the package."""
    parts = ["chatrepl", *path.removesuffix(".py").split("/")]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_in_contract(module: str, names: dict[str, str]) -> str:
    """The name of the layer the contract puts ``module`` in (a package's layer covers its
    modules; the most specific entry wins), or NONE."""
    best = ""
    for entry in names:
        if (module == entry or module.startswith(entry + ".")) and len(entry) > len(best):
            best = entry
    return names[best] if best else NONE


# --- the architecture page ---------------------------------------------------------------------


def contract_names() -> dict[str, str]:
    """Each module of the contract → the page's name of its layer: the row at the same place in
    the table of layers while it has as many layers as the contract (so a module added to a
    layer is named by it), else the row with the same modules, else the contract's own words."""
    rows = [(name, modules) for name, modules in page_layers() if name != NONE]
    layers = contract_layers()
    by_modules = {tuple(sorted(modules)): name for name, modules in rows}
    names = {}
    for n, layer in enumerate(layers):
        if len(rows) == len(layers):
            name = rows[n][0]
        else:
            name = by_modules.get(tuple(sorted(layer)), " : ".join(layer))
        names.update(dict.fromkeys(layer, name))
    return names


def test_the_layers_are_the_contracts_in_its_order() -> None:
    said = [modules for name, modules in page_layers() if name != NONE]
    contract = contract_layers()
    unsaid = [" : ".join(layer) for layer in contract if layer not in said]
    stale = [" : ".join(layer) for layer in said if layer not in contract]
    assert said == contract, (
        "the table of layers in docs/architecture.md must list the layers of pyproject.toml's "
        f"[tool.importlinter] contract, top first, with the same modules: add {unsaid}, "
        f"remove {stale}" + (", and order them as the contract does" if not unsaid + stale else "")
    )
    names = [name for name, _ in page_layers()]
    assert len(names) == len(set(names)), f"two layers share a name: {names}"
    assert NONE in names, f"the layers table needs a row '{NONE}' for modules outside the contract"


def test_every_module_of_the_package_has_one_row() -> None:
    listed = [path for path, _, _ in page_modules()]
    twice = sorted({p for p in listed if listed.count(p) > 1})
    assert not twice, f"docs/architecture.md lists these modules twice: {twice}"
    missing = sorted(set(package_modules()) - set(listed))
    gone = sorted(set(listed) - set(package_modules()))
    assert not missing + gone, (
        f"docs/architecture.md's table of modules: add a row for {missing}, "
        f"remove the rows of {gone} (no such file)"
    )


def test_each_module_is_in_the_layer_the_contract_gives_it() -> None:
    names = contract_names()
    known = {name for name, _ in page_layers()}
    wrong = []
    for path, layer, job in page_modules():
        assert layer in known, f"{path}: '{layer}' is not a layer of the table of layers"
        assert job, f"{path}: say its job"
        should = layer_in_contract(dotted(path), names)
        if layer != should:
            wrong.append(f"{path} is in '{should}', not '{layer}'")
    assert not wrong, "docs/architecture.md: " + "; ".join(wrong)


def test_the_contract_reading_places_modules_as_import_linter_does() -> None:
    names = {
        "chatrepl.repl": "front ends",
        "chatrepl.providers": "services",
        "chatrepl.cli": "entry",
    }
    assert layer_in_contract("chatrepl.repl", names) == "front ends"
    assert layer_in_contract("chatrepl.repl.app", names) == "front ends"
    assert layer_in_contract("chatrepl.providers.openai", names) == "services"
    assert layer_in_contract("chatrepl.replay", names) == NONE  # a prefix is not a package
    assert layer_in_contract("chatrepl", names) == NONE
    assert dotted("__init__.py") == "chatrepl"
    assert dotted("repl/__init__.py") == "chatrepl.repl"
    assert dotted("providers/sse.py") == "chatrepl.providers.sse"


# --- links -------------------------------------------------------------------------------------


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def without_blocks(text: str) -> str:
    """``text`` without its code blocks, fenced or indented."""
    text = re.sub(r"^(\s*)(```|~~~).*?^\1\2", "", text, flags=re.M | re.S)
    return re.sub(r"(?m)^(?: {4}|\t).*$", "", text)  # indented code (and deep list text)


def prose(text: str) -> str:
    """``text`` without code: code blocks and inline code."""
    return re.sub(r"`[^`\n]*`", "", without_blocks(text))


def links(text: str) -> list[str]:
    """The targets of the Markdown links and images in ``text``, outside code."""
    body = prose(text)
    inline = re.findall(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", body)
    reference = re.findall(r"(?m)^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", body)
    return inline + reference


def slug(heading: str) -> str:
    """A heading's anchor as MkDocs (Python-Markdown's toc) makes it."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[*_]{1,2}([^*_]+)[*_]{1,2}", r"\1", text)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings."""
    found: set[str] = set()
    for match in re.finditer(r"(?m)^#{1,6}\s+(.+?)\s*#*\s*$", without_blocks(path.read_text())):
        base = slug(match.group(1))
        name, n = base, 0
        while name in found:
            n += 1
            name = f"{base}_{n}"
        found.add(name)
    return found


def broken_links(path: Path) -> list[str]:
    broken = []
    for target in links(path.read_text()):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):
            continue  # https:, mailto: …: not a file of this repository
        file, _, anchor = target.partition("#")
        there = (path.parent / file).resolve() if file else path.resolve()
        if not there.exists():
            broken.append(f"{target} (no such file)")
        elif path.is_relative_to(DOCS) and not there.is_relative_to(DOCS.resolve()):
            broken.append(f"{target} (outside docs/: the site holds only docs/)")
        elif anchor and there.suffix == ".md" and anchor not in anchors(there):
            broken.append(f"{target} (no heading makes #{anchor})")
    return broken


def test_every_relative_link_points_to_a_file_and_heading_that_exist() -> None:
    broken = {
        path.relative_to(ROOT).as_posix(): found
        for path in markdown_files()
        if (found := broken_links(path))
    }
    assert not broken, f"broken links: {broken}"


def test_the_link_checker_finds_a_broken_link(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("# A page\n\n## `db copy`: move or merge\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md) [ok](there.md#db-copy-move-or-merge) [web](https://example.com)\n"
        "[gone](missing.md) [no heading](there.md#nowhere)\n"
        "`[in code](missing.md)`\n\n```\n[in a block](missing.md)\n```\n"
    )
    assert broken_links(page) == [
        "missing.md (no such file)",
        "there.md#nowhere (no heading makes #nowhere)",
    ]


def test_the_readme_stays_short_and_links_to_the_map() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200, "README.md is at most 200 lines: the rest is docs/"
    assert "docs/architecture.md" in links(readme), "the README's map: a link to the architecture"


# --- the reference -----------------------------------------------------------------------------


def test_every_command_is_in_the_reference() -> None:
    import chatrepl.repl.app  # noqa: F401 - registers every slash-command
    from chatrepl.cli import SUBCOMMANDS
    from chatrepl.repl.commands import COMMANDS

    page = (DOCS / "reference" / "commands.md").read_text()
    said = {
        word
        for row in [
            *table(page, ["command", "does"]),
            *table(page, ["command", "does", "described in"]),
        ]
        for span in code_spans(row[0])
        for word in span.split()[:2]
    }
    missing = [f"/{c.name}" for c in COMMANDS.values() if f"/{c.name}" not in said]
    missing += [f"/{a}" for c in COMMANDS.values() for a in c.aliases if f"/{a}" not in said]
    missing += [f"chatrepl {s}" for s in SUBCOMMANDS if s not in said]
    assert not missing, f"docs/reference/commands.md does not list: {missing}"

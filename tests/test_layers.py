"""The code's shape: no import cycle anywhere, counting imports inside functions and under
TYPE_CHECKING (the layer contract itself is checked by ``lint-imports`` in CI)."""

from __future__ import annotations

import grimp


def cycles(package: str) -> list[list[str]]:
    """The groups of modules that import each other, directly or through others."""
    graph = grimp.build_graph(package, exclude_type_checking_imports=False)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in graph.find_modules_directly_imported_by(module):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while True:
                other = stack.pop()
                group.append(other)
                if other == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_through_others() -> None:
    assert cycles("chatrepl") == []


def test_nothing_imports_the_entry_point() -> None:
    graph = grimp.build_graph("chatrepl", exclude_type_checking_imports=False)
    assert graph.find_modules_that_directly_import("chatrepl.cli") == {"chatrepl.__main__"}

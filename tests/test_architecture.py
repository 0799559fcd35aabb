"""The package's shape: layers that import only downward, no import cycles, short modules and functions."""

from __future__ import annotations

import ast
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = REPO_ROOT / "talking_head"
APP = REPO_ROOT / "app.py"

# Lowest first: a module may import from its own layer and the ones before it, never after.
# errors.py (and the package's __init__) sit below everything; __main__ dispatches to cli/.
LAYERS = ("errors", "nets", "media", "face", "training", "animation", "live", "evaluation", "web", "cli")


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _layer(module: str) -> int:
    """Index in LAYERS of a ``talking_head...`` module."""
    parts = module.split(".")
    if len(parts) == 1:
        return 0  # talking_head/__init__.py
    name = parts[1]
    if name == "__main__":
        return LAYERS.index("cli")
    return LAYERS.index(name)


def _imports(path: Path) -> set[str]:
    """Every ``talking_head`` module that ``path`` imports, anywhere in the file (functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "talking_head"}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import (write talking_head.… in full)"
            if not node.module or node.module.split(".")[0] != "talking_head":
                continue
            for alias in node.names:  # `from talking_head.nets import warp` imports the module warp
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in MODULES else node.module)
    return found


GRAPH = {module: _imports(path) - {module} for module, path in MODULES.items()}


def test_every_sub_package_is_a_layer_with_a_one_line_docstring() -> None:
    packages = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
    assert set(packages) == set(LAYERS) - {"errors"}
    for name in packages:
        docstring = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text(encoding="utf-8")))
        assert docstring and "\n" not in docstring.strip(), f"{name}/__init__.py needs a one-line docstring"
    top_level = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert top_level == ["__init__", "__main__", "errors"], "modules belong in a layer's sub-package"


def test_imports_only_go_down_the_layers() -> None:
    upward = [
        f"{module} ({LAYERS[_layer(module)]}) imports {target} ({LAYERS[_layer(target)]})"
        for module, targets in GRAPH.items()
        for target in targets
        if _layer(target) > _layer(module)
    ]
    assert not upward, "\n".join(upward)


def test_every_import_names_a_module_that_exists() -> None:
    missing = [f"{m} imports {t}" for m, targets in GRAPH.items() for t in targets if t not in MODULES]
    assert not missing, "\n".join(missing)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_no_import_cycles() -> None:
    assert _cycles(GRAPH) == []
    # The check itself finds a cycle when there is one.
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_app_uses_the_library_not_the_cli() -> None:
    for page_module in [APP, *REPO_ROOT.glob("*_tab.py")]:
        imported = _imports(page_module)
        assert not {m for m in imported if m.startswith("talking_head.cli") or m == "talking_head.__main__"}


# ----- sizes: every unit readable in one go ---------------------------------------

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
SOURCES = sorted(PACKAGE.rglob("*.py")) + sorted(REPO_ROOT.glob("*.py"))  # the page, its tabs and widgets


def _function_lengths(source: str) -> list[tuple[str, int]]:
    """(name at line, lines) of every function and method in ``source``, nested ones included."""
    return [
        (f"{node.name} at line {node.lineno}", node.end_lineno - node.lineno + 1)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]


def test_no_module_is_over_500_lines() -> None:
    long = {}
    for path in SOURCES:
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES:
            long[str(path.relative_to(REPO_ROOT))] = lines
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_function_is_over_80_lines() -> None:
    long = [
        f"{path.relative_to(REPO_ROOT)}: {name} ({lines} lines)"
        for path in SOURCES
        for name, lines in _function_lengths(path.read_text(encoding="utf-8"))
        if lines > MAX_FUNCTION_LINES
    ]
    assert not long, "\n".join(long)


def test_function_length_counts_from_def_to_last_line_nested_ones_too() -> None:
    source = (
        "class A:\n    def outer(self):\n        def inner():\n            pass\n\n        return inner\n"
    )
    assert sorted(lines for _, lines in _function_lengths(source)) == [2, 5]

"""Every import among textgan's modules points down: no module reaches, however lazily, a
module that imports it back. Imports inside functions and under ``TYPE_CHECKING`` count: each
ties the two modules as firmly as one at the top."""

import ast
from pathlib import Path

import textgan

PACKAGE = Path(textgan.__file__).parent


def module_names(root: Path) -> dict[str, Path]:
    """Dotted name of each module of the package at ``root``."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _targets(
    node: ast.Import | ast.ImportFrom, name: str, is_package: bool, modules: dict[str, Path]
) -> set[str]:
    """The modules of ``modules`` an import statement in module ``name`` ties it to."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names} & modules.keys()
    base = node.module or ""
    if node.level:  # relative: from the package of ``name``, one level up per extra dot
        package = name.split(".") if is_package else name.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join([*package, base] if base else package)
    # ``from pkg import sub`` imports the submodule; ``from mod import name`` the module.
    subs = {f"{base}.{alias.name}" for alias in node.names} & modules.keys()
    return subs | ({base} & modules.keys() if len(subs) < len(node.names) else set())


def import_graph(root: Path) -> dict[str, set[str]]:
    """For each module of the package at ``root``, the package's modules it imports anywhere
    in its body."""
    modules = module_names(root)
    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                targets |= _targets(node, name, path.name == "__init__.py", modules)
        graph[name] = targets - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_textgan_has_no_import_cycles():
    assert cycles(import_graph(PACKAGE)) == []


def test_the_graph_holds_lazy_and_type_checking_imports():
    graph = import_graph(PACKAGE)
    assert "textgan.models" in graph["textgan.sampling"]  # at the top
    assert "textgan.sampling" in graph["textgan.hub"]  # inside load_model
    assert "textgan.corpus.source" in graph["textgan.corpus.registry"]
    assert "textgan.corpus" in graph["textgan.config"]  # a package's __init__
    assert "textgan.hub" not in graph["textgan.models"]


def test_a_cycle_through_a_function_level_import_is_found(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "b.py").write_text("def f():\n    from ..c import g\n")
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\ng = 1\n"
    )
    (package / "d.py").write_text("import pkg.a, pkg.e\n")  # into the cycle, not part of it
    (package / "e.py").write_text("from . import d as _, a\n")
    (package / "f.py").write_text("from pkg import e\n")
    graph = import_graph(package)
    assert graph["pkg.d"] == {"pkg.a", "pkg.e"} and graph["pkg.e"] == {"pkg.a", "pkg.d"}
    assert graph["pkg.sub.b"] == {"pkg.c"}
    assert cycles(graph) == [["pkg.a", "pkg.c", "pkg.sub.b"], ["pkg.d", "pkg.e"]]

"""Every import among textgan's modules points down: no module reaches, however lazily, a
module that imports it back, and no top-level entry (a module or package of ``textgan/``)
imports one on its own layer or above. Imports inside functions and under ``TYPE_CHECKING``
count: each ties the two modules as firmly as one at the top."""

import ast
from pathlib import Path

import textgan

PACKAGE = Path(textgan.__file__).parent

# textgan's top-level entries from the bottom up. An entry imports only from layers below its
# own; entries that share a layer know nothing of each other (metrics never imports nn).
LAYERS = (
    {"errors"},
    {"vocab", "settings", "devices"},
    {"files"},  # atomic writes, JSON; the run folder and its checkpoints
    {"corpus"},
    {"config"},
    {"nn", "metrics"},
    {"plots", "generation"},
    {"training"},
    {"studies", "sharing"},
    {"api"},
    {"cli"},
    {"__main__"},
)
MAX_TOP_LEVEL = 16  # besides __init__.py, __main__.py and py.typed
MAX_LINES = 400


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


def upward_imports(graph: dict[str, set[str]], layers=LAYERS) -> list[str]:
    """``a -> b`` for each import whose target's top-level entry is not on a lower layer than
    the importer's (within one entry anything goes: its own cycles are found elsewhere)."""
    rank = {entry: i for i, layer in enumerate(layers) for entry in layer}
    found = []
    for source, targets in sorted(graph.items()):
        for target in sorted(targets):
            a, b = source.split(".")[1:2], target.split(".")[1:2]
            if a and b and a != b and rank[a[0]] <= rank[b[0]]:
                found.append(f"{source} -> {target}")
    return found


def top_level_entries() -> set[str]:
    return {
        p.stem
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" or (p / "__init__.py").is_file()) and p.name != "__init__.py"
    }


def test_every_top_level_entry_has_a_layer():
    placed = set().union(*LAYERS)
    assert top_level_entries() == placed
    assert len(placed - {"__main__"}) <= MAX_TOP_LEVEL


def test_no_import_runs_up_the_layers():
    assert upward_imports(import_graph(PACKAGE)) == []


def test_an_upward_or_sideways_import_is_found():
    graph = {
        "textgan.nn.networks": {"textgan.config", "textgan.metrics.js"},  # sideways
        "textgan.files.checkpoint": {"textgan.training.loop"},  # up
        "textgan.training.loop": {"textgan.training.trainer", "textgan.nn.networks"},
    }
    assert upward_imports(graph) == [
        "textgan.files.checkpoint -> textgan.training.loop",
        "textgan.nn.networks -> textgan.metrics.js",
    ]


def test_no_module_is_very_long():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_textgan_has_no_import_cycles():
    assert cycles(import_graph(PACKAGE)) == []


def test_the_graph_holds_lazy_and_type_checking_imports():
    graph = import_graph(PACKAGE)
    assert "textgan.nn.registry" in graph["textgan.generation.sampling"]  # at the top
    assert "textgan.generation.sampling" in graph["textgan.sharing.hub"]  # inside load_model
    assert "textgan.corpus.source" in graph["textgan.corpus.registry"]
    assert "textgan.corpus" in graph["textgan.config"]  # a package's __init__
    assert "textgan.sharing.hub" not in graph["textgan.nn.networks"]


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

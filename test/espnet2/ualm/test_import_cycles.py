"""The plugin's import graph: no cycles, and fixtures stay out of the library.

The graph is read from the source with ``ast`` (nothing is imported): every
``import`` / ``from ... import`` of an ``espnet2.ualm`` or ``espnet2.tasks.ualm*``
name, at module level or inside a function (a lazy import is still a
dependency; it only hides the cycle until the function runs), and
``TYPE_CHECKING`` imports too (a cycle for the reader and the type checker).
Nodes are the modules of ``espnet2/ualm``, ``espnet2/tasks/ualm*.py`` and
``espnet2/bin/ualm_*.py``.
"""

import ast
import os
from typing import Dict, List, Set

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))  # the repository
PREFIXES = ("espnet2.ualm", "espnet2.tasks.ualm", "espnet2.bin.ualm")
TESTING = "espnet2.ualm.testing"


def _module_files() -> Dict[str, str]:
    """Module name -> file, for every module of the plugin."""
    out = {}
    for base in ("espnet2/ualm", "espnet2/tasks", "espnet2/bin"):
        for folder, _, files in os.walk(os.path.join(ROOT, base)):
            for name in files:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
                if base != "espnet2/ualm" and not parts[-1].startswith("ualm"):
                    continue  # ESPnet's own tasks and entry points
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                out[".".join(parts)] = path
    return out


def _owner(name: str, modules: Dict[str, str]) -> str:
    """The plugin module ``name`` is in (itself, or its closest package)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name


def import_graph() -> Dict[str, Set[str]]:
    modules = _module_files()
    graph: Dict[str, Set[str]] = {}
    for module, path in modules.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                # ``from pkg import sub`` depends on pkg.sub when it is a module
                names = [
                    f"{node.module}.{alias.name}"
                    if f"{node.module}.{alias.name}" in modules
                    else node.module
                    for alias in node.names
                ]
            else:
                continue
            for name in names:
                if name.startswith(
                    ("espnet2.ualm", "espnet2.tasks.ualm", "espnet2.bin")
                ):
                    owner = _owner(name, modules)
                    if owner and owner != module:
                        deps.add(owner)
        graph[module] = deps
    return graph


def find_cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected component."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    components: List[Set[str]] = []

    def visit(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)

    cycles = []
    for comp in components:
        start = min(comp)
        # shortest way back to ``start`` inside the component (BFS)
        parent = {start: None}
        queue, end = [start], None
        while queue and end is None:
            v = queue.pop(0)
            for w in sorted(graph[v] & comp):
                if w == start:
                    end = v
                    break
                if w not in parent:
                    parent[w] = v
                    queue.append(w)
        path = [start]
        while end is not None:
            path.append(end)
            end = parent[end]
        cycles.append(path[::-1])
    return cycles


def test_the_cycle_finder_names_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_module_and_function_level_imports():
    graph = import_graph()
    assert len(graph) > 100 and "espnet2.tasks.ualm" in graph  # found the source
    assert "espnet2.ualm.data.io" in graph["espnet2.ualm.train.dataset"]
    # a function-level import (UALM.__init__ loads the task registry lazily)
    assert "espnet2.ualm.tokens.tasks" in graph["espnet2.ualm.inference.pipeline"]
    assert "espnet2.tasks.ualm_enhancer" in graph["espnet2.ualm.inference.pipeline"]


def test_no_import_cycles_in_the_plugin():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_library_does_not_import_the_test_fixtures():
    offenders = sorted(
        f"{module} -> {dep}"
        for module, deps in import_graph().items()
        if not module.startswith(TESTING)
        for dep in deps
        if dep.startswith(TESTING)
    )
    assert not offenders, f"library modules import {TESTING}: {offenders}"


def test_setup_installs_the_testing_package():
    """setup.py's own package discovery (run here, not re-implemented)."""
    with open(os.path.join(ROOT, "setup.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    (func,) = [
        n
        for n in tree.body
        if isinstance(n, ast.FunctionDef) and n.name == "_plugin_packages"
    ]
    scope: dict = {"glob": __import__("glob"), "os": os}
    exec(compile(ast.Module([func], []), "setup.py", "exec"), scope)
    cwd = os.getcwd()
    try:
        os.chdir(ROOT)
        packages = scope["_plugin_packages"]()
    finally:
        os.chdir(cwd)
    assert TESTING in packages and "espnet2.ualm.inference" in packages

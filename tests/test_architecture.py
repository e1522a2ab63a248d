"""The house rules of docs/architecture.md, checked on the source with ``ast``.

1. No module imports a private name (leading underscore) from another radmine
   module. Underscore *modules* are allowed where they are shared utilities:
   the top-level ``radmine/_*.py`` (``_io``, ``_paths``, ``_repr``,
   ``_validation``) from anywhere, and a package's own ``_*.py`` (such as
   ``radmine/plotting/_figure.py``) from inside that package.
2. No module reads or calls a private attribute (``obj._name``, or
   ``getattr(obj, "_name")``) that another radmine module defines: objects
   talk through their public names.
3. No monkey-patching (a function assigned onto another object) and no
   module-level state changed at run time (a module-level dict/list/set that a
   function fills, such as a per-process worker cache).
4. The import graph of radmine's modules has no cycle. Every import counts,
   at module level or deferred inside a function, with one declared exception:
   a deferred import of the Dask adapters (``radmine.distributed``) is the
   dispatch of an in-memory function that was given a Dask collection
   (``radmine.label_reports(ddf)``), an edge upward by design.
"""

from __future__ import annotations

import ast
import pathlib
from collections import defaultdict

import networkx as nx
import pytest

import radmine

ROOT = pathlib.Path(radmine.__file__).parent
DISPATCH_TARGETS = ("radmine.distributed", "radmine.dask")


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()
TREES = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in MODULES.items()}


def _package(name: str) -> str:
    return name if MODULES[name].name == "__init__.py" else name.rsplit(".", 1)[0]


def _imports(name: str):
    """(target module, imported name or None, line, deferred) for each radmine import of module ``name``."""
    tree = TREES[name]
    top = set()

    def walk_top(body):
        for node in body:
            top.add(id(node))
            if isinstance(node, ast.If):
                walk_top(node.body)
                walk_top(node.orelse)
            elif isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody, *[h.body for h in node.handlers]):
                    walk_top(block)

    walk_top(tree.body)
    for node in ast.walk(tree):
        deferred = id(node) not in top
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package(name).split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if not module.startswith("radmine"):
                continue
            for alias in node.names:
                full = f"{module}.{alias.name}"
                if full in MODULES:  # "from radmine import dask": a module
                    yield full, None, node.lineno, deferred
                else:
                    yield module, alias.name, node.lineno, deferred
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("radmine."):
                    yield alias.name, None, node.lineno, deferred


def _is_private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def _may_import_module(importer: str, target: str) -> bool:
    """Underscore modules: top-level radmine._x from anywhere; pkg._x from inside pkg."""
    parts = target.split(".")
    for i, part in enumerate(parts):
        if _is_private(part):
            owner = ".".join(parts[:i])
            if owner == "radmine" and i == len(parts) - 1:
                return True
            return importer == owner or importer.startswith(owner + ".")
    return True


def test_walk_finds_the_package():
    assert {"radmine.corpus", "radmine.base", "radmine.topics.model", "radmine.pipeline.steps"} <= set(MODULES)


def test_no_private_names_imported_across_modules():
    bad = []
    for name in MODULES:
        for target, imported, line, _ in _imports(name):
            if target == name:
                continue
            if not _may_import_module(name, target):
                bad.append(f"{MODULES[name].relative_to(ROOT.parent)}:{line} imports module {target}")
            if imported is not None and _is_private(imported):
                bad.append(f"{MODULES[name].relative_to(ROOT.parent)}:{line} imports {target}.{imported}")
    assert bad == []


def _class_members() -> tuple[dict[str, set[str]], dict[str, list[str]], dict[str, list[str]]]:
    """Private names each class defines (methods, class attributes, ``self._x = ...``), its bases, its module's classes."""
    members: dict[str, set[str]] = defaultdict(set)
    bases: dict[str, list[str]] = {}
    classes: dict[str, list[str]] = defaultdict(list)
    for name, tree in TREES.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            classes[name].append(node.name)
            bases[node.name] = [ast.unparse(b).rsplit(".", 1)[-1] for b in node.bases]
            for item in ast.walk(node):
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and _is_private(item.name):
                    members[node.name].add(item.name)
                elif isinstance(item, ast.Attribute) and isinstance(item.ctx, ast.Store) and _is_private(item.attr):
                    members[node.name].add(item.attr)
            for item in node.body:
                if isinstance(item, (ast.Assign, ast.AnnAssign)):
                    targets = item.targets if isinstance(item, ast.Assign) else [item.target]
                    members[node.name].update(t.id for t in targets if isinstance(t, ast.Name) and _is_private(t.id))
    return members, bases, classes


def _private_members() -> dict[str, set[str]]:
    """Module -> private names its classes define or inherit from radmine base classes."""
    members, bases, classes = _class_members()

    def closure(cls: str, seen: set[str]) -> set[str]:
        if cls in seen:
            return set()
        seen.add(cls)
        out = set(members.get(cls, ()))
        for b in bases.get(cls, ()):
            out |= closure(b, seen)
        return out

    return {module: set().union(*(closure(c, set()) for c in names)) for module, names in classes.items()}


def _defining_modules() -> dict[str, set[str]]:
    """Private name -> modules whose classes define it."""
    members, _, classes = _class_members()
    out: dict[str, set[str]] = defaultdict(set)
    for module, names in classes.items():
        for c in names:
            for n in members.get(c, ()):
                out[n].add(module)
    return out


def test_no_private_members_used_across_modules():
    """``obj._x`` is allowed only where ``_x`` belongs to the same module (or is not radmine's at all)."""
    members = _private_members()
    owners = _defining_modules()
    bad = []
    for name, tree in TREES.items():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and _is_private(node.attr)):
                continue
            value = node.value
            if isinstance(value, ast.Name) and value.id in ("self", "cls"):
                continue
            if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "super":
                continue
            if node.attr in members.get(name, ()):  # the module's own class
                continue
            if owners.get(node.attr):
                bad.append(f"{MODULES[name].relative_to(ROOT.parent)}:{node.lineno} uses "
                           f"{ast.unparse(node)} (defined in {sorted(owners[node.attr])})")
        # the same through getattr/hasattr/setattr with a literal name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("getattr", "hasattr", "setattr") and len(node.args) >= 2
                    and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
                    and _is_private(node.args[1].value)):
                target, attr = node.args[0], node.args[1].value
                if isinstance(target, ast.Name) and target.id in ("self", "cls"):
                    continue
                if attr in members.get(name, ()) or not owners.get(attr):
                    continue
                bad.append(f"{MODULES[name].relative_to(ROOT.parent)}:{node.lineno} uses "
                           f"{ast.unparse(node)} (defined in {sorted(owners[attr])})")
    assert bad == []


def test_no_monkey_patching():
    """No function or lambda is assigned onto another object (``client.close = close``)."""
    bad = []
    for name, tree in TREES.items():
        funcs = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Assign):
                continue
            for target in node.targets:
                if not isinstance(target, ast.Attribute):
                    continue
                if isinstance(target.value, ast.Name) and target.value.id in ("self", "cls"):
                    continue
                value = node.value
                if isinstance(value, ast.Lambda) or (isinstance(value, ast.Name) and value.id in funcs):
                    bad.append(f"{MODULES[name].relative_to(ROOT.parent)}:{node.lineno} {ast.unparse(node)[:80]}")
    assert bad == []


MUTATORS = {"append", "extend", "insert", "update", "setdefault", "pop", "popitem", "clear", "add", "discard", "remove"}
#: declared process-wide settings: the reader size limits that [read] sets (readers/limits.py: set_limits, limits())
SETTINGS = {("radmine.readers.limits", "LIMITS")}


def test_no_mutable_module_state():
    """No module-level container is changed inside a function (worker caches, registries filled at run time)."""
    bad = []
    for name, tree in TREES.items():
        containers = set()
        for node in tree.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                value = node.value
                if isinstance(value, (ast.Dict, ast.List, ast.Set)) or (
                        isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
                        and value.func.id in ("dict", "list", "set", "defaultdict", "OrderedDict", "Counter")):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    containers.update(t.id for t in targets if isinstance(t, ast.Name))
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                changed = None
                if (isinstance(node, ast.Subscript) and isinstance(node.ctx, (ast.Store, ast.Del))
                        and isinstance(node.value, ast.Name)):
                    changed = node.value.id
                elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                      and node.func.attr in MUTATORS and isinstance(node.func.value, ast.Name)):
                    changed = node.func.value.id
                if changed in containers and (name, changed) not in SETTINGS and not _assigned_locally(func, changed):
                    bad.append(f"{MODULES[name].relative_to(ROOT.parent)}:{node.lineno} changes module-level {changed}")
    assert bad == []


def _assigned_locally(func, name: str) -> bool:
    """Whether ``name`` is a local variable of ``func`` (assigned or a parameter), shadowing the module's."""
    args = func.args
    params = {a.arg for a in args.args + args.kwonlyargs + args.posonlyargs}
    if name in params:
        return True
    for node in ast.walk(func):
        if isinstance(node, ast.Global) and name in node.names:
            return False
        if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Store):
            return True
    return False


def _graph() -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(MODULES)
    for name in MODULES:
        for target, _, _, deferred in _imports(name):
            if target == name or target == "radmine" or name == "radmine":
                continue  # the package's lazy public exports are not a layer
            if deferred and target.startswith(DISPATCH_TARGETS):
                continue
            if target in MODULES:
                g.add_edge(name, target)
    return g


def test_import_graph_has_no_cycle():
    cycles = sorted(nx.simple_cycles(_graph()), key=len)
    assert cycles == []


@pytest.mark.parametrize("low, high", [
    ("radmine.corpus", "radmine.pipeline.steps"),
    ("radmine.text.sentences", "radmine.linking"),
    ("radmine.topics.model", "radmine.pipeline.steps"),
    ("radmine.base", "radmine.topics.model"),
])
def test_lower_layers_do_not_reach_up(low, high):
    assert not nx.has_path(_graph(), low, high)

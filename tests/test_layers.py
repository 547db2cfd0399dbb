"""The layering of tokenmeter/ (docs/architecture.md): every import points down, no cycles.

Every import statement counts: at module level, inside functions, and under
``TYPE_CHECKING``. Run by ``make lint`` (``python tests/test_layers.py``) and by
the suite. A module the map does not place is an error too: place new modules
in `LAYERS`. A module reads or sets ``x._name`` only where it defines ``_name``
itself (`private_reads`), and imports no ``_name`` from another module of
tokenmeter (`private_imports`); neither do the tests. A module is loaded late in one
way only (`lazy_imports`).
"""

from __future__ import annotations

import ast
import fnmatch
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "tokenmeter"

#: Lowest first. A module may import modules of its own layer or of layers below it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "base",
        (
            "tokenmeter._version",
            "tokenmeter._errors",
            "tokenmeter._events",
            "tokenmeter._acc",
            "tokenmeter._atomic",
            "tokenmeter._jsonload",
            "tokenmeter._forksafe",
            "tokenmeter._unattributed",
            "tokenmeter._importhook",
            "tokenmeter._drain",
            "tokenmeter._check",
        ),
    ),
    (
        "values",
        ("tokenmeter._limits", "tokenmeter._usage", "tokenmeter._pricing", "tokenmeter._record"),
    ),
    ("tree", ("tokenmeter._frame", "tokenmeter._tree", "tokenmeter._kept", "tokenmeter._budgets")),
    ("scope stack", ("tokenmeter._scope",)),
    (
        "report",
        (
            "tokenmeter._report*",
            "tokenmeter._merge",
            "tokenmeter._subtree",
            "tokenmeter._format",
            "tokenmeter._html*",
            "tokenmeter._export*",
        ),
    ),
    (
        "api",
        (
            "tokenmeter._handle",
            "tokenmeter._meter",
            "tokenmeter._track",
            "tokenmeter._tracked",
            "tokenmeter._threads",
        ),
    ),
    (
        "inner adapters",
        (
            "tokenmeter._litellm",
            "tokenmeter._litellm.*",
            "tokenmeter._instrument",
            "tokenmeter._carry",
            "tokenmeter._procs",
            "tokenmeter._live*",
            "tokenmeter._calls_log*",
        ),
    ),
    ("front door", ("tokenmeter",)),
    (
        "outer adapters",
        (
            "tokenmeter.__main__",
            "tokenmeter.otel",
            "tokenmeter.otel.*",
            "tokenmeter.integrations",
            "tokenmeter.integrations.*",
            "tokenmeter.importers",
            "tokenmeter.importers.*",
            "tokenmeter.testing",
            "tokenmeter.testing.*",
            "tokenmeter._pytest",
            "tokenmeter._pytest.*",
            "tokenmeter.cli",
            "tokenmeter.cli.*",
            "tokenmeter._cli*",
        ),
    ),
]


def layer_of(module: str) -> int | None:
    """The index of ``module``'s layer in `LAYERS`, or None if no pattern places it."""
    for index, (_, patterns) in enumerate(LAYERS):
        if any(fnmatch.fnmatchcase(module, p) for p in patterns):
            return index
    return None


def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_names(
    tree: ast.Module, name: str, is_package: bool
) -> Iterator[tuple[ast.Import | ast.ImportFrom, ast.alias, str]]:
    """Every name an import statement of ``tree`` binds, with the dotted name it stands for.

    ``import a.b`` gives ``a.b``; ``from a import b`` (relative ones resolved against
    the module ``name``) gives ``a.b``, whether ``b`` is a module or a name in ``a``.
    """
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - (node.level - 1)])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            for alias in node.names:
                yield node, alias, f"{source}.{alias.name}"


def nearest_module(dotted: str, modules: set[str]) -> str | None:
    """The module of ``modules`` that ``dotted`` is or lies in (``a.b.f`` -> ``a.b``)."""
    while dotted and dotted not in modules:
        dotted = dotted.rpartition(".")[0]
    return dotted or None


def imports_of(path: Path, root: Path, modules: set[str]) -> list[tuple[int, str]]:
    """(line, module) of every tokenmeter module ``path`` imports, wherever the statement is."""
    name = module_name(path, root)
    tree = ast.parse(path.read_text(), str(path))
    found: set[tuple[int, str]] = set()
    for node, _, dotted in imported_names(tree, name, path.name == "__init__.py"):
        target = nearest_module(dotted, modules)
        if target and target != name:
            found.add((node.lineno, target))
    return sorted(found)


def private_imports(paths: list[Path], root: Path = PACKAGE) -> list[str]:
    """Every ``from m import _name`` in ``paths`` where ``m`` is a module of ``root`` and
    ``_name`` is not a module, one line each. Names one module offers another have no
    leading underscore; the module itself is private already."""
    modules = {module_name(f, root) for f in root.rglob("*.py")}
    problems: list[str] = []
    for path in paths:
        name = module_name(path, root) if path.is_relative_to(root) else path.stem
        tree = ast.parse(path.read_text(), str(path))
        for node, alias, dotted in imported_names(tree, name, path.name == "__init__.py"):
            source = dotted.rpartition(".")[0]
            if (
                isinstance(node, ast.ImportFrom)
                and _is_private(alias.name)
                and dotted not in modules
                and nearest_module(source, modules) is not None
            ):
                problems.append(
                    f"{path.relative_to(root.parent)}:{node.lineno}: imports {alias.name} "
                    f"from {source}, a private name"
                )
    return problems


def check(root: Path = PACKAGE) -> list[str]:
    """Every violation of the layering under ``root``, one line each (empty when it holds)."""
    files = sorted(root.rglob("*.py"))
    modules = {module_name(f, root) for f in files}
    problems: list[str] = []
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for f in files:
        name = module_name(f, root)
        here = layer_of(name)
        if here is None:
            problems.append(f"{name}: not placed in any layer (tests/test_layers.py LAYERS)")
            continue
        for line, target in imports_of(f, root, modules):
            graph[name].add(target)
            there = layer_of(target)
            if there is not None and there > here:
                problems.append(
                    f"{f.relative_to(root.parent)}:{line}: {name} ({LAYERS[here][0]}) imports "
                    f"{target} ({LAYERS[there][0]}), a higher layer"
                )
    for c in cycles(graph):
        problems.append(f"import cycle: {' -> '.join(c)}")
    return problems


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _module_names(tree: ast.Module, path: Path, root: Path, modules: set[str]) -> dict[str, str]:
    """The names under which ``tree`` binds a module (``import x``, ``from . import x``)."""
    found: dict[str, str] = {}
    for node, alias, dotted in imported_names(
        tree, module_name(path, root), path.name == "__init__.py"
    ):
        if isinstance(node, ast.Import):
            top = dotted.partition(".")[0]
            found[alias.asname or top] = dotted if alias.asname else top
        elif dotted in modules:
            found[alias.asname or alias.name] = dotted
    return found


def _definitions(tree: ast.Module) -> tuple[set[str], set[str], set[str]]:
    """The private names ``tree`` defines: every name it binds (functions, classes, names
    it assigns or imports); those of them that are attributes of its objects (class
    members, ``self._x``/``cls._x`` it sets, ``__slots__`` entries); and the names it
    sets on other objects (``obj._x = v``)."""
    names: set[str] = set()
    attrs: set[str] = set()
    put: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for member in ast.walk(node):
                if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    attrs.add(member.name)
                elif isinstance(member, ast.Name) and isinstance(member.ctx, ast.Store):
                    attrs.add(member.id)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.partition(".")[0])
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                attrs.add(node.attr)
            else:
                put.add(node.attr)
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets
        ):
            attrs.update(
                c.value
                for c in ast.walk(node.value)
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            )

    def private(group: set[str]) -> set[str]:
        return {n for n in group if _is_private(n)}

    return private(names | attrs), private(attrs), private(put)


def private_reads(root: Path = PACKAGE) -> list[str]:
    """Every ``x._name`` (read, set or deleted) in a module of ``root`` that the module does
    not define ``_name`` for, one line each.

    ``self._x`` and ``cls._x`` are the object's own. ``m._x`` of a module ``m`` imported
    under its own name is always another module's private name. Anything else is
    allowed where the module itself defines ``_x`` (its own class's attribute, or a
    tag it sets on objects of other libraries that no other module defines).
    """
    files = sorted(root.rglob("*.py"))
    modules = {module_name(f, root) for f in files}
    trees = {f: ast.parse(f.read_text(), str(f)) for f in files}
    own = {f: _definitions(t) for f, t in trees.items()}
    problems: list[str] = []
    for f, tree in trees.items():
        # A name set on another object is this module's own unless it is another's attribute.
        elsewhere = set().union(*(attrs for g, (_, attrs, _) in own.items() if g != f))
        defined = own[f][0] | (own[f][2] - elsewhere)
        imported = _module_names(tree, f, root, modules)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and _is_private(node.attr)):
                continue
            owner = node.value
            if isinstance(owner, ast.Name):
                if owner.id in ("self", "cls"):
                    continue
                if owner.id in imported:
                    problems.append(
                        f"{f.relative_to(root.parent)}:{node.lineno}: {ast.unparse(node)} "
                        f"reads a private name of {imported[owner.id]}"
                    )
                    continue
            if node.attr not in defined:
                problems.append(
                    f"{f.relative_to(root.parent)}:{node.lineno}: {ast.unparse(node)} "
                    f"reads {node.attr}, which {module_name(f, root)} does not define"
                )
    return problems


def core_modules(root: Path = PACKAGE) -> set[str]:
    """The modules of ``root`` that ``import tokenmeter`` loads, in a fresh interpreter."""
    code = (
        "import sys, tokenmeter\n"
        "print(*[m for m in sys.modules if m.partition('.')[0] == 'tokenmeter'], sep='\\n')"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENMETER")}
    env["PYTHONPATH"] = str(root.parent)
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return set(run.stdout.split())


#: The calls that load a module by its name, which the import walk cannot follow.
_DYNAMIC = {"import_module", "importlib.import_module", "__import__", "importlib.__import__"}


def lazy_imports(root: Path = PACKAGE, core: set[str] | None = None) -> list[str]:
    """Every late load of a module other than by the one idiom (docs/architecture.md,
    "Loading on first use"), one line each:

    - an import statement inside a function that imports a module ``import tokenmeter``
      loads anyway (``core``): it costs a lookup on every call and defers nothing;
    - a function binding a module global by an import (``global``) that is not a
      loader: a loader is named ``_load_<what>`` and returns nothing;
    - ``import_module``, ``__import__`` or ``globals()[...] = ...`` outside the front
      door (``tokenmeter/__init__.py``, whose ``__getattr__`` loads the public names).
    """
    core = core_modules(root) if core is None else core
    files = sorted(root.rglob("*.py"))
    modules = {module_name(f, root) for f in files}
    problems: list[str] = []
    for f in files:
        name = module_name(f, root)
        where = f.relative_to(root.parent)
        tree = ast.parse(f.read_text(), str(f))
        functions = [
            n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        ]
        inside = {
            id(n)
            for fn in functions
            for n in ast.walk(fn)
            if isinstance(n, ast.Import | ast.ImportFrom)
        }
        needless = {
            (node.lineno, target)
            for node, _, dotted in imported_names(tree, name, f.name == "__init__.py")
            if id(node) in inside
            and (target := nearest_module(dotted, modules)) in core
            and target != name
        }
        problems += [
            f"{where}:{line}: imports {target} inside a function; "
            "import tokenmeter loads it already: import it at the top"
            for line, target in sorted(needless)
        ]
        for fn in functions:
            rebound = {g for n in ast.walk(fn) if isinstance(n, ast.Global) for g in n.names}
            imported = {
                (a.asname or a.name).partition(".")[0]
                for n in ast.walk(fn)
                if isinstance(n, ast.Import | ast.ImportFrom)
                for a in n.names
            }
            # Globals bound by an import, or assigned from what an import bound.
            by_import = rebound & imported | {
                t.id
                for n in ast.walk(fn)
                if isinstance(n, ast.Assign)
                and any(isinstance(v, ast.Name) and v.id in imported for v in ast.walk(n.value))
                for t in n.targets
                if isinstance(t, ast.Name) and t.id in rebound
            }
            if not by_import:
                continue
            returns = any(isinstance(n, ast.Return) and n.value is not None for n in ast.walk(fn))
            if not fn.name.startswith("_load_") or returns:
                problems.append(
                    f"{where}:{fn.lineno}: {fn.name} binds module globals by an import; "
                    "only a loader does (named _load_<what>, returning nothing)"
                )
        if f == root / "__init__.py":
            continue
        for n in ast.walk(tree):
            if isinstance(n, ast.Call) and ast.unparse(n.func) in _DYNAMIC:
                problems.append(
                    f"{where}:{n.lineno}: {ast.unparse(n.func)}() outside the front door"
                )
            elif isinstance(n, ast.Assign | ast.AugAssign) and any(
                isinstance(t, ast.Subscript) and ast.unparse(t.value) == "globals()"
                for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
            ):
                problems.append(f"{where}:{n.lineno}: globals()[...] set outside the front door")
    return problems


def long_modules(root: Path = PACKAGE) -> list[str]:
    """Every module under ``root`` over 500 lines, with its length."""
    return [
        f"{f.relative_to(root.parent)}: {n} lines, over 500"
        for f in sorted(root.rglob("*.py"))
        if (n := len(f.read_text().splitlines())) > 500
    ]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        # Iterative depth-first search: (node, iterator over its successors).
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, succ = work[-1]
            nxt = next(succ, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


# -- tests ---------------------------------------------------------------------------


def test_tokenmeter_is_layered() -> None:
    """No module of tokenmeter/ imports a higher layer or takes part in an import cycle."""
    assert check() == []


def test_no_module_is_over_500_lines() -> None:
    """Every module of tokenmeter/ is at most 500 lines."""
    assert long_modules() == []


def test_no_module_or_test_imports_a_private_name() -> None:
    """No module of tokenmeter/ and no test imports ``_name`` from a module of tokenmeter/."""
    tests = sorted(Path(__file__).resolve().parent.rglob("*.py"))
    assert private_imports(sorted(PACKAGE.rglob("*.py")) + tests) == []


def test_modules_load_late_one_way() -> None:
    """No module of tokenmeter/ loads another late except by the idiom of architecture.md."""
    assert lazy_imports() == []


def test_no_module_reads_private_names_of_another() -> None:
    """No module of tokenmeter/ reads ``x._name`` unless it defines ``_name`` itself."""
    assert private_reads() == []


def _package(tmp: Path, files: dict[str, str]) -> Path:
    root = tmp / "tokenmeter"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_an_upward_import_inside_a_function_fails(tmp_path: Path) -> None:
    """A core module importing a higher layer inside a function is reported with its line."""
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "_acc.py": "def f():\n    from ._report import Report\n",
            "_report.py": "from ._acc import f\n",
        },
    )
    assert check(root) == [
        "tokenmeter/_acc.py:2: tokenmeter._acc (base) imports tokenmeter._report (report), "
        "a higher layer",
        "import cycle: tokenmeter._acc -> tokenmeter._report",
    ]


def test_a_type_checking_import_of_an_adapter_fails(tmp_path: Path) -> None:
    """The core importing an outer adapter under TYPE_CHECKING is an upward import."""
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "_tree.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from tokenmeter.otel import instrument\n"
            ),
            "otel/__init__.py": "import tokenmeter\nfrom tokenmeter import _tree\n",
        },
    )
    assert check(root) == [
        "tokenmeter/_tree.py:3: tokenmeter._tree (tree) imports tokenmeter.otel "
        "(outer adapters), a higher layer",
        "import cycle: tokenmeter._tree -> tokenmeter.otel",
    ]


def test_adapters_may_import_the_core_and_the_front_door(tmp_path: Path) -> None:
    """Outer adapters (otel, integrations, testing, the plugin, a CLI) importing the core pass."""
    root = _package(
        tmp_path,
        {
            "__init__.py": "from ._meter import report\n",
            "_meter.py": "from . import _tree\n",
            "_tree.py": "",
            "otel/__init__.py": "import tokenmeter\nfrom .._meter import report\n",
            "integrations/ray.py": "from tokenmeter import _tree\n",
            "testing.py": "import tokenmeter as tm\n",
            "_pytest/plugin.py": "from tokenmeter._meter import report\n",
            "cli/main.py": "from tokenmeter import report\n",
        },
    )
    assert check(root) == []


def test_a_cycle_within_one_layer_fails(tmp_path: Path) -> None:
    """Two modules of one layer importing each other are an import cycle."""
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "_meter.py": "import tokenmeter._track\n",
            "_track.py": "from . import _meter\n",
        },
    )
    assert check(root) == ["import cycle: tokenmeter._meter -> tokenmeter._track"]


def test_an_unplaced_module_fails(tmp_path: Path) -> None:
    """A module the layer map does not place is reported."""
    root = _package(tmp_path, {"__init__.py": "", "_mystery.py": ""})
    assert check(root) == [
        "tokenmeter._mystery: not placed in any layer (tests/test_layers.py LAYERS)"
    ]


def test_a_module_over_500_lines_is_named(tmp_path: Path) -> None:
    """A 501-line module is reported with its length; one of 500 lines passes."""
    root = _package(
        tmp_path, {"__init__.py": "", "_a.py": "x = 1\n" * 501, "_b.py": "x = 1\n" * 500}
    )
    assert long_modules(root) == ["tokenmeter/_a.py: 501 lines, over 500"]


def test_private_names_of_another_module_are_named(tmp_path: Path) -> None:
    """Reading another module's private attribute or name fails; a module's own passes."""
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "_tree.py": (
                "class Tree:\n"
                "    __slots__ = ('_lock',)\n"
                "    def __init__(self):\n"
                "        self._lock = 1\n"
                "def lock_of(t):\n"
                "    return t._lock\n"
                "_hidden = 1\n"
            ),
            "_scope.py": (
                "from . import _tree\n"
                "import tokenmeter._tree as tree_mod\n"
                "def f(t, s):\n"
                "    s._own, s._lock = 1, 2\n"
                "    return t._lock, _tree._hidden, tree_mod.lock_of(t), self_like(s)\n"
                "def self_like(self):\n"
                "    return self._lock\n"
            ),
        },
    )
    assert private_reads(root) == [
        "tokenmeter/_scope.py:4: s._lock reads _lock, which tokenmeter._scope does not define",
        "tokenmeter/_scope.py:5: t._lock reads _lock, which tokenmeter._scope does not define",
        "tokenmeter/_scope.py:5: _tree._hidden reads a private name of tokenmeter._tree",
    ]


def test_importing_a_private_name_fails(tmp_path: Path) -> None:
    """``from .m import _f`` (relative or absolute, in the package or a test) is named;
    a private module and a plain name pass."""
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "_litellm/__init__.py": "",
            "_litellm/extract.py": "def _f(): pass\ndef g(): pass\n",
            "_litellm/record.py": (
                "from .extract import _f, g\n"
                "from tokenmeter._litellm import extract, _private_mod\n"
                "def h():\n"
                "    from ..extract_like import _x\n"
                "    from tokenmeter._litellm.extract import _f as f2\n"
            ),
            "_litellm/_private_mod.py": "",
        },
    )
    test = tmp_path / "tests" / "test_x.py"
    test.parent.mkdir()
    test.write_text("import os\nfrom os import _exit\nfrom tokenmeter._litellm.extract import _f\n")
    assert private_imports([*sorted(root.rglob("*.py")), test], root) == [
        "tokenmeter/_litellm/record.py:1: imports _f from tokenmeter._litellm.extract, "
        "a private name",
        "tokenmeter/_litellm/record.py:4: imports _x from tokenmeter.extract_like, a private name",
        "tokenmeter/_litellm/record.py:5: imports _f from tokenmeter._litellm.extract, "
        "a private name",
        "tests/test_x.py:3: imports _f from tokenmeter._litellm.extract, a private name",
    ]


def test_late_loads_other_than_the_idiom_are_named(tmp_path: Path) -> None:
    """An in-function import of a module import tokenmeter loads, a global bound by an
    import outside a ``_load_`` function or by one that returns a value, and a load by
    name outside the front door are named; an in-function import of a late module, a
    loader and the front door's ``__getattr__`` pass."""
    root = _package(
        tmp_path,
        {
            "__init__.py": (
                "from ._meter import record\n"
                "def __getattr__(name):\n"
                "    from importlib import import_module\n"
                "    globals()[name] = obj = import_module('tokenmeter._record').R\n"
                "    return obj\n"
            ),
            "_acc.py": "def g(): pass\n",
            "_record.py": "R = 1\n",
            "_limits.py": "L = 1\n",
            "_meter.py": (
                "from ._acc import g\n"
                "def record():\n"
                "    from ._acc import g\n"
                "    from ._record import R\n"
                "def _load_support():\n"
                "    global R\n"
                "    from ._record import R\n"
                "def _limits_class():\n"
                "    global L\n"
                "    from ._limits import L\n"
                "def _load_limits():\n"
                "    global L\n"
                "    from ._limits import L\n"
                "    return L\n"
                "def _load_limits_class():\n"
                "    global _limits_class\n"
                "    from ._limits import L\n"
                "    _limits_class = L\n"
                "    return L\n"
                "def by_name():\n"
                "    import importlib\n"
                "    globals()['R'] = importlib.import_module('tokenmeter._record')\n"
            ),
        },
    )
    core = {"tokenmeter", "tokenmeter._meter", "tokenmeter._acc"}
    assert lazy_imports(root, core) == [
        "tokenmeter/_meter.py:3: imports tokenmeter._acc inside a function; "
        "import tokenmeter loads it already: import it at the top",
        "tokenmeter/_meter.py:8: _limits_class binds module globals by an import; "
        "only a loader does (named _load_<what>, returning nothing)",
        "tokenmeter/_meter.py:11: _load_limits binds module globals by an import; "
        "only a loader does (named _load_<what>, returning nothing)",
        "tokenmeter/_meter.py:15: _load_limits_class binds module globals by an import; "
        "only a loader does (named _load_<what>, returning nothing)",
        "tokenmeter/_meter.py:22: globals()[...] set outside the front door",
        "tokenmeter/_meter.py:22: importlib.import_module() outside the front door",
    ]


def test_core_modules_are_what_import_tokenmeter_loads() -> None:
    """import tokenmeter loads _scope and _meter, not _report or _litellm (docs/performance.md)."""
    core = core_modules()
    assert {"tokenmeter", "tokenmeter._scope", "tokenmeter._meter"} <= core
    assert not core & {"tokenmeter._report", "tokenmeter._litellm", "tokenmeter._usage"}


if __name__ == "__main__":
    tests = sorted(Path(__file__).resolve().parent.rglob("*.py"))
    problems = (
        check()
        + long_modules()
        + private_reads()
        + private_imports(sorted(PACKAGE.rglob("*.py")) + tests)
        + lazy_imports()
    )
    for problem in problems:
        print(problem)
    sys.exit(1 if problems else 0)

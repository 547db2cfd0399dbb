"""The layering of tokenmeter/ (docs/architecture.md): every import points down, no cycles.

Every import statement counts: at module level, inside functions, and under
``TYPE_CHECKING``. Run by ``make lint`` (``python tests/test_layers.py``) and by
the suite. A module the map does not place is an error too: place new modules
in `LAYERS`.
"""

from __future__ import annotations

import ast
import fnmatch
import sys
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
            "tokenmeter._forksafe",
            "tokenmeter._unattributed",
            "tokenmeter._importhook",
            "tokenmeter._drain",
        ),
    ),
    (
        "values",
        ("tokenmeter._limits", "tokenmeter._usage", "tokenmeter._pricing", "tokenmeter._record"),
    ),
    ("tree", ("tokenmeter._frame", "tokenmeter._tree", "tokenmeter._budgets")),
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


def imports_of(path: Path, root: Path, modules: set[str]) -> list[tuple[int, str]]:
    """(line, module) of every tokenmeter module ``path`` imports, wherever the statement is."""
    name = module_name(path, root)
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[tuple[int, str]] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts)
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            # ``from pkg import mod`` imports the module pkg.mod; ``from mod import x`` imports mod.
            targets = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # ``import tokenmeter.otel.x`` -> nearest
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add((node.lineno, target))
    return sorted(found)


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


if __name__ == "__main__":
    problems = check() + long_modules()
    for problem in problems:
        print(problem)
    sys.exit(1 if problems else 0)

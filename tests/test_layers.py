"""Layers that point one way: no module of ganlab imports a module of a higher layer.

Every import counts: at module level, inside a function, under ``if TYPE_CHECKING:``, and
``importlib.import_module("ganlab....")`` with a literal name. The table below is the
architecture; a new module is placed in it (the test names any module that has no layer).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Where each installed package's source lives in the repository (tricks/ installs as ganlab.tricks).
SOURCES = {"ganlab": ROOT / "ganlab", "ganlab.tricks": ROOT / "tricks", "ganlab.studies": ROOT / "studies"}

# Lowest first. A module may import modules of its own layer and of the layers below it. An
# entry names a module or a package (with everything in it); the longest entry that matches
# wins, and the bare ``ganlab`` entry matches the package's own __init__ only.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundations", ("ganlab.errors", "ganlab.coerce", "ganlab.modes", "ganlab.devices", "ganlab.io", "ganlab.version",
                     "ganlab.registry", "ganlab.threads")),
    ("primitives", ("ganlab.color", "ganlab.losses", "ganlab.stats")),
    ("networks and metrics", ("ganlab.nets", "ganlab.metrics")),
    ("configuration", ("ganlab.config",)),
    ("trick interface", ("ganlab.trick",)),
    ("tricks", ("ganlab.tricks", "ganlab.studies")),
    ("data", ("ganlab.data",)),
    ("runtime", ("ganlab.runtime",)),
    ("training", ("ganlab.train",)),
    ("tools", ("ganlab.evaluate", "ganlab.infer", "ganlab.export", "ganlab.bench", "ganlab.testing")),
    ("studies", ("ganlab.study",)),
    ("commands", ("ganlab.cli", "ganlab.__main__")),
    ("notebook API", ("ganlab", "ganlab.api")),
)

# Upward imports that are known and have a reason. An entry that no longer happens fails
# test_every_exception_still_happens: delete it then.
EXCEPTIONS: dict[tuple[str, str], str] = {}
# Import cycles that are known, closed only through imports under TYPE_CHECKING (annotations).
# Every other cycle fails test_no_import_cycle; an entry that no longer happens fails too.
KNOWN_CYCLES: dict[frozenset[str], str] = {
    frozenset({"ganlab.study.objective", "ganlab.study.spec"}): "the objectives annotate their StudySpec argument, "
                                                               "and the spec checks its objectives' names",
}


# The checker ----------------------------------------------------------------------------------
def find_modules(sources: dict[str, Path]) -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, is a package's __init__)."""
    found = {}
    for package, folder in sources.items():
        for path in sorted(folder.rglob("*.py")):
            if package == "ganlab.studies" and len(path.relative_to(folder).parts) > 1:
                continue  # studies/findings/: scripts that use ganlab, not installed with it
            parts = package.split(".") + list(path.relative_to(folder).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(name: str, path: Path, is_package: bool, known: set[str], top: str = "ganlab") -> list[tuple[str, int, str]]:
    """(imported module, line, kind) for every import of a ``top`` module in the file; kind is
    ``module``, ``function``, ``TYPE_CHECKING`` or ``import_module``."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[str, int, str]] = []

    def target(module: str, attr: str | None) -> str:
        # ``from pkg import sub`` imports the submodule; ``from pkg import name`` the package.
        if attr is not None and f"{module}.{attr}" in known:
            return f"{module}.{attr}"
        return module

    def visit(node: ast.AST, kind: str) -> None:
        if isinstance(node, ast.Import):
            found.extend((a.name, node.lineno, kind) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.extend((target(module, a.name), node.lineno, kind) for a in node.names)
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and (getattr(node.func, "attr", None) or getattr(node.func, "id", None)) == "import_module"):
            found.append((node.args[0].value, node.lineno, "import_module"))
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, "TYPE_CHECKING")
            for child in node.orelse:
                visit(child, kind)
            return
        inner = "function" if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) else kind
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, "module")
    return [(m, line, kind) for m, line, kind in found if m == top or m.startswith(top + ".")]


def layer_of(module: str, layers=LAYERS) -> int | None:
    best, best_len = None, -1
    for index, (_, entries) in enumerate(layers):
        for entry in entries:
            matches = module == entry or (module.startswith(entry + ".") and "." in entry)
            if matches and len(entry) > best_len:
                best, best_len = index, len(entry)
    return best


def _excepted(module: str, imported: str, exceptions) -> tuple[str, str] | None:
    for a, b in exceptions:
        if (module == a or module.startswith(a + ".")) and (imported == b or imported.startswith(b + ".")):
            return a, b
    return None


def check(sources=SOURCES, layers=LAYERS, exceptions=EXCEPTIONS) -> tuple[list[str], list[str], set]:
    """(modules without a layer, upward imports, exceptions used)."""
    modules = find_modules(sources)
    known = set(modules)
    unplaced = sorted(m for m in modules if layer_of(m, layers) is None)
    upward, used = [], set()
    for name, (path, is_package) in modules.items():
        mine = layer_of(name, layers)
        for imported, line, kind in dict.fromkeys(imports_of(name, path, is_package, known)):
            theirs = layer_of(imported, layers)
            if mine is None or theirs is None or theirs <= mine:
                continue
            key = _excepted(name, imported, exceptions)
            if key is not None:
                used.add(key)
                continue
            upward.append(f"{path.relative_to(path.parents[len(name.split('.')) - 1 + is_package])}:{line}: {name} "
                          f"({layers[mine][0]}) imports {imported} ({layers[theirs][0]}) [{kind}]")
    return unplaced, upward, used


def import_cycles(sources=SOURCES, *, runtime_only: bool = False) -> list[list[str]]:
    """The strongly connected components (more than one module) of the import graph; with
    ``runtime_only`` the imports under TYPE_CHECKING are left out."""
    modules = find_modules(sources)
    known = set(modules)
    graph = {n: sorted({m for m, _, kind in imports_of(n, p, pkg, known)
                        if m in known and m != n and not (runtime_only and kind == "TYPE_CHECKING")})
             for n, (p, pkg) in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in graph:
        if v not in index:
            strong(v)
    return found


# The tests ------------------------------------------------------------------------------------
def test_every_module_has_a_layer():
    unplaced, _, _ = check()
    assert not unplaced, f"place these modules in LAYERS (tests/test_layers.py): {unplaced}"


def test_no_module_imports_a_higher_layer():
    _, upward, _ = check()
    assert not upward, "imports of a higher layer:\n" + "\n".join(upward)


def test_every_exception_still_happens():
    _, _, used = check()
    stale = set(EXCEPTIONS) - used
    assert not stale, f"these upward imports no longer happen; delete them from EXCEPTIONS: {sorted(stale)}"


def test_no_import_cycle():
    # Within a layer too, modules import one way (a package's __init__ importing its own modules
    # counts like any other module); no cycle at all at run time.
    assert import_cycles(runtime_only=True) == []
    found = {frozenset(c) for c in import_cycles()}
    assert found <= set(KNOWN_CYCLES), f"import cycles: {[sorted(c) for c in found - set(KNOWN_CYCLES)]}"
    stale = set(KNOWN_CYCLES) - found
    assert not stale, f"these cycles no longer happen; delete them from KNOWN_CYCLES: {[sorted(c) for c in stale]}"


def test_the_checker_sees_every_kind_of_import(tmp_path):
    pkg = tmp_path / "ganlab"
    (pkg / "low").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "high.py").write_text("")
    (pkg / "low" / "__init__.py").write_text("from . import a\n")
    (pkg / "low" / "a.py").write_text(textwrap.dedent("""
        import importlib
        from typing import TYPE_CHECKING
        import ganlab.high
        from ganlab import high
        from .. import high as h2
        if TYPE_CHECKING:
            from ganlab.high import X
        def f():
            from ganlab.high import Y
            return importlib.import_module("ganlab.high")
        from ganlab.low import a
    """))
    layers = (("low", ("ganlab.low",)), ("high", ("ganlab.high",)), ("top", ("ganlab",)))
    unplaced, upward, _ = check({"ganlab": pkg}, layers, {})
    assert unplaced == []
    kinds = sorted(line.rsplit("[", 1)[1].rstrip("]") for line in upward)
    assert kinds == ["TYPE_CHECKING", "function", "import_module", "module", "module", "module"], upward
    assert all("ganlab.low.a (low) imports ganlab.high (high)" in line for line in upward)
    # a module outside the table is named, and an exception is honoured and reported as used
    (pkg / "stray.py").write_text("")
    unplaced, upward, used = check({"ganlab": pkg}, layers, {("ganlab.low", "ganlab.high"): "why"})
    assert unplaced == ["ganlab.stray"] and upward == [] and used == {("ganlab.low", "ganlab.high")}
    (pkg / "high.py").write_text("import ganlab.low.a\n")
    assert import_cycles({"ganlab": pkg}) == [["ganlab.high", "ganlab.low.a"]]
    (pkg / "high.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import ganlab.low.a\n")
    assert import_cycles({"ganlab": pkg}, runtime_only=True) == []
    assert import_cycles({"ganlab": pkg}) == [["ganlab.high", "ganlab.low.a"]]


def test_checking_a_configuration_loads_neither_torch_nor_the_study_package():
    probe = textwrap.dedent("""
        import sys, json
        from ganlab.config import TrainConfig
        TrainConfig(best_metric="val/psnr", tricks=()).validate()
        print(json.dumps(sorted(m for m in sys.modules if m == "torch" or m == "optuna" or m.startswith("ganlab.study"))))
    """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"

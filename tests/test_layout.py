"""The shape of the source tree: no import circles, harnesses out of the runtime, a light ``import anyedge``.

Every module under ``sdk/``, ``converters/`` and ``targets/`` is parsed with :mod:`ast` (never
imported): every import statement counts, lazy ones inside functions too, relative imports are
resolved, and the folders map onto the package as pyproject.toml maps them (``sdk`` ->
``anyedge``, ``converters`` -> ``anyedge.converters``, ``targets`` -> ``anyedge.targets``).
Imports under ``if TYPE_CHECKING:`` never run and do not count.

An edge goes to the module an import names: ``from anyedge.x import y`` reaches
``anyedge.x.y`` when that is a module, else ``anyedge.x``. The parent packages Python runs on the
way (``anyedge/__init__``...) are not edges. So a package ``__init__`` may import its submodules to
re-export them, but a submodule that takes a name from its own package (``from . import require``)
closes a circle with it: submodules import their siblings directly.

``targets/checks/`` holds the check harnesses (cross builds, qemu comparisons, install
resolution): developer and CI tools outside the wheel, never imported by the runtime.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROOTS = {"sdk": "anyedge", "converters": "anyedge.converters", "targets": "anyedge.targets"}
CHECKS = ROOT / "targets" / "checks"  # the harnesses: not part of the package

# Circles allowed while a restructuring is under way, each one strongly connected component (the
# modules that reach each other). The test fails when a listed circle is gone, so this only shrinks.
KNOWN_CIRCLES: list[frozenset[str]] = []


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    base = ROOTS[parts[0]].split(".")
    rest = parts[1:]
    if rest and rest[-1] == "__init__":
        rest = rest[:-1]
    return ".".join(base + rest)


def _runtime_files() -> dict[str, Path]:
    """Every module the package holds: name -> file."""
    out: dict[str, Path] = {}
    for top in ROOTS:
        for path in sorted((ROOT / top).rglob("*.py")):
            if path.is_relative_to(CHECKS) or "__pycache__" in path.parts:
                continue
            out[_module_name(path)] = path
    return out


def _harness_files() -> dict[str, Path]:
    """The check harnesses, by the name they are imported under (their folder is on sys.path)."""
    return {p.stem: p for p in sorted(CHECKS.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    """The module names one import statement reaches."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names}
    if node.level:
        package = module if is_package else module.rpartition(".")[0]
        parts = package.split(".")
        if node.level > 1:
            parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join(parts + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    out = set()
    for a in node.names:
        sub = f"{base}.{a.name}"
        out.add(sub if sub in known else base)
    return out


def _graph(files: dict[str, Path], known: set[str]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        reached: set[str] = set()
        for node in _imports(tree):
            reached |= _targets(name, path.name == "__init__.py", node, known)
        graph[name] = reached
    return graph


def _strongly_connected(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Tarjan's strongly connected components (iterative) over the modules in ``graph``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[frozenset[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start] & graph.keys())))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w] & graph.keys()))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = set()
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.add(w)
                        if w == v:
                            break
                    out.append(frozenset(comp))
    return out


def _cycle_in(comp: frozenset[str], graph: dict[str, set[str]]) -> list[str]:
    """One concrete circle through a component, to say where it closes."""
    start = min(comp)
    path, seen = [start], {start}
    while True:
        nxt = sorted(graph[path[-1]] & comp)
        back = [n for n in nxt if n in seen]
        if back:
            return path[path.index(back[0]):] + [back[0]]
        path.append(nxt[0])
        seen.add(nxt[0])


@pytest.fixture(scope="module")
def runtime() -> tuple[dict[str, Path], dict[str, set[str]]]:
    files = _runtime_files()
    return files, _graph(files, set(files))


def test_the_tree_maps_onto_the_package(runtime) -> None:
    files, _ = runtime
    assert {"anyedge", "anyedge.converters", "anyedge.targets", "anyedge.decoders.base",
            "anyedge.converters.api", "anyedge.targets.bnn.format"} <= set(files)


def test_the_graph_sees_lazy_and_relative_imports() -> None:
    tree = ast.parse("from . import a\nfrom .b import c\nfrom ..x import y\n"
                     "def f():\n    import anyedge.q\n    from anyedge import r\n"
                     "if TYPE_CHECKING:\n    from . import never\n")
    known = {"anyedge.p.a", "anyedge.x.y", "anyedge.p.b", "anyedge.r"}
    got = set()
    for node in _imports(tree):
        got |= _targets("anyedge.p.m", False, node, known)
    assert got == {"anyedge.p.a", "anyedge.p.b", "anyedge.x.y", "anyedge.q", "anyedge.r"}
    assert _targets("anyedge.p", True, ast.parse("from .s import t").body[0], set()) == {"anyedge.p.s"}


def test_the_circle_finder_finds_circles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "d"}, "e": set()}
    comps = [c for c in _strongly_connected(graph) if len(c) > 1]
    assert comps == [frozenset("abc")]
    assert _cycle_in(comps[0], graph) == ["a", "b", "c", "a"]


def test_no_import_circles(runtime) -> None:
    _, graph = runtime
    circles = [c for c in _strongly_connected(graph) if len(c) > 1]
    unexpected = [c for c in circles if c not in KNOWN_CIRCLES]
    report = "\n".join(f"  {', '.join(sorted(c))}; e.g. {' -> '.join(_cycle_in(c, graph))}" for c in unexpected)
    assert not unexpected, f"import circles (a module reaches itself through its imports):\n{report}"
    gone = [sorted(c) for c in KNOWN_CIRCLES if c not in circles]
    assert not gone, f"these circles are fixed; remove them from KNOWN_CIRCLES: {gone}"


def test_the_runtime_imports_no_check_harness(runtime) -> None:
    files, graph = runtime
    harnesses = set(_harness_files())
    assert {"bnn_check", "apps_check", "install_check", "c_toolchains"} <= harnesses
    bad = {m: sorted(t for t in reached if t.split(".")[0] in harnesses | {"tests", "benchmarks"}
                     or t.startswith("anyedge.targets.checks"))
           for m, reached in graph.items()}
    assert not {m: t for m, t in bad.items() if t}
    assert not any(".checks" in m for m in files)


def test_the_check_harnesses_import_the_installed_anyedge() -> None:
    """Run by path (``python targets/checks/bnn_check.py``), a harness has no package: absolute imports only."""
    relative = {name: [n.lineno for n in _imports(ast.parse(path.read_text())) if isinstance(n, ast.ImportFrom)
                       and n.level]
                for name, path in _harness_files().items()}
    assert not {name: lines for name, lines in relative.items() if lines}


def test_the_check_harnesses_are_not_packaged() -> None:
    """pyproject.toml packages no harness folder (tests/test_install.py checks the built wheel)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = {p: ROOT / d for p, d in setup["package-dir"].items()}
    for package in setup["packages"]:
        root = max((p for p in dirs if package == p or package.startswith(p + ".")), key=len)
        folder = dirs[root].joinpath(*package[len(root):].split(".")[1:])
        assert folder.is_dir(), package
        assert not folder.resolve().is_relative_to(CHECKS.resolve()), package
    assert not any(p.startswith(tuple(setup["package-data"])) and "check" in p for p in setup["packages"])


def test_import_anyedge_stays_light() -> None:
    """``import anyedge`` loads no engine, no converter, no OpenCV (the module list, not the time)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPROFILEIMPORTTIME"}
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", "import anyedge"], capture_output=True,
                       text=True, env=env, cwd=ROOT / "tests", timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    loaded = [line.rpartition("|")[2].strip() for line in r.stderr.splitlines() if line.startswith("import time:")]
    assert "anyedge" in loaded
    heavy = ("anyedge.engines", "anyedge.converters", "anyedge.targets.bnn._kernels", "cv2", "onnxruntime",
             "openvino", "ai_edge_litert", "tflite_runtime", "torch", "tensorflow", "onnx")
    bad = [m for m in loaded if any(m == h or m.startswith(h + ".") for h in heavy)]
    assert not bad, f"import anyedge loads {bad}"

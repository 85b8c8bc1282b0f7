"""The architecture as a test: reglab's top-level packages form layers, and a module may import
(at run time or only for type checking) from lower layers only. So there is no import circle,
the tuning and study layers do not import each other, the families (data, models, regularizers,
optimizers) never import the config that composes their settings, and the report reads only the
typed summary. Run ``pytest tests/test_layers.py -s`` to print the package graph."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "reglab"

# lower number = lower layer; a package may import only packages of a lower layer (and itself)
LAYERS: dict[str, float] = {
    "errors": 0,
    "status": 0,  # how a run ended (RunStatus), for both engines and the study
    "jsonsafe": 0,
    "urls": 0,
    "files": 0,
    "seeding": 0,  # seed_everything: Python, NumPy, torch and Keras (no reglab import)
    "imports": 0.5,  # objects named by reference (class_path)
    "registry": 0.5,
    "data": 1,
    "models": 1,
    "optim": 1,
    "tasks": 1,  # tasks, losses and metrics: names and directions that config validates
    "regularizers": 1.5,  # structural ones build layers for the models' hook sites
    "config": 2,  # composes the families' settings
    "space": 3,  # the search-space grammar of study files
    "training": 3,
    "stats": 3,
    "tuning": 4,
    "study": 5,
    "report": 5,
    "cli": 6,
    "__main__": 7,
    "reglab": 8,  # the package's __init__: re-exports from below, loaded lazily (seed_everything)
}


# inside study/: its sub-packages by role, each importing only lower ones (and itself)
STUDY_LAYERS: dict[str, float] = {
    "definition": 1,  # what a study is: the spec, the user's function's declaration
    "results": 2,  # outcomes, storage, results, outputs, saved models, tracking, console, progress
    "execution": 3,  # tasks, workers, executors, populations, Ray
    "protocol": 4,  # tune then confirm, coordination, lease, paths
    "__init__": 5,  # reglab.study's lazy public names
}


def package_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py") if rel.parts[0] != "__init__.py" else "reglab"


def imports() -> Counter[tuple[str, str]]:
    """(importing package, imported package) -> number of import statements, every import counted
    (inside functions and ``if TYPE_CHECKING`` blocks too)."""
    edges: Counter[tuple[str, str]] = Counter()
    for path in SRC.rglob("*.py"):
        src = package_of(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] == "reglab" and len(parts) > 1 and parts[1] != src:
                    edges[(src, parts[1])] += 1
    return edges


def test_every_package_has_a_layer() -> None:
    packages = {package_of(p) for p in SRC.rglob("*.py")} - {"reglab"}
    assert packages <= set(LAYERS), f"give {sorted(packages - set(LAYERS))} a layer in LAYERS"


def test_packages_import_only_lower_layers() -> None:
    edges = imports()
    upward = sorted(f"{a} -> {b} ({n}x)" for (a, b), n in edges.items() if LAYERS[b] >= LAYERS[a])
    assert not upward, "imports against the layering: " + "; ".join(upward)
    for (a, b), n in sorted(edges.items()):
        print(f"{a:>13} -> {b:<13} {n}")


@pytest.mark.parametrize("pair", [("study", "tuning"), ("config", "data"), ("study", "report")])
def test_formerly_circular_pairs_import_one_way_only(pair: tuple[str, str]) -> None:
    a, b = pair
    edges = imports()
    assert not ((a, b) in edges and (b, a) in edges), f"{a} and {b} import each other"


def _module_imports(path: Path) -> list[str]:
    """The reglab modules ``path`` imports (every import, lazy and type-only ones too); ``from
    package import module`` counts as importing the module."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
            out += [f"{node.module}.{a.name}" for a in node.names]
    return [m for m in out if m.startswith("reglab.")]


def _module_files() -> dict[str, Path]:
    files = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def test_study_subpackages_import_only_lower_layers() -> None:
    files = _module_files()
    study = SRC / "study"
    assert {p.name for p in study.iterdir() if p.is_dir() and p.name != "__pycache__"} | {"__init__"} == set(
        STUDY_LAYERS
    ), "give each sub-package of study/ a layer in STUDY_LAYERS"
    assert {p.name for p in study.glob("*.py")} == {"__init__.py"}, "study/'s modules live in its sub-packages"
    upward = []
    for name, path in files.items():
        if not name.startswith("reglab.study"):
            continue
        rel = path.relative_to(study)
        src = rel.parts[0] if len(rel.parts) > 1 else "__init__"
        for target in _module_imports(path):
            parts = target.split(".")
            if target in files and parts[:2] == ["reglab", "study"] and len(parts) > 3:
                dst = parts[2]
                if dst != src and STUDY_LAYERS[dst] >= STUDY_LAYERS[src]:
                    upward.append(f"{name} -> {target}")
    assert not upward, "imports against study/'s layering: " + "; ".join(sorted(set(upward)))


def test_study_modules_import_each_other_in_no_circle() -> None:
    """No circle of study/ modules importing each other, counting lazy and type-only imports (its
    package ``__init__`` modules included)."""
    files = {n: p for n, p in _module_files().items() if n.startswith("reglab.study")}
    graph = {
        name: sorted({t for t in _module_imports(path) if t in files and t != name}) for name, path in files.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not circles, "modules importing each other in a circle: " + "; ".join(", ".join(c) for c in circles)

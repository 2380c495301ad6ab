"""The house: one folder per concern, and imports that point one way.

:data:`RANKS` is the declared order of the pipeline (docs/design.md, "Where things live"): a module
may import its own folder and any folder of a lower rank, never a higher one nor a peer of the same
rank. Every grukit import counts, at module level or inside a function; the only imports deferred
into a function are the ones :data:`DEFERRED` names, each with its reason.
"""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from helpers import ROOT

RANKS = {
    "grukit.derive.errors": 0,
    "grukit.derive.cell": 1,
    "grukit.derive.numeric": 2,
    "grukit.derive.check": 3,
    "grukit.derive.layers": 3,
    "grukit.derive.files": 4,
    "grukit.derive.audit": 5,
    "grukit.codegen.render": 6,
    "grukit.codegen.output": 6,
    "grukit.codegen.latex": 6,
    "grukit.codegen.docs": 6,
    "grukit.codegen.sheets": 7,
    "grukit.codegen.kernels": 7,
    "grukit.codegen.pytorch": 8,
    "grukit.codegen.models": 8,
    "grukit.codegen.bench": 9,
    "grukit.codegen.grading": 9,
    "grukit.codegen.web": 9,
    "grukit.codegen.cli": 10,
}
"""Folder (or shared module) -> rank. Peers share a rank: check and layers; sheets and kernels;
pytorch and models; bench, grading and web; the four shared printing modules, which may import one
another (they are one folder's worth)."""

SHARED_PRINTING = {"grukit.codegen.render", "grukit.codegen.output", "grukit.codegen.latex", "grukit.codegen.docs"}

DEFERRED = {
    ("grukit.codegen.cli.conventions", "grukit.codegen.cli.cell"):
        "`grukit conventions` lists the presets without SymPy; one convention's equations need it",
    ("grukit.codegen.bench.run", "grukit.codegen.bench.pytorch"):
        "`grukit bench` says PyTorch is missing before anything imports it; the module steps import it",
    ("grukit.codegen.kernels.api", "grukit.codegen.kernels.emit"):
        "a preset's committed kernels load without SymPy and Jinja; only another convention is emitted",
}
"""(module, the grukit module it imports inside a function) -> why that import waits."""

PACKAGES = ("derive", "codegen")


# --- reading the import graph ----------------------------------------------------------------------

def modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of derive/ and codegen/ under ``root`` by its dotted name."""
    out = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(("grukit",) + parts).removesuffix(".__init__")
            out[name] = path
    return out


def imports(path: Path, known: set[str]) -> list[tuple[str, bool]]:
    """(grukit module imported, whether inside a function) for every import in a file; ``from
    grukit.x import y`` counts as importing ``grukit.x.y`` when that is a module."""
    tree = ast.parse(path.read_text())
    deferred = {id(node) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
                for node in ast.walk(fn) if isinstance(node, (ast.Import, ast.ImportFrom))}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("grukit") and not node.level:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.append((sub if sub in known else node.module, id(node) in deferred))
        elif isinstance(node, ast.ImportFrom) and node.level:
            pytest.fail(f"{path}:{node.lineno}: relative import (write grukit.<folder>.<module>)")
        elif isinstance(node, ast.Import):
            out += [(a.name, id(node) in deferred) for a in node.names if a.name.startswith("grukit")]
    return out


def unit(module: str) -> str | None:
    """The ranked folder or shared module that holds ``module``."""
    found = [u for u in RANKS if module == u or module.startswith(u + ".")]
    return max(found, key=len) if found else None


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import that points up the ranking or sideways to a peer."""
    out = []
    for module, targets in sorted(graph.items()):
        here = unit(module)
        for target in sorted(targets):
            there = unit(target)
            if here is None or there is None:
                if target.startswith(("grukit.derive", "grukit.codegen")) and target not in ("grukit.derive",
                                                                                              "grukit.codegen"):
                    out.append(f"{module} -> {target}: not in the ranking")
                continue
            same = here == there or {here, there} <= SHARED_PRINTING
            if not same and RANKS[there] >= RANKS[here]:
                kind = "a peer" if RANKS[there] == RANKS[here] else "upward"
                out.append(f"{module} -> {target}: {kind} ({here} rank {RANKS[here]}, {there} rank {RANKS[there]})")
    return out


def graph_of(root: Path = ROOT) -> dict[str, set[str]]:
    mods = modules(root)
    return {m: {t for t, _ in imports(p, set(mods))} - {m} for m, p in mods.items()}


# --- the rules --------------------------------------------------------------------------------------

def test_every_module_has_a_rank():
    assert [m for m in modules() if unit(m) is None and m not in ("grukit.derive", "grukit.codegen")] == []


def test_imports_point_one_way():
    assert violations(graph_of()) == []


def test_the_check_catches_an_upward_and_a_sideways_import(tmp_path):
    """The rule fails where it should: on a synthetic tree with a cell module importing the numeric
    layer, a check module importing layers, and a sheet importing the kernels."""
    files = {
        "derive/cell/a.py": "from grukit.derive.numeric import b\n",
        "derive/numeric/b.py": "from grukit.derive.cell import a\n",  # downward: allowed
        "derive/check/c.py": "def f():\n    from grukit.derive.layers.d import g\n",  # a peer, deferred
        "derive/layers/d.py": "g = 1\n",
        "codegen/sheets/e.py": "import grukit.codegen.kernels.f\n",
        "codegen/kernels/f.py": "from grukit.derive.errors import GrukitError\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    found = violations(graph_of(tmp_path))
    assert found == [
        "grukit.codegen.sheets.e -> grukit.codegen.kernels.f: a peer (grukit.codegen.sheets rank 7, "
        "grukit.codegen.kernels rank 7)",
        "grukit.derive.cell.a -> grukit.derive.numeric.b: upward (grukit.derive.cell rank 1, "
        "grukit.derive.numeric rank 2)",
        "grukit.derive.check.c -> grukit.derive.layers.d: a peer (grukit.derive.check rank 3, "
        "grukit.derive.layers rank 3)",
    ]


def test_imports_are_at_the_top_but_the_declared_ones():
    mods = modules()
    deferred = {(m, t) for m, p in mods.items() for t, inside in imports(p, set(mods)) if inside}
    assert deferred == set(DEFERRED)


def test_nothing_imports_the_command_line():
    for module, targets in graph_of().items():
        if not module.startswith("grukit.codegen.cli"):
            assert not [t for t in targets if t.startswith("grukit.codegen.cli")], module


def test_only_the_command_line_parses_arguments():
    for module, path in modules().items():
        if module.startswith("grukit.codegen.cli"):
            continue
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "argparse" not in names and "sys.argv" not in path.read_text(), module


def test_no_import_cycles():
    graph = graph_of()
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in state and d in graph:
                visit(d, stack + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


@pytest.mark.parametrize("folder", sorted({p.parent for p in modules().values()} - {ROOT / "derive", ROOT / "codegen"}),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_each_folder_says_its_concern_and_stays_small(folder):
    doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text()))
    assert doc and "May import" in doc, folder
    assert len([p for p in folder.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]) <= 12


def test_engines_registered_by_entry_point_live_above_the_registry():
    """derive/numeric finds the numba engine by its entry point, so derive/ imports nothing above it."""
    found = entry_points(group="grukit.engines")
    assert {e.name for e in found} == {"numba"}
    for e in found:
        module = e.value.partition(":")[0]
        assert RANKS[unit(module)] > RANKS["grukit.derive.numeric"], e


# --- habits -----------------------------------------------------------------------------------------

def test_codegen_prints_numbers_and_computes_none():
    """No emitter of text calls an engine's arithmetic, NumPy arithmetic or mpmath on values: the sheets,
    the shared printing and the command line print what derive/ computed (the kernels' loader and
    the benchmark call generated code and the frameworks, and are left out)."""
    forbidden = {"matvec", "outer", "apply", "scalar", "total", "add", "product_terms", "dot", "multiply",
                 "sum", "subtract", "abs"}
    for name, path in modules().items():
        if not name.startswith("grukit.codegen.") or unit(name) in ("grukit.codegen.kernels",
                                                                     "grukit.codegen.bench"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = node.func.value
                owner_name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
                if node.func.attr in forbidden and owner_name in ("np", "numpy", "eng", "engine", "mpmath"):
                    pytest.fail(f"{path.name}:{node.lineno} computes ({owner_name}.{node.func.attr})")
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
                pytest.fail(f"{path.name}:{node.lineno} multiplies matrices")


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is in the test extra")
def test_ruff_is_clean():
    proc = subprocess.run(["ruff", "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_file_cites_a_path_outside_the_repository():
    outside = ("/work/" + "shared", "../" + "shared")
    for path in [*ROOT.glob("*.md"), *ROOT.glob("docs/**/*.md"), *ROOT.glob("tests/**/*.py"),
                 *modules().values()]:
        assert not any(o in path.read_text() for o in outside), path


def test_the_command_runs_as_a_module():
    for module in ("grukit", "grukit.codegen.cli"):
        proc = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0 and proc.stdout.startswith("grukit "), proc.stderr

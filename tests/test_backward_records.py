"""The backward pass as explicit records: their shape for every convention, the named paths of an
adjoint (checked against the literal derivative of the expanded loss), and the project structure the
records make possible (one module for the index rules, no arithmetic in codegen/, no import cycles).
"""
from __future__ import annotations

import ast
from pathlib import Path

import mpmath
import pytest

from grukit.derive import explicit as ex
from grukit.derive.backward import (
    BiasRecord, LocalRecord, SumRecord, TransposedRecord, WeightRecord, backward_records,
)
from grukit.derive.evaluate import DIGITS
from grukit.derive.presets import PRESETS
from grukit.derive.problem import load_problem
from grukit.derive.solve import solve

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "docs" / "examples" / "course-notes.yaml"


@pytest.mark.parametrize("name", list(PRESETS))
def test_records_assign_every_adjoint_once_before_it_is_read(name):
    rec = backward_records(PRESETS[name])
    conv = PRESETS[name]
    assigned = {"h"}
    for r in rec.records:
        if isinstance(r, SumRecord):
            assert r.name not in assigned, f"{r.name} assigned twice"
            assert all(p.record.operand == r.name for p in r.paths)
            assigned.add(r.name)
        else:
            assert r.target in assigned, f"{type(r).__name__} reads delta {r.target} before it is complete"
    assert {"x", "h_prev"} <= assigned
    grads = [r.param for r in rec.records if isinstance(r, (WeightRecord, BiasRecord))]
    assert sorted(grads) == sorted(conv.parameters())  # each parameter's gradient exactly once per step
    contributions = [r for r in rec.records if isinstance(r, (LocalRecord, TransposedRecord))]
    on_paths = [p.record for r in rec.records if isinstance(r, SumRecord) for p in r.paths]
    assert sorted(map(id, contributions)) == sorted(map(id, on_paths))  # every contribution on one path


def test_course_notes_dL_dh0_splits_into_its_named_paths():
    """dL/dh0 = the sum of its four paths (exactly, 60 digits) = sympy.diff of the expanded loss; the
    notes' printed value keeps only two of them."""
    problem = load_problem(COURSE)
    sol = solve(problem, "exact", gradients=True)
    step = sol.gradient.steps[0]
    paths = {p.name: v for p, v in step.paths["h_prev"]}
    assert list(paths) == ["directly through the state update", "through the reset product r ⊙ h",
                           "through U_r (reset gate)", "through U_z (update gate)"]
    explicit = ex.problem_loss(problem)
    literal = ex.gradient(explicit, "diff", wrt=list(explicit.h0))
    for i in range(3):
        with mpmath.workdps(DIGITS):  # the engine's own working precision: the same additions, bit for bit
            total = sum(v[i] for v in paths.values())
        assert total == sol.gradient.h0[i]
        with mpmath.workdps(70):
            assert abs(total - literal.h0[i]) < mpmath.mpf("1e-55")
    notes = [-0.070, 0.145, -0.017]  # printed as dL/dh_{t-1} (docs/course-notes-errata.md)
    kept = [float(paths["directly through the state update"][i] + paths["through U_r (reset gate)"][i])
            for i in range(3)]
    assert max(abs(a - b) for a, b in zip(kept, notes)) < 2e-3


def test_reset_after_paths_name_the_framework_weights():
    rec = backward_records(PRESETS["pytorch"])
    names = [p.name for p in rec.sum_of("h_prev").paths]
    assert names == ["directly through the state update", "through W_hn (candidate)",
                     "through W_hr (reset gate)", "through W_hz (update gate)"]
    assert [p.name for p in backward_records(PRESETS["colah"]).sum_of("x").paths] == [
        "through W (candidate)", "through W_r (reset gate)", "through W_z (update gate)"]


# --- structure ---------------------------------------------------------------------------------

def _modules() -> dict[str, Path]:
    out = {}
    for folder in ("derive", "codegen"):
        for path in sorted((ROOT / folder).glob("*.py")):
            out[f"grukit.{folder}.{path.stem}".removesuffix(".__init__")] = path
    return out


def test_codegen_prints_numbers_and_computes_none():
    """No module under codegen/ calls an engine's arithmetic, NumPy arithmetic or mpmath on values."""
    forbidden = {"matvec", "outer", "apply", "scalar", "total", "add", "product_terms", "dot", "multiply",
                 "sum", "subtract", "abs"}
    for name, path in _modules().items():
        if not name.startswith("grukit.codegen.") or name.startswith("grukit.codegen.kernel") \
                or name == "grukit.codegen.bench":
            continue  # the kernel loader and the benchmark call generated code and the frameworks
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = node.func.value
                owner_name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
                if node.func.attr in forbidden and owner_name in ("np", "numpy", "eng", "engine", "mpmath"):
                    pytest.fail(f"{path.name}:{node.lineno} computes ({owner_name}.{node.func.attr})")
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
                pytest.fail(f"{path.name}:{node.lineno} multiplies matrices")


def test_the_affine_index_rules_live_in_one_module():
    """``M.T`` times an adjoint and the outer product into a weight are written in derive/backward.py only."""
    for name, path in _modules().items():
        text = path.read_text()
        if name == "grukit.derive.backward":
            assert "M.T" in text and "eng.outer" in text
            continue
        assert "matvec(M.T" not in text and ".outer(d_" not in text, name


def _imports(path: Path, module: str) -> set[str]:
    """Every grukit module ``module`` imports, at module level or inside functions."""
    out = set()
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] + ("." + base if base else "")
            if base.startswith("grukit"):
                out.add(base)
                out.update(f"{base}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("grukit"))
    return out


def test_no_import_cycles():
    modules = _modules()
    graph = {m: {d for d in _imports(p, m) if d in modules and d != m} for m, p in modules.items()}
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in state:
                visit(d, stack + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_no_module_over_500_lines():
    for path in _modules().values():
        lines = len(path.read_text().splitlines())
        assert lines <= 500, f"{path.relative_to(ROOT)} has {lines} lines"

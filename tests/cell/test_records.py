"""The backward pass as explicit records: their shape for every convention, the named paths of an
adjoint (checked against the literal derivative of the expanded loss), and the project structure the
records make possible (one module for the index rules, no arithmetic in codegen/, no import cycles).
"""
from __future__ import annotations

import mpmath
import pytest
from helpers import ROOT
from helpers.random_problems import CHECKED

from grukit.derive.cell.presets import PRESETS
from grukit.derive.cell.records import (
    BiasRecord,
    LocalRecord,
    SumRecord,
    TransposedRecord,
    WeightRecord,
    backward_records,
)
from grukit.derive.check import explicit as ex
from grukit.derive.files.problem_file import load_problem
from grukit.derive.numeric.evaluate import DIGITS
from grukit.derive.numeric.solve import solve

COURSE = ROOT / "docs" / "examples" / "course-notes.yaml"


@pytest.mark.parametrize("name", list(CHECKED))
def test_records_assign_every_adjoint_once_before_it_is_read(name):
    rec = backward_records(CHECKED[name])
    conv = CHECKED[name]
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


# --- one evaluator ---------------------------------------------------------------------------------

def test_the_affine_index_rules_live_in_one_module():
    """``M.T`` times an adjoint and the outer product into a weight are written in the records'
    one evaluator (derive/numeric/bptt.py) only."""
    for path in sorted([*(ROOT / "derive").rglob("*.py"), *(ROOT / "codegen").rglob("*.py")]):
        text = path.read_text()
        name = str(path.relative_to(ROOT))
        if name == "derive/numeric/bptt.py":
            assert "M.T" in text and "eng.outer" in text
            continue
        assert "matvec(M.T" not in text and ".outer(d_" not in text, name

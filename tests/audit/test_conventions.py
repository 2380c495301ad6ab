"""Conventions from course material (issue item 2): [x, h] concatenation, per-step softmax
cross-entropy, scalar problems -- each checked against references written here in NumPy
(forward formulas, central finite differences) and against numbers printed in a real source."""
from __future__ import annotations

import numpy as np
from helpers import EXAMPLES, copy_examples
from helpers.audit_mistakes import run

from grukit.codegen.cli.main import main
from grukit.derive.audit.audit import audit
from grukit.derive.audit.claims import load_claims
from grukit.derive.cell.equations import cell_equations
from grukit.derive.cell.presets import PRESETS
from grukit.derive.files.problem_file import load_problem
from grukit.derive.numeric.solve import solve

XH = """convention: {preset: course-notes, input_form: concatenated_xh}
inputs: [[0.5, -0.3], [0.2, 0.7], [-0.4, 0.1]]
h0: [0.1, -0.2]
weights:
  W_z: [[0.1, 0.2, 0.3, -0.1], [0.4, -0.2, 0.1, 0.2]]
  W_r: [[0.3, -0.1, 0.2, 0.1], [-0.2, 0.3, 0.1, -0.3]]
  W_h: [[0.2, 0.1, -0.3, 0.4], [0.1, -0.4, 0.2, 0.1]]
  b_z: [0.1, -0.1]
  b_r: [0.0, 0.2]
  b_h: [-0.1, 0.1]
loss:
  type: softmax_cross_entropy
  W_o: [[0.3, -0.2], [0.1, 0.4], [-0.3, 0.2]]
  b_o: [0.1, 0.0, -0.1]
  targets: [0, 2, 1]
"""
AXES = dict(orientation="column", update_rule="z_admits_new", reset="before")
W_O = np.array([[0.3, -0.2], [0.1, 0.4], [-0.3, 0.2]])
B_O = np.array([0.1, 0.0, -0.1])
TARGETS = [0, 2, 1]


def numpy_loss(cat: dict, inputs, h0) -> float:
    """Per-step softmax cross-entropy summed over t, the cell on [x, h] split into W | U by hand."""
    w = {}
    for g in "zrh":
        w["W_" + g], w["U_" + g] = cat["W_" + g][:, :2], cat["W_" + g][:, 2:]
        w["b_" + g] = cat["b_" + g]
    total = 0.0
    for s, y in zip(run(AXES, w, inputs, h0), TARGETS):
        o = W_O @ s["h"] + B_O
        total += np.log(np.exp(o).sum()) - o[y]
    return total


def test_x_first_concatenation_and_per_step_cross_entropy(tmp_path):
    (tmp_path / "p.yaml").write_text(XH)
    p = load_problem(tmp_path / "p.yaml")
    assert p.convention.input_form == "concatenated_xh" and p.loss.steps == (0, 1, 2)
    sol = solve(p, "numpy", gradients=True)
    cat = {k: np.array(v, float) for k, v in
           {p.convention.key(q): p.params[q] for q in p.convention.parameters()}.items()}
    inputs, h0 = np.array(p.inputs, float), np.array(p.h0, float)
    assert abs(sol.gradient.loss - numpy_loss(cat, inputs, h0)) < 1e-12
    eps = 1e-6
    for q in p.convention.parameters():
        key = p.convention.key(q)
        fd = np.zeros_like(cat[key])
        for i in np.ndindex(fd.shape):
            up, down = dict(cat), dict(cat)
            up[key], down[key] = cat[key].copy(), cat[key].copy()
            up[key][i] += eps
            down[key][i] -= eps
            fd[i] = (numpy_loss(up, inputs, h0) - numpy_loss(down, inputs, h0)) / (2 * eps)
        np.testing.assert_allclose(np.asarray(sol.gradient.params[q], float), fd, rtol=0, atol=1e-8)


def test_targets_must_be_one_per_step(tmp_path, capsys):
    (tmp_path / "p.yaml").write_text(XH.replace("targets: [0, 2, 1]", "targets: [0, 2]"))
    assert main(["grad", str(tmp_path / "p.yaml")]) == 2
    assert "loss.targets: expected 3 targets (one per step)" in capsys.readouterr().err


def test_scalar_problem_the_askers_own_numbers(tmp_path):
    """Seed 000's asker computed one step by hand (D = H = 1): z, r and the candidate as printed
    in the question are right to every digit printed; the prediction 0.9680257 is not reachable."""
    copy_examples(tmp_path, "keras-question-hand.yaml")
    (tmp_path / "c.yaml").write_text(
        "problem: keras-question-hand.yaml\nclaims:\n"
        "  z[1]: 1.2584154263246953e-8\n  r[1]: 0.99999999912\n  candidate[1]: -0.70691013301376\n")
    assert {r.claim.name: r.verdict for r in audit(load_claims(tmp_path / "c.yaml")).results} == \
        {"z[1]": "ok", "r[1]": "ok", "candidate[1]": "ok"}
    report = audit(load_claims(EXAMPLES / "keras-question-claims.yaml"))
    assert [r.verdict for r in report.results] == ["wrong"]
    assert report.results[0].diagnosis[0].startswith("no mistake in grukit's catalogue")


def test_the_stacking_order_is_the_products_operand_order():
    """[h, x] (Colah) and [x, h] differ only in the order of the stacked operands the stages read."""
    colah = PRESETS["colah"]
    assert cell_equations(colah).stage("a_z").products[0].operands == ("h_prev", "x")
    xh = colah.with_changes(input_form="concatenated_xh")
    assert cell_equations(xh).stage("a_z").products[0].operands == ("x", "h_prev")
    assert cell_equations(xh).stage("a_h").products[0].operands == ("x", "q")
    assert xh.concatenated and not PRESETS["course-notes"].concatenated

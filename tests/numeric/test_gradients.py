"""Gradients: loss heads, closed forms and per-step contributions, `grukit grad`, the course notes
(seed 001), the blog's two-step BPTT example (seed 003), and scale.

Every expected value here is independent of grukit's derivation: the derivative of the fully
expanded loss (:mod:`grukit.derive.check.explicit`, literal ``sympy.diff`` where the problem is small),
a NumPy formula written out in the test, or numbers printed in the sources.
"""
from __future__ import annotations

import json
import time
from fractions import Fraction
from pathlib import Path

import mpmath
import numpy as np
import pytest
import sympy as sp
from helpers import ROOT
from helpers.numpy_gru import gru_reference

from grukit.codegen.cli.main import main
from grukit.codegen.latex import backward_equations, parameter_gradient_tex
from grukit.derive.cell.convention import Param
from grukit.derive.cell.equations import Affine, cell_equations
from grukit.derive.cell.losses import loss_gradient
from grukit.derive.cell.presets import PRESETS
from grukit.derive.cell.records import backward_records
from grukit.derive.check import explicit as ex
from grukit.derive.errors import GrukitError
from grukit.derive.files.problem_file import load_problem, problem_from_mapping
from grukit.derive.numeric.bptt import backward
from grukit.derive.numeric.solve import solve

EXAMPLES = ROOT / "docs" / "examples"
TOL = 1e-40


@pytest.fixture(autouse=True)
def high_precision():
    with mpmath.workdps(70):
        yield


def tenths(rng, *shape):
    return (rng.integers(-9, 10, size=shape) / 10).round(1).tolist()


def mapping(name: str, D: int, H: int, T: int, loss: dict, seed: int = 0) -> dict:
    conv = PRESETS[name]
    rng = np.random.default_rng(seed)
    return {"convention": name, "inputs": tenths(rng, T, D), "h0": tenths(rng, H),
            "weights": {conv.key(p): tenths(rng, *conv.param_shape(p, D, H)) for p in conv.parameters()},
            "loss": loss}


def expanded_gap(problem) -> float:
    sol = solve(problem, "exact", gradients=True)
    explicit, grad = ex.problem_gradient(problem)
    assert abs(sol.gradient.loss - grad.loss) < TOL
    return max(ex.differences(sol, explicit, grad).values())


# --- 1. loss heads ------------------------------------------------------------------------------

HEADS = {
    "weighted_sum": lambda O, T, H: {"type": "weighted_sum", "G": [[0.5, -1.0, 0.3], [0.2, 0.7, -0.4]][:T]},
    "squared_error (T x H)": lambda O, T, H: {
        "type": "squared_error", "targets": [[0.1, -0.2, 0.3], [0.4, 0.0, -0.5]][:T]},
    "squared_error (T x O, output layer)": lambda O, T, H: {
        "type": "squared_error", "W_o": "W_o", "b_o": [0.1, -0.2], "targets": [[0.3, -0.3], [0.5, 0.1]][:T]},
    "softmax_cross_entropy (one-hot)": lambda O, T, H: {
        "type": "softmax_cross_entropy", "W_o": "W_o", "b_o": [0.1, -0.1], "target": [0, 1]},
    "softmax_cross_entropy (class index)": lambda O, T, H: {
        "type": "softmax_cross_entropy", "W_o": "W_o", "target": 1},
    "final_mse": lambda O, T, H: {"type": "final_mse", "target": [0.2, -0.1, 0.4]},
    "final_squared_error (output layer)": lambda O, T, H: {
        "type": "final_squared_error", "W_o": "W_o", "target": [0.3, -0.4]},
    "final_half_squared_error (output layer, bias)": lambda O, T, H: {
        "type": "final_half_squared_error", "W_o": "W_o", "b_o": [0.1, -0.2], "target": [0.3, -0.4]},
    "final_squared_error (state)": lambda O, T, H: {"type": "final_squared_error", "target": [0.2, -0.1, 0.4]},
}


def head_spec(head: str, name: str):
    spec = HEADS[head](2, 2, 3)
    if spec.get("W_o") == "W_o":
        W = [[0.4, -0.2, 0.3], [-0.1, 0.5, 0.2]]
        spec["W_o"] = W if PRESETS[name].orientation == "column" else np.array(W).T.tolist()
    return spec


def numpy_loss(problem_map: dict) -> float:
    """The loss written out in NumPy over the independent NumPy GRU (tests/helpers/numpy_gru.py)."""
    conv = PRESETS[problem_map["convention"]]
    params = {(p.role, p.gate): np.array(problem_map["weights"][conv.key(p)], float) for p in conv.parameters()}
    hs = [s["h"] for s in gru_reference(conv.axes(), params, np.array(problem_map["inputs"], float),
                                        np.array(problem_map["h0"], float))]
    loss = problem_map["loss"]
    column = conv.orientation == "column"

    def out(h):
        if "W_o" not in loss:
            return h
        W = np.array(loss["W_o"], float)
        return (W @ h if column else h @ W) + np.array(loss.get("b_o", 0.0), float)

    if loss["type"] == "weighted_sum":
        return sum(float(np.dot(g, h)) for g, h in zip(np.array(loss["G"], float), hs))
    if loss["type"] == "squared_error":
        return sum(0.5 * float(np.sum((out(h) - y) ** 2)) for h, y in zip(hs, np.array(loss["targets"], float)))
    if loss["type"] == "final_mse":
        return float(np.mean((hs[-1] - np.array(loss["target"], float)) ** 2))
    if loss["type"] in ("final_squared_error", "final_half_squared_error"):
        scale = 1.0 if loss["type"] == "final_squared_error" else 0.5
        return scale * float(np.sum((np.array(loss["target"], float) - out(hs[-1])) ** 2))
    o = out(hs[-1])
    y = np.eye(len(o))[loss["target"]] if isinstance(loss["target"], int) else np.array(loss["target"], float)
    return float(-np.sum(y * (o - np.log(np.sum(np.exp(o))))))


@pytest.mark.parametrize("name", ["course-notes", "d2l"])  # column and row output layers
@pytest.mark.parametrize("head", list(HEADS))
def test_loss_head_value_and_gradients(name, head):
    data = mapping(name, 2, 3, 2, head_spec(head, name), seed=len(head))
    problem = problem_from_mapping(data, Path("<test>"))
    sol = solve(problem, "exact", gradients=True)
    assert abs(float(sol.gradient.loss) - numpy_loss(data)) < 1e-12
    assert expanded_gap(problem) < TOL
    named = sol.named_gradients()
    if "W_o" in data["loss"]:
        assert np.shape(named["W_o"]) == np.shape(data["loss"]["W_o"])
        assert ("b_o" in named) == ("b_o" in data["loss"])


def test_class_index_target_is_the_one_hot_target():
    base = head_spec("softmax_cross_entropy (one-hot)", "course-notes")
    a = solve(problem_from_mapping(mapping("course-notes", 2, 3, 2, base), Path("a")), "exact", gradients=True)
    b = solve(problem_from_mapping(mapping("course-notes", 2, 3, 2, dict(base, target=1)), Path("b")), "exact",
              gradients=True)
    assert a.gradient.loss == b.gradient.loss
    for k, v in a.named_gradients().items():
        assert np.array_equal(np.asarray(v, dtype=object), np.asarray(b.named_gradients()[k], dtype=object))


def test_softmax_cross_entropy_uses_the_last_state_and_squared_error_every_step():
    ce_spec = head_spec("softmax_cross_entropy (one-hot)", "course-notes")
    ce = problem_from_mapping(mapping("course-notes", 2, 3, 3, ce_spec), Path("c"))
    assert ce.loss.steps == (2,)
    se_spec = head_spec("squared_error (T x H)", "course-notes")
    se = problem_from_mapping(mapping("course-notes", 2, 3, 2, se_spec), Path("s"))
    assert se.loss.steps == (0, 1)
    # the gradient of the last step's input under the cross-entropy head is not zero, and the loss
    # does not depend on anything after the last step (there is nothing after it)
    sol = solve(ce, "exact", gradients=True)
    assert any(v != 0 for v in sol.gradient.inputs[2])


@pytest.mark.parametrize("loss,message", [
    ({"type": "softmax_cross_entropy", "target": 0}, "W_o: missing"),
    ({"type": "softmax_cross_entropy", "W_o": [[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]], "target": 2},
     "class index 2 outside 0..1"),
    ({"type": "softmax_cross_entropy", "W_o": [[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]]}, "target: missing"),
    ({"type": "squared_error", "targets": [[0.1, 0.2, 0.3]]}, "targets: expected shape 2x3, got 1x3"),
    ({"type": "squared_error", "b_o": [0.1], "targets": [[0.1, 0.2, 0.3]] * 2}, "b_o: given without W_o"),
    ({"type": "weighted_sum"}, "G: missing"),
    ({"type": "final_mse", "target": [1, 2]}, "target: expected shape 3"),
    ({"type": "final_mse", "target": [1, 2, 3], "G": 1}, "G: unknown key for final_mse"),
    ({"type": "hinge"}, "unknown loss 'hinge'"),
    ([1, 2], "expected a mapping with a 'type'"),
])
def test_loss_head_errors_name_the_field(loss, message):
    with pytest.raises(GrukitError, match=message) as info:
        problem_from_mapping(mapping("course-notes", 2, 3, 2, loss), Path("p.yaml"))
    assert str(info.value).startswith("p.yaml: loss")


# --- 3. closed forms and per-step contributions -----------------------------------------------------

def test_closed_forms_print_as_matrix_formulas():
    eqs = backward_records(PRESETS["course-notes"])
    assert parameter_gradient_tex(eqs, Param("input_weight", "z")) == (
        r"\frac{\partial L}{\partial W_{z}}", r"\sum_{t} \delta a_{z,t} {x_{t}}^{\top}")
    assert parameter_gradient_tex(eqs, Param("recurrent_weight", "h")) == (
        r"\frac{\partial L}{\partial U_{h}}", r"\sum_{t} \delta a_{h,t} {q_{t}}^{\top}")
    assert parameter_gradient_tex(eqs, Param("input_bias", "r")) == (
        r"\frac{\partial L}{\partial b_{r}}", r"\sum_{t} \delta a_{r,t}")
    row = backward_records(PRESETS["d2l"])
    assert parameter_gradient_tex(row, Param("recurrent_weight", "z"))[1] == r"\sum_{t} {H_{t-1}}^{\top} \delta a_{z,t}"
    # dL/dh_{t-1} has all four paths (the ones the course notes drop included)
    lines = dict(backward_equations(backward_records(PRESETS["course-notes"])))
    rhs = lines[r"\delta h_{t-1}"]
    for term in (r"\delta h_{t} \odot \left(1 - z_{t}\right)", r"{U_{z}}^{\top} \delta a_{z,t}",
                 r"{U_{r}}^{\top} \delta a_{r,t}", r"\delta q_{t} \odot r_{t}"):
        assert term in rhs
    assert lines[r"\delta q_{t}"] == r"{U_{h}}^{\top} \delta a_{h,t}"


@pytest.mark.parametrize("name", list(PRESETS))
def test_closed_forms_evaluate_to_the_expanded_derivative(name):
    """dL/dM = sum_t delta_a_t v_t^T (column; v_t^T delta_a_t for row), dL/db = sum_t delta_a_t,
    computed from the per-step adjoints and forward values, equals the expanded derivative."""
    data = mapping(name, 2, 3, 3, {"type": "weighted_sum", "G": [[0.5, -1.0, 0.3], [0.2, 0.7, -0.4], [1, 0, -1]]},
                   seed=3)
    problem = problem_from_mapping(data, Path("<test>"))
    sol = solve(problem, "exact", gradients=True)
    explicit, grad = ex.problem_gradient(problem)
    conv = problem.convention
    column = conv.orientation == "column"
    for stage in cell_equations(conv).stages:
        if not isinstance(stage, Affine):
            continue
        for prod in stage.products:
            total = 0
            for step, trace in zip(sol.gradient.steps, sol.traces):
                operand = np.concatenate([trace.values[n] for n in prod.operands])
                outer = np.multiply.outer(step.adjoints[stage.target], operand)
                total = total + (outer if column else outer.T)
            gap = max(abs(a - b) for a, b in zip(np.ravel(total), np.ravel(grad.params[prod.param])))
            assert gap < TOL, (name, conv.key(prod.param))
        for bias in stage.biases:
            total = sum(step.adjoints[stage.target] for step in sol.gradient.steps)
            assert max(abs(a - b) for a, b in zip(total, grad.params[bias])) < TOL


def test_blog_per_step_contributions_sum_to_the_total():
    """Seed 003: the gradient is the contribution of the loss at t = 1 plus that of the loss at t = 2
    (the blog's red and green boxes); each contribution is the expanded derivative of that term."""
    problem = load_problem(EXAMPLES / "blog-bptt.yaml")
    assert problem.convention.name == "chung2014" and problem.steps == 2 and problem.loss.steps == (0, 1)
    sol = solve(problem, "exact", gradients=True)
    explicit = ex.problem_loss(problem)
    parts = []
    for t in (0, 1):
        g = backward(problem.convention, sol.params, sol.traces, sol.head, sol.engine, only_step=t)
        mine = ex.gradient(explicit, "diff", only_step=t)  # literal sympy.diff of the term at t
        for p in problem.convention.parameters():
            assert max(abs(a - b) for a, b in zip(np.ravel(g.params[p]), np.ravel(mine.params[p]))) < TOL
        assert max(abs(a - b) for a, b in zip(g.h0, mine.h0)) < TOL
        parts.append(g)
    for p in problem.convention.parameters():
        total = parts[0].params[p] + parts[1].params[p]
        assert max(abs(a - b) for a, b in zip(np.ravel(total), np.ravel(sol.gradient.params[p]))) < 1e-55
        assert any(v != 0 for v in np.ravel(parts[0].params[p]))  # every weight feels the t = 1 loss
    # the loss at t = 1 does not see the second input; the second step adds nothing to it
    assert all(v == 0 for v in parts[0].inputs[1])
    assert all(all(v == 0 for v in np.ravel(a)) for a in parts[0].steps[1].params.values())
    # and the whole gradient is the literal sympy.diff of the expanded loss
    assert max(ex.differences(sol, explicit, ex.gradient(explicit, "diff")).values()) < TOL


# --- 4. the CLI ---------------------------------------------------------------------------------

def run_json(capsys, *argv) -> dict:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("engine", ["exact", "numpy"])
def test_grad_json_has_every_gradient_named_as_the_problem_names_it(capsys, engine):
    out = run_json(capsys, "grad", str(EXAMPLES / "course-notes.yaml"), "--engine", engine, "--json")
    assert set(out) == {"loss", "grads", "inputs", "h0"}
    assert list(out["grads"]) == ["W_z", "W_r", "W_h", "U_z", "U_r", "U_h", "b_z", "b_r", "b_h", "W_o", "b_o"]
    problem = load_problem(EXAMPLES / "course-notes.yaml")
    explicit, grad = ex.problem_gradient(problem)
    theirs = dict(grad.named(explicit), inputs=grad.inputs, h0=grad.h0)
    ours = dict(out["grads"], inputs=out["inputs"], h0=out["h0"])
    for name, value in ours.items():
        assert np.shape(value) == np.shape(theirs[name]), name
        assert np.max(np.abs(np.array(value) - np.array(theirs[name], dtype=float))) < 1e-15, name
    assert np.shape(out["inputs"]) == (1, 2) and np.shape(out["h0"]) == (3,)
    assert abs(out["loss"] - float(grad.loss)) < 1e-15


def test_grad_json_layout_problem_uses_the_framework_arrays(capsys):
    out = run_json(capsys, "grad", str(EXAMPLES / "keras-layout.yaml"), "--json")
    assert {k: np.shape(v) for k, v in out["grads"].items()} == {
        "kernel": (2, 9), "recurrent_kernel": (3, 9), "bias": (2, 9)}
    problem = load_problem(EXAMPLES / "keras-layout.yaml")
    explicit, grad = ex.problem_gradient(problem)
    for name, value in grad.named(explicit).items():
        assert np.max(np.abs(np.array(out["grads"][name]) - np.array(value, dtype=float))) < 1e-15


def test_grad_check_flag(capsys):
    out = run_json(capsys, "grad", str(EXAMPLES / "blog-bptt.yaml"), "--check", "--json")
    assert out["check"]["max_difference"] < 1e-40
    assert set(out["check"]["by_name"]) == {"W_z", "W_r", "W", "U_z", "U_r", "U", "inputs", "h0"}
    capsys.readouterr()
    assert main(["grad", str(EXAMPLES / "course-notes.yaml"), "--check", "--engine", "numpy"]) == 0
    text = capsys.readouterr().out
    line = text.strip().splitlines()[-1]
    assert line.startswith("check: agrees with the derivative of the fully expanded loss to float64 rounding: "
                           "max difference ")
    assert float(line.split("max difference ")[1].split()[0]) < 1e-15


def test_grad_check_on_a_large_problem_is_refused_quickly(tmp_path, capsys):
    rng = np.random.default_rng(0)
    data = mapping("course-notes", 40, 40, 10, {"type": "weighted_sum", "G": rng.uniform(-1, 1, (10, 40)).tolist()})
    import yaml

    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(data))
    start = time.perf_counter()
    assert main(["grad", str(path), "--check"]) == 2  # refused before the (slow) exact solve
    assert time.perf_counter() - start < 5
    err = capsys.readouterr().err
    assert "too large for the fully expanded form" in err and err.count("\n") == 1


# --- 6. the course notes (seed 001) ------------------------------------------------------------------

# Every gradient the notes print (3 decimals, some 4), in their names.
NOTES = {
    "W_z": [[0.007, 0.005], [0.022, 0.016], [0.002, 0.002]],
    "U_z": [[0.005, -0.002, 0.003], [0.014, -0.005, 0.008], [0.002, -0.001, 0.001]],
    "W_r": [[-0.006, -0.004], [0.001, 0.001], [0.004, 0.003]],
    "U_r": [[-0.004, 0.001, -0.002], [0.001, -0.0002, 0.0003], [0.003, -0.001, 0.002]],
    "W_h": [[-0.096, -0.072], [0.104, 0.078], [-0.018, -0.014]],
    "U_h": [[-0.038, 0.013, -0.017], [0.041, -0.014, 0.019], [-0.007, 0.002, -0.003]],
    "b_z": [0.009, 0.027, 0.003],
    "b_r": [-0.007, 0.001, 0.005],
    "b_h": [-0.120, 0.130, -0.023],
    "W_o": [[-0.145, 0.007, -0.052], [0.145, -0.007, 0.052]],
    "b_o": [-0.400, 0.400],
}
NOTES_LOSS = 0.511
NOTES_DH_PREV = [-0.070, 0.145, -0.017]  # printed as dL/dh_{t-1}: wrong (docs/course-notes-errata.md)
ROUNDING = 1e-3  # the notes round every intermediate to 3 decimals; the products drift by < 1e-3
H0_FROM_EXPANDED = ["-0.096825881260285255567322135936376728449296277091289",
                    "0.14331813139105709158418212755862383340485495772253",
                    "0.013492936134705186071387325826773680940830228420928"]


@pytest.fixture(scope="module")
def notes_cli():
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["grad", str(EXAMPLES / "course-notes.yaml"), "--json"]) == 0
    return json.loads(buf.getvalue())


def test_course_notes_cli_returns_every_gradient_the_notes_compute(notes_cli):
    assert set(NOTES) <= set(notes_cli["grads"])
    assert abs(notes_cli["loss"] - NOTES_LOSS) < 5e-4
    for name, printed in NOTES.items():
        ours = np.array(notes_cli["grads"][name])
        assert ours.shape == np.shape(printed), name
        assert np.max(np.abs(ours - np.array(printed))) < ROUNDING, name


def test_course_notes_h0_gradient_is_the_expanded_derivative_not_the_notes(notes_cli):
    """dL/dh_{t-1}: literal sympy.diff of the fully expanded loss w.r.t. each entry of h_{t-1},
    evaluated at 50 digits, is [-0.0968, 0.1433, 0.0135]; grukit returns it; the notes' printed
    [-0.070, 0.145, -0.017] misses two of the four paths."""
    problem = load_problem(EXAMPLES / "course-notes.yaml")
    explicit = ex.problem_loss(problem)
    literal = ex.gradient(explicit, "diff", wrt=list(explicit.h0))
    for entry, pinned in zip(literal.h0, H0_FROM_EXPANDED):
        assert abs(entry - mpmath.mpf(pinned)) < 1e-45
    exact = solve(problem, "exact", gradients=True).gradient.h0
    assert max(abs(a - b) for a, b in zip(exact, literal.h0)) < TOL
    assert np.max(np.abs(np.array(notes_cli["h0"]) - np.array(H0_FROM_EXPANDED, dtype=float))) < 1e-15
    gap = np.abs(np.array(NOTES_DH_PREV) - np.array(H0_FROM_EXPANDED, dtype=float))
    assert gap[0] > 0.02 and gap[2] > 0.02  # far beyond the notes' rounding


def test_course_notes_error_is_the_two_missing_paths():
    """Written out in NumPy: the notes keep dh*(1-z) and U_r^T da_r; adding U_z^T da_z and
    (U_h^T da_h)*r gives the expanded derivative (numbers in docs/course-notes-errata.md)."""
    p = load_problem(EXAMPLES / "course-notes.yaml")
    w = {p.convention.key(k): np.array(v, float) for k, v in p.params.items()}
    x, h = np.array(p.inputs[0], float), np.array(p.h0, float)
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    r = sig(w["W_r"] @ x + w["U_r"] @ h + w["b_r"])
    z = sig(w["W_z"] @ x + w["U_z"] @ h + w["b_z"])
    c = np.tanh(w["W_h"] @ x + w["U_h"] @ (r * h) + w["b_h"])
    h1 = (1 - z) * h + z * c
    W_o, b_o = np.array(p.loss.W_o, float), np.array(p.loss.b_o, float)
    o = W_o @ h1 + b_o
    d_o = np.exp(o) / np.exp(o).sum() - np.array([1, 0])
    d_h = W_o.T @ d_o
    d_ah = d_h * z * (1 - c ** 2)
    d_az = d_h * (c - h) * z * (1 - z)
    d_q = w["U_h"].T @ d_ah
    d_ar = d_q * h * r * (1 - r)
    kept = d_h * (1 - z) + w["U_r"].T @ d_ar
    missing = w["U_z"].T @ d_az + d_q * r
    assert np.max(np.abs(kept - NOTES_DH_PREV)) < 2e-3
    assert np.max(np.abs(kept + missing - np.array(H0_FROM_EXPANDED, dtype=float))) < 1e-15
    np.testing.assert_allclose(missing, [-0.02662, -0.00220, 0.02999], atol=1e-5)


# --- 7. scale -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(PRESETS))
def test_per_unit_derivation_does_not_grow_with_size(name, monkeypatch):
    """The cell is differentiated per unit: solving D=2, H=3 and D=12, H=20 asks sympy.diff the same
    number of times and derives the same records (an entry-by-entry derivation would grow with D*H)."""
    calls = []
    diff = sp.diff
    monkeypatch.setattr(sp, "diff", lambda *a, **k: calls.append(1) or diff(*a, **k))
    loss = {"type": "softmax_cross_entropy", "W_o": "W_o", "target": 1}
    derived = []
    for D, H in ((2, 3), (12, 20)):
        cell_equations.cache_clear()
        backward_records.cache_clear()
        loss_gradient.cache_clear()
        data = mapping(name, D, H, 2, loss)
        shape = (2, H) if PRESETS[name].orientation == "column" else (H, 2)
        data["loss"]["W_o"] = tenths(np.random.default_rng(1), *shape)
        calls.clear()
        start = time.perf_counter()
        solve(problem_from_mapping(data, Path("<size>")), "numpy", gradients=True)
        derived.append((len(calls), backward_records(PRESETS[name]), time.perf_counter() - start))
    assert derived[0][0] == derived[1][0] > 0
    assert derived[0][1] == derived[1][1]
    assert derived[1][2] < 5


def test_numbers_at_large_H_use_the_per_unit_form():
    """H = 48 (a loss term with 96 symbols: numpy's ufuncs take at most 64 operands) in both engines."""
    rng = np.random.default_rng(0)
    D, H, T = 4, 48, 2
    data = mapping("pytorch", D, H, T, {"type": "weighted_sum", "G": rng.uniform(-1, 1, (T, H)).round(2).tolist()})
    problem = problem_from_mapping(data, Path("<big>"))
    start = time.perf_counter()
    a = solve(problem, "numpy", gradients=True)
    b = solve(problem, "exact", gradients=True)
    assert time.perf_counter() - start < 60
    for k, v in a.named_gradients().items():
        assert np.max(np.abs(np.asarray(v, float) - np.asarray(b.named_gradients()[k], float))) < 1e-12
    # one entry against the literal derivative is too costly here; finite differences in float64:
    p = next(q for q in problem.convention.parameters() if problem.convention.key(q) == "W_hn")

    def loss_with(delta):
        changed = problem_from_mapping(data, Path("<big>"))
        changed.params[p] = changed.params[p].copy()
        changed.params[p][3, 5] += Fraction(delta)
        return float(solve(changed, "numpy", gradients=True).gradient.loss)

    eps = 1e-6
    fd = (loss_with(eps) - loss_with(-eps)) / (2 * eps)
    assert abs(fd - float(b.gradient.params[p][3, 5])) < 1e-8


def test_symbolic_engine_symbols_are_exact():
    """The expanded loss holds exact rationals (0.1 is 1/10), so its derivative is of the exact problem."""
    problem = load_problem(EXAMPLES / "course-notes.yaml")
    explicit = ex.problem_loss(problem)
    assert all(isinstance(v, sp.Rational) for v in explicit.values.values())
    assert explicit.values[explicit.h0[0]] == sp.Rational(1, 2)

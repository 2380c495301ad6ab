"""grukit.derive.check.explicit: the fully expanded loss and its derivative, checked on its own.

The module is the independent reference for every gradient test, so it is first tested against
things that know nothing of GRUs: ``sympy.diff`` + SymPy's own ``evalf`` on small hand-written
expressions, and its two differentiation methods against each other. Then its size limits: a
problem too large for explicit symbolic work is refused at once with a clear message.
"""
from __future__ import annotations

import time
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import sympy as sp
from helpers.random_problems import random_problem

from grukit.derive.cell.presets import PRESETS
from grukit.derive.check import explicit as ex
from grukit.derive.errors import GrukitError
from grukit.derive.numeric.solve import solve

TOL = mpmath.mpf("1e-45")


@pytest.fixture(autouse=True)
def high_precision():
    """mpmath numbers compare at the working precision: make it 70 digits for every test here."""
    with mpmath.workdps(70):
        yield


def max_gap(a: ex.ExplicitGradient, b: ex.ExplicitGradient):
    keys = set(a.by_symbol) & set(b.by_symbol)
    assert keys
    return max(abs(a.by_symbol[s] - b.by_symbol[s]) for s in keys)


# --- the graph walker on expressions that have nothing to do with a GRU ----------------------------

x, y = sp.symbols("x y", real=True)


@pytest.mark.parametrize("expr", [
    x * sp.exp(y) + sp.tanh(x * y) / (1 + x ** 2),
    sp.log(1 + sp.exp(x)) - sp.log(sp.exp(x) + sp.exp(2 * y)) * y ** 3,
    1 / (1 + sp.exp(-(x - 2 * y))) * (x - sp.Rational(1, 3)) ** 2,
])
def test_graph_gradient_matches_sympy_diff_and_evalf(expr):
    values = {x: sp.Rational(3, 10), y: sp.Rational(-7, 10)}
    value, grads = ex.graph_gradient(expr, values, [x, y], 60)
    assert abs(value - mpmath.mpf(str(expr.xreplace(values).evalf(60)))) < mpmath.mpf("1e-55")
    for s in (x, y):
        want = sp.diff(expr, s).xreplace(values).evalf(60)
        assert abs(grads[s] - mpmath.mpf(str(want))) < mpmath.mpf("1e-55"), s


def test_piecewise_derivative_is_zero_at_the_kinks_and_the_slope_inside():
    clip = sp.Piecewise((0, x <= -1), (1, x >= 1), (x / 2 + sp.Rational(1, 2), True))
    expr = clip * y
    for at, slope in ((-1, 0), (1, 0), (0, sp.Rational(1, 2)), (-2, 0), (sp.Rational(1, 2), sp.Rational(1, 2))):
        values = {x: sp.Integer(at) if isinstance(at, int) else at, y: sp.Integer(3)}
        _, grads = ex.graph_gradient(expr, values, [x], 30)
        assert grads[x] == 3 * slope, at
        # and what sympy.diff of the Piecewise says at the same point
        assert sp.diff(expr, x).xreplace(values) == 3 * slope


def test_hard_sigmoid_kink_gets_derivative_zero_like_the_frameworks():
    """keras2's gate clip(0.2 a + 0.5) with a_z = -5/2 and a_r = 5/2 exactly: both at a kink."""
    zero = [[0]]
    p = random_problem("keras2", 1, 1, 2, seed=3, W_z=zero, U_z=zero, b_z=[Fraction(-5, 2)],
                       W_r=zero, U_r=zero, b_r=[Fraction(5, 2)])
    sol = solve(p, "exact", gradients=True)
    explicit, grad = ex.problem_gradient(p)
    bz = next(q for q in p.convention.parameters() if p.convention.key(q) == "b_z")
    br = next(q for q in p.convention.parameters() if p.convention.key(q) == "b_r")
    assert grad.params[bz][0] == 0 and sol.gradient.params[bz][0] == 0
    assert grad.params[br][0] == 0 and sol.gradient.params[br][0] == 0
    assert max(ex.differences(sol, explicit, grad).values()) < 1e-45


# --- the two methods agree ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["course-notes", "keras2", "homework", "colah", "pytorch"])
def test_literal_diff_and_graph_agree(name):
    explicit = ex.problem_loss(random_problem(name, 1, 2, 2, seed=11))
    graph = ex.gradient(explicit, "graph")
    literal = ex.gradient(explicit, "diff")
    assert abs(graph.loss - literal.loss) < TOL
    assert max_gap(graph, literal) < TOL


def test_wrt_restricts_the_symbols_and_only_step_keeps_one_term():
    explicit = ex.problem_loss(random_problem("chung2014", 2, 2, 2, seed=5))
    some = explicit.all_symbols()[::7]
    part = ex.gradient(explicit, "diff", wrt=some)
    assert set(part.by_symbol) == set(some)
    entries = [v for a in list(part.params.values()) + [part.inputs, part.h0] for v in np.ravel(a)]
    assert sum(mpmath.isnan(v) for v in entries) == len(entries) - len(some)
    full = ex.gradient(explicit)
    terms = [ex.gradient(explicit, only_step=t) for t in explicit.steps]
    for s in explicit.all_symbols():
        assert abs(sum(g.by_symbol[s] for g in terms) - full.by_symbol[s]) < TOL
    # the first step's loss term does not depend on the second step's input
    assert all(terms[0].inputs[1, j] == 0 for j in range(2))
    with pytest.raises(GrukitError, match="carries no loss term"):
        ex.gradient(explicit, only_step=5)


def test_expanded_loss_value_is_the_exact_engine_loss():
    p = random_problem("onnx", 2, 3, 3, seed=2)
    explicit = ex.problem_loss(p)
    value = ex.evaluate(explicit.expr, explicit.values)
    assert abs(value - solve(p, "exact", gradients=True).gradient.loss) < TOL


def test_expanded_loss_has_no_grukit_sigmoid_and_one_symbol_per_number():
    from grukit.derive.cell.functions import sigmoid

    p = random_problem("course-notes", 2, 3, 2, seed=1)
    explicit = ex.problem_loss(p)
    assert not explicit.expr.has(sigmoid)
    symbols = explicit.all_symbols()
    assert len(symbols) == len(set(symbols)) == len(explicit.values)
    assert explicit.expr.free_symbols <= set(symbols)


# --- scale and limits ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(PRESETS))
def test_explicit_derivation_at_D3_H3_T4_is_fast_and_agrees(name):
    p = random_problem(name, 3, 3, 4, seed=7)
    start = time.perf_counter()
    explicit, grad = ex.problem_gradient(p)
    elapsed = time.perf_counter() - start
    assert elapsed < 10, f"{name}: explicit derivation took {elapsed:.1f} s"
    sol = solve(p, "exact", gradients=True)
    assert max(ex.differences(sol, explicit, grad).values()) < 1e-40


def test_too_large_for_the_graph_method_is_refused_at_once():
    p = random_problem("course-notes", 64, 64, 8, seed=0)
    start = time.perf_counter()
    with pytest.raises(GrukitError, match=r"D=64, H=64, T=8 is too large .*per-unit derivation"):
        ex.problem_loss(p)
    assert time.perf_counter() - start < 1


def test_too_large_for_literal_diff_is_refused_with_a_hint():
    explicit = ex.problem_loss(random_problem("course-notes", 3, 3, 4, seed=0))
    start = time.perf_counter()
    with pytest.raises(GrukitError, match="explicit \\(diff\\).*'graph' method scales further"):
        ex.gradient(explicit, "diff")
    assert time.perf_counter() - start < 1
    with pytest.raises(GrukitError, match="unknown method"):
        ex.gradient(explicit, "finite-differences")


def _distinct_nodes(expr: sp.Expr) -> int:
    """How many distinct sub-expressions ``expr`` has (what the graph method visits)."""
    seen, stack = set(), [expr]
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(node.args)
    return len(seen)


def _tree_size(expr: sp.Expr, memo: dict) -> int:
    """How many nodes ``expr`` has as a tree, shared sub-expressions counted at every use (what the
    literal derivative copies)."""
    if expr not in memo:
        memo[expr] = 1 + sum(_tree_size(a, memo) for a in expr.args)
    return memo[expr]


@pytest.mark.parametrize("name", ["course-notes", "pytorch", "homework"])
@pytest.mark.parametrize("D, H, T", [(1, 1, 1), (2, 3, 2), (3, 3, 4), (4, 2, 2), (1, 4, 3), (6, 6, 2)])
def test_graph_cost_estimates_the_measured_node_count(name, D, H, T):
    """graph_cost is within a factor 2.5 of the distinct nodes of the real expanded loss (measured:
    0.68 to 2.0 times the estimate), so MAX_GRAPH_COST, set from timings, means what it says."""
    measured = _distinct_nodes(ex.problem_loss(random_problem(name, D, H, T, seed=1)).expr)
    assert 0.4 <= measured / ex.graph_cost(D, H, T) <= 2.5, measured


@pytest.mark.parametrize("name", ["course-notes", "pytorch"])
@pytest.mark.parametrize("D, H", [(1, 1), (1, 2), (2, 3)])
def test_diff_cost_grows_per_step_like_the_measured_tree(name, D, H):
    """diff_cost multiplies by 3H + 1 per step; the expanded loss's tree, which the literal
    derivative copies, grows by 1 to 2.5 times that per step (1.46 to 2.06 measured): the estimate
    errs low by a bounded factor per step, which MAX_DIFF_COST (set from timings) absorbs."""
    sizes = []
    for T in (1, 2):
        sizes.append(_tree_size(ex.problem_loss(random_problem(name, D, H, T, seed=1)).expr, {}))
    estimated = ex.diff_cost(D, H, 2) / ex.diff_cost(D, H, 1)
    assert estimated == 3 * H + 1
    assert 1 <= (sizes[1] / sizes[0]) / estimated <= 2.5, sizes


def test_size_limits_accept_and_refuse_the_documented_sizes():
    assert ex.graph_cost(3, 3, 4) < ex.MAX_GRAPH_COST
    assert ex.diff_cost(2, 3, 2) < ex.MAX_DIFF_COST < ex.diff_cost(3, 3, 4)
    assert ex.graph_cost(32, 32, 4) < ex.MAX_GRAPH_COST < ex.graph_cost(64, 64, 8)


LAYOUT_ARRAYS = {
    "keras": {"kernel": (2, 6), "recurrent_kernel": (2, 6), "bias": (2, 6)},
    "pytorch": {"weight_ih_l0": (6, 2), "weight_hh_l0": (6, 2), "bias_ih_l0": (6,), "bias_hh_l0": (6,)},
    "onnx": {"W": (1, 6, 2), "R": (1, 6, 2), "B": (1, 12)},
}


@pytest.mark.parametrize("name,layout", [("keras", "keras"), ("pytorch", "pytorch"), ("onnx", "onnx"),
                                         ("onnx-lbr1", "onnx")])
def test_layout_problems_name_their_gradients_like_the_framework(tmp_path, name, layout):
    rng = np.random.default_rng(0)
    arrays = {k: rng.uniform(-1, 1, shape) for k, shape in LAYOUT_ARRAYS[layout].items()}
    np.savez(tmp_path / "w.npz", **arrays)
    (tmp_path / "p.yaml").write_text(
        f"convention: {name}\ninputs: [[0.1, 0.2], [0.3, -0.4]]\nh0: [0.5, -0.5]\n"
        f"weights: {{layout: {layout}, file: w.npz}}\nloss: {{type: weighted_sum, G: [[1, 0], [0.5, -1]]}}\n")
    from grukit.derive.files.problem_file import load_problem

    p = load_problem(tmp_path / "p.yaml")
    explicit, grad = ex.problem_gradient(p)
    named = grad.named(explicit)
    assert {k: np.shape(v) for k, v in named.items()} == {k: v.shape for k, v in arrays.items()}
    assert max(ex.differences(solve(p, "exact", gradients=True), explicit, grad).values()) < 1e-40

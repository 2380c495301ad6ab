"""Check 5b: grukit's float64 gradients against central finite differences, on random problems.

Hypothesis draws the convention (any preset), the sizes, the loss head (each of the four, with and
without an output layer) and the numbers. The finite differences are taken of a loss computed
*without grukit*: the forward pass is ``tests/helpers/numpy_gru.py`` (a NumPy GRU written from the papers
and framework docs) and each loss head is written out below in NumPy. Requirement: normwise
relative error ``max |grad - fd| / max(max |grad|, 1e-2)`` below 1e-6 (measured: ~1e-9).
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from helpers.numpy_gru import gru_reference
from helpers.random_problems import CHECKED
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from grukit.derive.audit.compare import convention_spec
from grukit.derive.files.problem_file import problem_from_mapping
from grukit.derive.numeric.solve import solve

EPS = 1e-6
REL_TOL = 1e-6
KINKS = {"hard_sigmoid_keras2": (-2.5, 2.5), "hard_sigmoid_keras3": (-3.0, 3.0)}
HEADS = ["weighted_sum", "squared_error", "squared_error+output", "softmax_cross_entropy",
         "softmax_cross_entropy+index", "final_mse", "final_squared_error+output", "final_half_squared_error"]


def to_list(a: np.ndarray):
    return a.tolist()


def build(name: str, D: int, H: int, T: int, head: str, O: int, seed: int):
    """A problem mapping (as a YAML file would give it) with float64 numbers, and the raw arrays."""
    conv = CHECKED[name]
    rng = np.random.default_rng(seed)
    weights = {conv.key(p): rng.uniform(-1, 1, conv.param_shape(p, D, H)) for p in conv.parameters()}
    inputs = rng.uniform(-1, 1, (T, D))
    h0 = rng.uniform(-0.5, 0.5, H)
    column = conv.orientation == "column"
    loss: dict = {}
    if head == "weighted_sum":
        loss = {"type": "weighted_sum", "G": rng.uniform(-1, 1, (T, H))}
    elif head == "squared_error":
        loss = {"type": "squared_error", "targets": rng.uniform(-1, 1, (T, H))}
    elif head == "final_mse":
        loss = {"type": "final_mse", "target": rng.uniform(-1, 1, H)}
    elif head == "final_half_squared_error":
        loss = {"type": "final_half_squared_error", "target": rng.uniform(-1, 1, H)}
    else:
        loss = {"W_o": rng.uniform(-1, 1, (O, H) if column else (H, O)), "b_o": rng.uniform(-0.5, 0.5, O)}
        if head == "squared_error+output":
            loss.update(type="squared_error", targets=rng.uniform(-1, 1, (T, O)))
        elif head == "final_squared_error+output":
            loss.update(type="final_squared_error", target=rng.uniform(-1, 1, O))
        elif head == "softmax_cross_entropy":
            p = rng.uniform(0, 1, O)
            loss.update(type="softmax_cross_entropy", target=p / p.sum())  # a soft target
        else:
            loss.update(type="softmax_cross_entropy", target=int(rng.integers(O)))
    mapping = {"convention": convention_spec(conv), "inputs": to_list(inputs), "h0": to_list(h0),
               "weights": {k: to_list(v) for k, v in weights.items()},
               "loss": {k: (to_list(v) if isinstance(v, np.ndarray) else v) for k, v in loss.items()}}
    return mapping


# --- the independent loss ----------------------------------------------------------------------

def numpy_loss(name: str, weights: dict, inputs, h0, loss: dict) -> float:
    conv = CHECKED[name]
    params = {(p.role, p.gate): np.asarray(weights[conv.key(p)], dtype=float) for p in conv.parameters()}
    hs = [s["h"] for s in gru_reference(conv.axes(), params, inputs, h0)]
    column = conv.orientation == "column"

    def out(h):
        if "W_o" not in loss:
            return h
        W = np.asarray(loss["W_o"], dtype=float)
        return (W @ h if column else h @ W) + np.asarray(loss.get("b_o", 0.0), dtype=float)

    kind = loss["type"]
    if kind == "weighted_sum":
        return float(sum(np.dot(g, h) for g, h in zip(np.asarray(loss["G"], dtype=float), hs)))
    if kind == "squared_error":
        return float(sum(0.5 * np.sum((out(h) - y) ** 2) for h, y in zip(hs, np.asarray(loss["targets"], dtype=float))))
    if kind == "final_mse":
        return float(np.mean((hs[-1] - np.asarray(loss["target"], dtype=float)) ** 2))
    if kind in ("final_squared_error", "final_half_squared_error"):
        scale = 1.0 if kind == "final_squared_error" else 0.5
        return scale * float(np.sum((np.asarray(loss["target"], dtype=float) - out(hs[-1])) ** 2))
    o = out(hs[-1])
    target = loss["target"]
    y = np.eye(len(o))[target] if isinstance(target, int) else np.asarray(target, dtype=float)
    log_softmax = o - (np.max(o) + np.log(np.sum(np.exp(o - np.max(o)))))
    return float(-np.sum(y * log_softmax))


def finite_differences(name: str, mapping: dict) -> dict[str, np.ndarray]:
    weights = {k: np.array(v, dtype=float) for k, v in mapping["weights"].items()}
    inputs = np.array(mapping["inputs"], dtype=float)
    h0 = np.array(mapping["h0"], dtype=float)
    loss = {k: (np.array(v, dtype=float) if isinstance(v, list) else v) for k, v in mapping["loss"].items()}
    arrays = dict(weights)
    arrays["inputs"], arrays["h0"] = inputs, h0
    for k in ("W_o", "b_o"):
        if k in loss:
            arrays[k] = loss[k]

    def f():
        return numpy_loss(name, weights, inputs, h0, loss)

    grads = {}
    for key, arr in arrays.items():
        g = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            keep = arr[idx]
            arr[idx] = keep + EPS
            up = f()
            arr[idx] = keep - EPS
            down = f()
            arr[idx] = keep
            g[idx] = (up - down) / (2 * EPS)
        grads[key] = g
    return grads


def away_from_kinks(name: str, solution) -> bool:
    kinks = KINKS.get(CHECKED[name].gate_activation)
    if kinks is None:
        return True
    pre = np.concatenate([np.ravel(np.asarray(tr.values[q], dtype=float))
                          for tr in solution.traces for q in ("a_z", "a_r")])
    return bool(np.min(np.abs(pre[:, None] - np.array(kinks)[None, :])) > 1e-3)


def check(name: str, D: int, H: int, T: int, head: str, O: int, seed: int, drawn: bool = False) -> float:
    mapping = build(name, D, H, T, head, O, seed)
    problem = problem_from_mapping(mapping, Path(f"<{name}>"))
    sol = solve(problem, "numpy", gradients=True)
    if not away_from_kinks(name, sol):  # finite differences straddle a hard sigmoid's kink
        if drawn:
            assume(False)
        pytest.skip("a gate pre-activation within 1e-3 of a hard-sigmoid kink")
    ours = dict(sol.named_gradients())
    ours["inputs"], ours["h0"] = sol.gradient.inputs, sol.gradient.h0
    fd = finite_differences(name, mapping)
    assert set(ours) == set(fd)
    loss = numpy_loss(name, {k: np.array(v, dtype=float) for k, v in mapping["weights"].items()},
                      np.array(mapping["inputs"]), np.array(mapping["h0"]),
                      {k: (np.array(v, dtype=float) if isinstance(v, list) else v) for k, v in mapping["loss"].items()})
    assert abs(sol.gradient.loss - loss) <= 1e-12 * max(1.0, abs(loss))
    scale = max(1e-2, max(float(np.max(np.abs(np.asarray(v, dtype=float)))) for v in ours.values()))
    worst = max(float(np.max(np.abs(np.asarray(ours[k], dtype=float) - fd[k]))) for k in fd)
    rel = worst / scale
    assert rel < REL_TOL, f"{name} D={D} H={H} T={T} {head}: relative error {rel:.2e}"
    return rel


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(CHECKED)), D=st.integers(1, 3), H=st.integers(1, 3), T=st.integers(1, 3),
       head=st.sampled_from(HEADS), O=st.integers(2, 3), seed=st.integers(0, 2 ** 32 - 1))
def test_gradients_match_central_finite_differences(name, D, H, T, head, O, seed):
    check(name, D, H, T, head, O, seed, drawn=True)


@pytest.mark.parametrize("name", sorted(CHECKED))
@pytest.mark.parametrize("head", HEADS)
def test_every_preset_and_head_once(name, head):
    """The same check on a fixed grid, so that each (preset, head) pair runs in every CI run."""
    check(name, 2, 3, 2, head, 2, seed=sum(map(ord, name + head)))


def test_exact_numbers_survive_the_problem_file():
    """Float64 numbers go into the problem as exact fractions: the numpy engine sees the same floats."""
    mapping = build("course-notes", 2, 2, 1, "weighted_sum", 2, seed=0)
    problem = problem_from_mapping(mapping, Path("<x>"))
    assert problem.inputs[0, 0] == Fraction(mapping["inputs"][0][0])

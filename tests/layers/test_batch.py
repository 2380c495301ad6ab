"""Layers without frameworks: the batched engines against the one-sequence path, finite differences
through every composition rule (directions, stacks, masks, merges, final-state rules, clip, the
ONNX activations), the exact engine against numpy, and a sheet's cell against its network."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.networks import composed_network, random_cell

from grukit.derive.cell.losses import LossHead
from grukit.derive.cell.presets import PRESETS
from grukit.derive.layers.cells import cell_problem
from grukit.derive.layers.network import FRAMEWORKS, LAYER_LOSSES, Layer, Network
from grukit.derive.layers.problem import LayerLoss, LayerProblem, solve_layers
from grukit.derive.layers.run import arrange_outputs, backward_network, run_network, unarrange_outputs
from grukit.derive.numeric.batch import BatchedExactEngine, BatchedNumpyEngine
from grukit.derive.numeric.problem import Problem
from grukit.derive.numeric.solve import solve


def network_loss(net, inputs, h0, valid, G, G_h, eng=None):
    """The weighted-sum loss and all gradients of a network (numpy engine unless given)."""
    eng = eng or BatchedNumpyEngine()
    run = run_network(net, inputs, h0, valid, eng)
    out = arrange_outputs(net, run.outputs)
    loss = float(np.sum(np.asarray(out, dtype=float) * G))
    loss += sum(float(np.sum(np.asarray(h, dtype=float).T * g)) for h, g in zip(run.h_n, G_h))
    return loss, run, out


# --- 1. a batch equals its sequences one by one ---------------------------------------------------

@pytest.mark.parametrize("name", ["course-notes", "homework", "colah", "keras", "pytorch", "keras2"])
def test_batched_engine_equals_the_single_sequence_path(name):
    conv = PRESETS[name]
    rng = np.random.default_rng(len(name))
    B, T, D, H = 4, 3, 2, 3
    cell = random_cell(rng, conv, D, H)
    net = Network("none", [Layer((cell,))])
    inputs, h0 = rng.uniform(-1, 1, (B, T, D)), rng.uniform(-0.5, 0.5, (B, H))
    G = rng.uniform(-1, 1, (B, T, H))
    loss, run, out = network_loss(net, inputs, [h0], None, G, [np.zeros((B, H))])
    grad = backward_network(run, unarrange_outputs(net, G), [None])
    total = {p: 0 for p in conv.parameters()}
    for b in range(B):
        problem = Problem(Path("p.yaml"), conv, inputs[b], h0[b], cell.params,
                          loss=LossHead("weighted_sum", tuple(range(T)), tuple(G[b])))
        sol = solve(problem, "numpy", gradients=True)
        states = np.array([tr.values["h"] for tr in sol.traces])
        np.testing.assert_allclose(out[b], states, atol=1e-14)
        np.testing.assert_allclose(np.stack(grad.inputs)[:, :, b], sol.gradient.inputs, atol=1e-13)
        np.testing.assert_allclose(grad.h0[0][:, b], sol.gradient.h0, atol=1e-13)
        for p in total:
            total[p] = total[p] + sol.gradient.params[p]
    for p, v in total.items():
        np.testing.assert_allclose(grad.params[0][p], v, atol=1e-12, err_msg=str(p))


# --- 2. every composition rule by finite differences ---------------------------------------------

@pytest.mark.parametrize("merge, padded, order, final", [
    ("concat", "zero", "input", "zero_if_empty"),
    ("mul", "previous", "processing", "last"),
    ("ave", "zero", "input", "last"),
    ("sum", "previous", "input", "last"),
])
def test_gradients_equal_finite_differences(merge, padded, order, final):
    rng = np.random.default_rng(3)
    net = composed_network(rng, "none", merge, padded, order, final)
    B, T, D, H = 3, 4, 2, 3
    inputs = rng.uniform(-1.5, 1.5, (B, T, D))
    h0 = [rng.uniform(-0.5, 0.5, (B, H)) for _ in range(4)]
    valid = np.array([[1, 0, 1, 1], [0, 0, 0, 0], [1, 1, 0, 0]])  # a gap, an empty sequence, a prefix
    out_shape = arrange_outputs(net, run_network(net, inputs, h0, valid, BatchedNumpyEngine()).outputs).shape
    G, G_h = rng.uniform(-1, 1, out_shape), [rng.uniform(-1, 1, (B, H)) for _ in range(4)]
    _, run, _ = network_loss(net, inputs, h0, valid, G, G_h)
    grad = backward_network(run, unarrange_outputs(net, G), [g.T for g in G_h])
    eps = 1e-6

    def fd(setter, base):
        hi, lo = base.copy(), base.copy()
        hi += eps
        lo -= eps
        setter(hi)
        up = network_loss(net, inputs, h0, valid, G, G_h)[0]
        setter(lo)
        down = network_loss(net, inputs, h0, valid, G, G_h)[0]
        setter(base)
        return (up - down) / (2 * eps)

    worst = 0.0
    for i, (_, cell) in enumerate(net.cells):
        for p in cell.params:
            arr = cell.params[p]
            for idx in list(np.ndindex(arr.shape))[:: max(1, arr.size // 4)]:
                base = arr[idx]

                def put(v, arr=arr, idx=idx):
                    arr[idx] = v
                num = fd(put, np.float64(base))
                worst = max(worst, abs(num - np.asarray(grad.params[i][p], float)[idx]))
    for idx in [(0, 0, 0), (0, 2, 1), (2, 1, 0), (1, 3, 1), (0, 1, 1)]:  # (1, 3, 1) and (0, 1, 1): masked
        def put(v, idx=idx):
            inputs[idx] = v
        num = fd(put, np.float64(inputs[idx]))
        worst = max(worst, abs(num - np.asarray(grad.inputs[idx[1]], float)[idx[2], idx[0]]))
    for c, b, j in [(0, 0, 0), (1, 1, 2), (3, 2, 1), (2, 1, 0)]:
        def put(v, c=c, b=b, j=j):
            h0[c][b, j] = v
        num = fd(put, np.float64(h0[c][b, j]))
        worst = max(worst, abs(num - np.asarray(grad.h0[c], float)[j, b]))
    assert worst < 1e-7, worst


def test_exact_and_numpy_engines_agree_on_a_composed_network():
    rng = np.random.default_rng(4)
    net = composed_network(rng, "none", "mul", "previous", "processing", "zero_if_empty")
    B, T, H = 2, 3, 3
    inputs = rng.uniform(-1, 1, (B, T, 2))
    h0 = [rng.uniform(-0.5, 0.5, (B, H)) for _ in range(4)]
    valid = np.array([[1, 0, 1], [0, 0, 0]])
    G = rng.uniform(-1, 1, (B, T, H))
    runs = [run_network(net, inputs, h0, valid, eng) for eng in (BatchedNumpyEngine(), BatchedExactEngine())]
    grads = [backward_network(r, unarrange_outputs(net, r.engine.array(G)), [None] * 4) for r in runs]
    for a, b in zip(runs[0].outputs, runs[1].outputs):
        np.testing.assert_allclose(a, np.asarray(b, float), atol=1e-14)
    for a, b in zip(grads[0].params, grads[1].params):
        for p in a:
            np.testing.assert_allclose(a[p], np.asarray(b[p], float), atol=1e-13)


def test_padded_steps_follow_the_rules():
    """zero: outputs 0 and the state kept; previous: the previous output (0 before the first); an
    empty sequence's h_n is h0 under "last" and 0 under "zero_if_empty"."""
    rng = np.random.default_rng(5)
    conv = PRESETS["pytorch"]
    B, T, D, H = 2, 4, 2, 3
    inputs, h0 = rng.uniform(-1, 1, (B, T, D)), rng.uniform(-0.5, 0.5, (B, H))
    valid = np.array([[0, 1, 0, 1], [0, 0, 0, 0]])
    cell = random_cell(rng, conv, D, H)
    eng = BatchedNumpyEngine()
    for padded, final in (("zero", "last"), ("previous", "zero_if_empty")):
        net = Network("none", [Layer((cell,), padded_output=padded)], final)
        run = run_network(net, inputs, [h0], valid, eng)
        out = arrange_outputs(net, run.outputs)
        if padded == "zero":
            assert np.all(out[0, [0, 2]] == 0) and np.all(out[1] == 0)
            np.testing.assert_array_equal(run.h_n[0][:, 1], h0[1])
        else:
            assert np.all(out[0, 0] == 0) and np.array_equal(out[0, 2], out[0, 1]) and np.all(out[1] == 0)
            assert np.all(run.h_n[0][:, 1] == 0)
        np.testing.assert_array_equal(run.cells[0].states[0][:, 0], h0[0])  # a masked step keeps the state
        np.testing.assert_array_equal(run.h_n[0][:, 0], out[0, 3])


# --- 3. a sheet's cell carries the network's gradients -----------------------------------------------

def test_cell_problem_gradients_are_the_networks():
    rng = np.random.default_rng(6)
    conv = PRESETS["pytorch"]
    B, T, D, H = 3, 4, 2, 2
    layers = [Layer((random_cell(rng, conv, D, H), random_cell(rng, conv, D, H, "reverse"))),
              Layer((random_cell(rng, conv, 2 * H, H), random_cell(rng, conv, 2 * H, H, "reverse")))]
    net = Network("pytorch", layers)
    inputs = rng.uniform(-1, 1, (B, T, D))
    h0 = [rng.uniform(-0.5, 0.5, (B, H)) for _ in range(4)]
    valid = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    problem = LayerProblem(Path("net.yaml"), net, inputs, h0, valid, True, (4, B, H),
                           loss=LayerLoss("weighted_sum", rng.uniform(-1, 1, (B, T, 2 * H)),
                                          rng.uniform(-1, 1, (4, B, H))))
    sol = solve_layers(problem, "numpy", gradients=True)
    for index in (1, 2):  # layer 0 reverse, layer 1 forward
        total = None
        for b in range(B):
            cp = cell_problem(problem, index, b)
            assert cp.steps == valid[b].sum()
            g = solve(cp, "numpy", gradients=True).gradient
            np.testing.assert_allclose(g.h0, np.asarray(sol.d_h0, float)[index, b], atol=1e-13)
            total = g.params if total is None else {p: total[p] + g.params[p] for p in total}
        for p, v in total.items():
            np.testing.assert_allclose(v, np.asarray(sol.gradient.params[index][p], float), atol=1e-12)


def test_layer_losses_are_sympy_terms():
    assert str(LAYER_LOSSES["squared_error"]) == "(o - y)**2/2"
    assert set(FRAMEWORKS) == {"pytorch", "keras", "onnx", "none"}

"""Whole networks on the kernels (codegen/kernels/network.py) against the numpy engine's walk of the
same networks cell by cell and step by step (derive/layers/run.py): every composition rule (merges,
output and final rules, processing order, gaps, empty rows), stacked layers, presets and custom
conventions (ONNX activations, clip), forward and every gradient, 1e-12 float64 relative to each
array's largest entry; float32 against float64; every example layer problem through the CLI."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import ROOT
from helpers.networks import close, composed_network, random_cell

from grukit.codegen.cli.main import main
from grukit.codegen.kernels.engine import NumbaEngine
from grukit.codegen.kernels.network import NetworkKernels, Steps, _concurrent
from grukit.derive.cell.presets import PRESETS
from grukit.derive.errors import GrukitError
from grukit.derive.layers.network import Layer, Network
from grukit.derive.layers.run import arrange_outputs, backward_network, run_network, unarrange_outputs
from grukit.derive.numeric.batch import BatchedNumpyEngine

TOL = 1e-12


def compare(net, inputs, h0, valid, rng, dtype="float64", tol=TOL):
    """The kernels' pass and gradients against the numpy engine's, under a random weighted-sum loss of
    the outputs and h_n."""
    eng = BatchedNumpyEngine()
    run = run_network(net, inputs, h0, valid, eng)
    expected = arrange_outputs(net, run.outputs)
    G = rng.uniform(-1, 1, expected.shape)
    G_h = [rng.uniform(-1, 1, h.T.shape) for h in run.h_n]
    grad = backward_network(run, unarrange_outputs(net, G), [g.T for g in G_h])
    kernels = NetworkKernels(net, dtype)
    fwd = kernels.forward(inputs.astype(dtype), [h.astype(dtype) for h in h0], valid)
    close(fwd.outputs, expected, tol, "outputs")
    for i, h in enumerate(fwd.h_n):
        close(h, run.h_n[i].T, tol, f"h_n[{i}]")
    ours = kernels.backward(fwd, G.astype(dtype), [g.astype(dtype) for g in G_h])
    close(ours.inputs, np.stack(grad.inputs).transpose(2, 0, 1), tol, "inputs")
    for i in range(len(net.cells)):
        close(ours.h0[i], grad.h0[i].T, tol, f"h0[{i}]")
        for p, v in grad.params[i].items():
            close(ours.params[i][p], v, tol, f"cell {i} {p}")
    return kernels, fwd


GAPS = np.array([[1, 0, 1, 1], [0, 0, 0, 0], [1, 1, 0, 0]])  # a gap, an empty sequence, a prefix


@pytest.mark.parametrize("merge, padded, order, final", [
    ("concat", "zero", "input", "zero_if_empty"),
    ("mul", "previous", "processing", "last"),
    ("ave", "zero", "input", "last"),
    ("sum", "previous", "input", "zero_if_empty"),
    ("stack", "zero", "input", "last"),
    ("none", "previous", "processing", "last"),
])
def test_every_composition_rule_with_activations_clip_and_masks(merge, padded, order, final):
    rng = np.random.default_rng(3)
    net = composed_network(rng, "none", merge, padded, order, final)
    B, T, D, H = 3, 4, 2, 3
    inputs = rng.uniform(-1.5, 1.5, (B, T, D))
    h0 = [rng.uniform(-0.5, 0.5, (B, H)) for _ in range(4)]
    compare(net, inputs, h0, GAPS, rng)
    compare(net, inputs, h0, None, rng)


@pytest.mark.parametrize("B, T, valid", [(1, 1, None), (1, 1, [[0]]), (2, 3, [[0, 0, 0], [0, 0, 0]]),
                                         (2, 3, [[0, 0, 1], [1, 0, 0]])])
@pytest.mark.parametrize("padded, order, final", [("zero", "input", "zero_if_empty"),
                                                  ("previous", "processing", "last")])
def test_edges_one_step_and_empty_rows(B, T, valid, padded, order, final):
    rng = np.random.default_rng(B * 10 + T)
    conv = PRESETS["keras"]
    D, H = 2, 3
    layers = [Layer((random_cell(rng, conv, D, H), random_cell(rng, conv, D, H, "reverse")), "sum", padded, order),
              Layer((random_cell(rng, conv, H, H, "reverse"),), "concat", padded, order)]
    net = Network("keras", layers, final)
    h0 = [rng.uniform(-0.5, 0.5, (B, H)) for _ in range(3)]
    compare(net, rng.uniform(-1, 1, (B, T, D)), h0, None if valid is None else np.array(valid), rng)


@pytest.mark.parametrize("form", ["onnx_layout0", "onnx_layout1"])
def test_onnx_output_forms(form):
    rng = np.random.default_rng(7)
    conv = PRESETS["onnx-lbr1"]
    B, T, D, H = 4, 5, 3, 2
    net = Network("onnx", [Layer((random_cell(rng, conv, D, H), random_cell(rng, conv, D, H, "reverse")), "stack")],
                  "zero_if_empty", form)
    valid = (np.arange(T)[None, :] < np.array([5, 0, 3, 1])[:, None]).astype(int)
    compare(net, rng.uniform(-2, 2, (B, T, D)), [rng.uniform(-1, 1, (B, H)) for _ in range(2)], valid, rng)


@pytest.mark.parametrize("name", ["pytorch", "keras_reset_before", "homework", "cho2014"])
def test_presets_in_stacks_of_every_direction(name):
    """A bidirectional layer under a reverse one under a forward one, lengths as PyTorch packs them;
    reset-before conventions and a scalar gate (homework) included."""
    conv = PRESETS[name.replace("_", "-")] if name.replace("_", "-") in PRESETS else PRESETS[name]
    rng = np.random.default_rng(len(name))
    B, T, D, H = 5, 6, 3, 4
    layers = [Layer((random_cell(rng, conv, D, H), random_cell(rng, conv, D, H, "reverse"))),
              Layer((random_cell(rng, conv, 2 * H, H, "reverse"),)),
              Layer((random_cell(rng, conv, H, H),))]
    net = Network("pytorch", layers)
    valid = (np.arange(T)[None, :] < np.array([6, 2, 1, 6, 4])[:, None]).astype(int)
    h0 = [rng.uniform(-0.5, 0.5, (B, H)) for _ in range(4)]
    compare(net, rng.uniform(-1, 1, (B, T, D)), h0, valid, rng)


def test_float32_network_is_float64s_to_float32_accuracy():
    rng = np.random.default_rng(11)
    net = composed_network(rng, "none", "concat", "zero", "input", "last")
    B, T, D, H = 3, 4, 2, 3
    inputs, h0 = rng.uniform(-1, 1, (B, T, D)), [rng.uniform(-0.5, 0.5, (B, H)) for _ in range(4)]
    compare(net, inputs, h0, GAPS, rng, dtype="float32", tol=2e-5)


def test_threads_change_no_number():
    rng = np.random.default_rng(12)
    conv = PRESETS["pytorch"]
    net = Network("pytorch", [Layer((random_cell(rng, conv, 3, 4), random_cell(rng, conv, 3, 4, "reverse")))])
    x, valid = rng.uniform(-1, 1, (3, 5, 3)), GAPS[:, [0, 1, 2, 3, 3]]
    runs = [NetworkKernels(net, threads=t) for t in (True, False)]
    fwds = [k.forward(x, None, valid) for k in runs]
    np.testing.assert_array_equal(fwds[0].outputs, fwds[1].outputs)
    G = rng.uniform(-1, 1, fwds[0].outputs.shape)
    grads = [k.backward(f, G) for k, f in zip(runs, fwds)]
    np.testing.assert_array_equal(grads[0].inputs, grads[1].inputs)
    for a, b in zip(grads[0].params, grads[1].params):
        for p in a:
            np.testing.assert_array_equal(a[p], b[p])


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_the_engines_traces_are_the_numpy_engines_steps(direction):
    """What ``forward --json`` prints for a one-cell problem: every saved value of every step."""
    rng = np.random.default_rng(14)
    conv = PRESETS["keras"]
    net = Network("keras", [Layer((random_cell(rng, conv, 3, 4, direction),))])
    inputs, h0 = rng.uniform(-1, 1, (2, 5, 3)), [rng.uniform(-1, 1, (2, 4))]
    theirs = run_network(net, inputs, h0, None, BatchedNumpyEngine()).cells[0].traces
    ours = NumbaEngine().run_network(net, inputs, h0, None).cells[0].traces
    for t in range(5):
        for name in ("z", "r", "c", "h"):
            close(ours[t].values[name], theirs[t].values[name], TOL, f"{name} at {t}")
    with pytest.raises(GrukitError, match="outside their sequences"):
        _ = NumbaEngine().run_network(net, inputs, h0, np.array([[1, 1, 0, 1, 1]] * 2)).cells[0].traces


def test_directions_run_in_threads_only_on_gil_free_serial_kernels():
    def kernels(**options):
        loop = SimpleNamespace(targetoptions=options)
        return SimpleNamespace(module=SimpleNamespace(_forward_steps=loop, _backward_steps=loop))

    assert _concurrent([kernels(nogil=True), kernels(nogil=True)])
    assert not _concurrent([kernels(nogil=True), kernels()])
    assert not _concurrent([kernels(nogil=True, parallel=True)])  # it has every core already
    assert not _concurrent([SimpleNamespace(module=SimpleNamespace())])


def test_steps_gather_each_rows_valid_steps_in_processing_order():
    valid = np.array([[1, 0, 1, 1], [0, 0, 0, 0], [0, 1, 1, 0]], bool)
    fwd, rev = Steps.of(valid, False), Steps.of(valid, True)
    assert fwd.counts.tolist() == [3, 0, 2]
    assert fwd.gather[0, :3].tolist() == [0, 2, 3] and fwd.gather[2, :2].tolist() == [1, 2]
    assert rev.gather[0, :3].tolist() == [3, 2, 0] and rev.gather[2, :2].tolist() == [2, 1]
    assert fwd.held[0].tolist() == [0, 0, 1, 2] and rev.held[0].tolist() == [2, 1, 1, 0]
    assert fwd.held[2].tolist() == [-1, 0, 1, 1] and rev.held[2].tolist() == [1, 1, 0, -1]


def test_bad_input_is_one_line():
    rng = np.random.default_rng(13)
    net = Network("pytorch", [Layer((random_cell(rng, PRESETS["pytorch"], 3, 4),))])
    k = NetworkKernels(net)
    x = rng.uniform(-1, 1, (2, 5, 3))
    for kwargs, message in [({"x": x[:, :, :2]}, "x: expected shape (2, 5, 3)"),
                            ({"h0": [np.zeros((2, 4))] * 2}, "h0: expected 1 states"),
                            ({"valid": np.ones((2, 4))}, "valid: expected shape (2, 5)"),
                            ({"valid": np.full((2, 5), 2)}, "valid: expected 0/1"),
                            ({"x": x + 0j}, "x: a complex array")]:
        args = {"x": x, "h0": None, "valid": None} | kwargs
        with pytest.raises(GrukitError, match=message.replace("(", r"\(").replace(")", r"\)")):
            k.forward(args["x"], args["h0"], args["valid"])


EXAMPLES = sorted((ROOT / "docs" / "examples" / "layers").glob("*.yaml"))


def cli_json(capsys, *argv) -> dict:
    capsys.readouterr()
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return json.loads(captured.out)


def assert_same_json(ours, theirs, path=""):
    """Every number of two JSON values within 1e-12 of the largest entry of its array."""
    if isinstance(theirs, dict):
        assert set(ours) == set(theirs), path
        for key in theirs:
            assert_same_json(ours[key], theirs[key], f"{path}.{key}")
    elif isinstance(theirs, list):
        try:
            numbers = np.asarray(theirs, float)
        except (ValueError, TypeError):  # strings, dicts, arrays of several shapes (h_n of layers of two sizes)
            assert len(ours) == len(theirs), path
            for i, (a, b) in enumerate(zip(ours, theirs)):
                assert_same_json(a, b, f"{path}[{i}]")
        else:
            close(ours, numbers, TOL, path)
    elif isinstance(theirs, float):
        close(ours, theirs, TOL, path)
    else:
        assert ours == theirs, path


def test_exact_weights_written_in_the_problem_file(tmp_path, capsys):
    """Weights written out in the YAML file are exact fractions: the engine takes them as float64."""
    path = tmp_path / "p.yaml"
    path.write_text(
        "convention: pytorch\n"
        "inputs: [[[0.5, -1.0], [0.25, 0.75], [-0.5, 0.5]], [[1.0, 0.0], [-0.25, 0.5], [0.0, 0.0]]]\n"
        "lengths: [3, 2]\nweights: {W_iz: [[0.1, 0.2]], W_ir: [[0.3, -0.1]], W_in: [[0.2, 0.4]], W_hz: [[0.5]],\n"
        "  W_hr: [[-0.2]], W_hn: [[0.3]], b_iz: [0.1], b_ir: [0.0], b_in: [-0.1], b_hz: [0.2], b_hr: [0.1],\n"
        "  b_hn: [0.0]}\n"
        "loss: {type: weighted_sum, G: [[[1], [0], [1]], [[1], [0.5], [1]]]}\n")
    for command in ("forward", "grad"):
        assert_same_json(cli_json(capsys, command, path, "--engine", "numba", "--json"),
                         cli_json(capsys, command, path, "--engine", "exact", "--json"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
@pytest.mark.parametrize("command", ["forward", "grad"])
def test_every_example_layer_problem_gives_the_numpy_engines_json(capsys, path: Path, command):
    theirs = cli_json(capsys, command, path, "--engine", "numpy", "--json")
    ours = cli_json(capsys, command, path, "--engine", "numba", "--json")
    assert_same_json(ours, theirs)

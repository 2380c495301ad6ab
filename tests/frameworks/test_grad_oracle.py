"""Check 5c: grukit's gradients against the frameworks' own autograd (the ``oracle`` extra).

Weights are written in each framework's native layout (``.npz`` with the framework's array names)
and read through a problem file ``weights: {layout: ..., file: ...}``, the path a user takes; the
loss is ``L = sum_t G_t . h_t`` (the ``weighted_sum`` head), which is what the oracle's gradient
wrappers (tests/helpers/framework_oracle.py) differentiate. ``grukit grad --json`` must return every
gradient under the framework's names and shapes.

* PyTorch (float64, ``torch.autograd``) for ``pytorch``: below 1e-10;
* Keras 3 on torch (float64, autograd through ``keras.layers.GRU``) for ``keras`` and
  ``keras-reset-before``: below 1e-5 (measured: ~1e-15);
* the shipped examples docs/examples/keras-layout*.yaml: kernel, recurrent_kernel and bias in
  Keras's shapes, equal to Keras's own gradients;
* the hard-sigmoid kink: a gate sitting exactly on a kink of Keras 3's hard sigmoid gets
  derivative 0 in grukit, as in Keras's autograd.

Each test skips cleanly when its framework is not installed.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT
from helpers import framework_oracle as fo

from grukit.codegen.cli.main import main

EXAMPLES = ROOT / "docs" / "examples"
TOL_TORCH, TOL_KERAS = 1e-10, 1e-5

needs_keras = pytest.mark.skipif(not fo.available("keras", "torch"), reason="keras (torch backend) not installed")
needs_torch = pytest.mark.skipif(not fo.available("torch"), reason="torch not installed")


def grad_json(path: Path, capsys, *extra: str) -> dict:
    capsys.readouterr()
    assert main(["grad", str(path), "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def write_problem(tmp_path: Path, convention, layout: str, arrays: dict, inputs, h0, G) -> Path:
    np.savez(tmp_path / "weights.npz", **arrays)
    conv = convention if isinstance(convention, str) else json.dumps(convention)
    text = (f"convention: {conv}\n"
            f"inputs: {json.dumps(np.asarray(inputs).tolist())}\n"
            f"h0: {json.dumps(np.asarray(h0).tolist())}\n"
            f"weights: {{layout: {layout}, file: weights.npz}}\n"
            f"loss: {{type: weighted_sum, G: {json.dumps(np.asarray(G).tolist())}}}\n")
    path = tmp_path / "problem.yaml"
    path.write_text(text)
    return path


def assert_close(ours: dict, theirs: dict, names, tol: float) -> float:
    worst = 0.0
    for name in names:
        a, b = np.asarray(ours[name], dtype=float), np.asarray(theirs[name], dtype=float)
        assert a.shape == b.shape, (name, a.shape, b.shape)
        worst = max(worst, float(np.max(np.abs(a - b))))
    assert worst < tol, worst
    return worst


def sequence(rng, T: int, D: int, H: int):
    return rng.uniform(-1, 1, (T, D)), rng.uniform(-0.5, 0.5, H), rng.uniform(-1, 1, (T, H))


# --- PyTorch ----------------------------------------------------------------------------------

@needs_torch
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pytorch_gradients_equal_torch_autograd(tmp_path, capsys, seed):
    rng = np.random.default_rng(seed)
    D, H, T = 3, 4, 5
    arrays = {"weight_ih_l0": 0.6 * rng.standard_normal((3 * H, D)),
              "weight_hh_l0": 0.6 * rng.standard_normal((3 * H, H)),
              "bias_ih_l0": 0.5 * rng.standard_normal(3 * H), "bias_hh_l0": 0.5 * rng.standard_normal(3 * H)}
    inputs, h0, G = sequence(rng, T, D, H)
    out = grad_json(write_problem(tmp_path, "pytorch", "pytorch", arrays, inputs, h0, G), capsys)
    ref = fo.torch_grad(arrays["weight_ih_l0"], arrays["weight_hh_l0"], arrays["bias_ih_l0"],
                        arrays["bias_hh_l0"], inputs, h0, G)
    assert set(out["grads"]) == set(arrays)
    assert abs(out["loss"] - ref["loss"]) < TOL_TORCH
    ours = dict(out["grads"], inputs=out["inputs"], h0=out["h0"])
    assert_close(ours, ref, list(arrays) + ["inputs", "h0"], TOL_TORCH)


# --- Keras ------------------------------------------------------------------------------------

@needs_keras
@pytest.mark.parametrize("preset,reset_after", [("keras", True), ("keras-reset-before", False)])
@pytest.mark.parametrize("seed", [0, 1])
def test_keras_gradients_equal_keras_autograd(tmp_path, capsys, preset, reset_after, seed):
    rng = np.random.default_rng(100 + seed)
    D, H, T = 3, 4, 5
    arrays = {"kernel": 0.6 * rng.standard_normal((D, 3 * H)),
              "recurrent_kernel": 0.6 * rng.standard_normal((H, 3 * H)),
              "bias": 0.5 * rng.standard_normal((2, 3 * H) if reset_after else (3 * H,))}
    inputs, h0, G = sequence(rng, T, D, H)
    out = grad_json(write_problem(tmp_path, preset, "keras", arrays, inputs, h0, G), capsys)
    ref = fo.keras_grad(arrays["kernel"], arrays["recurrent_kernel"], arrays["bias"], inputs, h0, G,
                        reset_after=reset_after, dtype="float64")
    assert abs(out["loss"] - ref["loss"]) < TOL_KERAS
    ours = dict(out["grads"], inputs=out["inputs"], h0=out["h0"])
    assert_close(ours, ref, ["kernel", "recurrent_kernel", "bias", "inputs", "h0"], TOL_KERAS)


@needs_keras
@pytest.mark.parametrize("example,reset_after",
                         [("keras-layout.yaml", True), ("keras-layout-reset-before.yaml", False)])
def test_keras_layout_example_returns_keras_shapes_and_values(capsys, example, reset_after):
    """The acceptance check: `grukit grad` on a Keras-layout problem = Keras's own gradients."""
    path = EXAMPLES / example
    out = grad_json(path, capsys)
    import yaml

    spec = yaml.safe_load(path.read_text())
    with np.load(EXAMPLES / spec["weights"]["file"]) as npz:
        arrays = {k: npz[k] for k in npz.files}
    assert {k: np.shape(v) for k, v in out["grads"].items()} == {k: v.shape for k, v in arrays.items()}
    inputs, h0, G = np.array(spec["inputs"], float), np.array(spec["h0"], float), np.array(spec["loss"]["G"], float)
    ref = fo.keras_grad(arrays["kernel"], arrays["recurrent_kernel"], arrays["bias"], inputs, h0, G,
                        reset_after=reset_after, dtype="float64")
    ours = dict(out["grads"], inputs=out["inputs"], h0=out["h0"])
    assert_close(ours, ref, ["kernel", "recurrent_kernel", "bias", "inputs", "h0"], TOL_KERAS)


@needs_keras
def test_hard_sigmoid_kink_has_derivative_zero_like_keras(tmp_path, capsys):
    """z's pre-activation is exactly -3 and r's exactly +3 at every step (zero weights, biases on the
    kinks of Keras 3's hard sigmoid relu6(a + 3)/6). Keras's autograd passes no gradient there; a
    derivation taking the inner slope 1/6 at the kink would give non-zero bias gradients."""
    rng = np.random.default_rng(7)
    D, H, T = 2, 3, 3
    kernel = 0.6 * rng.standard_normal((D, 3 * H))
    recurrent = 0.6 * rng.standard_normal((H, 3 * H))
    bias = 0.5 * rng.standard_normal((2, 3 * H))
    kernel[:, :2 * H] = 0
    recurrent[:, :2 * H] = 0
    bias[0, :H], bias[1, :H] = -3.0, 0.0  # z: a = -3
    bias[0, H:2 * H], bias[1, H:2 * H] = 1.0, 2.0  # r: a = 3
    arrays = {"kernel": kernel, "recurrent_kernel": recurrent, "bias": bias}
    inputs, h0, G = sequence(rng, T, D, H)
    convention = {"preset": "keras", "gate_activation": "hard_sigmoid_keras3"}
    out = grad_json(write_problem(tmp_path, convention, "keras", arrays, inputs, h0, G), capsys)
    ref = fo.keras_grad(kernel, recurrent, bias, inputs, h0, G, reset_after=True, dtype="float64",
                        recurrent_activation="hard_sigmoid")
    ours = dict(out["grads"], inputs=out["inputs"], h0=out["h0"])
    assert_close(ours, ref, ["kernel", "recurrent_kernel", "bias", "inputs", "h0"], TOL_KERAS)
    assert np.all(np.asarray(out["grads"]["bias"])[:, :2 * H] == 0)
    assert np.any(np.asarray(out["grads"]["bias"])[:, 2 * H:] != 0)

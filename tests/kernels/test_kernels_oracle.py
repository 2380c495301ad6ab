"""The generated kernels against the real frameworks, in the frameworks' own layouts.

PyTorch autograd (``nn.GRU``), Keras 3 on torch (autograd through ``keras.layers.GRU``) and ONNX
Runtime (the ``GRU`` operator, forward, float32) run through tests/helpers/framework_oracle.py, which shares
no code with grukit. The kernels get the very arrays the framework holds (``weight_ih_l0``,
``kernel``, ``W`` ...) and return gradients in the same arrays. Each batch row is one oracle call.
"""
from __future__ import annotations

import numpy as np
import pytest
from helpers import framework_oracle as fo

from grukit import kernels
from grukit.derive.cell.presets import PRESETS

needs_torch = pytest.mark.skipif(not fo.available("torch"), reason="torch not installed")
needs_keras = pytest.mark.skipif(not fo.available("keras", "torch"), reason="keras (torch backend) not installed")
needs_ort = pytest.mark.skipif(not fo.available("onnx", "onnxruntime"), reason="onnxruntime not installed")

B, T, D, H = 2, 5, 3, 4


def rel(got, want) -> float:
    got, want = np.asarray(got, float), np.asarray(want, float)
    assert got.shape == want.shape, (got.shape, want.shape)
    return float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), 1e-30))


def data(seed, dtype):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
    h0 = rng.uniform(-1, 1, (B, H)).astype(dtype)
    G = rng.uniform(-1, 1, (B, T, H)).astype(dtype)
    return rng, x, h0, G


def summed(rows: list[dict], names) -> dict:
    return {n: sum(r[n] for r in rows) for n in names}


@needs_torch
def test_pytorch_autograd():
    rng, x, h0, G = data(1, "float64")
    arrays = {"weight_ih_l0": rng.uniform(-1, 1, (3 * H, D)), "weight_hh_l0": rng.uniform(-1, 1, (3 * H, H)),
              "bias_ih_l0": rng.uniform(-1, 1, 3 * H), "bias_hh_l0": rng.uniform(-1, 1, 3 * H)}
    k = kernels.load("pytorch", "float64")
    fwd = k.forward(x, h0, arrays)
    grads = k.backward(fwd, G)
    rows = [fo.torch_grad(*arrays.values(), x[b], h0[b], G[b]) for b in range(B)]
    for b in range(B):
        want = fo.torch_forward(*arrays.values(), x[b], h0[b])
        assert rel(fwd.h[b], want) < 1e-12
        assert rel(grads["inputs"][b], rows[b]["inputs"]) < 1e-12
        assert rel(grads["h0"][b], rows[b]["h0"]) < 1e-12
    for name, want in summed(rows, arrays).items():
        assert rel(grads[name], want) < 1e-12, name
    k32 = kernels.load("pytorch", "float32")
    arrays32 = {n: v.astype(np.float32) for n, v in arrays.items()}
    h32 = k32.forward(x.astype(np.float32), h0.astype(np.float32), arrays32).h
    for b in range(B):
        assert rel(h32[b], fo.torch_forward(*arrays32.values(), x[b], h0[b], dtype="float32")) < 1e-5


KERAS = [("keras", "keras", "sigmoid"), ("keras-reset-before", "keras-reset-before", "sigmoid"),
         ("keras3-hard-sigmoid", "keras", "hard_sigmoid")]
KERAS_TOL = {"sigmoid": 1e-12, "hard_sigmoid": 1e-6}
"""With a hard sigmoid, Keras on torch runs its generic GRUCell path, which still rounds something
through float32 (measured 9e-9 against grukit, whose kernels agree with the numpy engine to 1e-15
there); a wrong convention would differ by 1e-2 or more."""


@needs_keras
@pytest.mark.parametrize("label, preset, activation", KERAS, ids=[k[0] for k in KERAS])
def test_keras_on_torch_autograd(label, preset, activation, tmp_path, monkeypatch):
    monkeypatch.setenv("GRUKIT_KERNEL_CACHE", str(tmp_path))
    conv = PRESETS[preset]
    if activation == "hard_sigmoid":  # Keras 3's hard sigmoid: relu6(a + 3) / 6
        conv = conv.with_changes(name=label, gate_activation="hard_sigmoid_keras3")
    reset_after = conv.reset == "after"
    rng, x, h0, G = data(2, "float64")
    arrays = {"kernel": rng.uniform(-1, 1, (D, 3 * H)), "recurrent_kernel": rng.uniform(-1, 1, (H, 3 * H)),
              "bias": rng.uniform(-1, 1, (2, 3 * H) if reset_after else (3 * H,))}
    k = kernels.load(conv, "float64")
    fwd = k.forward(x, h0, arrays)
    grads = k.backward(fwd, G)
    rows = [fo.keras_grad(*arrays.values(), x[b], h0[b], G[b], reset_after=reset_after,
                          recurrent_activation=activation) for b in range(B)]
    for b in range(B):
        want = fo.keras_forward(*arrays.values(), x[b], h0[b], reset_after=reset_after, dtype="float64",
                                recurrent_activation=activation)
        assert rel(fwd.h[b], want) < KERAS_TOL[activation]
        assert rel(grads["inputs"][b], rows[b]["inputs"]) < KERAS_TOL[activation]
        assert rel(grads["h0"][b], rows[b]["h0"]) < KERAS_TOL[activation]
    for name, want in summed(rows, arrays).items():
        assert rel(grads[name], want) < KERAS_TOL[activation], name


@needs_ort
@pytest.mark.parametrize("preset, lbr", [("onnx", 0), ("onnx-lbr1", 1)])
def test_onnx_runtime_forward(preset, lbr):
    rng, x, h0, _ = data(3, "float32")
    arrays = {"W": rng.uniform(-1, 1, (1, 3 * H, D)).astype(np.float32),
              "R": rng.uniform(-1, 1, (1, 3 * H, H)).astype(np.float32),
              "B": rng.uniform(-1, 1, (1, 6 * H)).astype(np.float32)}
    for dtype in ("float32", "float64"):
        k = kernels.load(preset, dtype)
        h = k.forward(x.astype(dtype), h0.astype(dtype), {n: v.astype(dtype) for n, v in arrays.items()}).h
        for b in range(B):
            assert rel(h[b], fo.onnx_forward(*arrays.values(), x[b], h0[b], linear_before_reset=lbr)) < 2e-6

"""Self-check of tests/helpers/framework_oracle.py.

The oracle wrappers are checked against a tiny NumPy GRU written here directly
from each framework's documented equations (so a wrong gate order or bias
layout in the harness shows up), and the gradient wrappers against central
finite differences of that NumPy reference.
"""

import subprocess
import sys

import numpy as np
import pytest
from helpers import ROOT
from helpers import framework_oracle as fo

D, H, T = 3, 4, 5
TOL32 = 1e-5
TOL64 = 1e-10

needs_keras = pytest.mark.skipif(not fo.available("keras", "torch"),
                                 reason="keras (torch backend) + torch not installed")
needs_torch = pytest.mark.skipif(not fo.available("torch"), reason="torch not installed")
needs_onnx = pytest.mark.skipif(not fo.available("onnx", "onnxruntime"),
                                reason="onnx / onnxruntime not installed")


# --------------------------------------------------------------------------
# independent NumPy references (float64)
# --------------------------------------------------------------------------
def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def keras3_hard_sigmoid(x):
    return np.clip(x + 3.0, 0.0, 6.0) / 6.0


def ref_keras(kernel, rk, bias, x, h0, reset_after, ract=sigmoid):
    """Keras: [z | r | h] column blocks; h = z*h_prev + (1-z)*hh."""
    Wz, Wr, Wh = np.split(kernel, 3, axis=1)
    Uz, Ur, Uh = np.split(rk, 3, axis=1)
    if bias is None:
        b0 = np.zeros(3 * H)
        b1 = np.zeros(3 * H)
    elif reset_after:
        b0, b1 = bias[0], bias[1]
    else:
        b0, b1 = bias, np.zeros(3 * H)
    b0z, b0r, b0h = np.split(b0, 3)
    b1z, b1r, b1h = np.split(b1, 3)
    h = h0.astype(np.float64)
    out = []
    for xt in x:
        z = ract(xt @ Wz + b0z + h @ Uz + b1z)
        r = ract(xt @ Wr + b0r + h @ Ur + b1r)
        if reset_after:
            hh = np.tanh(xt @ Wh + b0h + r * (h @ Uh + b1h))
        else:
            hh = np.tanh(xt @ Wh + b0h + (r * h) @ Uh)
        h = z * h + (1 - z) * hh
        out.append(h)
    return np.array(out)


def ref_torch(w_ih, w_hh, b_ih, b_hh, x, h0):
    """PyTorch: [r | z | n] row blocks, always reset-after."""
    if b_ih is None:
        b_ih = np.zeros(3 * H)
        b_hh = np.zeros(3 * H)
    h = h0.astype(np.float64)
    out = []
    for xt in x:
        gi_r, gi_z, gi_n = np.split(w_ih @ xt + b_ih, 3)
        gh_r, gh_z, gh_n = np.split(w_hh @ h + b_hh, 3)
        r = sigmoid(gi_r + gh_r)
        z = sigmoid(gi_z + gh_z)
        n = np.tanh(gi_n + r * gh_n)
        h = (1 - z) * n + z * h
        out.append(h)
    return np.array(out)


def ref_onnx(W, R, B, x, h0, lbr):
    """ONNX: [z | r | h] row blocks, B = [Wb | Rb]."""
    Wz, Wr, Wh = np.split(W[0], 3, axis=0)
    Rz, Rr, Rh = np.split(R[0], 3, axis=0)
    Bv = np.zeros(6 * H) if B is None else B[0]
    Wbz, Wbr, Wbh, Rbz, Rbr, Rbh = np.split(Bv, 6)
    h = h0.astype(np.float64)
    out = []
    for xt in x:
        z = sigmoid(Wz @ xt + Rz @ h + Wbz + Rbz)
        r = sigmoid(Wr @ xt + Rr @ h + Wbr + Rbr)
        if lbr:
            ht = np.tanh(Wh @ xt + r * (Rh @ h + Rbh) + Wbh)
        else:
            ht = np.tanh(Wh @ xt + (r * h) @ Rh.T + Rbh + Wbh)
        h = (1 - z) * ht + z * h
        out.append(h)
    return np.array(out)


def fd_grads(f, arrays, G, eps=1e-6):
    """Central finite differences of L = sum(G * f(*arrays)) w.r.t. every
    entry of every non-None array."""
    grads = []
    for i, a in enumerate(arrays):
        if a is None:
            grads.append(None)
            continue
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            args_p = [b.copy() if b is not None else None for b in arrays]
            args_m = [b.copy() if b is not None else None for b in arrays]
            args_p[i][idx] += eps
            args_m[i][idx] -= eps
            g[idx] = (np.sum(G * f(*args_p)) - np.sum(G * f(*args_m))) / (2 * eps)
        grads.append(g)
    return grads


# --------------------------------------------------------------------------
# random data
# --------------------------------------------------------------------------
def data(scale=0.6):
    rng = np.random.default_rng(0)
    d = dict(
        x=rng.standard_normal((T, D)),
        h0=0.5 * rng.standard_normal(H),
        G=rng.standard_normal((T, H)),
        kernel=scale * rng.standard_normal((D, 3 * H)),
        rk=scale * rng.standard_normal((H, 3 * H)),
        bias2=scale * rng.standard_normal((2, 3 * H)),
        bias1=scale * rng.standard_normal(3 * H),
        w_ih=scale * rng.standard_normal((3 * H, D)),
        w_hh=scale * rng.standard_normal((3 * H, H)),
        b_ih=scale * rng.standard_normal(3 * H),
        b_hh=scale * rng.standard_normal(3 * H),
        W=scale * rng.standard_normal((1, 3 * H, D)),
        R=scale * rng.standard_normal((1, 3 * H, H)),
        B=scale * rng.standard_normal((1, 6 * H)),
    )
    return d


# --------------------------------------------------------------------------
# module hygiene
# --------------------------------------------------------------------------
def test_import_is_lazy():
    code = (
        "import sys; sys.path.insert(0, %r); import helpers.framework_oracle;"
        "bad = [m for m in ('torch', 'keras', 'onnx', 'onnxruntime') if m in sys.modules];"
        "assert not bad, bad" % str(ROOT / "tests")
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_available_unknown_module():
    assert fo.available() is True
    assert fo.available("grukit_definitely_not_a_module_xyz") is False
    assert fo.available("numpy", "grukit_definitely_not_a_module_xyz") is False


# --------------------------------------------------------------------------
# Keras
# --------------------------------------------------------------------------
@needs_keras
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("dtype,tol", [("float32", TOL32), ("float64", TOL64)])
def test_keras_forward(reset_after, use_bias, dtype, tol):
    d = data()
    bias = (d["bias2"] if reset_after else d["bias1"]) if use_bias else None
    got = fo.keras_forward(d["kernel"], d["rk"], bias, d["x"], d["h0"],
                           reset_after=reset_after, dtype=dtype)
    assert got.shape == (T, H)
    assert got.dtype == np.dtype(dtype)
    want = ref_keras(d["kernel"], d["rk"], bias, d["x"], d["h0"], reset_after)
    np.testing.assert_allclose(got, want, rtol=0, atol=tol)


@needs_keras
@pytest.mark.parametrize("reset_after", [True, False])
def test_keras_forward_hard_sigmoid(reset_after):
    d = data(scale=2.0)  # large weights: both the linear and the clipped parts
    bias = d["bias2"] if reset_after else d["bias1"]
    got = fo.keras_forward(d["kernel"], d["rk"], bias, d["x"], d["h0"],
                           reset_after=reset_after, dtype="float64",
                           recurrent_activation="hard_sigmoid")
    want = ref_keras(d["kernel"], d["rk"], bias, d["x"], d["h0"], reset_after,
                     ract=keras3_hard_sigmoid)
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL64)
    plain = ref_keras(d["kernel"], d["rk"], bias, d["x"], d["h0"], reset_after)
    assert np.max(np.abs(plain - want)) > 1e-3  # really a different activation


@needs_keras
@pytest.mark.parametrize("reset_after", [True, False])
def test_keras_grad_vs_finite_differences(reset_after):
    d = data()
    bias = d["bias2"] if reset_after else d["bias1"]
    got = fo.keras_grad(d["kernel"], d["rk"], bias, d["x"], d["h0"], d["G"],
                        reset_after=reset_after)

    def f(kernel, rk, b, x, h0):
        return ref_keras(kernel, rk, b, x, h0, reset_after)

    args = [d["kernel"], d["rk"], bias, d["x"], d["h0"]]
    assert got["loss"] == pytest.approx(np.sum(d["G"] * f(*args)), abs=1e-12)
    fd = fd_grads(f, args, d["G"])
    for key, want in zip(["kernel", "recurrent_kernel", "bias", "inputs", "h0"], fd):
        assert got[key].shape == want.shape, key
        np.testing.assert_allclose(got[key], want, rtol=0, atol=1e-7, err_msg=key)


@needs_keras
def test_keras_grad_no_bias():
    d = data()
    got = fo.keras_grad(d["kernel"], d["rk"], None, d["x"], d["h0"], d["G"],
                        reset_after=True)
    assert got["bias"] is None

    def f(kernel, rk, x, h0):
        return ref_keras(kernel, rk, None, x, h0, True)

    fd = fd_grads(f, [d["kernel"], d["rk"], d["x"], d["h0"]], d["G"])
    for key, want in zip(["kernel", "recurrent_kernel", "inputs", "h0"], fd):
        np.testing.assert_allclose(got[key], want, rtol=0, atol=1e-7, err_msg=key)


# --------------------------------------------------------------------------
# PyTorch
# --------------------------------------------------------------------------
@needs_torch
@pytest.mark.parametrize("use_bias", [True, False])
def test_torch_forward_float64(use_bias):
    d = data()
    b_ih, b_hh = (d["b_ih"], d["b_hh"]) if use_bias else (None, None)
    got = fo.torch_forward(d["w_ih"], d["w_hh"], b_ih, b_hh, d["x"], d["h0"])
    assert got.shape == (T, H) and got.dtype == np.float64
    want = ref_torch(d["w_ih"], d["w_hh"], b_ih, b_hh, d["x"], d["h0"])
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL64)


@needs_torch
def test_torch_forward_float32():
    torch = pytest.importorskip("torch")
    d = data()
    got = fo.torch_forward(d["w_ih"], d["w_hh"], d["b_ih"], d["b_hh"], d["x"], d["h0"],
                           dtype=torch.float32)
    assert got.dtype == np.float32
    want = ref_torch(d["w_ih"], d["w_hh"], d["b_ih"], d["b_hh"], d["x"], d["h0"])
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL32)


@needs_torch
def test_torch_grad_vs_finite_differences():
    d = data()
    args = [d["w_ih"], d["w_hh"], d["b_ih"], d["b_hh"], d["x"], d["h0"]]
    got = fo.torch_grad(*args, d["G"])
    assert got["loss"] == pytest.approx(np.sum(d["G"] * ref_torch(*args)), abs=1e-12)
    fd = fd_grads(ref_torch, args, d["G"])
    keys = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "inputs", "h0"]
    for key, want in zip(keys, fd):
        assert got[key].shape == want.shape, key
        np.testing.assert_allclose(got[key], want, rtol=0, atol=1e-7, err_msg=key)


@needs_torch
def test_torch_grad_no_bias():
    d = data()
    got = fo.torch_grad(d["w_ih"], d["w_hh"], None, None, d["x"], d["h0"], d["G"])
    assert got["bias_ih_l0"] is None and got["bias_hh_l0"] is None

    def f(w_ih, w_hh, x, h0):
        return ref_torch(w_ih, w_hh, None, None, x, h0)

    fd = fd_grads(f, [d["w_ih"], d["w_hh"], d["x"], d["h0"]], d["G"])
    for key, want in zip(["weight_ih_l0", "weight_hh_l0", "inputs", "h0"], fd):
        np.testing.assert_allclose(got[key], want, rtol=0, atol=1e-7, err_msg=key)


# --------------------------------------------------------------------------
# ONNX Runtime
# --------------------------------------------------------------------------
@needs_onnx
@pytest.mark.parametrize("lbr", [0, 1])
@pytest.mark.parametrize("use_bias", [True, False])
def test_onnx_forward(lbr, use_bias):
    d = data()
    B = d["B"] if use_bias else None
    got = fo.onnx_forward(d["W"], d["R"], B, d["x"], d["h0"], linear_before_reset=lbr)
    assert got.shape == (T, H) and got.dtype == np.float32
    want = ref_onnx(d["W"], d["R"], B, d["x"], d["h0"], lbr)
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL32)
    other = ref_onnx(d["W"], d["R"], B, d["x"], d["h0"], 1 - lbr)
    assert np.max(np.abs(other - want)) > 1e-3  # the two variants really differ


# --------------------------------------------------------------------------
# cross-framework: same function, three native layouts
# --------------------------------------------------------------------------
@needs_keras
@needs_onnx
def test_layouts_agree_across_frameworks():
    """Keras reset_after=True == PyTorch == ONNX lbr=1 after re-laying-out."""
    d = data()
    kernel, rk, bias = d["kernel"], d["rk"], d["bias2"]
    k = fo.keras_forward(kernel, rk, bias, d["x"], d["h0"], reset_after=True,
                         dtype="float64")
    # Keras columns [z|r|h] -> PyTorch rows [r|z|n]
    zrh_to_rzn = lambda m: np.concatenate([m[H:2 * H], m[:H], m[2 * H:]], axis=0)  # noqa: E731
    t = fo.torch_forward(zrh_to_rzn(kernel.T), zrh_to_rzn(rk.T),
                         zrh_to_rzn(bias[0]), zrh_to_rzn(bias[1]), d["x"], d["h0"])
    np.testing.assert_allclose(t, k, rtol=0, atol=TOL64)
    # Keras columns [z|r|h] -> ONNX rows [z|r|h]
    o = fo.onnx_forward(kernel.T[None], rk.T[None], bias.reshape(1, 6 * H),
                        d["x"], d["h0"], linear_before_reset=1)
    np.testing.assert_allclose(o, k, rtol=0, atol=TOL32)


# --------------------------------------------------------------------------
# Keras float64 promotion work-around
# --------------------------------------------------------------------------
@needs_keras
def test_keras_true_float64_patch_is_restored():
    from keras.src.backend.common import dtypes as kdtypes

    before = kdtypes.result_type("float64", "float64")
    d = data()
    fo.keras_forward(d["kernel"], d["rk"], d["bias1"], d["x"], d["h0"],
                     reset_after=False, dtype="float64")
    fo.keras_grad(d["kernel"], d["rk"], d["bias1"], d["x"], d["h0"], d["G"],
                  reset_after=False)
    assert kdtypes.result_type("float64", "float64") == before


@needs_keras
def test_keras_stock_float64_is_at_least_float32_accurate():
    """Without the work-around, Keras-on-torch (3.15) runs the reset_after=False
    cell matmuls in float32 even for a float64 layer; it must still agree at
    float32 accuracy."""
    d = data()
    got = fo.keras_forward(d["kernel"], d["rk"], d["bias1"], d["x"], d["h0"],
                           reset_after=False, dtype="float64", true_float64=False)
    want = ref_keras(d["kernel"], d["rk"], d["bias1"], d["x"], d["h0"], False)
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL32)

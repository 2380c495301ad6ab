"""Numbers stay honest in the kernels (docs/kernels.md, "NaN and infinities").

Promises kept: NaN and ±inf propagate through the generated kernels as in IEEE arithmetic and
PyTorch -- never turned into finite numbers (a NaN input once gave finite states, h = -1, while the
gradients were NaN: the activation helpers' clamps took the "saturated" branch for NaN); and only
real arrays go in: complex, boolean, string and object arrays are refused in one line naming the
array (NumPy would drop an imaginary part with a mere warning).

Checked for every preset and both dtypes against the numpy engine (float64 IEEE) and, for
``pytorch``, against ``torch.nn.GRU`` and its autograd.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import sympy as sp
from helpers import framework_oracle as fo

from grukit import kernels
from grukit.derive.cell.equations import cell_equations
from grukit.derive.cell.functions import ACTIVATIONS, activation
from grukit.derive.cell.losses import LossHead
from grukit.derive.cell.presets import PRESETS
from grukit.derive.errors import GrukitError
from grukit.derive.numeric.bptt import backward
from grukit.derive.numeric.evaluate import engine, forward

DTYPES = ("float64", "float32")
B, T, D, H = 2, 3, 2, 3
SPECIAL = {"nan": np.nan, "+inf": np.inf, "-inf": -np.inf}


def case(conv, dtype, seed=0):
    rng = np.random.default_rng(seed)
    w = {conv.key(p): rng.uniform(-1, 1, conv.param_shape(p, D, H)).astype(dtype) for p in conv.parameters()}
    x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
    h0 = rng.uniform(-1, 1, (B, H)).astype(dtype)
    dh = rng.uniform(-1, 1, (B, T, H)).astype(dtype)
    return w, x, h0, dh


def reference(conv, w, x, h0, dh):
    """The numpy engine (float64, IEEE), one batch row at a time: states and the gradients of sum dh . h."""
    eng, eqs = engine("numpy"), cell_equations(conv)
    params = {p: np.asarray(w[conv.key(p)], float) for p in conv.parameters()}
    states, grads, d_x, d_h0 = [], {conv.key(p): 0.0 for p in conv.parameters()}, [], []
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for b in range(B):
            traces = forward(eqs, params, np.asarray(x[b], float), np.asarray(h0[b], float), eng)
            states.append([tr.values["h"] for tr in traces])
            g = backward(conv, params, traces, LossHead("weighted_sum", tuple(range(T)),
                                                        tuple(np.asarray(dh[b], float))), eng)
            for p in conv.parameters():
                grads[conv.key(p)] = grads[conv.key(p)] + g.params[p]
            d_x.append(g.inputs)
            d_h0.append(g.h0)
    return np.array(states), grads | {"inputs": np.array(d_x), "h0": np.array(d_h0)}


def assert_same_specials(got, want, what, dtype):
    """NaN exactly where ``want`` has NaN, +inf and -inf likewise, the finite values close."""
    got, want = np.asarray(got, float), np.asarray(want, float)
    assert got.shape == want.shape, what
    for name, test in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
        assert np.array_equal(test(got), test(want)), f"{what}: {name} at {np.argwhere(test(got) != test(want))[:3]}"
    finite = np.isfinite(want)
    tol = 1e-9 if dtype == "float64" else 2e-3
    assert np.allclose(got[finite], want[finite], rtol=tol, atol=tol), what


def plant(arrays: dict, where: str, value: float) -> None:
    """Put ``value`` in one entry of ``arrays[where]`` (x: row 0, step 1; h0: row 0)."""
    target = arrays[where]
    index = (0, 1, 0) if where == "x" else (0, 1) if where == "h0" else (0,) * target.ndim
    target[index] = value


# --- the helpers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("helper", ["_tanh", "_sigmoid"])
def test_activation_helpers_keep_nan_and_saturate_at_infinity(helper, dtype):
    """The clamp no longer maps NaN to a finite value: tanh/sigmoid(NaN) is NaN; at ±inf they are
    the limits."""
    module = kernels.load("pytorch", dtype).module
    fn = getattr(module, helper)
    one = np.dtype(dtype).type
    assert np.isnan(fn(one(np.nan)))
    want = {"_tanh": (1.0, -1.0), "_sigmoid": (1.0, 0.0)}[helper]
    assert float(fn(one(np.inf))) == want[0]
    assert abs(float(fn(one(-np.inf))) - want[1]) < 1e-300


# --- every preset, both dtypes, against the numpy engine -------------------------------------------

CASES = [("x", "nan"), ("x", "+inf"), ("x", "-inf"), ("h0", "nan"), ("h0", "+inf"), ("weight", "nan"),
         ("weight", "+inf")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(PRESETS))
def test_nan_and_inf_propagate_as_in_the_numpy_engine(name, dtype):
    """Every preset and dtype: NaN and ±inf in x, h0 or a weight give NaN and inf in the states and
    gradients exactly where the numpy engine (IEEE float64) has them; finite values agree."""
    conv = PRESETS[name]
    k = kernels.load(name, dtype)
    for where, special in CASES:
        w, x, h0, dh = case(conv, dtype)
        key = conv.key(conv.parameters()[0])
        arrays = {"x": x, "h0": h0, "weight": w[key]}
        plant(arrays, where, SPECIAL[special])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fwd = k.forward(x, h0, w)
            grads = k.backward(fwd, dh)
        states, want = reference(conv, w, x, h0, dh)
        label = f"{name} {dtype} {special} in {where}"
        assert_same_specials(fwd.h, states, f"{label}: h", dtype)
        if special == "nan":
            assert np.isnan(fwd.h).any(), label  # the NaN reached the states
        if (where, special) == ("weight", "+inf"):
            continue  # the engine's matrix-vector product skips a zero adjoint (0 * inf = 0); torch below
        for g in want:
            assert_same_specials(grads[g], want[g], f"{label}: d{g}", dtype)


# --- pytorch against torch.nn.GRU -----------------------------------------------------------------

TORCH_PLACES = ["x", "h0", "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]


@pytest.mark.skipif(not fo.available("torch"), reason="torch not installed")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("special", list(SPECIAL))
def test_pytorch_preset_propagates_nan_and_inf_as_torch_does(special, dtype):
    """NaN and ±inf in x, h0 and each of PyTorch's four arrays: the kernels' states and every
    gradient have NaN and inf where ``torch.nn.GRU`` and its autograd (float64) have them."""
    k = kernels.load("pytorch", dtype)
    for where in TORCH_PLACES:
        rng = np.random.default_rng(1)
        arrays = {"weight_ih_l0": rng.uniform(-1, 1, (3 * H, D)), "weight_hh_l0": rng.uniform(-1, 1, (3 * H, H)),
                  "bias_ih_l0": rng.uniform(-1, 1, 3 * H), "bias_hh_l0": rng.uniform(-1, 1, 3 * H)}
        x, h0, G = rng.uniform(-1, 1, (B, T, D)), rng.uniform(-1, 1, (B, H)), rng.uniform(-1, 1, (B, T, H))
        plant(arrays | {"x": x, "h0": h0}, where, SPECIAL[special])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fwd = k.forward(x.astype(dtype), h0.astype(dtype), {n: v.astype(dtype) for n, v in arrays.items()})
            grads = k.backward(fwd, G.astype(dtype))
        rows = [fo.torch_grad(*arrays.values(), x[b], h0[b], G[b]) for b in range(B)]
        label = f"{dtype} {special} in {where}"
        states = np.array([fo.torch_forward(*arrays.values(), x[b], h0[b]) for b in range(B)])
        assert_same_specials(fwd.h, states, f"{label}: h", dtype)
        for name in ("inputs", "h0"):
            assert_same_specials(grads[name], np.array([r[name] for r in rows]), f"{label}: d{name}", dtype)
        for name in arrays:
            assert_same_specials(grads[name], sum(r[name] for r in rows), f"{label}: d{name}", dtype)


# --- only real arrays -----------------------------------------------------------------------------

BAD_KINDS = {"complex": lambda a: a + 0.5j, "bool": lambda a: a > 0, "object": lambda a: a.astype(object),
             "string": lambda a: a.astype(str)}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(BAD_KINDS))
@pytest.mark.parametrize("which", ["x", "h0", "weight", "framework", "dh"])
def test_non_real_arrays_are_refused_naming_the_array(which, kind, dtype):
    """A complex (bool, object, string) array is refused in one line naming it, not cast with a warning."""
    name = "pytorch" if which == "framework" else "course-notes"
    conv = PRESETS[name]
    k = kernels.load(name, dtype)
    w, x, h0, dh = case(conv, dtype)
    if which == "framework":
        rng = np.random.default_rng(2)
        w = {"weight_ih_l0": rng.uniform(-1, 1, (3 * H, D)), "weight_hh_l0": rng.uniform(-1, 1, (3 * H, H)),
             "bias_ih_l0": rng.uniform(-1, 1, 3 * H), "bias_hh_l0": rng.uniform(-1, 1, 3 * H)}
        w = {n: v.astype(dtype) for n, v in w.items()}
    bad = BAD_KINDS[kind]
    if which == "x":
        x, label = bad(x), "x"
    elif which == "h0":
        h0, label = bad(h0), "h0"
    elif which == "dh":
        dh, label = bad(dh), "dh"
    else:
        key = next(iter(w))
        w[key], label = bad(w[key]), f"weights[{key!r}]"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning on the way
        with pytest.raises(GrukitError) as info:
            k.backward(k.forward(x, h0, w), dh)
    message = str(info.value)
    assert message.startswith(label + ":") and "\n" not in message, message


@pytest.mark.parametrize("where", ["weight", "inputs", "h0"])
def test_the_numba_engine_refuses_complex_values(where):
    """The finding: the ``numba`` engine copied complex values into float64 arrays, dropping the
    imaginary part with only a ComplexWarning. Now one line naming the value."""
    conv = PRESETS["course-notes"]
    w, x, h0, _ = case(conv, "float64")
    params = {p: w[conv.key(p)] for p in conv.parameters()}
    inputs, state = x[0], h0[0]
    first = conv.parameters()[0]
    if where == "weight":
        params[first] = params[first] + 1j
    elif where == "inputs":
        inputs = inputs + 1j
    else:
        state = state + 1j
    label = conv.key(first) if where == "weight" else where
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(GrukitError, match=f"^{label}: a complex array"):
            engine("numba").run_forward(cell_equations(conv), params, inputs, state)


@pytest.mark.parametrize("clip", [None, 3])
@pytest.mark.parametrize("kind", sorted(ACTIVATIONS))
def test_every_activation_keeps_nan(kind, clip):
    """A piecewise activation used to send NaN to its last piece (relu(NaN) = 0): every activation,
    clipped or not, now gives NaN for NaN in the float engine, and keeps +-inf sensible."""
    a = sp.Symbol("a", real=True)
    eng = engine("numpy")
    act = ACTIVATIONS[kind]  # non-zero parameters: ONNX's default alpha = 0 makes Affine a constant
    alpha, beta = (None if act.alpha is None else 0.5), (None if act.beta is None else 0.25)
    with np.errstate(invalid="ignore", over="ignore"):
        out = eng.apply(activation(kind, a, alpha, beta, clip), {"a": np.array([np.nan, 0.5])})
    assert np.isnan(out[0]) and np.isfinite(out[1])


def test_relu_kernels_keep_nan():
    """The kernels of a convention with piecewise activations (relu candidate, thresholded-relu gates)."""
    conv = PRESETS["pytorch"].with_changes(name="relu-gates", candidate_activation="relu",
                                           gate_activation="thresholded_relu", layout=None)
    k = kernels.load(conv, "float64")
    rng = np.random.default_rng(0)
    weights = {conv.key(p): rng.standard_normal(conv.param_shape(p, 2, 3)) for p in conv.parameters()}
    x = rng.standard_normal((2, 4, 2))
    x[0, 1, 0] = np.nan
    fwd = k.forward(np.ascontiguousarray(x), np.zeros((2, 3)), weights)
    assert np.isnan(fwd.h[0, 1:]).all() and np.isfinite(fwd.h[1]).all() and np.isfinite(fwd.h[0, 0]).all()

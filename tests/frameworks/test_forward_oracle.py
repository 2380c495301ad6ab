"""grukit's forward pass against the real frameworks (the ``oracle`` extra: Keras 3 on torch,
PyTorch, ONNX Runtime), with weights in each framework's own layout saved as ``.npz`` and read
through a problem file ``weights: {layout: ..., file: ...}`` -- the path a user takes.

Tolerances: 1e-5 against float32 frameworks (Keras float32, ONNX Runtime), 1e-10 against float64
(PyTorch float64, Keras float64 with its float64 demotion switched off by the oracle).
Each test skips cleanly when its framework is not installed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT
from helpers import framework_oracle as fo

from grukit.derive.cell.layouts import LAYOUTS
from grukit.derive.cell.presets import PRESETS
from grukit.derive.files.problem_file import load_problem
from grukit.derive.numeric.solve import solve

EXAMPLES = ROOT / "docs" / "examples"
D, H, T = 3, 4, 5
TOL32, TOL64 = 1e-5, 1e-10

needs_keras = pytest.mark.skipif(not fo.available("keras", "torch"), reason="keras (torch backend) not installed")
needs_torch = pytest.mark.skipif(not fo.available("torch"), reason="torch not installed")
needs_onnx = pytest.mark.skipif(not fo.available("onnx", "onnxruntime"), reason="onnx / onnxruntime not installed")


# --- helpers ---------------------------------------------------------------------------------------

def sequence(seed: int, scale: float = 1.0):
    """Inputs (T, D) and h0 (H,) as float32 values, so every framework sees the same numbers."""
    rng = np.random.default_rng(seed)
    inputs = (scale * rng.uniform(-1, 1, (T, D))).astype(np.float32)
    h0 = rng.uniform(-0.5, 0.5, H).astype(np.float32)
    return inputs, h0


def keras_arrays(seed: int, reset_after: bool, scale: float = 0.6) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    bias_shape = (2, 3 * H) if reset_after else (3 * H,)
    return {"kernel": (scale * rng.standard_normal((D, 3 * H))).astype(np.float32),
            "recurrent_kernel": (scale * rng.standard_normal((H, 3 * H))).astype(np.float32),
            "bias": (0.5 * rng.standard_normal(bias_shape)).astype(np.float32)}


def torch_arrays(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"weight_ih_l0": 0.6 * rng.standard_normal((3 * H, D)),
            "weight_hh_l0": 0.6 * rng.standard_normal((3 * H, H)),
            "bias_ih_l0": 0.5 * rng.standard_normal(3 * H), "bias_hh_l0": 0.5 * rng.standard_normal(3 * H)}


def onnx_arrays(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"W": (0.6 * rng.standard_normal((1, 3 * H, D))).astype(np.float32),
            "R": (0.6 * rng.standard_normal((1, 3 * H, H))).astype(np.float32),
            "B": (0.5 * rng.standard_normal((1, 6 * H))).astype(np.float32)}


def grukit_states(tmp_path: Path, convention: str, layout: str, arrays: dict, inputs, h0,
                  engine: str = "numpy", name: str = "p") -> np.ndarray:
    """Write arrays (.npz) and a problem file as a user would; return grukit's h_t, shape (T, H)."""
    np.savez(tmp_path / f"{name}.npz", **arrays)
    rows = "\n".join(f"  - [{', '.join(repr(float(v)) for v in row)}]" for row in np.asarray(inputs))
    (tmp_path / f"{name}.yaml").write_text(
        f"convention: {convention}\ninputs:\n{rows}\nh0: [{', '.join(repr(float(v)) for v in h0)}]\n"
        f"weights: {{layout: {layout}, file: {name}.npz}}\n")
    sol = solve(load_problem(tmp_path / f"{name}.yaml"), engine)
    return np.array([np.asarray(tr.values["h"], dtype=float) for tr in sol.traces])


def keras(arrays, inputs, h0, reset_after, dtype="float32", recurrent_activation="sigmoid"):
    return fo.keras_forward(arrays["kernel"], arrays["recurrent_kernel"], arrays["bias"], inputs, h0,
                            reset_after=reset_after, dtype=dtype, recurrent_activation=recurrent_activation)


def torch(arrays, inputs, h0):
    return fo.torch_forward(arrays["weight_ih_l0"], arrays["weight_hh_l0"], arrays["bias_ih_l0"],
                            arrays["bias_hh_l0"], inputs, h0, dtype="float64")


def close(a, b, tol):
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=0, atol=tol)


def far(a, b, gap=1e-3):
    assert np.max(np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))) > gap


# --- each framework, in its own layout --------------------------------------------------------------

@needs_keras
@pytest.mark.parametrize("preset, reset_after", [("keras", True), ("keras-reset-before", False)])
def test_keras(tmp_path, preset, reset_after):
    arrays, (inputs, h0) = keras_arrays(1, reset_after), sequence(2)
    ours = grukit_states(tmp_path, preset, "keras", arrays, inputs, h0)
    close(ours, keras(arrays, inputs, h0, reset_after), TOL32)
    close(ours, keras(arrays, inputs, h0, reset_after, dtype="float64"), TOL64)


@needs_keras
def test_keras_bias_rows_are_input_then_recurrent(tmp_path):
    """Swapping the (2, 3U) bias rows changes Keras's output: the rows are [input, recurrent]."""
    arrays, (inputs, h0) = keras_arrays(3, True), sequence(4)
    swapped = dict(arrays, bias=arrays["bias"][::-1].copy())
    ours_swapped = grukit_states(tmp_path, "keras", "keras", swapped, inputs, h0)
    ref = keras(arrays, inputs, h0, True, dtype="float64")
    far(ours_swapped, ref)
    close(grukit_states(tmp_path, "keras", "keras", arrays, inputs, h0, name="q"), ref, TOL64)


@needs_keras
def test_keras3_hard_sigmoid(tmp_path):
    """Keras 3's "hard_sigmoid" is relu6(a + 3)/6 = clip(a/6 + 1/2, 0, 1): a user convention with
    gate_activation hard_sigmoid_keras3 matches it (gates saturating), Keras 2's 0.2a + 0.5 does not."""
    keras_mod = fo._import_keras()
    a = np.array([-7.0, -3.0, -2.5, -1.0, 0.0, 0.3, 2.5, 3.0, 7.0])
    got = keras_mod.activations.hard_sigmoid(keras_mod.ops.convert_to_tensor(a)).detach().cpu().numpy()
    close(got, np.clip(a / 6 + 0.5, 0, 1), 1e-7)
    far(got, np.clip(0.2 * a + 0.5, 0, 1), 0.05)

    arrays, (inputs, h0) = keras_arrays(5, True, scale=2.5), sequence(6, scale=2.0)
    ref = keras(arrays, inputs, h0, True, dtype="float64", recurrent_activation="hard_sigmoid")
    ours = grukit_states(tmp_path, "{preset: keras, gate_activation: hard_sigmoid_keras3}", "keras", arrays,
                         inputs, h0, engine="exact")
    close(ours, ref, TOL64)
    close(ours, keras(arrays, inputs, h0, True, recurrent_activation="hard_sigmoid"), TOL32)
    # The clip was exercised: some gate is exactly 0 or 1 somewhere.
    sol = solve(load_problem(tmp_path / "p.yaml"), "exact")
    gates = np.concatenate([np.asarray(tr.values[g], dtype=float) for tr in sol.traces for g in "zr"])
    assert ((gates == 0) | (gates == 1)).any() and ((gates > 0) & (gates < 1)).any()
    keras2 = grukit_states(tmp_path, "{preset: keras, gate_activation: hard_sigmoid_keras2}", "keras", arrays,
                           inputs, h0, name="k2")
    far(keras2, ref)


@needs_keras
def test_keras2_model_runs_in_keras3_with_gate_blocks_scaled(tmp_path):
    """A Keras-2 hard-sigmoid GRU (preset keras2) equals Keras 3's hard_sigmoid GRU whose z and r
    blocks (weights and biases) are multiplied by 1.2: clip(0.2a + 1/2) = clip((1.2a)/6 + 1/2)."""
    arrays, (inputs, h0) = keras_arrays(7, False, scale=2.5), sequence(8, scale=2.0)
    ours = grukit_states(tmp_path, "keras2", "keras", arrays, inputs, h0, engine="exact")
    scaled = {k: v.astype(np.float64).copy() for k, v in arrays.items()}
    for k in scaled:
        scaled[k][..., : 2 * H] *= 1.2
    close(ours, keras(scaled, inputs, h0, False, dtype="float64", recurrent_activation="hard_sigmoid"), TOL64)
    far(ours, keras(arrays, inputs, h0, False, dtype="float64", recurrent_activation="hard_sigmoid"))


@needs_torch
def test_pytorch(tmp_path):
    arrays, (inputs, h0) = torch_arrays(9), sequence(10)
    close(grukit_states(tmp_path, "pytorch", "pytorch", arrays, inputs, h0), torch(arrays, inputs, h0), TOL64)


@needs_torch
def test_pytorch_exact_engine(tmp_path):
    arrays, (inputs, h0) = torch_arrays(11), sequence(12)
    close(grukit_states(tmp_path, "pytorch", "pytorch", arrays, inputs, h0, engine="exact"),
          torch(arrays, inputs, h0), TOL64)


@needs_onnx
@pytest.mark.parametrize("preset, lbr", [("onnx", 0), ("onnx-lbr1", 1)])
def test_onnx(tmp_path, preset, lbr):
    arrays, (inputs, h0) = onnx_arrays(13), sequence(14)
    ours = grukit_states(tmp_path, preset, "onnx", arrays, inputs, h0)
    ref = fo.onnx_forward(arrays["W"], arrays["R"], arrays["B"], inputs, h0, linear_before_reset=lbr)
    close(ours, ref, TOL32)
    other = fo.onnx_forward(arrays["W"], arrays["R"], arrays["B"], inputs, h0, linear_before_reset=1 - lbr)
    far(ours, other)  # reset before and reset after are different functions


@needs_onnx
def test_onnx_bias_is_input_then_recurrent(tmp_path):
    """B = [Wb_z, Wb_r, Wb_h, Rb_z, Rb_r, Rb_h]: with linear_before_reset=1 (where Rb_h sits inside
    r * (...)) swapping the halves changes the output; with 0 every bias is a plain sum."""
    arrays, (inputs, h0) = onnx_arrays(15), sequence(16)
    swapped = dict(arrays, B=np.concatenate([arrays["B"][:, 3 * H:], arrays["B"][:, :3 * H]], axis=1))
    ref1 = fo.onnx_forward(arrays["W"], arrays["R"], arrays["B"], inputs, h0, linear_before_reset=1)
    far(grukit_states(tmp_path, "onnx-lbr1", "onnx", swapped, inputs, h0), ref1)
    ref0 = fo.onnx_forward(arrays["W"], arrays["R"], arrays["B"], inputs, h0, linear_before_reset=0)
    close(grukit_states(tmp_path, "onnx", "onnx", swapped, inputs, h0, name="q"), ref0, TOL32)


# --- conversions between layouts and conventions -------------------------------------------------

@needs_torch
def test_pytorch_weights_in_the_onnx_lbr1_convention(tmp_path):
    """PyTorch's arrays read (layout pytorch) into the onnx-lbr1 convention give PyTorch's outputs."""
    arrays, (inputs, h0) = torch_arrays(17), sequence(18)
    close(grukit_states(tmp_path, "onnx-lbr1", "pytorch", arrays, inputs, h0), torch(arrays, inputs, h0), TOL64)
    # and into the Keras (reset after) convention: same mathematics, other names and orientation
    close(grukit_states(tmp_path, "keras", "pytorch", arrays, inputs, h0, name="k"), torch(arrays, inputs, h0), TOL64)


@needs_torch
@needs_onnx
def test_pytorch_to_onnx_swaps_the_first_two_blocks(tmp_path):
    arrays, (inputs, h0) = torch_arrays(19), sequence(20)
    conv = PRESETS["onnx-lbr1"]
    params = LAYOUTS["pytorch"].unpack(conv, arrays)
    onnx = {k: np.asarray(v, dtype=np.float64) for k, v in LAYOUTS["onnx"].pack(conv, params, D, H).items()}

    def swap(w):  # [r|z|n] -> [z|r|n] along the packed axis
        return np.concatenate([w[H:2 * H], w[:H], w[2 * H:]])

    close(onnx["W"][0], swap(arrays["weight_ih_l0"]), 0)
    close(onnx["B"][0], np.concatenate([swap(arrays["bias_ih_l0"]), swap(arrays["bias_hh_l0"])]), 0)
    ref = fo.onnx_forward(onnx["W"], onnx["R"], onnx["B"], inputs, h0, linear_before_reset=1)
    close(ref, torch(arrays, inputs, h0), TOL32)


@needs_keras
@needs_torch
def test_keras_to_pytorch_needs_the_block_swap(tmp_path):
    """keras-team/keras#15915: transposing PyTorch's weights into Keras without reordering the
    blocks gives other outputs; grukit's layouts (transpose + [r|z|n] <-> [z|r|h]) give the same."""
    arrays, (inputs, h0) = torch_arrays(21), sequence(22)
    ref = torch(arrays, inputs, h0)
    conv = PRESETS["keras"]
    params = LAYOUTS["pytorch"].unpack(conv, arrays)
    k = {n: np.asarray(v, dtype=np.float64) for n, v in LAYOUTS["keras"].pack(conv, params, D, H).items()}
    close(keras(k, inputs, h0, True, dtype="float64"), ref, TOL64)
    naive = {"kernel": arrays["weight_ih_l0"].T, "recurrent_kernel": arrays["weight_hh_l0"].T,
             "bias": np.stack([arrays["bias_ih_l0"], arrays["bias_hh_l0"]])}
    far(keras(naive, inputs, h0, True, dtype="float64"), ref)


@needs_keras
@needs_onnx
def test_keras_reset_before_to_onnx_lbr0(tmp_path):
    """Keras reset_after=False <-> ONNX linear_before_reset=0: transpose, B = concat(bias, 0)."""
    arrays, (inputs, h0) = keras_arrays(23, False), sequence(24)
    ref = keras(arrays, inputs, h0, False)
    W, R = arrays["kernel"].T[None], arrays["recurrent_kernel"].T[None]
    B = np.concatenate([arrays["bias"], np.zeros(3 * H, np.float32)])[None]
    close(fo.onnx_forward(W, R, B, inputs, h0, linear_before_reset=0), ref, TOL32)
    close(grukit_states(tmp_path, "onnx", "onnx", {"W": W, "R": R, "B": B}, inputs, h0), ref, TOL32)


@needs_torch
def test_z_admits_new_with_negated_z_terms(tmp_path):
    """1 - sigmoid(a) = sigmoid(-a): PyTorch's GRU is the z-admits-new GRU with every term of the
    z pre-activation negated."""
    arrays, (inputs, h0) = torch_arrays(25), sequence(26)
    negated = {k: v.copy() for k, v in arrays.items()}
    for k in negated:
        negated[k][H:2 * H] *= -1  # PyTorch's z block is the second
    ours = grukit_states(tmp_path, "{preset: pytorch, update_rule: z_admits_new}", "pytorch", negated, inputs, h0)
    close(ours, torch(arrays, inputs, h0), TOL64)


# --- seed 000: the Keras question --------------------------------------------------------------------

@needs_keras
def test_keras_question_matches_keras():
    """docs/examples/keras-question.yaml: the posted weights, inputs 1, 2, 9, 8 one per step."""
    with np.load(EXAMPLES / "keras-question.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    assert all(v.dtype == np.float32 for v in arrays.values())
    inputs, h0 = np.array([[1], [2], [9], [8]], np.float32), np.zeros(1, np.float32)
    sol = solve(load_problem(EXAMPLES / "keras-question.yaml"), "exact")
    ours = np.array([np.asarray(tr.values["h"], dtype=float) for tr in sol.traces])
    ref = keras(arrays, inputs, h0, True)
    close(ours, ref, 1e-6)
    close(ours, keras(arrays, inputs, h0, True, dtype="float64"), TOL64)
    # What Keras prints for these weights; the question's 0.9680257 is not it.
    assert round(float(ref[-1, 0]), 7) == -0.4627954
    # One unit and zero biases: reset before and after coincide.
    close(keras(dict(arrays, bias=np.zeros(3, np.float32)), inputs, h0, False), ref, 1e-6)

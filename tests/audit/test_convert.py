"""grukit convert: weights between conventions and framework layouts, exact where a map exists.

Checked with the plain NumPy GRU of tests/helpers/numpy_gru.py (the converted weights give the same states)
and, in the ``oracle`` extra, with the real frameworks: Keras -> PyTorch -> ONNX -> Keras round trip
of reset-after weights is bit for bit, and each framework's output with the converted weights
equals the original Keras layer's.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import framework_oracle as fo
from helpers.numpy_gru import gru_reference

from grukit.codegen.cli.main import main
from grukit.derive.audit.convert import read_weights
from grukit.derive.cell.presets import PRESETS

D, H, T = 3, 4, 5


def keras_arrays(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"kernel": (0.6 * rng.standard_normal((D, 3 * H))).astype(np.float32),
            "recurrent_kernel": (0.6 * rng.standard_normal((H, 3 * H))).astype(np.float32),
            "bias": (0.5 * rng.standard_normal((2, 3 * H))).astype(np.float32)}


def sequence(seed: int):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (T, D)).astype(np.float32), rng.uniform(-0.5, 0.5, H).astype(np.float32)


def convert(capsys, source, target, src: Path, out: Path) -> str:
    code = main(["convert", "--from", str(source), "--to", str(target), str(src), str(out)])
    text = capsys.readouterr()
    assert code == 0, text.err
    return text.out


def numpy_states(conv_name, path: Path, inputs, h0):
    """The plain NumPy GRU on the weights in a file (unpacked by grukit's layout reader)."""
    conv = PRESETS[conv_name] if isinstance(conv_name, str) else conv_name
    params, _, _ = read_weights(conv, path)
    keyed = {(p.role, p.gate): np.asarray(v, float) for p, v in params.items()}
    return np.array([s["h"] for s in gru_reference(conv.axes(), keyed, inputs, h0)])


def test_keras_pytorch_onnx_keras_round_trip_is_exact(tmp_path, capsys):
    original = keras_arrays(1)
    np.savez(tmp_path / "k.npz", **original)
    convert(capsys, "keras", "pytorch", tmp_path / "k.npz", tmp_path / "t.npz")
    convert(capsys, "pytorch", "onnx-lbr1", tmp_path / "t.npz", tmp_path / "o.npz")
    out = convert(capsys, "onnx-lbr1", "keras", tmp_path / "o.npz", tmp_path / "k2.npz")
    back = np.load(tmp_path / "k2.npz")
    assert sorted(back.files) == sorted(original)
    for name, value in original.items():
        assert back[name].dtype == np.float32 and np.array_equal(back[name], value)
    assert "rounded" not in out
    torch_arrays = np.load(tmp_path / "t.npz")
    assert torch_arrays["weight_ih_l0"].shape == (3 * H, D) and torch_arrays["bias_hh_l0"].shape == (3 * H,)
    inputs, h0 = sequence(2)
    ref = numpy_states("keras", tmp_path / "k.npz", inputs, h0)
    for conv, file in (("pytorch", "t.npz"), ("onnx-lbr1", "o.npz")):
        np.testing.assert_allclose(numpy_states(conv, tmp_path / file, inputs, h0), ref, rtol=0, atol=1e-12)


def test_papers_and_frameworks(tmp_path, capsys):
    """cho2014 -> chung2014, one array per key: z negated, the rest as is; the NumPy GRU agrees."""
    rng = np.random.default_rng(3)
    cho = PRESETS["cho2014"]
    arrays = {cho.key(p): rng.standard_normal(cho.param_shape(p, D, H)) for p in cho.parameters()}
    np.savez(tmp_path / "cho.npz", **arrays)
    out = convert(capsys, "cho2014", "chung2014", tmp_path / "cho.npz", tmp_path / "chung.npz")
    assert "negate every term of the z pre-activation" in out
    chung = np.load(tmp_path / "chung.npz")
    assert np.array_equal(chung["W_z"], -arrays["W_z"]) and np.array_equal(chung["W"], arrays["W"])
    inputs, h0 = sequence(4)
    np.testing.assert_allclose(numpy_states("chung2014", tmp_path / "chung.npz", inputs, h0),
                               numpy_states("cho2014", tmp_path / "cho.npz", inputs, h0), rtol=0, atol=1e-12)


def test_keras2_to_keras3_rescale(tmp_path, capsys):
    rng = np.random.default_rng(5)
    arrays = {"kernel": (2 * rng.standard_normal((D, 3 * H))).astype(np.float32),
              "recurrent_kernel": (2 * rng.standard_normal((H, 3 * H))).astype(np.float32),
              "bias": rng.standard_normal(3 * H).astype(np.float32)}
    np.savez(tmp_path / "k2.npz", **arrays)
    (tmp_path / "k3.yaml").write_text("preset: keras-reset-before\ngate_activation: hard_sigmoid_keras3\n")
    out = convert(capsys, "keras2", tmp_path / "k3.yaml", tmp_path / "k2.npz", tmp_path / "k3.npz")
    assert "by 6/5" in out and "rounded once to float32" in out
    k3 = np.load(tmp_path / "k3.npz")
    np.testing.assert_array_equal(k3["kernel"][:, 2 * H:], arrays["kernel"][:, 2 * H:])  # the candidate: as is
    np.testing.assert_allclose(k3["kernel"][:, :2 * H], np.float32(1.2) * arrays["kernel"][:, :2 * H], rtol=1e-6)


def test_no_exact_map_is_a_one_line_error_and_no_file(tmp_path, capsys):
    np.savez(tmp_path / "k.npz", **keras_arrays(6))
    code = main(["convert", "--from", "keras", "--to", "keras-reset-before", str(tmp_path / "k.npz"),
                 str(tmp_path / "x.npz")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1 and "no exact mapping: reset differs" in err
    assert not (tmp_path / "x.npz").exists()


def test_pytorch_to_a_target_without_b_hn(tmp_path, capsys):
    """Only when b_hn = 0, and then it says so."""
    np.savez(tmp_path / "k.npz", **keras_arrays(7))
    convert(capsys, "keras", "pytorch", tmp_path / "k.npz", tmp_path / "t.npz")
    (tmp_path / "one.yaml").write_text("preset: keras\nbiases: single\nname: reset-after-one-bias\n")
    code = main(["convert", "--from", "pytorch", "--to", str(tmp_path / "one.yaml"), str(tmp_path / "t.npz"),
                 str(tmp_path / "x.npz")])
    err = capsys.readouterr().err
    assert code == 2 and "b_hn) is not 0" in err and not (tmp_path / "x.npz").exists()
    arrays = dict(np.load(tmp_path / "t.npz"))
    arrays["bias_hh_l0"][2 * H:] = 0
    np.savez(tmp_path / "t0.npz", **arrays)
    out = convert(capsys, "pytorch", tmp_path / "one.yaml", tmp_path / "t0.npz", tmp_path / "x.npz")
    assert "holds in t0.npz, so the map is exact" in out and "b_hn" in out


@pytest.mark.parametrize("argv, message", [
    (["--from", "keras", "--to", "pytorch", "missing.npz", "o.npz"], "cannot read"),
    (["--from", "keras", "--to", "pytorch", "k.npz", "o.txt"], "o.txt: the output must be an .npz file"),
    (["--from", "pytorch", "--to", "keras", "k.npz", "o.npz"], "missing arrays"),
    (["--from", "keras", "k.npz", "o.npz"], "--to missing"),
    (["k.npz", "o.onnx"], "an .npz does not say whose arrays it holds"),
    (["k.npz", "o.txt"], "k.npz: not a model or problem file"),
])
def test_bad_convert_arguments(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    np.savez(tmp_path / "k.npz", **keras_arrays(8))
    assert main(["convert", *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and message in err


# --- the real frameworks (oracle extra) -------------------------------------------------------------

needs_all = pytest.mark.skipif(not (fo.available("keras", "torch") and fo.available("onnx", "onnxruntime")),
                               reason="keras (torch backend), torch, onnx or onnxruntime not installed")


@needs_all
def test_frameworks_run_the_converted_weights_to_kerass_output(tmp_path, capsys):
    original = keras_arrays(9)
    np.savez(tmp_path / "k.npz", **original)
    convert(capsys, "keras", "pytorch", tmp_path / "k.npz", tmp_path / "t.npz")
    convert(capsys, "pytorch", "onnx-lbr1", tmp_path / "t.npz", tmp_path / "o.npz")
    convert(capsys, "onnx-lbr1", "keras", tmp_path / "o.npz", tmp_path / "k2.npz")
    inputs, h0 = sequence(10)
    ref = fo.keras_forward(original["kernel"], original["recurrent_kernel"], original["bias"], inputs, h0,
                           reset_after=True, dtype="float64")
    t, o, k2 = (np.load(tmp_path / f) for f in ("t.npz", "o.npz", "k2.npz"))
    torch_out = fo.torch_forward(t["weight_ih_l0"], t["weight_hh_l0"], t["bias_ih_l0"], t["bias_hh_l0"], inputs, h0,
                                 dtype="float64")
    np.testing.assert_allclose(torch_out, ref, rtol=0, atol=1e-10)
    onnx_out = fo.onnx_forward(o["W"], o["R"], o["B"], inputs, h0, linear_before_reset=1)
    np.testing.assert_allclose(onnx_out, ref, rtol=0, atol=1e-5)
    again = fo.keras_forward(k2["kernel"], k2["recurrent_kernel"], k2["bias"], inputs, h0, reset_after=True,
                             dtype="float64")
    np.testing.assert_array_equal(again, ref)


@needs_all
def test_onnx_reset_before_to_keras_reset_before(tmp_path, capsys):
    """ONNX linear_before_reset=0 -> Keras reset_after=False: transpose, B's two halves added."""
    rng = np.random.default_rng(11)
    arrays = {"W": (0.6 * rng.standard_normal((1, 3 * H, D))).astype(np.float32),
              "R": (0.6 * rng.standard_normal((1, 3 * H, H))).astype(np.float32),
              "B": (0.5 * rng.standard_normal((1, 6 * H))).astype(np.float32)}
    np.savez(tmp_path / "o.npz", **arrays)
    convert(capsys, "onnx", "keras-reset-before", tmp_path / "o.npz", tmp_path / "k.npz")
    k = np.load(tmp_path / "k.npz")
    inputs, h0 = sequence(12)
    ref = fo.onnx_forward(arrays["W"], arrays["R"], arrays["B"], inputs, h0, linear_before_reset=0)
    got = fo.keras_forward(k["kernel"], k["recurrent_kernel"], k["bias"], inputs, h0, reset_after=False)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)

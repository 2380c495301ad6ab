"""Inputs in the framework's own order: ``input_layout: time_major`` reads a batch as T x B x D, as ONNX
defines a layout-0 node's X; what cannot be the stated order is refused in one line; the JSON names
the axes. The reference is ONNX Runtime run on X exactly as given (skipped without onnx/onnxruntime).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from helpers import framework_oracle as fo

from grukit.codegen.cli.main import main

T, B, D, H = 4, 2, 3, 2  # T != B: read in the wrong order the shapes still fit, and say nothing


def _onnx_problem(tmp_path, **keys):
    """A one-node ONNX GRU (layout 0) with X (T x B x D) as ONNX defines it in x.npy; ONNX Runtime's Y."""
    if not fo.available("onnx", "onnxruntime"):
        pytest.skip("onnx / onnxruntime not installed")
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(18)
    W, R = rng.uniform(-1, 1, (1, 3 * H, D)), rng.uniform(-1, 1, (1, 3 * H, H))
    bias, X = rng.uniform(-0.5, 0.5, (1, 6 * H)), rng.uniform(-2, 2, (T, B, D))
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for a, n in ((W, "W"), (R, "R"), (bias, "B"))]
    node = helper.make_node("GRU", ["X", "W", "R", "B"], ["Y"], hidden_size=H)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [T, B, D])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 7
    onnx.save(model, tmp_path / "gru.onnx")
    X = X.astype(np.float32)
    np.save(tmp_path / "x.npy", X.astype(np.float64))
    (Y,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"X": X})
    spec = {"inputs": {"file": "x.npy"}, "weights": {"file": "gru.onnx"}, **keys}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path / "p.yaml", X, Y


def _run(capsys, *args):
    capsys.readouterr()
    status = main([*map(str, args), "--json", "--engine", "numpy"])
    captured = capsys.readouterr()
    return status, (json.loads(captured.out) if status == 0 else captured.err)


def test_a_layout_0_x_given_as_onnx_defines_it_gives_onnx_runtimes_y(tmp_path, capsys):
    path, _, Y = _onnx_problem(tmp_path, input_layout="time_major")
    status, data = _run(capsys, "forward", path)
    assert status == 0
    np.testing.assert_allclose(np.asarray(data["outputs"]), Y, atol=1e-5)
    assert data["axes"] == {"inputs": ["time", "batch", "features"],
                            "outputs": ["time", "directions", "batch", "hidden"], "h_n": ["cells", "batch", "hidden"]}


def test_read_in_the_default_order_the_same_x_is_another_batch(tmp_path, capsys):
    """What the issue saw: batch-major by default, the shapes allow it, the numbers are not ONNX's."""
    path, _, Y = _onnx_problem(tmp_path)
    status, data = _run(capsys, "forward", path)
    assert status == 0 and data["axes"]["inputs"] == ["batch", "time", "features"]
    assert np.shape(data["outputs"]) == (B, 1, T, H) and np.shape(data["outputs"]) != Y.shape


@pytest.mark.parametrize("keys, says", [
    ({"lengths": [T, T]}, "but lengths gives 2 sequences; the inputs fit input_layout: time_major"),
    ({"mask": [[1] * T for _ in range(B)]}, f"but mask gives {B} sequences of {T} steps; the inputs fit "
                                           "input_layout: time_major"),
    ({"lengths": [1, 2, 3]}, "but lengths gives 3 sequences"),
    ({"input_layout": "time_major", "lengths": [1, 2, 3, 4]}, "but lengths gives 4 sequences; the inputs fit "
                                                              "input_layout: batch_major"),
    ({"input_layout": "sideways"}, "input_layout: unknown value 'sideways' (choose from batch_major, time_major)"),
])
def test_what_cannot_be_the_stated_order_is_one_line(tmp_path, capsys, keys, says):
    path, _, _ = _onnx_problem(tmp_path, **keys)
    status, err = _run(capsys, "forward", path)
    assert status == 2 and len(err.splitlines()) == 1 and says in err, err
    if "lengths" in keys or "mask" in keys:
        assert f"the batch has B = {T if 'input_layout' not in keys else B} sequences" in err


def test_the_gradient_of_time_major_inputs_comes_back_time_major(tmp_path, capsys):
    G = np.random.default_rng(3).uniform(-1, 1, (T, 1, B, H)).round(2).tolist()
    path, X, _ = _onnx_problem(tmp_path, input_layout="time_major", loss={"type": "weighted_sum", "G": G})
    status, data = _run(capsys, "grad", path)
    assert status == 0 and data["axes"]["inputs"] == ["time", "batch", "features"]
    spec = yaml.safe_load(path.read_text())
    np.save(tmp_path / "x.npy", X.astype(np.float64).transpose(1, 0, 2))
    del spec["input_layout"]
    path.write_text(yaml.safe_dump(spec))
    status, batch_major = _run(capsys, "grad", path)
    assert status == 0 and batch_major["axes"]["inputs"] == ["batch", "time", "features"]
    np.testing.assert_array_equal(np.asarray(data["inputs"]), np.asarray(batch_major["inputs"]).transpose(1, 0, 2))
    assert data["grads"] == batch_major["grads"] and data["loss"] == batch_major["loss"]

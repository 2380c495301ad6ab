"""grukit convert IN OUT writes model files, each loaded here by its own framework (torch nn.GRU,
ONNX Runtime, Keras 3 on the torch backend) and run against the source model in its own framework:
outputs and final states to 1e-6 (float32). A round trip PyTorch -> ONNX -> Keras -> PyTorch gives
back the state dict bit for bit; where a target has no exact form, one line says why and points to
grukit's PyTorch module. Skipped without the frameworks (the ``oracle`` extra)."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import yaml
from helpers import framework_oracle as fo
from helpers.hostile import refused, run

pytestmark = pytest.mark.skipif(not fo.available("torch", "onnx", "onnxruntime", "keras"),
                                reason="torch, onnx, onnxruntime or keras not installed")
TOL = 1e-6
B, T, D, H = 3, 5, 3, 4


def converted(tmp_path, source, name):
    out = tmp_path / name
    o = run(["convert", source, out])
    assert o.status == 0, o.err
    return out


def torch_gru(seed, layers=2, bidirectional=True):
    import torch

    torch.manual_seed(seed)
    gru = torch.nn.GRU(D, H, num_layers=layers, bidirectional=bidirectional, batch_first=True)
    with torch.no_grad():
        for p in gru.parameters():  # biases well away from 0: b_hn matters
            p.uniform_(-0.9, 0.9)
    return gru


def inputs(seed):
    return np.random.default_rng(seed).uniform(-2, 2, (B, T, D)).astype(np.float32)


def torch_run(gru, x):
    import torch

    with torch.no_grad():
        y, h = gru(torch.from_numpy(x))
    return y.numpy(), h.numpy()


def keras_out(model, x):
    import keras

    return keras.ops.convert_to_numpy(model(x))


def ort_run(path, x):
    """ONNX Runtime on a model (checked first): its outputs Y (T x dirs x B x H) as B x T x dirs*H, and Y_h."""
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    Y, Y_h = session.run(None, {"X": np.ascontiguousarray(x.transpose(1, 0, 2))})
    return Y.transpose(2, 0, 1, 3).reshape(x.shape[0], x.shape[1], -1), Y_h


def test_a_pytorch_model_in_every_format_computes_what_nn_gru_does(tmp_path):
    import keras
    import torch
    from safetensors.torch import load_file

    gru = torch_gru(0)
    torch.save(gru.state_dict(), tmp_path / "gru.pt")
    x = inputs(1)
    y, h = torch_run(gru, x)
    for name, load in (("back.pt", lambda p: torch.load(p, weights_only=True)), ("back.safetensors", load_file)):
        again = torch.nn.GRU(D, H, num_layers=2, bidirectional=True, batch_first=True)
        again.load_state_dict(load(str(converted(tmp_path, tmp_path / "gru.pt", name))))
        y2, h2 = torch_run(again, x)
        assert np.array_equal(y2, y) and np.array_equal(h2, h)
    y_onnx, h_onnx = ort_run(converted(tmp_path, tmp_path / "gru.pt", "gru.onnx"), x)
    assert np.max(np.abs(y_onnx - y)) < TOL and np.max(np.abs(h_onnx - h)) < TOL
    model = keras.models.load_model(converted(tmp_path, tmp_path / "gru.pt", "gru.keras"))
    assert np.max(np.abs(keras_out(model, x) - y)) < TOL
    # the weights alone, into a Keras model built here independently
    stack = keras.Sequential([keras.Input((None, D))] + [
        keras.layers.Bidirectional(keras.layers.GRU(H, return_sequences=True, reset_after=True)) for _ in range(2)])
    stack.load_weights(converted(tmp_path, tmp_path / "gru.pt", "gru.weights.h5"))
    assert np.max(np.abs(keras_out(stack, x) - y)) < TOL


def test_round_trip_pytorch_onnx_keras_pytorch_is_exact(tmp_path):
    import torch

    gru = torch_gru(2)
    torch.save(gru.state_dict(), tmp_path / "a.pt")
    onnx_file = converted(tmp_path, tmp_path / "a.pt", "a.onnx")
    keras_file = converted(tmp_path, onnx_file, "a.keras")
    back = torch.load(converted(tmp_path, keras_file, "b.pt"), weights_only=True)
    original = gru.state_dict()
    assert list(back) == list(original)
    for key, value in original.items():
        assert back[key].dtype == torch.float32 and torch.equal(back[key], value), key


def test_the_same_network_gives_the_same_bytes(tmp_path):
    import torch

    torch.save(torch_gru(3).state_dict(), tmp_path / "a.pt")
    for suffix in (".onnx", ".safetensors", ".pt"):
        first = converted(tmp_path, tmp_path / "a.pt", f"1{suffix}").read_bytes()
        assert converted(tmp_path, tmp_path / "a.pt", f"2{suffix}").read_bytes() == first, suffix


def keras_reset_before(tmp_path):
    """A .keras model PyTorch has no module for: reset_after=False, a Bidirectional under a plain GRU."""
    import keras

    rng = np.random.default_rng(4)
    model = keras.Sequential([keras.Input((None, D)),
                              keras.layers.Bidirectional(keras.layers.GRU(H, return_sequences=True, reset_after=False),
                                                         merge_mode="concat"),
                              keras.layers.GRU(H, return_sequences=True, reset_after=False)])
    model.set_weights([rng.uniform(-0.9, 0.9, w.shape).astype(np.float32) for w in model.get_weights()])
    model.save(tmp_path / "k.keras")
    return model


def test_keras_reset_before_to_onnx_and_back_and_no_pytorch_form(tmp_path):
    import keras

    model = keras_reset_before(tmp_path)
    x = inputs(5)
    y = keras_out(model, x)
    onnx_file = converted(tmp_path, tmp_path / "k.keras", "k.onnx")
    y_onnx, _ = ort_run(onnx_file, x)
    assert np.max(np.abs(y_onnx - y)) < TOL
    again = keras.models.load_model(converted(tmp_path, onnx_file, "again.keras"))
    assert np.max(np.abs(keras_out(again, x) - y)) < TOL
    (tmp_path / "k.pt").write_bytes(b"old")
    refused(run(["convert", tmp_path / "k.keras", tmp_path / "k.pt"]), "k.keras", "layer 0", "reset=before GRU",
            "use grukit.GRU(convention='keras-reset-before')")
    assert (tmp_path / "k.pt").read_bytes() == b"old"  # the output untouched


def onnx_with(tmp_path, **attrs):
    """A one-node ONNX GRU with the given attributes, as ONNX writes it."""
    from onnx import TensorProto, helper, numpy_helper, save

    rng = np.random.default_rng(6)
    W, R, Bias = (rng.uniform(-0.9, 0.9, s).astype(np.float32) for s in ((1, 3 * H, D), (1, 3 * H, H), (1, 6 * H)))
    node = helper.make_node("GRU", ["X", "W", "R", "B"], ["Y", "Y_h"], name="gru", hidden_size=H, **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", D])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["T", 1, "B", H]),
                               helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [1, "B", H])],
                              [numpy_helper.from_array(a, n) for a, n in ((W, "W"), (R, "R"), (Bias, "B"))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 7
    save(model, tmp_path / "m.onnx")
    return tmp_path / "m.onnx"


def test_onnx_attributes_are_written_and_refused_where_a_framework_lacks_them(tmp_path):
    """Activations, their alpha and beta, and clip come through ONNX -> ONNX; PyTorch and Keras, which
    have no relu candidate with a clip, are refused in one line naming the axis."""
    source = onnx_with(tmp_path, linear_before_reset=1, clip=1.5, activations=["HardSigmoid", "Relu"],
                       activation_alpha=[0.25], activation_beta=[0.4])
    x = inputs(7)
    y, h = ort_run(source, x)
    y2, h2 = ort_run(converted(tmp_path, source, "copy.onnx"), x)
    assert np.max(np.abs(y2 - y)) < TOL and np.max(np.abs(h2 - h)) < TOL
    refused(run(["convert", source, tmp_path / "m.pt"]), "m.onnx", "no exact form", "grukit.GRU(convention=")
    refused(run(["convert", source, tmp_path / "m.keras"]), "m.onnx", "no exact form", "grukit.GRU(convention=")
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "m.keras").exists()


def test_a_grucell_state_dict_is_read_run_and_converted(tmp_path):
    """nn.GRUCell's weight_ih, weight_hh, bias_ih, bias_hh (no _l0): grukit forward equals the cell
    stepped by hand, and its ONNX file equals it in ONNX Runtime."""
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(8)
    cell = torch.nn.GRUCell(D, H)
    torch.save(cell.state_dict(), tmp_path / "cell.pt")
    save_file(cell.state_dict(), tmp_path / "cell.safetensors")
    x = inputs(9)
    h = torch.zeros(B, H)
    steps = []
    with torch.no_grad():
        for t in range(T):
            h = cell(torch.from_numpy(x[:, t]), h)
            steps.append(h.numpy())
    expected = np.stack(steps, axis=1)
    for name in ("cell.pt", "cell.safetensors"):
        (tmp_path / "p.yaml").write_text(yaml.safe_dump({"inputs": x.astype(float).tolist(),
                                                         "weights": {"file": name}}))
        o = run(["forward", tmp_path / "p.yaml", "--json", "--engine", "numpy"])
        assert o.status == 0, o.err
        assert np.max(np.abs(np.array(yaml.safe_load(o.out)["outputs"]) - expected)) < TOL
    y, _ = ort_run(converted(tmp_path, tmp_path / "cell.pt", "cell.onnx"), x)
    assert np.max(np.abs(y - expected)) < TOL
    # gradients come back under the cell's own names, as torch autograd gives them
    G = np.random.default_rng(11).uniform(-1, 1, expected.shape)
    (tmp_path / "g.yaml").write_text(yaml.safe_dump({"inputs": x.astype(float).tolist(), "weights": {"file": "cell.pt"},
                                                     "loss": {"type": "weighted_sum", "G": G.tolist()}}))
    o = run(["grad", tmp_path / "g.yaml", "--json", "--engine", "numpy"])
    assert o.status == 0, o.err
    ours = yaml.safe_load(o.out)["grads"]
    cell64 = torch.nn.GRUCell(D, H).double()
    cell64.load_state_dict({k: v.double() for k, v in cell.state_dict().items()})
    h, loss = torch.zeros(B, H, dtype=torch.float64), 0
    for t in range(T):
        h = cell64(torch.from_numpy(x[:, t].astype(np.float64)), h)
        loss = loss + (h * torch.from_numpy(G[:, t])).sum()
    loss.backward()
    assert sorted(ours) == ["bias_hh", "bias_ih", "weight_hh", "weight_ih"]
    for name, p in cell64.named_parameters():
        assert np.max(np.abs(np.array(ours[name]) - p.grad.numpy())) < 1e-10, name


def test_without_the_framework_the_error_names_the_extra(tmp_path, monkeypatch):
    import torch

    torch.save(torch_gru(10, layers=1).state_dict(), tmp_path / "a.pt")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    refused(run(["convert", tmp_path / "a.pt", tmp_path / "a.onnx"]), "a.onnx", "needs onnx", "grukit[oracle]")
    assert not (tmp_path / "a.onnx").exists()


def test_layers_of_different_sizes_to_onnx(tmp_path):
    """A Keras stack of H = 4 then H = 2 (no nn.GRU holds it): its ONNX model equals it in ONNX Runtime
    (Y_h is then the top node's), and grukit diff finds the two files the same GRU."""
    import keras

    rng = np.random.default_rng(12)
    model = keras.Sequential([keras.Input((None, D)), keras.layers.GRU(H, return_sequences=True),
                              keras.layers.GRU(2, return_sequences=True)])
    model.set_weights([rng.uniform(-0.9, 0.9, w.shape).astype(np.float32) for w in model.get_weights()])
    model.save(tmp_path / "k.keras")
    x = inputs(13)
    y, h = ort_run(converted(tmp_path, tmp_path / "k.keras", "k.onnx"), x)
    assert np.max(np.abs(y - keras_out(model, x))) < TOL and h.shape == (1, B, 2)
    assert run(["diff", tmp_path / "k.keras", tmp_path / "k.onnx"]).status == 0
    refused(run(["convert", tmp_path / "k.keras", tmp_path / "k.pt"]), "k.keras", "layer 1", "different sizes")

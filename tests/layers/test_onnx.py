"""ONNX GRU nodes read from .onnx files against ONNX Runtime: directions, sequence_lens (0 included,
in the middle of a batch), linear_before_reset, clip, every activation with activation_alpha/beta,
initial_h, layout 0 and 1. ONNX Runtime has no autograd: the gradients are checked against PyTorch
autograd of the ONNX operator written out in torch from its specification (below). Skipped without
onnx/onnxruntime (and torch, for the gradients)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from helpers import framework_oracle as fo

from grukit.codegen.cli.main import main

pytestmark = pytest.mark.skipif(not fo.available("onnx", "onnxruntime"), reason="onnx / onnxruntime not installed")
needs_torch = pytest.mark.skipif(not fo.available("torch"), reason="torch not installed")
TOL = 1e-5
T, B, D, H = 5, 4, 3, 4


def gru_model(W, R, Bias, attrs, layout=0, with_h0=True, extra_nodes=(), name="gru"):
    from onnx import TensorProto, helper, numpy_helper

    dirs = W.shape[0]
    inits = [numpy_helper.from_array(W.astype(np.float32), "W"), numpy_helper.from_array(R.astype(np.float32), "R"),
             numpy_helper.from_array(Bias.astype(np.float32), "B")]
    xs, hs = ([B, T, D], [B, dirs, H]) if layout else ([T, B, D], [dirs, B, H])
    node = helper.make_node("GRU", ["X", "W", "R", "B", "sl", "h0" if with_h0 else ""], ["Y", "Y_h"], name=name,
                            hidden_size=H, layout=layout, **attrs)
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, xs),
              helper.make_tensor_value_info("sl", TensorProto.INT32, [B])]
    if with_h0:
        inputs.append(helper.make_tensor_value_info("h0", TensorProto.FLOAT, hs))
    outputs = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None),
               helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, None)]
    graph = helper.make_graph([node, *extra_nodes], "g", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 7
    return model


def ort_run(model, x, lens, h0):
    """ONNX Runtime on a layout-0 model (its CPU GRU refuses layout=1); x is B x T x D, h0 dirs x B x H."""
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = {"X": np.ascontiguousarray(x.transpose(1, 0, 2), np.float32), "sl": np.array(lens, np.int32)}
    if h0 is not None:
        feed["h0"] = h0.astype(np.float32)
    return sess.run(None, feed)


def arrays(seed, dirs):
    rng = np.random.default_rng(seed)
    return ((0.8 * rng.standard_normal((dirs, 3 * H, D))).astype(np.float32),
            (0.8 * rng.standard_normal((dirs, 3 * H, H))).astype(np.float32),
            (0.5 * rng.standard_normal((dirs, 6 * H))).astype(np.float32))


def data(seed, dirs):
    rng = np.random.default_rng(seed)
    return rng.uniform(-2, 2, (B, T, D)).astype(np.float32), rng.uniform(-1, 1, (dirs, B, H)).astype(np.float32)


def grukit(tmp_path, capsys, model, x, h0, lens, command="forward", loss=None, **extra):
    import onnx

    onnx.save(model, tmp_path / "gru.onnx")
    spec = {"inputs": x.astype(float).tolist(), "lengths": lens, "weights": {"layout": "onnx", "file": "gru.onnx"}}
    if h0 is not None:
        spec["h0"] = h0.astype(float).tolist()
    if loss is not None:
        spec["loss"] = loss
    spec["weights"].update(extra)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(spec))
    capsys.readouterr()
    status = main([command, str(tmp_path / "p.yaml"), "--json", "--engine", "numpy"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return json.loads(captured.out)


ACCEPTANCE = dict(direction="bidirectional", linear_before_reset=1, clip=1.5,
                  activations=["LeakyRelu", "Tanh", "Sigmoid", "ScaledTanh"],
                  activation_alpha=[0.1, 1.3], activation_beta=[0.7])
LENS = [5, 0, 3, 1]  # a 0 in the middle of the batch


def test_acceptance_bidirectional_lbr1_clip_lengths_activations_layout1(tmp_path, capsys):
    """linear_before_reset=1, clip, sequence_lens with a 0, LeakyRelu/Tanh/Sigmoid/ScaledTanh with
    alpha/beta, layout=1: grukit on the layout-1 file equals ONNX Runtime (on the same node with
    layout 0, the only one its CPU GRU runs) to 1e-5, Y and Y_h."""
    W, R, Bias = arrays(1, 2)
    x, h0 = data(2, 2)
    ours = grukit(tmp_path, capsys, gru_model(W, R, Bias, ACCEPTANCE, layout=1), x, h0, LENS)
    Y, Y_h = ort_run(gru_model(W, R, Bias, ACCEPTANCE, layout=0), x, LENS, h0)
    outputs = np.array(ours["outputs"])
    assert outputs.shape == (B, T, 2, H)  # Y in layout 1: [batch, seq, num_directions, hidden]
    assert np.max(np.abs(outputs - Y.transpose(2, 0, 1, 3))) < TOL
    assert np.max(np.abs(np.array(ours["h_n"]) - Y_h)) < TOL
    # what ONNX Runtime does past a sequence's length: Y is 0, and Y_h of a length-0 sequence is 0, not h0
    assert np.all(outputs[1] == 0) and np.all(np.array(ours["h_n"])[:, 1] == 0) and np.any(h0[:, 1] != 0)
    assert np.all(outputs[2, 3:] == 0) and np.all(outputs[3, 1:] == 0)
    # clip matters here: without it the numbers differ
    unclipped = dict(ACCEPTANCE)
    del unclipped["clip"]
    Y2, _ = ort_run(gru_model(W, R, Bias, unclipped), x, LENS, h0)
    assert np.max(np.abs(Y2 - Y)) > 1e-2


def test_layout1_axis_order_against_the_onnx_reference():
    """ONNX's reference implementation runs layout=1 (but ignores clip, activations and
    sequence_lens): on a plain node, its layout-1 Y is ONNX Runtime's layout-0 Y transposed, which is
    how the test above compares."""
    from onnx.reference import ReferenceEvaluator

    W, R, Bias = arrays(3, 2)
    x, h0 = data(4, 2)
    plain = dict(direction="bidirectional", linear_before_reset=1)
    ref = ReferenceEvaluator(gru_model(W, R, Bias, plain, layout=1))
    Y1, Yh1 = ref.run(None, {"X": x, "sl": np.full(B, T, np.int32), "h0": h0.transpose(1, 0, 2).copy()})
    Y0, Yh0 = ort_run(gru_model(W, R, Bias, plain), x, [T] * B, h0)
    assert np.max(np.abs(Y1 - Y0.transpose(2, 0, 1, 3))) < TOL and np.max(np.abs(Yh1 - Yh0.transpose(1, 0, 2))) < TOL


ALL = ["Relu", "Tanh", "Sigmoid", "Affine", "LeakyRelu", "ThresholdedRelu", "ScaledTanh", "HardSigmoid", "Elu",
       "Softsign", "Softplus"]


@pytest.mark.parametrize("act", ALL)
def test_every_activation_for_the_gates_and_for_the_candidate(tmp_path, capsys, act):
    """Each ONNX activation as f (gates) of the forward direction and g (candidate) of the reverse one,
    with alpha/beta where it takes them, reverse with lengths, lbr=0, initial_h."""
    W, R, Bias = arrays(5, 2)
    x, h0 = data(6, 2)
    W, R, Bias = 0.25 * W, 0.25 * R, 0.5 * Bias  # unbounded gates (Relu, Elu, ...) keep |Y| below about 2
    attrs = dict(direction="bidirectional", activations=[act, "Tanh", "Sigmoid", act],
                 activation_alpha=[0.4, 0.3, 0.6, 0.2], activation_beta=[0.45, 0.55])
    lens = [5, 2, 0, 4]
    ours = grukit(tmp_path, capsys, gru_model(W, R, Bias, attrs), x, h0, lens)
    Y, Y_h = ort_run(gru_model(W, R, Bias, attrs), x, lens, h0)
    assert np.max(np.abs(np.array(ours["outputs"]) - Y)) < TOL
    assert np.max(np.abs(np.array(ours["h_n"]) - Y_h)) < TOL


def test_defaults_of_missing_alpha_beta_are_onnx_runtimes(tmp_path, capsys):
    W, R, Bias = arrays(7, 1)
    x, h0 = data(8, 1)
    attrs = dict(direction="reverse", activations=["HardSigmoid", "LeakyRelu"])  # 0.2/0.5 and 0.01
    ours = grukit(tmp_path, capsys, gru_model(W, R, Bias, attrs), x, h0, [5, 3, 1, 0])
    Y, Y_h = ort_run(gru_model(W, R, Bias, attrs), x, [5, 3, 1, 0], h0)
    assert np.max(np.abs(np.array(ours["outputs"]) - Y)) < TOL and np.max(np.abs(np.array(ours["h_n"]) - Y_h)) < TOL


def torch_onnx_gru(W, R, Bias, x, h0, lens, lbr, clip, acts):
    """The ONNX GRU operator from its specification, in torch ops (for autograd): per direction
    z = f(clip(X W_z^T + H R_z^T + Wb_z + Rb_z)), r likewise, h~ = g(clip(...)), H = (1-z) h~ + z H;
    a step past a sequence's length keeps H and outputs 0; Y_h is 0 for a length-0 sequence."""
    import torch

    F = torch.nn.functional
    fns = {"Sigmoid": torch.sigmoid, "Tanh": torch.tanh, "LeakyRelu": lambda v, a, b: F.leaky_relu(v, a),
           "ScaledTanh": lambda v, a, b: a * torch.tanh(b * v), "Softsign": F.softsign,
           "Elu": lambda v, a, b: F.elu(v, a), "HardSigmoid": lambda v, a, b: F.hardtanh(a * v + b, 0.0, 1.0)}

    def act(spec, v):
        name, a, b = spec
        fn = fns[name]
        v = torch.clamp(v, -clip, clip) if clip is not None else v
        return fn(v) if a is None else fn(v, a, b)

    Tn = x.shape[1]
    mask = torch.tensor((np.arange(Tn)[None, :] < np.array(lens)[:, None]).astype(np.float64))
    ys, hs = [], []
    for d in range(W.shape[0]):
        Wz, Wr, Wh = W[d].split(H)
        Rz, Rr, Rh = R[d].split(H)
        bz, br, bh, cz, cr, ch = Bias[d].split(H)
        h = h0[d]
        out = [None] * Tn
        for t in (range(Tn) if d == 0 else reversed(range(Tn))):
            xt, m = x[:, t], mask[:, t:t + 1]
            z = act(acts[2 * d], xt @ Wz.T + h @ Rz.T + bz + cz)
            r = act(acts[2 * d], xt @ Wr.T + h @ Rr.T + br + cr)
            inner = r * (h @ Rh.T + ch) if lbr else (r * h) @ Rh.T + ch
            c = act(acts[2 * d + 1], xt @ Wh.T + inner + bh)
            new = (1 - z) * c + z * h
            h = m * new + (1 - m) * h
            out[t] = m * h
        ys.append(torch.stack(out, 1))
        hs.append(h * torch.tensor((np.array(lens) > 0).astype(np.float64))[:, None])
    return torch.stack(ys, 2).permute(1, 2, 0, 3), torch.stack(hs)  # Y (T, dirs, B, H), Y_h


@needs_torch
def test_gradients_through_clip_lengths_and_activations_equal_torch_autograd(tmp_path, capsys):
    import torch

    W, R, Bias = arrays(9, 2)
    x, h0 = data(10, 2)
    attrs = dict(direction="bidirectional", linear_before_reset=1, clip=1.2,
                 activations=["HardSigmoid", "LeakyRelu", "Sigmoid", "ScaledTanh"],
                 activation_alpha=[0.3, 0.15, 1.1], activation_beta=[0.6, 0.9])
    acts = [("HardSigmoid", 0.3, 0.6), ("LeakyRelu", 0.15, None), ("Sigmoid", None, None), ("ScaledTanh", 1.1, 0.9)]
    rng = np.random.default_rng(11)
    G, G_h = rng.uniform(-1, 1, (T, 2, B, H)), rng.uniform(-1, 1, (2, B, H))
    ours = grukit(tmp_path, capsys, gru_model(W, R, Bias, attrs), x, h0, LENS, "grad",
                  {"type": "weighted_sum", "G": G.tolist(), "G_h_n": G_h.tolist()})
    f32 = lambda a: torch.tensor(np.float32(a).astype(np.float64), requires_grad=True)  # noqa: E731
    Wt, Rt, Bt, xt, ht = f32(W), f32(R), f32(Bias), f32(x), f32(h0)
    acts = [(n, None if a is None else float(np.float32(a)), None if b is None else float(np.float32(b)))
            for n, a, b in acts]
    Y, Y_h = torch_onnx_gru(Wt, Rt, Bt, xt, ht, LENS, 1, float(np.float32(1.2)), acts)
    loss = (Y * torch.tensor(G)).sum() + (Y_h * torch.tensor(G_h)).sum()
    gW, gR, gB, gx, gh = torch.autograd.grad(loss, [Wt, Rt, Bt, xt, ht])
    assert abs(ours["loss"] - loss.item()) < 1e-10
    for name, ref in (("W", gW), ("R", gR), ("B", gB)):
        assert np.max(np.abs(np.array(ours["grads"][name]) - ref.numpy())) < 1e-10, name
    assert np.max(np.abs(np.array(ours["inputs"]) - gx.numpy())) < 1e-10
    assert np.max(np.abs(np.array(ours["h0"]) - gh.numpy())) < 1e-10
    assert np.all(np.array(ours["h0"])[:, 1] == 0)  # a length-0 sequence: Y_h = 0 passes nothing to h0


def test_errors_name_the_file(tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    W, R, Bias = arrays(12, 1)
    x, _ = data(13, 1)
    lstm_w = numpy_helper.from_array(np.zeros((1, 4 * H, D), np.float32), "LW")
    lstm_r = numpy_helper.from_array(np.zeros((1, 4 * H, H), np.float32), "LR")
    graph = helper.make_graph([helper.make_node("LSTM", ["X", "LW", "LR"], ["Y"], hidden_size=H)], "g",
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT, [T, B, D])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
                              initializer=[lstm_w, lstm_r])
    onnx.save(helper.make_model(graph), tmp_path / "lstm.onnx")
    spec = {"inputs": x.astype(float).tolist(), "weights": {"layout": "onnx", "file": "lstm.onnx"}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(spec))
    assert main(["forward", str(tmp_path / "p.yaml")]) == 2
    assert "lstm.onnx: no GRU node (its nodes: LSTM)" in capsys.readouterr().err
    second = helper.make_node("GRU", ["X", "W", "R", "B"], ["Y2"], hidden_size=H, name="second")
    model = gru_model(W, R, Bias, {"direction": "forward"}, extra_nodes=[second])
    onnx.save(model, tmp_path / "two.onnx")
    spec["weights"]["file"] = "two.onnx"
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(spec))
    assert main(["forward", str(tmp_path / "p.yaml")]) == 2
    assert "two.onnx has 2 GRU nodes ('gru', 'second'); say which" in capsys.readouterr().err
    ours = grukit(tmp_path, capsys, model, x, None, [T] * B, node="second")
    Y, _ = ort_run(gru_model(W, R, Bias, {"direction": "forward"}, with_h0=False), x, [T] * B, None)
    assert np.max(np.abs(np.array(ours["outputs"]) - Y)) < TOL

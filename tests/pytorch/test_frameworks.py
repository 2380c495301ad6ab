"""grukit's GRU against the frameworks whose conventions it runs, loaded with the same weights:
Keras 3 GRU layers (torch backend) for ``keras`` and ``keras-reset-before`` (outputs and every
gradient, through tests/helpers/framework_oracle.py, which shares no code with grukit), and ONNX
Runtime for ``onnx`` and ``onnx-lbr1`` (a one-node bidirectional GRU model built here with
onnx.helper, with ``sequence_lens`` and ``initial_h``)."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import framework_oracle as fo
from helpers.compare import rel

torch = pytest.importorskip("torch")

from grukit import GRU  # noqa: E402

B, T, D, H = 3, 5, 3, 4


def module(convention, dtype, **options):
    torch.manual_seed(5)
    gru = GRU(D, H, batch_first=True, convention=convention, dtype=dtype, **options)
    with torch.no_grad():  # weights and biases of one size, so a misplaced bias shows
        for p in gru.parameters():
            p.uniform_(-1, 1)
    return gru


def arrays(gru, suffix="_l0"):
    return [getattr(gru, name + suffix).detach().numpy() for name in ("kernel", "recurrent_kernel", "bias")]


@pytest.mark.skipif(not fo.available("keras", "torch"), reason="keras (torch backend) not installed")
@pytest.mark.parametrize("convention, reset_after", [("keras", True), ("keras-reset-before", False)])
def test_keras_gru_layer(convention, reset_after):
    gru = module(convention, torch.float64)
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.uniform(-1, 1, (B, T, D)), requires_grad=True)
    h0 = torch.tensor(rng.uniform(-1, 1, (1, B, H)), requires_grad=True)
    G = rng.uniform(-1, 1, (B, T, H))
    y, _ = gru(x, h0)
    grads = torch.autograd.grad((y * torch.tensor(G)).sum(), [x, h0, *gru.parameters()])
    weights = arrays(gru)
    rows = [fo.keras_grad(*weights, x[b].detach().numpy(), h0[0, b].detach().numpy(), G[b], reset_after=reset_after)
            for b in range(B)]
    for b in range(B):
        want = fo.keras_forward(*weights, x[b].detach().numpy(), h0[0, b].detach().numpy(), reset_after=reset_after,
                                dtype="float64")
        assert rel(y[b].detach(), want) < 1e-12
        assert rel(grads[0][b], rows[b]["inputs"]) < 1e-12
        assert rel(grads[1][0, b], rows[b]["h0"]) < 1e-12
    for k, name in enumerate(("kernel", "recurrent_kernel", "bias")):
        assert rel(grads[2 + k], sum(r[name] for r in rows)) < 1e-12, name


@pytest.mark.skipif(not fo.available("keras", "torch"), reason="keras (torch backend) not installed")
@pytest.mark.parametrize("convention, reset_after", [("keras", True), ("keras-reset-before", False)])
def test_two_keras_layers_stacked_float32(convention, reset_after):
    gru = module(convention, torch.float32, num_layers=2)
    x = np.random.default_rng(2).uniform(-1, 1, (B, T, D)).astype(np.float32)
    with torch.no_grad():
        y, h_n = gru(torch.from_numpy(x))
    for b in range(B):
        seq = x[b]
        for layer in range(2):
            seq = fo.keras_forward(*arrays(gru, f"_l{layer}"), seq, np.zeros(H, np.float32), reset_after=reset_after)
            assert rel(h_n[layer, b], seq[-1]) < 1e-6
        assert rel(y[b], seq) < 1e-6


def onnx_gru(gru, linear_before_reset: int):
    """A one-node bidirectional ONNX GRU holding the module's weights (both directions stacked on the
    direction axis), run by ONNX Runtime."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    stacked = {name: np.concatenate([getattr(gru, f"{name}_l0{s}").detach().numpy() for s in ("", "_reverse")])
               for name in ("W", "R", "B")}
    node = helper.make_node("GRU", ["X", "W", "R", "B", "sequence_lens", "initial_h"], ["Y", "Y_h"], hidden_size=H,
                            direction="bidirectional", linear_before_reset=linear_before_reset)
    graph = helper.make_graph(
        [node], "gru",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [T, B, D]),
         helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, [B]),
         helper.make_tensor_value_info("initial_h", TensorProto.FLOAT, [2, B, H])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [T, 2, B, H]),
         helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [2, B, H])],
        initializer=[numpy_helper.from_array(v, n) for n, v in stacked.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", fo.ONNX_OPSET)])
    model.ir_version = fo.ONNX_IR_VERSION
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.skipif(not fo.available("onnx", "onnxruntime"), reason="onnxruntime not installed")
@pytest.mark.parametrize("convention, lbr", [("onnx", 0), ("onnx-lbr1", 1)])
def test_onnx_runtime_bidirectional_with_lengths(convention, lbr):
    gru = module(convention, torch.float32, bidirectional=True)
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (B, T, D)).astype(np.float32)
    h0 = rng.uniform(-1, 1, (2, B, H)).astype(np.float32)
    lengths = np.array([5, 2, 4], np.int32)
    Y, Y_h = onnx_gru(gru, lbr).run(None, {"X": np.ascontiguousarray(x.transpose(1, 0, 2)),
                                          "sequence_lens": lengths, "initial_h": h0})
    with torch.no_grad():
        y, h_n = gru(torch.from_numpy(x), torch.from_numpy(h0), lengths=torch.from_numpy(lengths))
    assert rel(y.reshape(B, T, 2, H).permute(1, 2, 0, 3), Y) < 2e-6
    assert rel(h_n, Y_h) < 2e-6

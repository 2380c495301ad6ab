"""A network as an ONNX model: one ``GRU`` node per layer (both directions of a bidirectional layer
in one node, ``direction="bidirectional"``), its weights as initializers, ``linear_before_reset``,
``activations`` (with ``activation_alpha``/``beta``) and ``clip`` as each cell's convention says.

The graph: ``X`` (T x B x D, ONNX's layout 0) into the first node; each node's ``Y`` (T x
directions x B x H) made the next node's input by ``Transpose(perm=[0, 2, 1, 3])`` and ``Reshape([0,
0, -1])`` (the directions side by side, as PyTorch exports a stack); outputs ``Y`` (the top node's)
and ``Y_h`` (every node's final states, concatenated: PyTorch's h_n order; the top node's when the
layers' sizes differ). Built with
``onnx.helper`` and checked by ``onnx.checker`` before it is written; the same network gives the same
bytes."""
from __future__ import annotations

import numpy as np

from grukit.derive.cell.functions import ACTIVATIONS
from grukit.derive.cell.layouts import LAYOUTS
from grukit.derive.layers.network import Layer, Network

OPSET = 14
"""The ONNX opset written (GRU-14: the operator ONNX Runtime runs on every provider)."""
IR_VERSION = 7


def _arrays(layer: Layer) -> dict[str, np.ndarray]:
    """W, R, B of one node: each cell's ONNX arrays, stacked along the direction axis."""
    packed = [LAYOUTS["onnx"].pack(c.convention, c.params, c.input_size, c.hidden_size, np.float32)
              for c in layer.cells]
    return {name: np.concatenate([p[name] for p in packed]) for name in ("W", "R", "B")}


def _activation_attributes(layer: Layer) -> dict:
    """``activations`` (f, g per direction) with the alphas and betas in the order ONNX reads them, and
    ``clip``; nothing where every cell has ONNX's defaults (Sigmoid, Tanh, no clip)."""
    names, alphas, betas = [], [], []
    for cell in layer.cells:
        conv = cell.convention
        for which in ("gate_activation", "candidate_activation"):
            act = ACTIVATIONS[getattr(conv, which)]
            names.append(act.onnx)
            for value, default, out in ((getattr(conv, f"{which}_alpha"), act.alpha, alphas),
                                        (getattr(conv, f"{which}_beta"), act.beta, betas)):
                if default is not None:
                    out.append(float(value if value is not None else default))
    attrs = {}
    if names != ["Sigmoid", "Tanh"] * len(layer.cells):
        attrs["activations"] = names
        if alphas:
            attrs["activation_alpha"] = alphas
        if betas:
            attrs["activation_beta"] = betas
    clip = layer.cells[0].convention.clip
    if clip is not None:
        attrs["clip"] = float(clip)
    return attrs


def onnx_model(net: Network):
    """The ONNX model of a network in the ``onnx``/``onnx-lbr1`` conventions
    (:func:`grukit.derive.audit.convert.network_as`), checked."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits, finals = [], [], []
    x = "X"
    for k, layer in enumerate(net.layers):
        arrays = _arrays(layer)
        for role, value in arrays.items():
            inits.append(numpy_helper.from_array(value, f"{role}_{k}"))
        y, y_h = f"Y_{k}", f"Y_h_{k}"
        conv = layer.cells[0].convention
        nodes.append(helper.make_node(
            "GRU", [x, f"W_{k}", f"R_{k}", f"B_{k}"], [y, y_h], name=f"gru_{k}",
            hidden_size=layer.hidden_size, direction=layer.direction,
            linear_before_reset=int(conv.reset == "after"), **_activation_attributes(layer)))
        finals.append(y_h)
        if k + 1 < len(net.layers):
            inits.append(numpy_helper.from_array(np.array([0, 0, -1], dtype=np.int64), f"shape_{k}"))
            nodes.append(helper.make_node("Transpose", [y], [f"{y}_tbd"], name=f"transpose_{k}", perm=[0, 2, 1, 3]))
            x = f"X_{k + 1}"
            nodes.append(helper.make_node("Reshape", [f"{y}_tbd", f"shape_{k}"], [x], name=f"reshape_{k}"))
    top = net.layers[-1]
    if len({layer.hidden_size for layer in net.layers}) == 1:
        nodes.append(helper.make_node("Concat", finals, ["Y_h"], name="final_states", axis=0))
    else:  # final states of different sizes do not stack: the top node's
        nodes.append(helper.make_node("Identity", [finals[-1]], ["Y_h"], name="final_states"))
    nodes.append(helper.make_node("Identity", [f"Y_{len(net.layers) - 1}"], ["Y"], name="outputs"))
    directions = len(top.cells)
    cells = len(net.cells) if len({layer.hidden_size for layer in net.layers}) == 1 else directions
    graph = helper.make_graph(
        nodes, "grukit_gru",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", net.input_size])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["T", directions, "B", top.hidden_size]),
         helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [cells, "B", top.hidden_size])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="grukit")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def onnx_bytes(net: Network) -> bytes:
    return onnx_model(net).SerializeToString(deterministic=True)

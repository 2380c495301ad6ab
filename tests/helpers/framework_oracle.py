"""Independent framework oracle for GRU tests.

Thin wrappers that run the *real* frameworks -- Keras 3 (torch backend),
PyTorch and ONNX Runtime -- on GRU weights given in each framework's own
native layout.  Tests use them as an oracle that does not share any code with
grukit.

Conventions (all wrappers):

* numpy in, numpy out;
* ``inputs`` is one sequence shaped ``(T, D)``, ``h0`` is shaped ``(H,)``;
* the forward wrappers return the per-step hidden states shaped ``(T, H)``;
* the gradient wrappers use the loss ``L = sum_t G[t] . h_t`` with ``G``
  shaped ``(T, H)`` and return a dict of numpy gradients (plus ``"loss"``).

Native weight layouts (gate blocks, in order):

* Keras:   ``kernel (D, 3H)``, ``recurrent_kernel (H, 3H)``, column blocks
  ``[z | r | h]``; ``bias (3H,)`` if ``reset_after=False`` else ``(2, 3H)``
  where row 0 is the input bias and row 1 the recurrent bias.
* PyTorch: ``weight_ih_l0 (3H, D)``, ``weight_hh_l0 (3H, H)``,
  ``bias_ih_l0 (3H,)``, ``bias_hh_l0 (3H,)``, row blocks ``[r | z | n]``;
  always "reset after" (``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``).
* ONNX:    ``W (1, 3H, D)``, ``R (1, 3H, H)``, ``B (1, 6H) = [Wb | Rb]``,
  row blocks ``[z | r | h]``; ``linear_before_reset`` selects the variant.

Importing this module never imports torch / keras / onnx / onnxruntime; every
framework import happens lazily inside the functions.  Use :func:`available`
to skip tests when a framework is missing.
"""

from __future__ import annotations

import contextlib
import importlib
import os

import numpy as np

__all__ = [
    "available",
    "keras_forward",
    "keras_grad",
    "torch_forward",
    "torch_grad",
    "onnx_forward",
    "onnx_model",
    "ONNX_OPSET",
]

#: ONNX default-domain opset used for the one-node GRU model.  GRU-14 is the
#: version that introduced the ``layout`` attribute (we use the default
#: layout 0, i.e. ``X`` is ``(T, batch, D)``).
ONNX_OPSET = 14
#: IR version written into the model; 7 is the IR version that goes with
#: opset 14 (ONNX 1.9) and is accepted by every onnxruntime that runs it.
ONNX_IR_VERSION = 7

_AVAILABLE_CACHE: dict = {}


# --------------------------------------------------------------------------
# import helpers
# --------------------------------------------------------------------------
def _set_keras_backend() -> None:
    # Must happen before the first `import keras` anywhere in the process.
    os.environ.setdefault("KERAS_BACKEND", "torch")


def _import_keras():
    _set_keras_backend()
    import keras  # noqa: WPS433  (lazy on purpose)

    backend = keras.backend.backend()
    if backend != "torch":
        raise ImportError(
            "framework_oracle needs Keras with the torch backend, but keras "
            f"was loaded with backend {backend!r} (KERAS_BACKEND="
            f"{os.environ.get('KERAS_BACKEND')!r})"
        )
    return keras


def _import_torch():
    import torch  # noqa: WPS433

    return torch


def _import_onnx():
    import onnx  # noqa: WPS433
    import onnx.helper  # noqa: F401,WPS433

    return onnx


def _import_ort():
    import onnxruntime  # noqa: WPS433

    return onnxruntime


_IMPORTERS = {
    "keras": _import_keras,
    "torch": _import_torch,
    "onnx": _import_onnx,
    "onnxruntime": _import_ort,
}


def available(*names: str) -> bool:
    """True iff every named framework can be imported (and works).

    ``available("torch")``, ``available("keras", "torch")``,
    ``available("onnx", "onnxruntime")``.  ``"keras"`` counts as available
    only if it loads with the torch backend (``KERAS_BACKEND`` is set to
    ``"torch"`` via ``os.environ.setdefault`` before importing it).  Any other
    name is checked with a plain ``importlib.import_module``.  Results are
    cached per name.
    """
    for name in names:
        if name not in _AVAILABLE_CACHE:
            importer = _IMPORTERS.get(name, lambda n=name: importlib.import_module(n))
            try:
                importer()
                ok = True
            except Exception:  # ImportError, but also broken installs
                ok = False
            _AVAILABLE_CACHE[name] = ok
        if not _AVAILABLE_CACHE[name]:
            return False
    return True


# --------------------------------------------------------------------------
# shape helpers
# --------------------------------------------------------------------------
def _seq_shapes(inputs, h0):
    inputs = np.asarray(inputs)
    h0 = np.asarray(h0)
    if inputs.ndim != 2:
        raise ValueError(f"inputs must be (T, D), got shape {inputs.shape}")
    if h0.ndim != 1:
        raise ValueError(f"h0 must be (H,), got shape {h0.shape}")
    return inputs, h0, inputs.shape[0], inputs.shape[1], h0.shape[0]


def _check_shape(name, arr, shape):
    if arr is not None and tuple(np.shape(arr)) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {np.shape(arr)}")


def _torch_dtype(torch, dtype):
    if dtype is None:
        return torch.float64
    if isinstance(dtype, torch.dtype):
        return dtype
    return getattr(torch, np.dtype(dtype).name)


# --------------------------------------------------------------------------
# Keras 3 (torch backend)
# --------------------------------------------------------------------------
@contextlib.contextmanager
def _keras_true_float64(enabled: bool):
    """Temporarily stop Keras from demoting float64 results to float32.

    Keras 3 mimics JAX's default (x64 disabled) type promotion on every
    backend except TensorFlow: ``keras.src.backend.common.dtypes.
    _lattice_result_type`` maps a float64 result dtype to float32 through the
    module-level table ``BIT64_TO_BIT32_DTYPE``.  On the torch backend this
    makes ``keras.ops.matmul(float64, float64)`` *compute* in float32 and
    return float32, so a ``dtype="float64"`` GRU layer whose step runs through
    ``GRUCell.call`` (``reset_after=False``, or ``reset_after=True`` when the
    fused torch path is not taken) silently loses precision (~1e-8 errors).
    (The fused ``keras.src.backend.torch.rnn.gru`` path used for
    ``reset_after=True`` calls torch directly and is unaffected.)

    While this context is active the table maps float64 -> float64; the GRU
    math itself is untouched.  If the table does not exist (other Keras
    versions) this is a no-op.
    """
    table = None
    if enabled:
        try:
            from keras.src.backend.common import dtypes as _kdtypes

            table = getattr(_kdtypes, "BIT64_TO_BIT32_DTYPE", None)
        except Exception:
            table = None
    if not isinstance(table, dict) or "float64" not in table:
        yield
        return
    saved = table["float64"]
    table["float64"] = "float64"
    try:
        yield
    finally:
        table["float64"] = saved


def _keras_layer(kernel, recurrent_kernel, bias, inputs, h0, reset_after,
                 dtype, recurrent_activation):
    keras = _import_keras()
    inputs, h0, T, D, H = _seq_shapes(inputs, h0)
    _check_shape("kernel", kernel, (D, 3 * H))
    _check_shape("recurrent_kernel", recurrent_kernel, (H, 3 * H))
    _check_shape("bias", bias, (2, 3 * H) if reset_after else (3 * H,))
    np_dtype = np.dtype(dtype)
    layer = keras.layers.GRU(
        H,
        return_sequences=True,
        reset_after=bool(reset_after),
        use_bias=bias is not None,
        recurrent_activation=recurrent_activation,
        dtype=np_dtype.name,
    )
    layer.build((1, T, D))
    weights = [np.asarray(kernel, np_dtype), np.asarray(recurrent_kernel, np_dtype)]
    if bias is not None:
        weights.append(np.asarray(bias, np_dtype))
    layer.set_weights(weights)
    return layer, inputs, h0, H


def keras_forward(kernel, recurrent_kernel, bias, inputs, h0, reset_after: bool,
                  dtype="float32", recurrent_activation="sigmoid",
                  true_float64: bool = True) -> np.ndarray:
    """Run ``keras.layers.GRU`` (Keras 3, torch backend) on one sequence.

    ``kernel (D, 3H)``, ``recurrent_kernel (H, 3H)`` with ``[z | r | h]``
    column blocks; ``bias`` is ``(2, 3H)`` (row 0 input, row 1 recurrent) if
    ``reset_after`` else ``(3H,)``, or ``None`` for ``use_bias=False``.
    ``recurrent_activation`` is passed to the layer (Keras 3 default
    ``"sigmoid"``; Keras 3's ``"hard_sigmoid"`` is ``relu6(x + 3) / 6``).
    ``dtype`` may be ``"float32"`` or ``"float64"``.  Keras 3 on torch demotes
    float64 matmul results to float32 (JAX-style promotion, see
    :func:`_keras_true_float64`); with ``true_float64=True`` (default) that
    demotion is switched off for the duration of the call so a float64 layer
    really computes in float64.  Pass ``true_float64=False`` to see stock
    Keras behaviour.  Returns ``(T, H)`` in ``dtype``.
    """
    torch = _import_torch()
    with _keras_true_float64(true_float64 and np.dtype(dtype) == np.float64):
        layer, inputs, h0, H = _keras_layer(kernel, recurrent_kernel, bias, inputs,
                                            h0, reset_after, dtype,
                                            recurrent_activation)
        tdt = _torch_dtype(torch, dtype)
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(inputs)[None], dtype=tdt)
            s = torch.as_tensor(np.asarray(h0)[None], dtype=tdt)
            y = layer(x, initial_state=[s])
    return y.detach().cpu().numpy()[0]


def keras_grad(kernel, recurrent_kernel, bias, inputs, h0, G, reset_after: bool,
               dtype="float64", recurrent_activation="sigmoid",
               true_float64: bool = True) -> dict:
    """Gradient of ``L = sum_t G[t] . h_t`` through ``keras.layers.GRU``.

    Same weight layout as :func:`keras_forward`.  Computed with torch autograd
    through the Keras layer: on the torch backend every Keras variable's
    ``.value`` is a ``torch.nn.Parameter``, so ``torch.autograd.grad`` is
    taken w.r.t. ``layer.cell.kernel.value`` etc. and w.r.t. torch leaf
    tensors for ``inputs`` / ``h0``.  Keras-on-torch layers and variables do
    support float64 (verified with Keras 3.15 / torch 2.13), hence the float64
    default; ``true_float64`` works as in :func:`keras_forward` (without it,
    ``reset_after=False`` forward values and gradients are only float32
    accurate).

    Returns ``{"loss", "kernel", "recurrent_kernel", "bias", "inputs" (T, D),
    "h0" (H,)}``; ``"bias"`` is ``None`` when ``bias is None``.
    """
    with _keras_true_float64(true_float64 and np.dtype(dtype) == np.float64):
        return _keras_grad(kernel, recurrent_kernel, bias, inputs, h0, G,
                           reset_after, dtype, recurrent_activation)


def _keras_grad(kernel, recurrent_kernel, bias, inputs, h0, G, reset_after, dtype,
                recurrent_activation):
    torch = _import_torch()
    layer, inputs, h0, H = _keras_layer(kernel, recurrent_kernel, bias, inputs, h0,
                                        reset_after, dtype, recurrent_activation)
    G = np.asarray(G)
    _check_shape("G", G, (inputs.shape[0], H))
    tdt = _torch_dtype(torch, dtype)
    x = torch.tensor(np.asarray(inputs)[None], dtype=tdt, requires_grad=True)
    s = torch.tensor(np.asarray(h0)[None], dtype=tdt, requires_grad=True)
    g = torch.as_tensor(G, dtype=tdt)

    cell = layer.cell
    params = [cell.kernel.value, cell.recurrent_kernel.value]
    if bias is not None:
        params.append(cell.bias.value)
    for p in params:
        if not isinstance(p, torch.Tensor) or not p.requires_grad:
            raise RuntimeError("Keras variable is not a trainable torch tensor")

    with torch.enable_grad():
        y = layer(x, initial_state=[s])  # (1, T, H)
        loss = (y[0] * g).sum()
        grads = torch.autograd.grad(loss, [x, s] + params)

    out = {
        "loss": float(loss.detach()),
        "inputs": grads[0].detach().cpu().numpy()[0],
        "h0": grads[1].detach().cpu().numpy()[0],
        "kernel": grads[2].detach().cpu().numpy(),
        "recurrent_kernel": grads[3].detach().cpu().numpy(),
        "bias": grads[4].detach().cpu().numpy() if bias is not None else None,
    }
    return out


# --------------------------------------------------------------------------
# PyTorch
# --------------------------------------------------------------------------
def _torch_gru(weight_ih, weight_hh, bias_ih, bias_hh, inputs, h0, dtype):
    torch = _import_torch()
    inputs, h0, T, D, H = _seq_shapes(inputs, h0)
    _check_shape("weight_ih", weight_ih, (3 * H, D))
    _check_shape("weight_hh", weight_hh, (3 * H, H))
    _check_shape("bias_ih", bias_ih, (3 * H,))
    _check_shape("bias_hh", bias_hh, (3 * H,))
    if (bias_ih is None) != (bias_hh is None):
        raise ValueError("bias_ih and bias_hh must both be given or both be None")
    tdt = _torch_dtype(torch, dtype)
    gru = torch.nn.GRU(D, H, num_layers=1, bias=bias_ih is not None,
                       batch_first=False, dtype=tdt)
    with torch.no_grad():
        gru.weight_ih_l0.copy_(torch.as_tensor(np.asarray(weight_ih), dtype=tdt))
        gru.weight_hh_l0.copy_(torch.as_tensor(np.asarray(weight_hh), dtype=tdt))
        if bias_ih is not None:
            gru.bias_ih_l0.copy_(torch.as_tensor(np.asarray(bias_ih), dtype=tdt))
            gru.bias_hh_l0.copy_(torch.as_tensor(np.asarray(bias_hh), dtype=tdt))
    return torch, gru, inputs, h0, H, tdt


def torch_forward(weight_ih, weight_hh, bias_ih, bias_hh, inputs, h0,
                  dtype=None) -> np.ndarray:
    """Run ``torch.nn.GRU(D, H)`` (one layer, unidirectional) on one sequence.

    Weights are PyTorch's own ``weight_ih_l0 (3H, D)``, ``weight_hh_l0
    (3H, H)``, ``bias_ih_l0 (3H,)``, ``bias_hh_l0 (3H,)`` with ``[r | z | n]``
    row blocks, copied in unchanged.  ``bias_ih = bias_hh = None`` gives
    ``bias=False``.  ``dtype``: ``None`` (= ``torch.float64``), a torch dtype
    or a numpy dtype name.  Returns ``(T, H)``.
    """
    torch, gru, inputs, h0, H, tdt = _torch_gru(weight_ih, weight_hh, bias_ih,
                                                bias_hh, inputs, h0, dtype)
    with torch.no_grad():
        x = torch.as_tensor(np.asarray(inputs)[:, None, :], dtype=tdt)  # (T,1,D)
        s = torch.as_tensor(np.asarray(h0)[None, None, :], dtype=tdt)   # (1,1,H)
        y, _ = gru(x, s)
    return y.detach().cpu().numpy()[:, 0, :]


def torch_grad(weight_ih, weight_hh, bias_ih, bias_hh, inputs, h0, G) -> dict:
    """Gradient of ``L = sum_t G[t] . h_t`` through ``torch.nn.GRU`` (float64).

    Returns ``{"loss", "weight_ih_l0", "weight_hh_l0", "bias_ih_l0",
    "bias_hh_l0", "inputs" (T, D), "h0" (H,)}``; the bias entries are ``None``
    when the biases are ``None``.
    """
    torch, gru, inputs, h0, H, tdt = _torch_gru(weight_ih, weight_hh, bias_ih,
                                                bias_hh, inputs, h0, None)
    G = np.asarray(G)
    _check_shape("G", G, (inputs.shape[0], H))
    x = torch.tensor(np.asarray(inputs)[:, None, :], dtype=tdt, requires_grad=True)
    s = torch.tensor(np.asarray(h0)[None, None, :], dtype=tdt, requires_grad=True)
    g = torch.as_tensor(G, dtype=tdt)
    names = ["weight_ih_l0", "weight_hh_l0"]
    if bias_ih is not None:
        names += ["bias_ih_l0", "bias_hh_l0"]
    params = [getattr(gru, n) for n in names]
    with torch.enable_grad():
        y, _ = gru(x, s)
        loss = (y[:, 0, :] * g).sum()
        grads = torch.autograd.grad(loss, [x, s] + params)
    out = {
        "loss": float(loss.detach()),
        "inputs": grads[0].detach().cpu().numpy()[:, 0, :],
        "h0": grads[1].detach().cpu().numpy()[0, 0],
        "bias_ih_l0": None,
        "bias_hh_l0": None,
    }
    for name, gr in zip(names, grads[2:]):
        out[name] = gr.detach().cpu().numpy()
    return out


# --------------------------------------------------------------------------
# ONNX / ONNX Runtime
# --------------------------------------------------------------------------
def onnx_model(W, R, B, T, D, H, linear_before_reset: int, activations=None,
               activation_alpha=None, activation_beta=None):
    """Build (and check) the one-node float32 ONNX ``GRU`` model.

    Graph inputs ``X (T, 1, D)`` and ``initial_h (1, 1, H)``; ``W``, ``R``,
    ``B`` are initializers.  Output ``Y (T, 1, 1, H)``.
    """
    onnx = _import_onnx()
    from onnx import TensorProto, helper, numpy_helper

    inits = [
        numpy_helper.from_array(np.asarray(W, np.float32), "W"),
        numpy_helper.from_array(np.asarray(R, np.float32), "R"),
    ]
    node_inputs = ["X", "W", "R"]
    if B is not None:
        inits.append(numpy_helper.from_array(np.asarray(B, np.float32), "B"))
        node_inputs.append("B")
    else:
        node_inputs.append("")
    node_inputs += ["", "initial_h"]  # sequence_lens omitted

    attrs = {"hidden_size": int(H), "linear_before_reset": int(linear_before_reset),
             "direction": "forward"}
    if activations is not None:
        attrs["activations"] = list(activations)
    if activation_alpha is not None:
        attrs["activation_alpha"] = [float(a) for a in activation_alpha]
    if activation_beta is not None:
        attrs["activation_beta"] = [float(b) for b in activation_beta]
    node = helper.make_node("GRU", node_inputs, ["Y"], **attrs)
    graph = helper.make_graph(
        [node],
        "grukit_oracle_gru",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [T, 1, D]),
         helper.make_tensor_value_info("initial_h", TensorProto.FLOAT, [1, 1, H])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [T, 1, 1, H])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
                              producer_name="grukit-framework-oracle")
    model.ir_version = ONNX_IR_VERSION
    onnx.checker.check_model(model)
    return model


def onnx_forward(W, R, B, inputs, h0, linear_before_reset: int, activations=None,
                 activation_alpha=None, activation_beta=None) -> np.ndarray:
    """Run a one-node ONNX ``GRU`` (opset :data:`ONNX_OPSET`) in onnxruntime.

    ``W (1, 3H, D)``, ``R (1, 3H, H)`` with ``[z | r | h]`` row blocks,
    ``B (1, 6H) = [Wb_zrh | Rb_zrh]`` or ``None``; the leading direction axis
    may be omitted.  Everything is cast to float32 (onnxruntime's CPU GRU
    kernel is float32 only).  ``activations`` / ``activation_alpha`` /
    ``activation_beta`` are optional pass-through attributes (default
    ``["Sigmoid", "Tanh"]``).  Returns ``(T, H)`` float32.
    """
    ort = _import_ort()
    inputs, h0, T, D, H = _seq_shapes(inputs, h0)
    W = np.asarray(W)
    R = np.asarray(R)
    if W.ndim == 2:
        W = W[None]
    if R.ndim == 2:
        R = R[None]
    _check_shape("W", W, (1, 3 * H, D))
    _check_shape("R", R, (1, 3 * H, H))
    if B is not None:
        B = np.asarray(B)
        if B.ndim == 1:
            B = B[None]
        _check_shape("B", B, (1, 6 * H))
    model = onnx_model(W, R, B, T, D, H, linear_before_reset, activations,
                       activation_alpha, activation_beta)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), sess_options=so,
                                providers=["CPUExecutionProvider"])
    (y,) = sess.run(["Y"], {
        "X": np.ascontiguousarray(inputs[:, None, :], np.float32),
        "initial_h": np.ascontiguousarray(h0[None, None, :], np.float32),
    })
    return np.asarray(y).reshape(T, H)

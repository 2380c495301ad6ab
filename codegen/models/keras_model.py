"""A network as a Keras 3 model: a ``GRU`` layer per layer (``Bidirectional`` around two for a
bidirectional one, its ``merge_mode`` the layer's merge; ``go_backwards`` for a reverse cell),
``reset_after`` and the activations as each cell's convention says, written by Keras itself:
``.weights.h5`` (``model.save_weights``: the weights alone; with several layers a reader needs their
order, which ``.keras`` keeps) or ``.keras`` (``model.save``: the model and its weights; Keras stamps
the time it was saved, so two runs differ in that stamp).

Keras is imported here, when a Keras file is asked for, with ``KERAS_BACKEND=torch`` unless the
environment names a backend."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from grukit.derive.cell.layouts import LAYOUTS
from grukit.derive.errors import GrukitError
from grukit.derive.files.keras_files import KERAS_NAMES
from grukit.derive.layers.network import Network


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except Exception as exc:  # noqa: BLE001 - Keras fails to import when its backend is missing
        raise GrukitError(f"writing a Keras file needs Keras 3 with a backend it can load (KERAS_BACKEND="
                          f"{os.environ['KERAS_BACKEND']}: {' '.join(str(exc).split())[:120]})") from None
    return keras


def keras_model(net: Network):
    """The Keras model of a network in the ``keras``/``keras-reset-before`` conventions
    (:func:`grukit.derive.audit.convert.network_as`), its weights set."""
    keras = _keras()
    inputs = keras.Input((None, net.input_size), name="inputs")
    x, filled = inputs, []
    for k, layer in enumerate(net.layers):
        def gru(cell, name):
            conv = cell.convention
            return keras.layers.GRU(cell.hidden_size, return_sequences=True, reset_after=conv.reset == "after",
                                    activation=KERAS_NAMES[conv.candidate_activation],
                                    recurrent_activation=KERAS_NAMES[conv.gate_activation],
                                    go_backwards=cell.direction == "reverse", name=name)

        if len(layer.cells) == 2:
            forward, backward = (gru(c, f"{d}_gru_{k}") for c, d in zip(layer.cells, ("forward", "backward")))
            merge = None if layer.merge == "none" else layer.merge
            wrapper = keras.layers.Bidirectional(forward, backward_layer=backward, merge_mode=merge, name=f"gru_{k}")
            x = wrapper(x)
            filled += [(wrapper.forward_layer, layer.cells[0]), (wrapper.backward_layer, layer.cells[1])]
        else:
            single = gru(layer.cells[0], f"gru_{k}")
            x = single(x)
            filled.append((single, layer.cells[0]))
    model = keras.Model(inputs, x, name="grukit_gru")
    for keras_layer, cell in filled:
        arrays = LAYOUTS["keras"].pack(cell.convention, cell.params, cell.input_size, cell.hidden_size, "float32")
        keras_layer.set_weights([arrays["kernel"], arrays["recurrent_kernel"], arrays["bias"]])
    return model


def keras_bytes(net: Network, suffix: str) -> bytes:
    """The model's ``.keras`` or ``.weights.h5`` file, as Keras writes it (through a scratch folder:
    Keras writes only to a path)."""
    model = keras_model(net)
    with tempfile.TemporaryDirectory(prefix="grukit-keras-") as tmp:
        path = Path(tmp) / f"model{suffix}"
        if suffix == ".keras":
            model.save(path)
        else:
            model.save_weights(path)
        return path.read_bytes()

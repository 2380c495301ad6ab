"""A network as an ``nn.GRU`` state dict: ``.pt`` (``torch.save``) or ``.safetensors`` (the
``safetensors`` package's writer), float32 arrays under PyTorch's own names."""
from __future__ import annotations

import io
from dataclasses import replace

import numpy as np

from grukit.derive.cell.layouts import LAYOUTS
from grukit.derive.layers.network import Network


def state_dict(net: Network) -> dict[str, np.ndarray]:
    """``weight_ih_l{k}[_reverse]``, ``weight_hh_...``, ``bias_ih_...``, ``bias_hh_...`` of a network in
    the ``pytorch`` convention (:func:`grukit.derive.audit.convert.network_as`), in nn.GRU's key order."""
    out = {}
    for k, layer in enumerate(net.layers):
        for cell in layer.cells:
            sfx = f"_l{k}" + ("_reverse" if cell.direction == "reverse" else "")
            layout = replace(LAYOUTS["pytorch"], input_weight=f"weight_ih{sfx}", recurrent_weight=f"weight_hh{sfx}",
                             biases={"none": (), "double": (f"bias_ih{sfx}", f"bias_hh{sfx}")})
            out.update(layout.pack(cell.convention, cell.params, cell.input_size, cell.hidden_size, np.float32))
    return out


def torch_bytes(net: Network) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save({name: torch.from_numpy(value) for name, value in state_dict(net).items()}, buffer)
    return buffer.getvalue()


def safetensors_bytes(net: Network) -> bytes:
    from safetensors.numpy import save

    return save(state_dict(net))

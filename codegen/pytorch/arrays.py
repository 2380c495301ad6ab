"""The arrays of one cell as the kernels take them, and their names as module parameters.

A convention bound to a framework layout (``pytorch``, ``keras``, ``onnx`` ...) is given the
framework's own arrays (``weight_ih_l0``, ``kernel``, ``W`` ...), so a state dict of that framework
loads unchanged; any other convention its own symbols (``W_z``, ``U_h``, ``b_h`` ...). The kernels
accept both (docs/kernels.md), and give the gradients back under the same names.
"""
from __future__ import annotations

from grukit.derive.cell.convention import Convention
from grukit.derive.cell.layouts import LAYOUTS
from grukit.derive.cell.presets import PRESETS
from grukit.derive.errors import GrukitError

LAYER_SUFFIX = "_l0"
"""PyTorch's layout names its arrays for layer 0 (``weight_ih_l0``); a module names each layer's own."""


def resolve(convention) -> Convention:
    """A preset's name or a :class:`Convention` -> the convention (a one-line error otherwise)."""
    if isinstance(convention, str):
        if convention not in PRESETS:
            raise GrukitError(f"convention: unknown preset {convention!r} (presets: {', '.join(PRESETS)})")
        return PRESETS[convention]
    if not isinstance(convention, Convention):
        raise GrukitError(f"convention: expected a preset name or a Convention, got {type(convention).__name__}")
    return convention


def cell_arrays(convention: Convention, inputs: int, hidden: int) -> dict[str, tuple[int, ...]]:
    """Name -> shape of the arrays one cell's kernels take, in the kernels' order."""
    if convention.layout is not None:
        return LAYOUTS[convention.layout].array_shapes(convention, inputs, hidden)
    return {convention.key(p): convention.param_shape(p, inputs, hidden) for p in convention.parameters()}


def bias_arrays(convention: Convention) -> tuple[str, ...]:
    """The names among :func:`cell_arrays` that hold biases (zero and untrained with ``bias=False``)."""
    if convention.layout is not None:
        return LAYOUTS[convention.layout].biases[convention.biases]
    return tuple(convention.key(p) for p in convention.parameters() if p.is_bias)


def parameter_name(array: str, layer: int | None, reverse: bool) -> str:
    """A cell's array as a module parameter: ``weight_ih_l1_reverse``, ``kernel_l0``, ``W_z_l0``; a
    lone cell (``layer=None``) keeps the bare name, as ``nn.GRUCell`` does (``weight_ih``)."""
    base = array.removesuffix(LAYER_SUFFIX)
    if layer is None:
        return base
    return f"{base}_l{layer}{'_reverse' if reverse else ''}"

"""Framework weight layouts: the packed arrays of Keras, PyTorch and ONNX <-> a convention's parameters.

A layout says how a framework stores the three gates' weights: which arrays, in which orientation,
with which gate order along the packed axis, and how biases are arranged. :meth:`Layout.blocks` is
the one table of where each parameter sits (array, index, transposed or not); unpacking, packing
and the sheet's "where is it in the framework's arrays" rows all read it, so ``grad`` returns
gradients in the framework's own array names and shapes.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from grukit.derive.cell.convention import Convention, Param
from grukit.derive.errors import GrukitError


@dataclass(frozen=True)
class Block:
    """Where one parameter sits: ``arrays[array][index]``, transposed when the framework multiplies
    from the other side than the convention (``x W`` against ``W x``)."""

    array: str
    index: tuple  # ints (leading axes) and slices
    transposed: bool = False

    def text(self) -> str:
        """The index as Python writes it: ``kernel[:, 0:3]``, ``bias[1, 3:6]``, ``W[0, 0:3, :]``."""
        return f"{self.array}[{', '.join(map(_index_text, self.index))}]"


def _index_text(i) -> str:
    if isinstance(i, slice):
        return ":" if i.start is None else f"{i.start}:{i.stop}"
    return str(i)


@dataclass(frozen=True)
class Layout:
    name: str
    orientation: str  # how the framework multiplies: "row" (x @ W) or "column" (W @ x)
    order: tuple[str, ...]  # the framework's native gate order along the packed axis
    input_weight: str
    recurrent_weight: str
    biases: dict[str, tuple[str, ...]]  # convention bias kind -> array names
    bias_form: str = "vectors"
    """How the bias arrays are shaped: "vectors", one (3H,) array per role (input, recurrent);
    "rows", one array with a row per role (a plain (3H,) vector for one role); "flat", one
    (1, roles * 3H) array."""
    lead: int = 0  # leading singleton axes (ONNX's direction axis)

    def __hash__(self) -> int:  # a layout is its name (the registry's key): blocks() caches on it
        return hash(self.name)

    def gate_order(self, convention: Convention) -> tuple[str, ...]:
        """The packed order: the convention's own if it is bound to this layout (weights saved in
        another framework's order, e.g. CuDNNGRU's [r|z|h] in a Keras file), else the native one."""
        return convention.gate_order if convention.layout == self.name else self.order

    def weight_shape(self, role: str, inputs: int, hidden: int) -> tuple[int, ...]:
        cols = inputs if role == "input_weight" else hidden
        core = (cols, 3 * hidden) if self.orientation == "row" else (3 * hidden, cols)
        return (1,) * self.lead + core

    def bias_shapes(self, kind: str, hidden: int) -> dict[str, tuple[int, ...]]:
        names = self.biases[kind]
        roles = 2 if kind == "double" else 1
        if self.bias_form == "rows" and names:
            return {names[0]: (roles, 3 * hidden) if roles > 1 else (3 * hidden,)}
        if self.bias_form == "flat" and names:
            return {names[0]: (1, roles * 3 * hidden)}
        return {n: (3 * hidden,) for n in names}

    def array_names(self, convention: Convention) -> tuple[str, ...]:
        """The arrays a file of this layout holds for the convention (the keys of :meth:`array_shapes`)."""
        return (self.input_weight, self.recurrent_weight, *self.biases[convention.biases])

    def array_shapes(self, convention: Convention, inputs: int, hidden: int) -> dict[str, tuple[int, ...]]:
        shapes = {self.input_weight: self.weight_shape("input_weight", inputs, hidden),
                  self.recurrent_weight: self.weight_shape("recurrent_weight", inputs, hidden)}
        shapes.update(self.bias_shapes(convention.biases, hidden))
        return shapes

    def sizes(self, arrays: dict[str, np.ndarray]) -> tuple[int, int]:
        """(D, H) read off the weight arrays: H is the recurrent weight's unpacked axis, D the input
        weight's ((D, 3H) / (H, 3H) in row layouts like Keras, (..., 3H, D) / (..., 3H, H) in column ones)."""
        axis = -1 if self.orientation == "column" else self.lead
        return np.shape(arrays[self.input_weight])[axis], np.shape(arrays[self.recurrent_weight])[axis]

    def blocks(self, convention: Convention, inputs: int, hidden: int) -> dict[Param, Block]:
        """Where each of the convention's parameters sits in this layout's arrays (cached: the
        kernels read it on every call; treat the result as read-only)."""
        return _blocks(self, convention, inputs, hidden)

    def _table(self, convention: Convention, inputs: int, hidden: int) -> dict[Param, Block]:
        order = self.gate_order(convention)
        shapes = self.array_shapes(convention, inputs, hidden)
        shapes = {name: shapes[name] for name in self.biases[convention.biases]}
        return {p: (self._bias_block(p, order, shapes, hidden) if p.is_bias
                    else self._weight_block(p, order, convention, hidden))
                for p in convention.parameters()}

    def _weight_block(self, p: Param, order, convention: Convention, hidden: int) -> Block:
        k = order.index(p.gate)
        gate, whole = slice(k * hidden, (k + 1) * hidden), slice(None)
        core = (whole, gate) if self.orientation == "row" else (gate, whole)
        name = self.input_weight if p.role == "input_weight" else self.recurrent_weight
        return Block(name, (0,) * self.lead + core, self.orientation != convention.orientation)

    @staticmethod
    def _bias_block(p: Param, order, shapes: dict[str, tuple[int, ...]], hidden: int) -> Block:
        """The biases read as one flat vector, input roles first: the block's place in it, found in
        the array (and row) holding that stretch."""
        offset = (0 if p.role == "input_bias" else 3 * hidden) + order.index(p.gate) * hidden
        for name, shape in shapes.items():
            size = int(np.prod(shape))
            if offset < size:
                *head, start = (int(i) for i in np.unravel_index(offset, shape))
                return Block(name, (*head, slice(start, start + hidden)))
            offset -= size
        raise ValueError(f"{p}: no bias array of this layout holds it")

    def locations(self, convention: Convention, inputs: int, hidden: int) -> dict[Param, tuple[str, bool]]:
        """Each parameter's place as text (``kernel[:, 0:3]``) and whether it is stored transposed."""
        return {p: (b.text(), b.transposed) for p, b in self.blocks(convention, inputs, hidden).items()}

    def unpack(self, convention: Convention, arrays: dict[str, np.ndarray]) -> dict[Param, np.ndarray]:
        """Framework arrays (already shape-checked) -> the convention's parameters."""
        out = {}
        for p, b in self.blocks(convention, *self.sizes(arrays)).items():
            value = np.asarray(arrays[b.array])[b.index]
            out[p] = value.T if b.transposed else value
        return out

    def pack(self, convention: Convention, params: dict[Param, np.ndarray], inputs: int, hidden: int,
             dtype=object) -> dict[str, np.ndarray]:
        """The convention's parameters (or their gradients) -> framework arrays (exact numbers by
        default, or ``dtype``)."""
        shapes = self.array_shapes(convention, inputs, hidden)
        out = {name: np.zeros(shape, dtype=dtype) for name, shape in shapes.items()}
        for p, b in self.blocks(convention, inputs, hidden).items():
            value = np.asarray(params[p], dtype=dtype)
            out[b.array][b.index] = value.T if b.transposed else value
        return out

    def check(self, convention: Convention, where: str) -> None:
        if convention.biases not in self.biases:
            raise GrukitError(
                f"{where}: layout {self.name!r} cannot hold a convention with biases={convention.biases!r}"
            )
        if convention.gate_width != "vector" or convention.input_form != "separate":
            raise GrukitError(f"{where}: layout {self.name!r} holds only vector gates with separate weights")


@lru_cache(maxsize=256)
def _blocks(layout: Layout, convention: Convention, inputs: int, hidden: int) -> dict[Param, Block]:
    return layout._table(convention, inputs, hidden)


LAYOUTS: dict[str, Layout] = {
    "keras": Layout("keras", "row", ("z", "r", "h"), "kernel", "recurrent_kernel",
                    {"none": (), "single": ("bias",), "double": ("bias",)}, bias_form="rows"),
    "pytorch": Layout("pytorch", "column", ("r", "z", "h"), "weight_ih_l0", "weight_hh_l0",
                      {"none": (), "double": ("bias_ih_l0", "bias_hh_l0")}),
    "onnx": Layout("onnx", "column", ("z", "r", "h"), "W", "R", {"none": (), "double": ("B",)},
                   bias_form="flat", lead=1),
}


def named_arrays(convention: Convention, params: dict[Param, np.ndarray], layout: str | None,
                 inputs: int, hidden: int) -> dict[str, np.ndarray]:
    """Parameters (or their gradients) under a problem's own names: the framework's arrays when its
    weights came in a layout file, else the convention's keys."""
    if layout is not None:
        return LAYOUTS[layout].pack(convention, params, inputs, hidden)
    return {convention.key(p): v for p, v in params.items()}

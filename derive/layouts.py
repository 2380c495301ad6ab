"""Framework weight layouts: the packed arrays of Keras, PyTorch and ONNX <-> a convention's parameters.

A layout says how a framework stores the three gates' weights: which arrays, in which orientation,
with which gate order along the packed axis, and how biases are arranged. Unpacking and packing
are the same table read in both directions, so ``grad`` can return gradients in the framework's
own array names and shapes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .convention import Convention, Param
from .errors import GrukitError


@dataclass(frozen=True)
class Layout:
    name: str
    orientation: str  # how the framework multiplies: "row" (x @ W) or "column" (W @ x)
    order: tuple[str, ...]  # the framework's native gate order along the packed axis
    input_weight: str
    recurrent_weight: str
    biases: dict[str, tuple[str, ...]]  # convention bias kind -> array names
    lead: int = 0  # leading singleton axes (ONNX's direction axis)

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
        if self.name == "keras" and kind == "double":
            return {names[0]: (2, 3 * hidden)}
        if self.name == "onnx":
            return {names[0]: (1, 6 * hidden)}
        return {n: (3 * hidden,) for n in names}

    def array_shapes(self, convention: Convention, inputs: int, hidden: int) -> dict[str, tuple[int, ...]]:
        shapes = {self.input_weight: self.weight_shape("input_weight", inputs, hidden),
                  self.recurrent_weight: self.weight_shape("recurrent_weight", inputs, hidden)}
        shapes.update(self.bias_shapes(convention.biases, hidden))
        return shapes

    # The bias arrays flattened: one vector of (#bias roles) * 3H entries, roles input then recurrent.
    def _flat_biases(self, arrays: dict[str, np.ndarray], kind: str) -> np.ndarray:
        return np.concatenate([np.asarray(arrays[n]).reshape(-1) for n in self.biases[kind]])

    def unpack(self, convention: Convention, arrays: dict[str, np.ndarray]) -> dict[Param, np.ndarray]:
        """Framework arrays (already shape-checked) -> the convention's parameters."""
        hidden = np.asarray(arrays[self.recurrent_weight]).shape[-1 if self.orientation == "column" else 0]
        out = {}
        order = self.gate_order(convention)
        for p in convention.parameters():
            k = order.index(p.gate)
            block = slice(k * hidden, (k + 1) * hidden)
            if p.is_bias:
                flat = self._flat_biases(arrays, convention.biases)
                offset = 0 if p.role == "input_bias" else 3 * hidden
                out[p] = flat[offset:][block]
                continue
            name = self.input_weight if p.role == "input_weight" else self.recurrent_weight
            w = np.asarray(arrays[name]).reshape(np.asarray(arrays[name]).shape[self.lead:])
            w = w[:, block] if self.orientation == "row" else w[block, :]
            out[p] = w if self.orientation == convention.orientation else w.T
        return out

    def pack(self, convention: Convention, params: dict[Param, np.ndarray], inputs: int, hidden: int
             ) -> dict[str, np.ndarray]:
        """The convention's parameters (or their gradients) -> framework arrays."""
        shapes = self.array_shapes(convention, inputs, hidden)
        out = {name: np.zeros(shape, dtype=object) for name, shape in shapes.items()}
        flat = {}
        order = self.gate_order(convention)
        for p in convention.parameters():
            k = order.index(p.gate)
            block = slice(k * hidden, (k + 1) * hidden)
            value = np.asarray(params[p], dtype=object)
            if p.is_bias:
                offset = 0 if p.role == "input_bias" else 3 * hidden
                flat[offset + k * hidden] = value.reshape(-1)
                continue
            name = self.input_weight if p.role == "input_weight" else self.recurrent_weight
            w = value if self.orientation == convention.orientation else value.T
            core = out[name].reshape(out[name].shape[self.lead:])
            if self.orientation == "row":
                core[:, block] = w
            else:
                core[block, :] = w
            out[name] = core.reshape(shapes[name])
        if flat:
            vector = np.concatenate([flat[k] for k in sorted(flat)])
            names = self.biases[convention.biases]
            sizes = [int(np.prod(shapes[n])) for n in names]
            for name, chunk in zip(names, np.split(vector, np.cumsum(sizes)[:-1])):
                out[name] = chunk.reshape(shapes[name])
        return out

    def check(self, convention: Convention, where: str) -> None:
        if convention.biases not in self.biases:
            raise GrukitError(
                f"{where}: layout {self.name!r} cannot hold a convention with biases={convention.biases!r}"
            )
        if convention.gate_width != "vector" or convention.input_form != "separate":
            raise GrukitError(f"{where}: layout {self.name!r} holds only vector gates with separate weights")


LAYOUTS: dict[str, Layout] = {
    "keras": Layout("keras", "row", ("z", "r", "h"), "kernel", "recurrent_kernel",
                    {"none": (), "single": ("bias",), "double": ("bias",)}),
    "pytorch": Layout("pytorch", "column", ("r", "z", "h"), "weight_ih_l0", "weight_hh_l0",
                      {"none": (), "double": ("bias_ih_l0", "bias_hh_l0")}),
    "onnx": Layout("onnx", "column", ("z", "r", "h"), "W", "R", {"none": (), "double": ("B",)}, lead=1),
}

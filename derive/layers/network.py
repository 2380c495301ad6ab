"""Whole framework layers: cells composed over layers x directions, a batch at a time, with lengths
and masks, forward and back.

A layer is nothing but cells: each (layer, direction) is one convention's cell, walked by the one
stage list (:func:`~grukit.derive.numeric.evaluate.step`) and the one set of backward records
(:func:`~grukit.derive.numeric.bptt.step_backward`), on (units x batch) arrays of a batched engine
(:mod:`grukit.derive.numeric.batch`). What differs between frameworks is how the cells are composed, and
that is data here, measured against each framework (tests/test_layer_*.py, docs/layers.md):

* :data:`STATE_RULE` -- a step outside a sequence (past its length, or masked) keeps the state:
  ``h_t = m h_cell + (1 - m) h_{t-1}`` (every framework);
* :data:`OUTPUT_RULES` -- what the output holds there: ``zero`` (PyTorch's pad_packed_sequence,
  ONNX Runtime, a Keras ``Bidirectional``) or ``previous``, the previous step's output (zeros
  before the first; a plain Keras GRU, ``zero_output_for_mask=False``);
* :data:`FINAL_RULES` -- the final state: ``last`` (the state after the last step, carried over
  padded steps: PyTorch, Keras) or ``zero_if_empty`` (ONNX Runtime gives zeros for a length-0
  sequence);
* ``reverse_order`` -- a reverse cell's outputs in ``input`` order (PyTorch, ONNX, Keras
  ``Bidirectional``) or in ``processing`` order (a plain Keras GRU with ``go_backwards``);
* :data:`MERGES` -- how two directions' outputs make one: ``concat``/``stack``/``none`` side by
  side, or the SymPy expressions of Keras's ``sum``, ``mul`` and ``ave``.

Every rule is a SymPy expression per unit, so its derivative comes from ``sympy.diff`` like every
other derivative in grukit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from grukit.derive.cell.convention import Convention, Param
from grukit.derive.cell.equations import unit

DIRECTIONS = ("forward", "reverse", "bidirectional")

_m, _c, _hp, _h, _yp = unit("m"), unit("h_cell"), unit("h_prev"), unit("h"), unit("y_prev")
_a, _b = unit("a"), unit("b")

STATE_RULE = _m * _c + (1 - _m) * _hp
"""The new state at a step with validity ``m`` (1 inside the sequence, 0 outside)."""

OUTPUT_RULES: dict[str, sp.Expr] = {
    "zero": _m * _h,
    "previous": _m * _h + (1 - _m) * _yp,
}
"""What a step's output holds, from its validity ``m``, its state ``h`` and the previous output."""

FINAL_RULES: dict[str, sp.Expr] = {"last": _h, "zero_if_empty": _m * _h}
"""The final state from the last state ``h`` and ``m`` = 1 if the sequence has a step, else 0."""

MERGES: dict[str, sp.Expr | None] = {
    "concat": None, "stack": None, "none": None,
    "sum": _a + _b, "mul": _a * _b, "ave": (_a + _b) / 2,
}
"""Two directions' outputs (forward ``a``, reverse ``b``) into one; None: kept side by side."""


@dataclass(frozen=True)
class FrameworkRules:
    """How one framework composes cells into a layer, as measured (docs/layers.md)."""

    name: str
    padded_output: str  # OUTPUT_RULES key, for a plain (unwrapped) layer
    reverse_order: str  # "input" | "processing", for a plain reverse layer
    final_state: str  # FINAL_RULES key
    merge: str  # the default merge of a bidirectional layer
    masks: str  # "any": masked steps anywhere; "lengths": a prefix of each sequence only
    empty: bool  # whether a sequence may have no step at all
    output_form: str = "batch_major"


FRAMEWORKS: dict[str, FrameworkRules] = {r.name: r for r in (
    # pack_padded_sequence / pad_packed_sequence: padded outputs 0, h_n after each sequence's last
    # step, reverse runs from each sequence's own last step; lengths must be >= 1.
    FrameworkRules("pytorch", "zero", "input", "last", "concat", "lengths", False),
    # ONNX Runtime (deep_cpu_gru.cc): Y is 0 past sequence_lens, Y_h is 0 for a length-0
    # sequence, the reverse direction runs from each sequence's own last step; Y keeps a
    # num_directions axis.
    FrameworkRules("onnx", "zero", "input", "zero_if_empty", "stack", "lengths", True, "onnx_layout0"),
    # keras.layers.GRU with a mask: a masked step keeps the state and repeats the previous output
    # (zeros before the first; zero_output_for_mask=False); go_backwards returns the outputs in
    # processing order. Bidirectional sets zero_output_for_mask=True (masked outputs 0) and flips
    # the backward outputs back into input order (Layer fields, set by the Keras reader).
    FrameworkRules("keras", "previous", "processing", "last", "concat", "any", True),
    # weights under a convention's own symbols: masked outputs 0, inputs' order, PyTorch's h_n.
    FrameworkRules("none", "zero", "input", "last", "concat", "any", True),
)}
"""Each framework's rules for padded/masked steps, final states, reverse outputs and merges."""



# --- the network -----------------------------------------------------------------------------------

@dataclass
class Cell:
    """One direction of one layer: a convention and its parameters (exact numbers)."""

    convention: Convention
    params: dict[Param, np.ndarray]
    direction: str  # forward | reverse

    @property
    def input_size(self) -> int:
        p = self.params[Param("input_weight", "z")]
        return p.shape[1] if self.convention.orientation == "column" else p.shape[0]

    @property
    def hidden_size(self) -> int:
        return self.params[Param("input_weight", "h")].shape[0 if self.convention.orientation == "column" else 1]


@dataclass
class Layer:
    cells: tuple[Cell, ...]  # (forward,), (reverse,) or (forward, reverse)
    merge: str = "concat"
    padded_output: str = "zero"
    reverse_order: str = "input"
    name: str = ""  # the layer's name in its file (Keras), for messages and sheets

    @property
    def direction(self) -> str:
        return "bidirectional" if len(self.cells) == 2 else self.cells[0].direction

    @property
    def input_size(self) -> int:
        return self.cells[0].input_size

    @property
    def hidden_size(self) -> int:
        return self.cells[0].hidden_size

    @property
    def output_size(self) -> int:
        """The width of the merged output fed to the next layer."""
        side_by_side = MERGES[self.merge] is None
        return self.hidden_size * (len(self.cells) if side_by_side else 1)


@dataclass
class Network:
    """A stack of layers as one framework composes them."""

    framework: str  # pytorch | keras | onnx | none
    layers: list[Layer]
    final_state: str = "last"
    output_form: str = "batch_major"
    """How ``outputs`` are arranged: ``batch_major`` (B x T x units; Keras ``merge_mode=None``:
    directions x B x T x H), ``onnx_layout0`` (Y: T x directions x B x H), ``onnx_layout1`` (Y:
    B x T x directions x H)."""
    layout: str | None = None  # a one-cell network from a layout .npz: the framework whose names it has

    @property
    def cells(self) -> list[tuple[int, Cell]]:
        """(layer index, cell) in PyTorch's h_n order: layer by layer, forward before reverse."""
        return [(k, c) for k, layer in enumerate(self.layers) for c in layer.cells]

    @property
    def input_size(self) -> int:
        return self.layers[0].input_size

    @property
    def hidden_size(self) -> int:
        return self.layers[-1].hidden_size

    @property
    def directions(self) -> int:
        return len(self.layers[0].cells)

    def describe(self) -> list[dict]:
        return [{"layer": k, "name": layer.name, "direction": layer.direction, "merge": layer.merge,
                 "input_size": layer.input_size, "hidden_size": layer.hidden_size,
                 "conventions": [c.convention.name for c in layer.cells]} for k, layer in enumerate(self.layers)]


LAYER_LOSSES: dict[str, sp.Expr] = {
    "weighted_sum": unit("o") * unit("y"),
    "squared_error": (unit("o") - unit("y")) ** 2 / 2,
}
"""A layer problem's loss, per entry of the outputs (``o``) and its weight or target (``y``),
summed over every entry; ``weighted_sum`` may also weigh h_n."""

"""``GRU`` and ``GRUCell``: ``nn.GRU`` and ``nn.GRUCell`` for every convention, on the generated kernels.

Same constructors and calls as PyTorch's, plus ``convention=`` (a preset's name or a
:class:`~grukit.derive.cell.convention.Convention`) and a ``lengths=`` keyword. Each (layer,
direction) is one call of the opaque operator ``grukit::gru_sequence`` (:mod:`.ops`); reversal,
lengths (:mod:`.sequences`), the concatenation of directions and the stacking of layers are torch
operations, so autograd and every optimizer work as with ``nn.GRU``.

Parameters carry the framework's names where the convention has a framework layout (``pytorch``:
``weight_ih_l0`` ... ``bias_hh_l1_reverse``, so an ``nn.GRU`` state dict loads unchanged; ``keras``:
``kernel_l0``, ``recurrent_kernel_l0``, ``bias_l0``; ``onnx``: ``W_l0``, ``R_l0``, ``B_l0``), the
convention's own symbols otherwise (``W_z_l0``). All start uniform in +-1/sqrt(hidden_size), as in
``nn.GRU``. With ``bias=False`` the biases are zeros that are not trained and not in the state dict.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from grukit.codegen.pytorch import ops
from grukit.codegen.pytorch.arrays import bias_arrays, cell_arrays, parameter_name, resolve
from grukit.codegen.pytorch.sequences import Lengths, pack_like, unpack
from grukit.derive.errors import GrukitError

__all__ = ["GRU", "GRUCell"]


class _Cells(nn.Module):
    """The cells' arrays as parameters (or zero buffers for the biases with ``bias=False``), and the
    call of the operator on one of them."""

    def __init__(self, hidden_size: int, bias: bool, convention, factory: dict):
        super().__init__()
        self.convention = resolve(convention)
        self.hidden_size = hidden_size
        self.use_bias = bias
        self._key = ops.register(self.convention)
        self._factory = factory
        self._cells: list[tuple[str, ...]] = []

    def __setstate__(self, state):  # unpickled in another process: that process learns the convention
        super().__setstate__(state)
        self._key = ops.register(self.convention)

    def _add_cell(self, inputs: int, layer: int | None, reverse: bool) -> None:
        biases = bias_arrays(self.convention)
        names = []
        for array, shape in cell_arrays(self.convention, inputs, self.hidden_size).items():
            name = parameter_name(array, layer, reverse)
            value = torch.empty(shape, **self._factory)
            if array in biases and not self.use_bias:
                self.register_buffer(name, value.zero_(), persistent=False)
            else:
                self.register_parameter(name, nn.Parameter(value))
            names.append(name)
        self._cells.append(tuple(names))

    def _flag_bias(self) -> None:
        """``module.bias``, nn.GRU's flag, unless a cell has an array of that name (a Keras cell's)."""
        if not hasattr(self, "bias"):
            self.bias = self.use_bias

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _run(self, cell: int, x: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(h (B, T, H), h_T (B, H)) of one cell over x (B, T, D) from h0 (B, H)."""
        weights = [getattr(self, name) for name in self._cells[cell]]
        save = torch.is_grad_enabled() and (x.requires_grad or h0.requires_grad or
                                            any(w.requires_grad for w in weights))
        return ops.gru_sequence(x.contiguous(), h0.contiguous(), weights, self._key, save)

    def _check_input(self, x: torch.Tensor, inputs: int, where: str) -> None:
        if x.dtype not in ops.DTYPES:
            raise GrukitError(f"{where}: expected float32 or float64, got {x.dtype}")
        if x.shape[-1] != inputs:
            raise GrukitError(f"{where}: expected {inputs} features (input_size), got shape {tuple(x.shape)}")


class GRU(_Cells):
    """``torch.nn.GRU`` for any convention: ``GRU(input_size, hidden_size, num_layers=1, bias=True,
    batch_first=False, dropout=0.0, bidirectional=False, convention="pytorch")``;
    ``forward(input, hx=None, *, lengths=None)`` -> ``(output, h_n)`` as ``nn.GRU`` gives them
    (``input`` a tensor, batched or not, or a ``PackedSequence``)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 convention="pytorch", device=None, dtype=None):
        super().__init__(hidden_size, bias, convention, {"device": device, "dtype": dtype})
        if num_layers < 1 or hidden_size < 1 or input_size < 1:
            raise GrukitError(f"GRU: input_size, hidden_size and num_layers must be at least 1, got "
                              f"{input_size}, {hidden_size}, {num_layers}")
        self.input_size, self.num_layers = input_size, num_layers
        self.batch_first, self.dropout, self.bidirectional = batch_first, float(dropout), bidirectional
        self.directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            inputs = input_size if layer == 0 else hidden_size * self.directions
            for reverse in range(self.directions):
                self._add_cell(inputs, layer, bool(reverse))
        self._flag_bias()
        self.reset_parameters()

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}, convention={self.convention.name!r}"
        for name, default in (("num_layers", 1), ("use_bias", True), ("batch_first", False), ("dropout", 0.0),
                              ("bidirectional", False)):
            if getattr(self, name) != default:
                text += f", {name}={getattr(self, name)}"
        return text

    def flatten_parameters(self) -> None:
        """Nothing to do (``nn.GRU``'s cuDNN weight buffer has no counterpart here); kept so code that
        calls it runs unchanged."""

    def forward(self, input, hx: torch.Tensor | None = None, *, lengths=None):
        packed = input if isinstance(input, PackedSequence) else None
        if packed is not None:
            x, lengths = unpack(packed)
        else:
            if input.dim() not in (2, 3):
                raise GrukitError(f"GRU: expected a 2-D (unbatched) or 3-D input, got shape {tuple(input.shape)}")
            x = input.unsqueeze(0) if input.dim() == 2 else input if self.batch_first else input.transpose(0, 1)
        unbatched = packed is None and input.dim() == 2
        self._check_input(x, self.input_size, "GRU input")
        B, T = x.shape[0], x.shape[1]
        h0 = self._initial_state(hx, B, x, unbatched)
        spans = Lengths.of(lengths, B, T, x.dtype) if lengths is not None else None
        y, finals = x, []
        for layer in range(self.num_layers):
            if layer and self.dropout and self.training:
                y = nn.functional.dropout(y, self.dropout, True)
            outs = []
            for reverse in range(self.directions):
                cell = layer * self.directions + reverse
                out, final = self._direction(cell, y, h0[cell], bool(reverse), spans)
                outs.append(out)
                finals.append(final)
            y = outs[0] if len(outs) == 1 else torch.cat(outs, 2)  # (B, T, H * directions)
        h_n = torch.stack(finals)
        if packed is not None:
            return pack_like(packed, y, lengths), h_n
        if unbatched:
            return y[0], h_n[:, 0]
        return (y if self.batch_first else y.transpose(0, 1).contiguous()), h_n

    def _direction(self, cell: int, x: torch.Tensor, h0: torch.Tensor, reverse: bool, spans: Lengths | None):
        """(outputs (B, T, H) in input order, 0 past each length; h_n (B, H)) of one cell over x (B, T, D)."""
        if reverse:
            x = x.flip(1) if spans is None else spans.reversed(x)
        out, final = self._run(cell, x, h0)
        if spans is not None:
            final = spans.final(out, h0)
        if reverse:
            out = out.flip(1) if spans is None else spans.reversed(out)
        return (out if spans is None else out * spans.mask), final

    def _initial_state(self, hx, B: int, x: torch.Tensor, unbatched: bool) -> torch.Tensor:
        shape = (self.num_layers * self.directions, B, self.hidden_size)
        if hx is None:
            return x.new_zeros(shape)
        h0 = hx.unsqueeze(1) if unbatched else hx
        if tuple(h0.shape) != shape:
            want = shape[::2] if unbatched else shape
            raise GrukitError(f"GRU hx: expected shape {want} (layers * directions, batch, hidden), "
                              f"got {tuple(hx.shape)}")
        return h0


class GRUCell(_Cells):
    """``torch.nn.GRUCell`` for any convention: ``GRUCell(input_size, hidden_size, bias=True,
    convention="pytorch")``; ``forward(input, hx=None)`` -> h' (B, H), or (H,) for an unbatched input."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, convention="pytorch",
                 device=None, dtype=None):
        super().__init__(hidden_size, bias, convention, {"device": device, "dtype": dtype})
        self.input_size = input_size
        self._add_cell(input_size, None, False)
        self._flag_bias()
        self.reset_parameters()

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.use_bias}, convention={self.convention.name!r}"

    def forward(self, input: torch.Tensor, hx: torch.Tensor | None = None) -> torch.Tensor:
        if input.dim() not in (1, 2):
            raise GrukitError(f"GRUCell: expected a 1-D (unbatched) or 2-D input, got shape {tuple(input.shape)}")
        unbatched = input.dim() == 1
        x = input.unsqueeze(0) if unbatched else input
        self._check_input(x, self.input_size, "GRUCell input")
        h0 = x.new_zeros((x.shape[0], self.hidden_size)) if hx is None else hx.unsqueeze(0) if unbatched else hx
        if tuple(h0.shape) != (x.shape[0], self.hidden_size):
            raise GrukitError(f"GRUCell hx: expected shape {(x.shape[0], self.hidden_size)}, got {tuple(hx.shape)}")
        h = self._run(0, x.unsqueeze(1), h0)[1]
        return h[0] if unbatched else h

"""Sequences of different lengths, as PyTorch's packed sequences treat them, in plain torch operations.

A cell runs over the whole padded batch; what makes lengths right is composed around it:

* the reverse direction sees each row's own valid steps reversed at the front: step ``t`` of row
  ``b`` reads input step ``L_b - 1 - t`` for ``t < L_b`` (and the padded step ``t`` after them).
  That index is its own inverse, so the same gather puts the outputs back in input order;
* outputs past a row's length are 0 (``pad_packed_sequence``), and h_n is the state after each
  row's last valid step (``h_0`` for a row of length 0, which PyTorch refuses to pack);
* the forward direction needs no gather: a row's valid steps come first, and what the cell computes
  after them is masked away.

Autograd differentiates the gathers, the mask and the indexing like any other operation.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from grukit.derive.errors import GrukitError


@dataclass
class Lengths:
    """Each row's number of valid steps, with the index and mask built from them once per call."""

    lengths: torch.Tensor  # (B,) int64
    reverse: torch.Tensor  # (B, T): the step each row's reverse pass reads at step t
    mask: torch.Tensor  # (B, T, 1): 1 at a valid step, else 0 (the dtype of the outputs)

    @classmethod
    def of(cls, lengths, batch: int, steps: int, dtype: torch.dtype) -> "Lengths":
        lengths = torch.as_tensor(lengths).to(device="cpu", dtype=torch.int64).reshape(-1)
        if lengths.numel() != batch:
            raise GrukitError(f"lengths: expected {batch} values (one per sequence), got {lengths.numel()}")
        if lengths.numel() and (int(lengths.min()) < 0 or int(lengths.max()) > steps):
            raise GrukitError(f"lengths: each must be in 0..{steps} (the steps of the input), got "
                              f"{lengths.tolist()}")
        t = torch.arange(steps)[None, :]
        last = lengths[:, None] - 1
        reverse = torch.where(t <= last, last - t, t)
        mask = (t < lengths[:, None]).unsqueeze(2).to(dtype)
        return cls(lengths, reverse, mask)

    def reversed(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, width) with each row's valid steps reversed (the index is its own inverse: the same
        call puts a reverse pass's outputs back in input order)."""
        return x.gather(1, self.reverse[:, :, None].expand(-1, -1, x.shape[2]))

    def final(self, h: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        """The state after each row's last valid step, from h (B, T, H) (h0 (B, H) for a row of length 0)."""
        last = h[torch.arange(h.shape[0]), (self.lengths - 1).clamp(min=0)]
        return torch.where((self.lengths > 0)[:, None], last, h0)


def unpack(sequence: PackedSequence) -> tuple[torch.Tensor, torch.Tensor]:
    """(x (B, T, D) padded, in the batch's original order, lengths)."""
    return pad_packed_sequence(sequence, batch_first=True)


def pack_like(sequence: PackedSequence, y: torch.Tensor, lengths: torch.Tensor) -> PackedSequence:
    """Outputs y (B, T, H) in the original order packed as ``sequence`` was (the same batch sizes and
    sorting), as ``nn.GRU`` returns them."""
    order = sequence.sorted_indices
    if order is not None:
        y, lengths = y.index_select(0, order), lengths[order.cpu()]
    packed = pack_padded_sequence(y, lengths, batch_first=True, enforce_sorted=True)
    return PackedSequence(packed.data, packed.batch_sizes, sequence.sorted_indices, sequence.unsorted_indices)

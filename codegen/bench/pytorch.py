"""A training step of ``grukit.GRU`` against ``torch.nn.GRU``, side by side in one process.

A step is what a training loop does: the module's forward on a batch (batch-first, one layer, the
``pytorch`` convention with the same weights in both), a loss, backward, and an optimizer step (SGD)
that changes the weights. :func:`module_systems` gives the two steps as callables in the form
``grukit bench``'s systems take (``run.rounds`` times them interleaved with every other system,
``run.ratio`` takes the median of per-round ratios). It imports PyTorch, so ``run`` imports it only
once the bench has said that PyTorch is there.
"""
from __future__ import annotations

from grukit.codegen.pytorch.modules import GRU

GRUKIT, TORCH = "grukit GRU {} train step", "torch nn.GRU {} train step"


def _step(module, x, h0, dh):
    import torch

    optimizer = torch.optim.SGD(module.parameters(), lr=1e-6)

    def step():
        y, _ = module(x, h0)
        (y * dh).sum().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def module_systems(size, dtype: str, w: dict, x, h0, dh) -> dict:
    """{name: one training step} for grukit's GRU and nn.GRU at ``size`` (B, T, D, H) in ``dtype``,
    both holding the PyTorch-layout arrays ``w`` (``weight_ih_l0`` ...); x (B, T, D), h0 (B, H) and
    dh (B, T, H) are NumPy arrays (dh weighs the outputs into the loss)."""
    import torch

    B, T, D, H = size
    kind = getattr(torch, dtype)
    tensors = [torch.from_numpy(a) for a in (x, h0[None], dh)]
    out = {}
    for name, cls in ((GRUKIT, GRU), (TORCH, torch.nn.GRU)):
        module = cls(D, H, batch_first=True, dtype=kind)
        module.load_state_dict({n: torch.from_numpy(v) for n, v in w.items()})
        out[name.format(dtype)] = _step(module, *tensors)
    return out

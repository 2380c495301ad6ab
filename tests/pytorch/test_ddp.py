"""DistributedDataParallel (gloo, CPU, two processes on localhost) with grukit's GRU: one training step
on two halves of a batch gives every process the gradients, and the weights after the step, of one
process on the whole batch (the oracle: the same module, not distributed)."""
from __future__ import annotations

import socket

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

from helpers import torch_ddp  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="no gloo backend")
def test_two_processes_give_the_whole_batch_gradient(tmp_path):
    torch.multiprocessing.spawn(torch_ddp.worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    whole = torch_ddp.step(torch_ddp.model(), *torch_ddp.batch())
    assert len(whole["grads"]) == 12
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        for kind in ("grads", "weights"):
            assert set(got[kind]) == set(whole[kind])
            for name, want in whole[kind].items():
                assert torch.allclose(got[kind][name], want, rtol=1e-12, atol=1e-14), (rank, kind, name)
        moved = max(float((got["weights"][n] - torch_ddp.model().state_dict()[n]).abs().max()) for n in got["weights"])
        assert moved > 1e-3

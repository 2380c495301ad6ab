"""One DistributedDataParallel training step of grukit's GRU, run in each process that
``torch.multiprocessing.spawn`` starts (it must live in an importable module: the children import
it by name). Each process takes its share of one batch; its gradients (after DDP's all-reduce) and
its weights after one SGD step are saved for the test to compare with one process on the whole batch."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from grukit import GRU

BATCH, STEPS, INPUTS, HIDDEN = 6, 5, 3, 4
CONVENTION = "keras-reset-before"


def model() -> GRU:
    torch.manual_seed(0)
    return GRU(INPUTS, HIDDEN, num_layers=2, bidirectional=True, batch_first=True, convention=CONVENTION,
               dtype=torch.float64)


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    x = torch.rand((BATCH, STEPS, INPUTS), generator=gen, dtype=torch.float64)
    target = torch.rand((BATCH, STEPS, 2 * HIDDEN), generator=gen, dtype=torch.float64)
    return x, target


def step(module, x, target) -> dict:
    """Mean squared error, backward, one SGD step: the gradients and the weights after the step."""
    optimizer = torch.optim.SGD(module.parameters(), lr=0.5)
    y, _ = module(x)
    ((y - target) ** 2).mean().backward()
    grads = {n: p.grad.clone() for n, p in module.named_parameters()}
    optimizer.step()
    return {"grads": grads, "weights": {n: p.detach().clone() for n, p in module.named_parameters()}}


def worker(rank: int, world: int, port: int, folder: str) -> None:
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        ddp = DistributedDataParallel(model())
        x, target = batch()
        share = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
        out = step(ddp, x[share], target[share])
        out["grads"] = {n.removeprefix("module."): g for n, g in out["grads"].items()}
        out["weights"] = {n.removeprefix("module."): w for n, w in out["weights"].items()}
        torch.save(out, os.path.join(folder, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()

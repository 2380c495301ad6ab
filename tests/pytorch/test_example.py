"""The training example of docs/pytorch.md (docs/examples/pytorch_train.py) runs and learns: its
loss over the last ten of 300 steps is under a tenth of the first ten's."""
from __future__ import annotations

import importlib.util

import pytest
from helpers import EXAMPLES

torch = pytest.importorskip("torch")


def test_training_example_loss_goes_down(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    spec = importlib.util.spec_from_file_location("pytorch_train", EXAMPLES / "pytorch_train.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: a second intra-op thread only waits on a shared machine
    try:
        losses = example.train(steps=300)
    finally:
        torch.set_num_threads(threads)
    assert len(losses) == 300
    assert sum(losses[-10:]) < sum(losses[:10]) / 10, (losses[:10], losses[-10:])

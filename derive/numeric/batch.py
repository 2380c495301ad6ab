"""Engines over a batch: every value of a step is a (units x batch) array.

The stage walker (:func:`grukit.derive.numeric.evaluate.step`) and the one evaluator of the backward
records (:func:`grukit.derive.numeric.bptt.step_backward`) run unchanged on such arrays:
``matrix.dot`` multiplies a whole batch, ``apply`` broadcasts the per-unit SymPy expressions, and
``np.concatenate`` stacks operands along the units axis (axis 0). Only two operations mean
something else once a batch axis is there, and a batched engine says how:

* ``outer(delta, v)`` -- a weight's gradient -- sums the batch: ``delta @ v.T``;
* ``total(values)`` -- a scalar gate's adjoint -- sums the units and keeps the batch.

A bias's contribution is its adjoint, still (units x batch); :meth:`BatchMixin.batch_sum` sums it.
No Python loop runs over the sequences of a batch.
"""
from __future__ import annotations

import numpy as np

from grukit.derive.errors import GrukitError
from grukit.derive.numeric.evaluate import ENGINES, ExactEngine, NumpyEngine, engine


class BatchMixin:
    """The batch-aware operations; mixed in before an :class:`~grukit.derive.numeric.evaluate.Engine`."""

    batched = True

    def outer(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if a.ndim == 1:  # a single vector (the loss head's output layer): as the plain engine
            return super().outer(a, b)
        with self.precision():
            return self.settle(a.dot(b.T))

    def total(self, values: np.ndarray) -> np.ndarray:
        with self.precision():
            return self.settle(values.sum(axis=0, keepdims=True))

    def batch_sum(self, values: np.ndarray) -> np.ndarray:
        """A (units x batch) array summed over the batch: a bias's gradient."""
        with self.precision():
            return self.settle(values.sum(axis=1))

    def column(self, values: np.ndarray) -> np.ndarray:
        """A parameter vector as a (units x 1) column, so that it broadcasts over the batch."""
        return values.reshape(-1, 1)


class BatchedNumpyEngine(BatchMixin, NumpyEngine):
    """float64, a batch at a time."""


class BatchedExactEngine(BatchMixin, ExactEngine):
    """mpmath at 60 digits, a batch at a time."""


BATCHED = {"numpy": BatchedNumpyEngine, "exact": BatchedExactEngine}


def batched_engine(name: str):
    """The engine that runs layer problems for ``name``: the batched form of ``numpy`` or ``exact``, or
    an engine that runs whole networks itself (``runs_networks``: the generated kernels)."""
    if name in BATCHED:
        return BATCHED[name]()
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r} for layers (choose from {', '.join(ENGINES)})")
    eng = engine(name)
    if not eng.runs_networks:
        choices = " or ".join(f"--engine {n}" for n in BATCHED)
        raise GrukitError(f"--engine {name}: this problem uses batches, lengths, directions or layers; the {name} "
                          f"engine runs one sequence through one layer (use {choices})")
    return eng

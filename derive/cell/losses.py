"""Loss heads: a scalar SymPy term per time step, on the state or on an output layer o = W_o h + b_o.

Each head is data: which steps carry a term, the targets, an optional output layer, and the term
as a SymPy expression of the output symbols ``o[k]`` and target symbols ``y[k]``. Its gradient
with respect to the outputs comes from ``sympy.diff`` like every other derivative in grukit.
Reading a head from a problem file is :func:`grukit.derive.files.problem_file.parse_loss`'s job: this module
knows nothing of files.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

LOSS_TYPES = {
    "softmax_cross_entropy": "cross-entropy of softmax(W_o h_T + b_o) against a one-hot target; with "
                             "targets (one per step), summed over t (sequence labelling)",
    "squared_error": "1/2 sum over t of |y_t - target_t|^2, y_t = h_t or W_o h_t + b_o",
    "weighted_sum": "sum over t of G_t . h_t (the standard probe of a layer's gradients)",
    "final_mse": "mean over units of (h_T - target)^2",
    "final_squared_error": "|target - y_T|^2 on the last step only, y_T = h_T or W_o h_T + b_o "
                           "(L = (y - W_y h_T)^2 of printed derivations)",
    "final_half_squared_error": "1/2 |target - y_T|^2 on the last step only, y_T = h_T or W_o h_T + b_o",
}
SQUARED_ERRORS = {"squared_error": sp.Rational(1, 2), "final_half_squared_error": sp.Rational(1, 2),
                  "final_squared_error": sp.S.One}
"""The squared-error heads and the factor before their sum of squares."""
LAST_STEP_OUTPUT_HEADS = ("final_squared_error", "final_half_squared_error")
"""The heads with one target on the last step, through the output layer when there is one."""


@dataclass
class LossHead:
    """A loss on the states: a term at each of ``steps``, on h_t or on the output layer W_o h_t + b_o."""

    kind: str
    steps: tuple[int, ...]  # 0-based time steps that carry a loss term
    targets: tuple[np.ndarray, ...]  # one per entry of ``steps``
    W_o: np.ndarray | None = None
    b_o: np.ndarray | None = None
    stand_in: str = ""
    """Where a ``weighted_sum``'s G comes from when it stands in for a network's loss on one of its
    cells: ``"network"`` (G_t = dL/dh_t from the rest of the network), ``"network_after_h0"`` (the
    same, where masked steps before the cell's first step hold h0 itself), empty for a loss of its own."""

    @property
    def outputs(self) -> int:
        return len(self.targets[0])


@lru_cache(maxsize=None)
def loss_term(kind: str, outputs: int):
    """The loss of one step as a SymPy expression of outputs o[k] and targets y[k]."""
    o = tuple(sp.Symbol(f"o[{k}]", real=True) for k in range(outputs))
    y = tuple(sp.Symbol(f"y[{k}]", real=True) for k in range(outputs))
    if kind == "softmax_cross_entropy":
        lse = sp.log(sum(sp.exp(ok) for ok in o))
        expr = sum(yk * (lse - ok) for ok, yk in zip(o, y))
    elif kind in SQUARED_ERRORS:
        expr = SQUARED_ERRORS[kind] * sum((ok - yk) ** 2 for ok, yk in zip(o, y))
    elif kind == "weighted_sum":
        expr = sum(ok * yk for ok, yk in zip(o, y))
    elif kind == "final_mse":
        expr = sum((ok - yk) ** 2 for ok, yk in zip(o, y)) / outputs
    else:
        raise ValueError(kind)
    return expr, o, y


@lru_cache(maxsize=None)
def loss_gradient(kind: str, outputs: int) -> tuple[sp.Expr, ...]:
    """d(term)/d(o[k]) for each k, by sympy.diff."""
    expr, o, _ = loss_term(kind, outputs)
    return tuple(sp.simplify(sp.diff(expr, ok)) for ok in o)
@lru_cache(maxsize=None)
def softmax_probabilities(outputs: int) -> tuple[sp.Expr, ...]:
    """exp(o_k) / sum_j exp(o_j) over the loss term's output symbols."""
    _, o, _ = loss_term("softmax_cross_entropy", outputs)
    return tuple(sp.exp(ok) / sum(sp.exp(oj) for oj in o) for ok in o)



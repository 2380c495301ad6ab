"""Loss heads: a scalar SymPy term per time step, on the state or on an output layer o = W_o h + b_o.

Each head is data: which steps carry a term, the targets, an optional output layer, and the term
as a SymPy expression of the output symbols ``o[k]`` and target symbols ``y[k]``. Its gradient
with respect to the outputs comes from ``sympy.diff`` like every other derivative in grukit.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

from .errors import GrukitError

LOSS_TYPES = {
    "softmax_cross_entropy": "cross-entropy of softmax(W_o h_T + b_o) against a one-hot target",
    "squared_error": "1/2 sum over t of |y_t - target_t|^2, y_t = h_t or W_o h_t + b_o",
    "weighted_sum": "sum over t of G_t . h_t (the standard probe of a layer's gradients)",
    "final_mse": "mean over units of (h_T - target)^2",
}
_KEYS = {
    "softmax_cross_entropy": {"type", "W_o", "b_o", "target"},
    "squared_error": {"type", "W_o", "b_o", "targets"},
    "weighted_sum": {"type", "G"},
    "final_mse": {"type", "target"},
}


@dataclass
class LossHead:
    kind: str
    steps: tuple[int, ...]  # 0-based time steps that carry a loss term
    targets: tuple[np.ndarray, ...]  # one per entry of ``steps``
    W_o: np.ndarray | None = None
    b_o: np.ndarray | None = None

    @property
    def outputs(self) -> int:
        return len(self.targets[0])

    @property
    def has_output_layer(self) -> bool:
        return self.W_o is not None

    def term(self) -> tuple[sp.Expr, tuple[sp.Symbol, ...], tuple[sp.Symbol, ...]]:
        return loss_term(self.kind, self.outputs)


@lru_cache(maxsize=None)
def loss_term(kind: str, outputs: int):
    """The loss of one step as a SymPy expression of outputs o[k] and targets y[k]."""
    o = tuple(sp.Symbol(f"o[{k}]", real=True) for k in range(outputs))
    y = tuple(sp.Symbol(f"y[{k}]", real=True) for k in range(outputs))
    if kind == "softmax_cross_entropy":
        lse = sp.log(sum(sp.exp(ok) for ok in o))
        expr = sum(yk * (lse - ok) for ok, yk in zip(o, y))
    elif kind == "squared_error":
        expr = sp.Rational(1, 2) * sum((ok - yk) ** 2 for ok, yk in zip(o, y))
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


def parse_loss(spec, problem, where: str) -> LossHead:
    from .problem import to_array

    if not isinstance(spec, dict) or "type" not in spec:
        raise GrukitError(f"{where}: expected a mapping with a 'type' ({', '.join(LOSS_TYPES)})")
    kind = spec["type"]
    if kind not in LOSS_TYPES:
        raise GrukitError(f"{where}.type: unknown loss {kind!r} (choose from {', '.join(LOSS_TYPES)})")
    extra = sorted(set(spec) - _KEYS[kind])
    if extra:
        raise GrukitError(f"{where}.{extra[0]}: unknown key for {kind} (allowed: {', '.join(sorted(_KEYS[kind]))})")
    T, H = problem.steps, problem.hidden_size
    column = problem.convention.orientation == "column"
    W_o = b_o = None
    if "W_o" in spec:
        w = np.array(spec["W_o"], dtype=object)
        if w.ndim != 2:
            raise GrukitError(f"{where}.W_o: expected a matrix")
        O = w.shape[0] if column else w.shape[1]
        W_o = to_array(spec["W_o"], (O, H) if column else (H, O), f"{where}.W_o")
        b_o = to_array(spec["b_o"], (O,), f"{where}.b_o") if "b_o" in spec else None
    elif "b_o" in spec:
        raise GrukitError(f"{where}.b_o: given without W_o")
    O = (W_o.shape[0] if column else W_o.shape[1]) if W_o is not None else H
    if kind == "softmax_cross_entropy":
        if W_o is None:
            raise GrukitError(f"{where}.W_o: missing (softmax_cross_entropy needs an output layer)")
        target = spec.get("target")
        if isinstance(target, int) and not isinstance(target, bool):
            if not 0 <= target < O:
                raise GrukitError(f"{where}.target: class index {target} outside 0..{O - 1}")
            target = [1 if k == target else 0 for k in range(O)]
        if target is None:
            raise GrukitError(f"{where}.target: missing (one-hot list or class index)")
        return LossHead(kind, (T - 1,), (to_array(target, (O,), f"{where}.target"),), W_o, b_o)
    if kind == "squared_error":
        if "targets" not in spec:
            raise GrukitError(f"{where}.targets: missing ({T}x{O})")
        targets = to_array(spec["targets"], (T, O), f"{where}.targets")
        return LossHead(kind, tuple(range(T)), tuple(targets), W_o, b_o)
    if kind == "weighted_sum":
        if "G" not in spec:
            raise GrukitError(f"{where}.G: missing ({T}x{H})")
        G = to_array(spec["G"], (T, H), f"{where}.G")
        return LossHead(kind, tuple(range(T)), tuple(G))
    if "target" not in spec:
        raise GrukitError(f"{where}.target: missing ({H} numbers)")
    return LossHead(kind, (T - 1,), (to_array(spec["target"], (H,), f"{where}.target"),))

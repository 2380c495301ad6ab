"""Numeric evaluation of the stage list: one walker, three number systems.

* ``exact``: inputs are exact rationals; every stage is computed in mpmath at 60 significant
  digits (linear stages of rationals stay exact to far beyond any displayed digit; transcendental
  values carry >= 50 correct digits).
* ``numpy``: float64 arrays.
* ``stepwise``: the exact engine, but each stage's values are rounded to N decimals and reused --
  what a hand calculation does. The sheet compares it with ``exact``.

The pointwise stages are the SymPy expressions of :mod:`grukit.derive.equations`, turned into
functions by ``sympy.lambdify``; nothing here restates the GRU equations.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from functools import lru_cache

import mpmath
import numpy as np
import sympy as sp

from .convention import Param
from .equations import Affine, CellEquations, Pointwise

DIGITS = 60
ENGINES = ("exact", "numpy")
"""The engines a user picks; ``symbolic`` (SymPy expressions, for the fully expanded checks) and
``stepwise`` (hand-calculation rounding, for sheets) are internal."""


def _np_sigmoid(a):
    """Overflow-free logistic for float arrays."""
    a = np.asarray(a, dtype=float)
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _mp_sigmoid(a):
    return 1 / (1 + mpmath.exp(-a))


def round_half_up(value, decimals: int) -> Decimal:
    """``value`` rounded for display as a person would (ties away from zero)."""
    text = None
    if not isinstance(value, (Fraction, int)):
        with mpmath.workdps(DIGITS):  # not the caller's precision: at 15 digits 0.4825*0.3 reads 0.14474999...
            text = mpmath.nstr(mpmath.mpf(value), 40, strip_zeros=False)
    d = Decimal(text) if text is not None else Decimal(value.numerator) / Decimal(value.denominator)
    return d.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Engine:
    """A number system: how to make arrays and apply a pointwise SymPy expression."""

    name: str
    decimals: int | None = None  # stepwise rounding, None for none

    def array(self, values) -> np.ndarray:
        if self.name == "numpy":
            return np.array(values, dtype=float)
        if self.name == "symbolic":
            return np.array(values, dtype=object)
        with mpmath.workdps(DIGITS):
            return self.settle(np.array(to_mpf(np.array(values, dtype=object)), dtype=object))

    def settle(self, values: np.ndarray) -> np.ndarray:
        """Round to the displayed decimals in stepwise mode; otherwise unchanged."""
        if self.decimals is None or self.name != "exact":
            return values
        return to_mpf(np.vectorize(lambda v: round_half_up(v, self.decimals), otypes=[object])(values))

    def apply(self, expr: sp.Expr, args: dict[str, np.ndarray]) -> np.ndarray:
        """``expr`` evaluated per unit over the (broadcast) arrays named by its free symbols."""
        names = tuple(sorted(args))
        shape = np.broadcast(*args.values()).shape
        if self.name == "symbolic":
            syms = [sp.Symbol(n, real=True) for n in names]
            fn = lambda *vals: expr.xreplace(dict(zip(syms, vals)))  # noqa: E731
            return np.frompyfunc(fn, len(names), 1)(*(args[n] for n in names)).reshape(shape)
        fn = _lambdified(expr, names, self.name == "numpy")
        if self.name == "numpy":
            return np.asarray(fn(*(args[n] for n in names)), dtype=float) * np.ones(shape)
        with mpmath.workdps(DIGITS):
            out = np.frompyfunc(fn, len(names), 1)(*(args[n] for n in names))
        return self.settle(np.asarray(out, dtype=object).reshape(shape))

    def scalar(self, expr: sp.Expr, args: dict[str, object]):
        """``expr`` evaluated once at scalar values (loss terms).

        Called directly, not through ``apply``: a loss term has 2 symbols per output, and numpy's
        ufunc machinery (``frompyfunc``, ``broadcast``) takes at most 64 operands (H >= 32 failed)."""
        names = tuple(sorted(args))
        if self.name == "symbolic":
            return expr.xreplace({sp.Symbol(n, real=True): args[n] for n in names})
        fn = _lambdified(expr, names, self.name == "numpy")
        if self.name == "numpy":
            return float(fn(*(float(args[n]) for n in names)))
        with mpmath.workdps(DIGITS):
            return self.settle(np.array([fn(*(args[n] for n in names))], dtype=object))[0]

    def zeros(self, shape) -> np.ndarray:
        return self.array(np.zeros(shape, dtype=int).tolist())

    def array_of(self, values: list) -> np.ndarray:
        return np.array(values, dtype=float if self.name == "numpy" else object)

    def outer(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with mpmath.workdps(DIGITS):
            return self.settle(np.multiply.outer(a, b))

    def total(self, values: np.ndarray) -> np.ndarray:
        """The sum of a vector's entries, as a 1-vector (adjoint of a scalar gate)."""
        return self.add(*values[:, None])

    def matvec(self, matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
        if self.name == "numpy":
            return matrix @ vector
        with mpmath.workdps(DIGITS):
            return self.settle(matrix.dot(vector))

    def add(self, *vectors: np.ndarray) -> np.ndarray:
        with mpmath.workdps(DIGITS):
            total = vectors[0]
            for v in vectors[1:]:
                total = total + v
            return self.settle(total)


def to_mpf(values) -> np.ndarray:
    """An object array of mpf at the engine's precision (Fractions converted exactly to 60 digits)."""
    values = np.asarray(values, dtype=object)

    def conv(v):
        if isinstance(v, Fraction):
            return mpmath.mpf(v.numerator) / v.denominator
        if isinstance(v, Decimal):
            return mpmath.mpf(str(v))
        return mpmath.mpf(v)

    with mpmath.workdps(DIGITS):
        return np.vectorize(conv, otypes=[object])(values) if values.size else values


@lru_cache(maxsize=None)
def _lambdified(expr: sp.Expr, names: tuple[str, ...], numeric: bool):
    symbols = [sp.Symbol(n, real=True) for n in names]
    if numeric:
        return sp.lambdify(symbols, expr, modules=[{"sigmoid": _np_sigmoid}, "numpy"])
    return sp.lambdify(symbols, expr, modules=[{"sigmoid": _mp_sigmoid}, "mpmath"])


def engine(name: str, decimals: int | None = None) -> Engine:
    if name not in ENGINES and name not in ("stepwise", "symbolic"):
        raise ValueError(f"unknown engine {name!r} (choose from {', '.join(ENGINES)})")
    if name == "stepwise":
        return Engine("exact", decimals=4 if decimals is None else decimals)
    return Engine(name)


# --- walking the stages ---------------------------------------------------------------------

def column_matrix(eqs: CellEquations, weight: np.ndarray) -> np.ndarray:
    """The weight as the matrix that multiplies a column vector (transposed for row conventions)."""
    return weight if eqs.convention.orientation == "column" else weight.T


@dataclass
class StepTrace:
    """Every value of one time step: each quantity, and each product of each affine stage."""

    values: dict[str, np.ndarray]
    products: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)


def step(eqs: CellEquations, params: dict[Param, np.ndarray], x: np.ndarray, h_prev: np.ndarray,
         eng: Engine) -> StepTrace:
    """Evaluate one time step, stage by stage."""
    trace = StepTrace({"x": x, "h_prev": h_prev})
    values = trace.values
    for stage in eqs.stages:
        if isinstance(stage, Affine):
            parts = []
            for k, prod in enumerate(stage.products):
                operand = np.concatenate([values[n] for n in prod.operands])
                part = eng.matvec(column_matrix(eqs, params[prod.param]), operand)
                trace.products[(stage.target, k)] = part
                parts.append(part)
            parts += [params[b] for b in stage.biases]
            values[stage.target] = eng.add(*parts)
        else:
            assert isinstance(stage, Pointwise)
            values[stage.target] = eng.apply(stage.expr, {n: values[n] for n in stage.operands})
    return trace


def forward(eqs: CellEquations, params: dict[Param, np.ndarray], inputs: np.ndarray, h0: np.ndarray,
            eng: Engine) -> list[StepTrace]:
    """Evaluate T steps; ``inputs`` is T x D, arrays already in the engine's number system."""
    traces = []
    h = h0
    for x in inputs:
        trace = step(eqs, params, x, h, eng)
        traces.append(trace)
        h = trace.values["h"]
    return traces

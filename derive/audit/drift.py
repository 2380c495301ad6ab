"""How far a hand calculation's rounding can drift: a first-order bound carried through the stages.

A hand calculation writes every intermediate down rounded to a few decimals and goes on with the
rounded number. :class:`DriftEngine` is an :class:`~grukit.derive.numeric.evaluate.Engine` whose numbers
are :class:`Drift` pairs -- the exact value and a bound on how far a calculation that rounds to
``decimals`` places can be from it -- run through the same walker as the exact numbers
(:class:`~grukit.derive.audit.replay.Walk`). Each intermediate the calculation writes down (a product,
each product or function value inside a pointwise formula, an outer product's entries) adds half a
unit in the last place; a sum of written-down numbers adds nothing; a bound goes through each stage
to first order: through a
product by the product rule, through a pointwise formula by the absolute values of its partial
derivatives (``sympy.diff`` of the stage's own expression), through ``Piecewise`` formulas (the
hard sigmoids) by interval arithmetic over the bound (:func:`bound`). The audits'
"reachable by rounding" test (:mod:`grukit.derive.audit.verify`) asks whether a claim lies within.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache

import mpmath
import numpy as np
import sympy as sp
from mpmath import iv

from grukit.derive.cell.functions import sigmoid, softplus
from grukit.derive.errors import GrukitError
from grukit.derive.numeric.evaluate import DIGITS, Engine

_MP = [{"sigmoid": lambda a: 1 / (1 + mpmath.exp(-a)), "softplus": lambda a: mpmath.log(1 + mpmath.exp(a))}, "mpmath"]


@dataclass(frozen=True)
class Drift:
    """An exact value and a bound on the rounding drift around it."""

    value: mpmath.mpf
    error: mpmath.mpf

    def __add__(self, other):
        o = as_drift(other)
        return Drift(self.value + o.value, self.error + o.error)

    __radd__ = __add__

    def __sub__(self, other):
        o = as_drift(other)
        return Drift(self.value - o.value, self.error + o.error)

    def __rsub__(self, other):
        return as_drift(other) - self

    def __mul__(self, other):
        o = as_drift(other)
        return Drift(self.value * o.value, abs(self.value) * o.error + abs(o.value) * self.error + self.error * o.error)

    __rmul__ = __mul__

    def __neg__(self):
        return Drift(-self.value, self.error)

    @property
    def ends(self) -> tuple[mpmath.mpf, mpmath.mpf]:
        return self.value - self.error, self.value + self.error


def exact_mpf(value) -> mpmath.mpf:
    with mpmath.workdps(DIGITS):
        if isinstance(value, Fraction):
            return mpmath.mpf(value.numerator) / value.denominator
        if isinstance(value, Decimal):
            return mpmath.mpf(str(value))
        return mpmath.mpf(value)


def as_drift(value) -> Drift:
    return value if isinstance(value, Drift) else Drift(exact_mpf(value), mpmath.mpf(0))


_MONOTONE = {sigmoid: lambda a: 1 / (1 + mpmath.exp(-a)), sp.tanh: mpmath.tanh, sp.exp: mpmath.exp,
             sp.log: mpmath.log, softplus: lambda a: mpmath.log(1 + mpmath.exp(a))}
"""Increasing functions, bounded by their values at the interval's end points."""
_SLACK = mpmath.mpf(10) ** -(DIGITS - 5)


@contextmanager
def interval_precision():
    """mpmath's interval context at the exact engine's working precision (it is global state)."""
    saved = iv.prec
    iv.dps = DIGITS
    try:
        yield
    finally:
        iv.prec = saved


def interval(value) -> iv.mpf:
    """A point interval that contains ``value`` exactly (a Fraction, Decimal, int or mpf)."""
    if isinstance(value, iv.mpf):
        return value
    if isinstance(value, Fraction):
        return iv.mpf(value.numerator) / value.denominator
    if isinstance(value, Decimal):
        return iv.mpf(str(value))
    if isinstance(value, (int, np.integer)):
        return iv.mpf(int(value))
    with mpmath.workdps(DIGITS):
        return iv.mpf(mpmath.mpf(value))


def ends(value: iv.mpf) -> tuple[mpmath.mpf, mpmath.mpf]:
    """The end points of an interval as mpf numbers at the working precision."""
    with mpmath.workdps(DIGITS):
        return mpmath.mpf(value.a.a), mpmath.mpf(value.b.b)


def hull(*values: iv.mpf) -> iv.mpf:
    lows, highs = zip(*(ends(v) for v in values))
    return iv.mpf([min(lows), max(highs)])


def _monotone(fn, arg: iv.mpf) -> iv.mpf:
    lo, hi = ends(arg)
    with mpmath.workdps(DIGITS):
        return iv.mpf([fn(lo) - _SLACK, fn(hi) + _SLACK])


def _compare(op, left, right):
    """True, False, or None when the intervals overlap and the comparison can go either way."""
    (llo, lhi), (rlo, rhi) = ends(left), ends(right)
    if op in (sp.StrictLessThan, sp.LessThan):
        return True if lhi < rlo or (op is sp.LessThan and lhi <= rlo) else (False if llo > rhi or (
            op is sp.StrictLessThan and llo >= rhi) else None)
    return _compare(sp.StrictLessThan if op is sp.StrictGreaterThan else sp.LessThan, right, left)


def bound(expr, env: dict[str, iv.mpf]):
    """An interval containing ``expr`` for every value of its symbols in their intervals of ``env``."""
    if expr is sp.true:
        return True
    if expr is sp.false:
        return False
    if isinstance(expr, sp.Symbol):
        return env[expr.name]
    if isinstance(expr, sp.Number):
        return interval(Fraction(int(expr.p), int(expr.q))) if expr.is_Rational else interval(float(expr))
    if isinstance(expr, sp.Add):
        return sum((bound(a, env) for a in expr.args[1:]), bound(expr.args[0], env))
    if isinstance(expr, sp.Mul):
        out = bound(expr.args[0], env)
        for a in expr.args[1:]:
            out = out * bound(a, env)
        return out
    if isinstance(expr, sp.Pow) and expr.exp.is_Integer:
        base, n = bound(expr.base, env), int(expr.exp)
        power = base ** abs(n)
        return 1 / power if n < 0 else power
    if isinstance(expr, sp.Abs):
        lo, hi = ends(bound(expr.args[0], env))
        return iv.mpf([0 if lo <= 0 <= hi else min(abs(lo), abs(hi)), max(abs(lo), abs(hi))])
    if expr.func in _MONOTONE:
        return _monotone(_MONOTONE[expr.func], bound(expr.args[0], env))
    if isinstance(expr, sp.Piecewise):
        possible = []
        for value, cond in expr.args:
            holds = bound(cond, env)
            if holds is not False:
                possible.append(bound(value, env))
            if holds is True:
                break
        return hull(*possible)
    if isinstance(expr, (sp.Or, sp.And)):
        parts = [bound(a, env) for a in expr.args]
        decisive = isinstance(expr, sp.Or)  # the value that settles it: any True for Or, any False for And
        if decisive in parts:
            return decisive
        return None if None in parts else not decisive
    if isinstance(expr, sp.Not):
        inner = bound(expr.args[0], env)
        return None if inner is None else not inner
    if isinstance(expr, (sp.StrictLessThan, sp.LessThan, sp.StrictGreaterThan, sp.GreaterThan)):
        return _compare(type(expr), bound(expr.lhs, env), bound(expr.rhs, env))
    raise GrukitError(f"intervals: cannot bound {expr.func.__name__} (no interval rule for it)")


def rounding_points(expr: sp.Expr) -> int:
    """How many numbers a hand calculation writes down (and rounds) to evaluate ``expr``: one per
    product of two factors and per function value, at least one (the result)."""
    count = 0
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Mul):
            count += len(node.args) - 1 - sum(1 for a in node.args if a.is_Number)
        elif isinstance(node, (sp.Pow, sp.Function, sp.Piecewise)) and not isinstance(node, sp.Number):
            count += 1
    return max(count, 1)


@lru_cache(maxsize=None)
def _partials(expr: sp.Expr, names: tuple[str, ...]):
    """The formula and its partial derivatives, as mpmath functions of ``names``."""
    symbols = [sp.Symbol(n, real=True) for n in names]
    return (sp.lambdify(symbols, expr, modules=_MP),
            [sp.lambdify(symbols, sp.diff(expr, s), modules=_MP) for s in symbols])


class DriftEngine(Engine):
    """Exact values with a first-order bound on the drift of a calculation rounding to ``decimals``."""

    name = "drift"
    accuracy = "first-order bounds of hand rounding"

    def __init__(self, decimals: int):
        self.decimals = decimals
        self.half_unit = exact_mpf(Decimal(5).scaleb(-decimals - 1))

    def precision(self):
        return mpmath.workdps(DIGITS)

    def written(self, values: np.ndarray, points: int = 1) -> np.ndarray:
        """Each value written down ``points`` times, each time rounded half a unit either way."""
        slack = self.half_unit * points
        out = np.empty(np.shape(values), dtype=object)
        for i in np.ndindex(out.shape):
            v = as_drift(np.asarray(values, dtype=object)[i])
            out[i] = Drift(v.value, v.error + slack)
        return out

    def array(self, values) -> np.ndarray:
        arr = np.asarray(values, dtype=object)
        out = np.empty(arr.shape, dtype=object)
        for i in np.ndindex(arr.shape):
            out[i] = as_drift(arr[i])
        return out

    def array_of(self, values: list) -> np.ndarray:
        return np.array(values, dtype=object)

    def _one(self, expr: sp.Expr, names: tuple[str, ...], args: list[Drift]) -> Drift:
        with mpmath.workdps(DIGITS):
            if expr.has(sp.Piecewise):
                with interval_precision():
                    span = bound(expr, {n: interval(a.value) + iv.mpf([-1, 1]) * interval(a.error)
                                        for n, a in zip(names, args)})
                lo, hi = ends(span)
                value = _partials(expr, names)[0](*(a.value for a in args))
                return Drift(value, max(hi - value, value - lo))
            f, grads = _partials(expr, names)
            values = [a.value for a in args]
            error = sum((abs(g(*values)) * a.error for g, a in zip(grads, args)), mpmath.mpf(0))
            return Drift(f(*values), error)

    def apply(self, expr: sp.Expr, args: dict[str, np.ndarray]) -> np.ndarray:
        names = tuple(sorted(args))
        shape = np.broadcast(*args.values()).shape
        arrays = np.broadcast_arrays(*(np.asarray(args[n], dtype=object) for n in names))
        out = np.empty(shape, dtype=object)
        for index in np.ndindex(shape):
            out[index] = self._one(expr, names, [as_drift(a[index]) for a in arrays])
        return self.written(out, rounding_points(expr))

    def scalar(self, expr: sp.Expr, args: dict[str, object]):
        names = tuple(sorted(args))
        return self.written(np.array([self._one(expr, names, [as_drift(args[n]) for n in names])],
                                     dtype=object), rounding_points(expr))[0]

    def matvec(self, matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
        with mpmath.workdps(DIGITS):
            return self.written(np.asarray(matrix, dtype=object).dot(vector))

    def outer(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with mpmath.workdps(DIGITS):
            return self.written(np.multiply.outer(a, b))

    def add(self, *vectors: np.ndarray) -> np.ndarray:
        with mpmath.workdps(DIGITS):
            total = vectors[0]
            for v in vectors[1:]:
                total = total + v
            return total

    def product_terms(self, matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
        with mpmath.workdps(DIGITS):
            return np.asarray(matrix) * np.asarray(vector)[None, :]

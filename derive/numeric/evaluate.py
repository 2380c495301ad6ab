"""Numeric evaluation of the stage list: one walker, four number systems (one :class:`Engine` each).

* ``exact`` (:class:`ExactEngine`): inputs are exact rationals; every stage is computed in mpmath at
  60 significant digits (linear stages of rationals stay exact to far beyond any displayed digit;
  transcendental values carry >= 50 correct digits).
* ``numpy`` (:class:`NumpyEngine`): float64 arrays.
* ``stepwise`` (:class:`StepwiseEngine`): the exact engine, but each stage's values are rounded to N
  decimals and reused -- what a hand calculation does. The sheet compares it with ``exact``.
* ``symbolic`` (:class:`SymbolicEngine`): SymPy expressions, for the fully expanded checks.

The pointwise stages are the SymPy expressions of :mod:`grukit.derive.cell.equations`, turned into
functions by ``sympy.lambdify``; nothing here restates the GRU equations.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction
from functools import lru_cache
from importlib.metadata import entry_points

import mpmath
import numpy as np
import sympy as sp

from grukit.derive.cell.convention import Param
from grukit.derive.cell.equations import Affine, CellEquations, Pointwise
from grukit.derive.errors import GrukitError

DIGITS = 60
ENGINES = ("exact", "numpy", "numba")
"""The engines a user picks; ``symbolic`` (SymPy expressions, for the fully expanded checks) and
``stepwise`` (hand-calculation rounding, for sheets) are internal. ``numba`` is the generated
kernels (:class:`grukit.codegen.kernels.engine.NumbaEngine`), registered under the entry-point
group :data:`ENGINE_GROUP` because it lives above derive/ (see :func:`engine`)."""

ENGINE_GROUP = "grukit.engines"


def _np_sigmoid(a):
    """Overflow-free logistic for float arrays."""
    a = np.asarray(a, dtype=float)
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _mp_sigmoid(a):
    return 1 / (1 + mpmath.exp(-a))


def _np_softplus(a):
    """log(1 + e^a) without overflow for float arrays."""
    return np.logaddexp(0.0, np.asarray(a, dtype=float))


def _mp_softplus(a):
    return mpmath.log(1 + mpmath.exp(a))


def round_half_up(value, decimals: int) -> Decimal:
    """``value`` rounded for display as a person would (ties away from zero)."""
    text = None
    if not isinstance(value, (Fraction, int)):
        with mpmath.workdps(DIGITS):  # not the caller's precision: at 15 digits 0.4825*0.3 reads 0.14474999...
            text = mpmath.nstr(mpmath.mpf(value), 40, strip_zeros=False)
    with localcontext() as ctx:  # enough digits for the integer part and every decimal asked for
        ctx.prec = 60 + decimals
        d = Decimal(text) if text is not None else Decimal(value.numerator) / Decimal(value.denominator)
        return d.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


class Engine:
    """A number system: how to make arrays, apply a pointwise SymPy expression and do the linear
    algebra of the stages. Subclasses say how; the arithmetic of object arrays is shared."""

    name: str
    decimals: int | None = None  # the displayed decimals every value is rounded to (stepwise only)
    accuracy: str = ""
    """How far its numbers can be trusted, in words (for ``grad --check``)."""
    tolerance: float | None = None
    """The largest relative difference from the true value its gradients should show, if any."""
    runs_networks: bool = False
    """Whether the engine runs whole layer problems itself (``run_network(network, inputs, h0, valid)``
    and ``backward_network(run, d_outputs, d_h_n)``, as :mod:`grukit.derive.layers.run` takes and
    returns them): the generated kernels do; the others are walked cell by cell and step by step on
    their batched form (:mod:`grukit.derive.numeric.batch`)."""

    def run_forward(self, eqs: CellEquations, params: dict[Param, np.ndarray], inputs: np.ndarray,
                    h0: np.ndarray) -> list[StepTrace]:
        """The forward pass over a sequence: the one stage walker, unless an engine runs whole
        sequences itself (the generated kernels)."""
        return forward(eqs, params, inputs, h0, self)

    def sequence_backward(self, convention, params: dict[Param, np.ndarray], traces: list[StepTrace],
                          d_h: dict[int, np.ndarray]):
        """(parameter gradients, dL/dx (T x D), dL/dh0) from dL/dh_t (``d_h``: step -> array), for an
        engine that runs whole sequences itself; None for the others, whose backward pass walks the
        backward records step by step (:func:`grukit.derive.numeric.bptt.backward`)."""
        return None

    def numbers(self, where: str):
        """The context a whole computation runs in: for float engines, IEEE overflow and invalid
        operations are not printed as warnings (:meth:`check_finite` turns them into one line)."""
        return nullcontext()

    def check_finite(self, where: str, groups: list[dict]) -> None:
        """Nothing to check for exact numbers; a float engine refuses a result that is not finite."""

    def precision(self):
        """The context the arithmetic runs in (mpmath's working precision for the mpmath engines)."""
        return nullcontext()

    def settle(self, values: np.ndarray) -> np.ndarray:
        """A freshly computed result as the engine keeps it (rounded in stepwise mode)."""
        return values

    def array(self, values) -> np.ndarray:
        raise NotImplementedError

    def apply(self, expr: sp.Expr, args: dict[str, np.ndarray]) -> np.ndarray:
        """``expr`` evaluated per unit over the (broadcast) arrays named by its free symbols."""
        raise NotImplementedError

    def scalar(self, expr: sp.Expr, args: dict[str, object]):
        """``expr`` evaluated once at scalar values (loss terms).

        Called directly, not through ``apply``: a loss term has 2 symbols per output, and numpy's
        ufunc machinery (``frompyfunc``, ``broadcast``) takes at most 64 operands (H >= 32 failed)."""
        raise NotImplementedError

    def zeros(self, shape) -> np.ndarray:
        return self.array(np.zeros(shape, dtype=int).tolist())

    def array_of(self, values: list) -> np.ndarray:
        return np.array(values, dtype=object)

    def outer(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with self.precision():
            return self.settle(np.multiply.outer(a, b))

    def total(self, values: np.ndarray) -> np.ndarray:
        """The sum of a vector's entries, as a 1-vector (adjoint of a scalar gate)."""
        return self.add(*values[:, None])

    def matvec(self, matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
        with self.precision():
            return self.settle(matrix.dot(vector))

    def add(self, *vectors: np.ndarray) -> np.ndarray:
        with self.precision():
            total = vectors[0]
            for v in vectors[1:]:
                total = total + v
            return self.settle(total)

    def product_terms(self, matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
        """The terms of ``matrix @ vector``: entry [j, i] is matrix[j, i] * vector[i], at the working
        precision and never rounded (a sheet shows them summing to the rounded product)."""
        with self.precision():
            return np.asarray(matrix) * np.asarray(vector)[None, :]


class ExactEngine(Engine):
    """Exact rationals in, every stage in mpmath at :data:`DIGITS` significant digits."""

    name = "exact"
    accuracy = f"the working precision ({DIGITS} digits)"
    tolerance = 10.0 ** -(DIGITS - 10)  # ten digits to spare for long sums and their cancellations

    def precision(self):
        return mpmath.workdps(DIGITS)

    def array(self, values) -> np.ndarray:
        with self.precision():
            return self.settle(np.array(to_mpf(np.array(values, dtype=object)), dtype=object))

    def apply(self, expr: sp.Expr, args: dict[str, np.ndarray]) -> np.ndarray:
        names = tuple(sorted(args))
        shape = np.broadcast(*args.values()).shape
        fn = _lambdified(expr, names, numeric=False)
        with self.precision():
            out = np.frompyfunc(fn, len(names), 1)(*(args[n] for n in names))
        return self.settle(np.asarray(out, dtype=object).reshape(shape))

    def scalar(self, expr: sp.Expr, args: dict[str, object]):
        names = tuple(sorted(args))
        fn = _lambdified(expr, names, numeric=False)
        with self.precision():
            return self.settle(np.array([fn(*(args[n] for n in names))], dtype=object))[0]


class StepwiseEngine(ExactEngine):
    """The exact engine with every computed value rounded half-up to ``decimals`` and reused, as a
    hand calculation does; the sheet compares it with ``exact``."""

    name = "stepwise"
    accuracy = "rounding at every step"
    tolerance = None  # rounding to the displayed decimals: no claim in significant digits

    def __init__(self, decimals: int = 4):
        self.decimals = decimals

    def settle(self, values: np.ndarray) -> np.ndarray:
        return to_mpf(np.vectorize(lambda v: round_half_up(v, self.decimals), otypes=[object])(values))


class NumpyEngine(Engine):
    """float64 arrays."""

    name = "numpy"
    accuracy = "float64 rounding"
    tolerance = 1e-12  # about 16 digits carried; a few lost in the sums of a long BPTT

    def numbers(self, where: str):
        return np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore")

    def check_finite(self, where: str, groups: list[dict]) -> None:
        """Finite inputs (every reader refuses others) can still overflow float64 (exp of a large
        logit): the result is refused in one line instead of printing NaN or infinity."""
        for group in groups:
            for name, value in group.items():
                parts = value if isinstance(value, list) else [value]  # a list: arrays of several shapes
                if any(v is not None and not np.all(np.isfinite(np.asarray(v, dtype=float))) for v in parts):
                    label = name if isinstance(name, str) else getattr(name, "name", str(name))
                    raise GrukitError(f"{where}: the {self.name} engine's float64 arithmetic overflowed ({label} "
                                      f"is not finite); the exact engine has no such limit (--engine exact)")

    def array(self, values) -> np.ndarray:
        return np.array(values, dtype=float)

    def array_of(self, values: list) -> np.ndarray:
        return np.array(values, dtype=float)

    def apply(self, expr: sp.Expr, args: dict[str, np.ndarray]) -> np.ndarray:
        names = tuple(sorted(args))
        shape = np.broadcast(*args.values()).shape
        fn = _lambdified(expr, names, numeric=True)
        return np.asarray(fn(*(args[n] for n in names)), dtype=float) * np.ones(shape)

    def scalar(self, expr: sp.Expr, args: dict[str, object]):
        names = tuple(sorted(args))
        return float(_lambdified(expr, names, numeric=True)(*(float(args[n]) for n in names)))


class SymbolicEngine(Engine):
    """SymPy expressions: the stages walked over symbols give the fully expanded form."""

    name = "symbolic"

    def array(self, values) -> np.ndarray:
        return np.array(values, dtype=object)

    def apply(self, expr: sp.Expr, args: dict[str, np.ndarray]) -> np.ndarray:
        names = tuple(sorted(args))
        shape = np.broadcast(*args.values()).shape
        syms = [sp.Symbol(n, real=True) for n in names]
        fn = lambda *vals: expr.xreplace(dict(zip(syms, vals)))  # noqa: E731
        return np.frompyfunc(fn, len(names), 1)(*(args[n] for n in names)).reshape(shape)

    def scalar(self, expr: sp.Expr, args: dict[str, object]):
        return expr.xreplace({sp.Symbol(n, real=True): v for n, v in args.items()})


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
        return sp.lambdify(symbols, expr, modules=[{"sigmoid": _np_sigmoid, "softplus": _np_softplus}, "numpy"])
    return sp.lambdify(symbols, expr, modules=[{"sigmoid": _mp_sigmoid, "softplus": _mp_softplus}, "mpmath"])


_ENGINE_CLASSES = {cls.name: cls for cls in (ExactEngine, NumpyEngine, SymbolicEngine)}


def engine(name: str, decimals: int | None = None) -> Engine:
    """The engine called ``name``; ``decimals`` is the stepwise engine's rounding (default 4).

    The engines defined here come first; any other name is looked up among the entry points of
    :data:`ENGINE_GROUP` (the ``numba`` engine, which the package's own metadata registers), so the
    one registry holds every engine while derive/ imports nothing above it."""
    if name == "stepwise":
        return StepwiseEngine(4 if decimals is None else decimals)
    cls = _ENGINE_CLASSES.get(name) or _registered_engine(name)
    if cls is None:
        raise ValueError(f"unknown engine {name!r} (choose from {', '.join(ENGINES)})")
    return cls()


@lru_cache(maxsize=None)
def _registered_engine(name: str) -> type[Engine] | None:
    found = entry_points(group=ENGINE_GROUP, name=name)
    return next(iter(found)).load() if found else None


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

"""The explicit form: the loss as one fully expanded SymPy expression, differentiated directly.

This is grukit's independent check of its own derivation. :func:`explicit_loss` walks the forward
stage list with SymPy symbols for *every* number of the problem -- each weight entry, each input,
each entry of h0 and of the output layer -- and writes the loss as one scalar expression in them:
no named intermediate quantities, no adjoints, no index rules, no BPTT. Each nonlinearity is one
opaque :class:`Elementwise` node whose definition is a SymPy expression -- the logistic function as
``1/(1 + exp(-u))`` (so not even grukit's ``sigmoid`` derivative is used), ``tanh(u)``, the hard
sigmoids' ``Piecewise`` -- and whose derivative is ``sympy.diff`` of that definition.
What it shares with :mod:`grukit.derive.cell.records` is only what the cell *computes* (the stage list,
checked against the frameworks by the oracle tests) and the loss term of the head; what it checks
is every step of the derivation: the local derivatives, the index rules, the accumulation over
paths and time steps, the loss gradient.

Two ways to differentiate the expanded loss ``L``:

* ``"diff"``: ``sympy.diff(L, s)`` for each symbol ``s``, then the problem's numbers substituted
  exactly and the result evaluated to ``digits`` digits. Literal, but the derivative's expression
  tree grows exponentially with the number of steps (SymPy differentiates each occurrence of a
  shared sub-expression again), so it is allowed only for small problems (:func:`diff_cost`).
* ``"graph"`` (default): the same derivative by the chain rule over ``L``'s expression graph, each
  distinct sub-expression visited once. The local derivative of each node (the elementwise
  functions, ``exp``, ``log``, powers) comes from ``sympy.diff`` of the node's head on dummy arguments;
  numbers are mpmath at ``digits + 10`` digits; one reverse sweep gives every partial derivative.
  Its cost grows linearly with the size of the problem (:func:`graph_cost`); the sweep itself is
  :mod:`grukit.derive.check.expression_graph`.

Both refuse, with a :class:`~grukit.derive.errors.GrukitError`, problems too large for explicit
symbolic work instead of running for hours; the per-unit derivation (``grukit grad``) has no
such limit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache

import mpmath
import numpy as np
import sympy as sp

from grukit.derive.cell.convention import Convention, Param
from grukit.derive.cell.equations import CellEquations, Pointwise, cell_equations
from grukit.derive.cell.functions import sigmoid, softplus
from grukit.derive.cell.layouts import named_arrays
from grukit.derive.cell.losses import LossHead, loss_term
from grukit.derive.check.expression_graph import (
    BOUND_VARIABLE,
    DIGITS,
    ELEMENTWISE,
    elementwise_head,
    evaluate,
    graph_gradient,
)
from grukit.derive.errors import GrukitError
from grukit.derive.numeric.evaluate import SymbolicEngine, forward

MAX_GRAPH_COST = 50_000
"""Largest :func:`graph_cost` the graph method accepts. Measured (one core): D=H=3, T=4 (360) takes
0.03 s; D=H=32, T=4 (26,112) about 4 s; the limit is about 8 s."""

MAX_DIFF_COST = 3_000
"""Largest :func:`diff_cost` the literal ``sympy.diff`` method accepts. Measured: D=2, H=3, T=2
(810) takes 3-8 s for all ~60 partial derivatives; D=2, H=2, T=3 (2,352) 15-20 s."""

METHODS = ("graph", "diff")


# --- size limits --------------------------------------------------------------------------------

def graph_cost(inputs: int, hidden: int, steps: int) -> int:
    """About how many distinct nodes the expanded loss has: products and gate nodes per step."""
    return steps * hidden * (3 * (inputs + hidden) + 12)


def diff_cost(inputs: int, hidden: int, steps: int) -> int:
    """About how large the derivative's expression *tree* grows: each step multiplies the number of
    paths from the loss back to an early symbol by the H state entries feeding about 3 products."""
    return graph_cost(inputs, hidden, 1) * (3 * hidden + 1) ** (steps - 1)


def check_size(inputs: int, hidden: int, steps: int, method: str = "graph") -> None:
    """Raise a clear :class:`GrukitError` when the explicit form of this size would take too long."""
    if method not in METHODS:
        raise GrukitError(f"explicit: unknown method {method!r} (choose from {', '.join(METHODS)})")
    cost, limit = ((graph_cost, MAX_GRAPH_COST) if method == "graph" else (diff_cost, MAX_DIFF_COST))
    estimate = cost(inputs, hidden, steps)
    if estimate > limit:
        hint = " (the 'graph' method scales further)" if method == "diff" else ""
        raise GrukitError(
            f"explicit ({method}): D={inputs}, H={hidden}, T={steps} is too large for the fully expanded "
            f"form (size estimate {estimate:,} > limit {limit:,}){hint}; the per-unit derivation "
            f"(`grukit grad`) has no such limit -- check a smaller problem explicitly")


# --- the expanded loss --------------------------------------------------------------------------

@lru_cache(maxsize=None)
def _expanded_form(convention: Convention) -> CellEquations:
    """The stage list as the explicit form writes it: each nonlinearity an :class:`Elementwise`
    node -- grukit's ``sigmoid`` defined as ``1/(1 + exp(-u))`` (so its derivative is SymPy's, not
    grukit's), ``tanh`` as SymPy's ``tanh``, each hard sigmoid as its ``Piecewise``."""
    eqs = cell_equations(convention)
    u = BOUND_VARIABLE
    logistic = elementwise_head(sp.Lambda(u, 1 / (1 + sp.exp(-u))), "logistic")
    tanh = elementwise_head(sp.Lambda(u, sp.tanh(u)), "tanh")
    softplus_head = elementwise_head(sp.Lambda(u, sp.log(1 + sp.exp(u))), "softplus")

    def piecewise(pw):
        (arg,) = pw.free_symbols
        # the functions inside a piece (a clipped sigmoid, ELU's exp) written out, as everywhere here
        written = pw.xreplace({arg: u}).replace(sigmoid, lambda a: 1 / (1 + sp.exp(-a))) \
            .replace(softplus, lambda a: sp.log(1 + sp.exp(a)))
        return elementwise_head(sp.Lambda(u, written), f"clip{len(ELEMENTWISE)}")(arg)

    def rewrite(expr):
        expr = expr.replace(lambda e: isinstance(e, sp.Piecewise), piecewise)
        return expr.replace(sigmoid, logistic).replace(sp.tanh, tanh).replace(softplus, softplus_head)

    stages = tuple(Pointwise(s.target, rewrite(s.expr)) if isinstance(s, Pointwise) else s for s in eqs.stages)
    return CellEquations(eqs.convention, eqs.quantities, stages)


def _rational(v) -> sp.Rational:
    if isinstance(v, sp.Basic):
        return v
    v = Fraction(v)
    return sp.Rational(v.numerator, v.denominator)


def symbol_array(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """An array of fresh real symbols named ``name[i]`` / ``name[i,j]`` after their index."""
    out = np.empty(shape, dtype=object)
    for idx in np.ndindex(*shape):
        out[idx] = sp.Symbol(f"{name}[{','.join(map(str, idx))}]", real=True)
    return out


@dataclass
class ExplicitLoss:
    """The loss of a problem as one SymPy expression of symbols for all its numbers.

    ``params`` maps each :class:`Param` to an array of symbols in the convention's own shape;
    ``output`` holds ``W_o``/``b_o`` symbol arrays when the head has an output layer; ``values``
    maps every symbol to the problem's exact number. ``terms[k]`` is the loss term of time step
    ``steps[k]`` (``expr`` is their sum).
    """

    convention: Convention
    expr: sp.Expr
    terms: list[sp.Expr]
    steps: tuple[int, ...]
    params: dict[Param, np.ndarray]
    output: dict[str, np.ndarray]
    inputs: np.ndarray
    h0: np.ndarray
    values: dict[sp.Symbol, sp.Rational]
    layout: str | None = None

    @property
    def sizes(self) -> tuple[int, int, int]:
        """(D, H, T)."""
        return self.inputs.shape[1], self.h0.shape[0], self.inputs.shape[0]

    def all_symbols(self) -> list[sp.Symbol]:
        arrays = list(self.params.values()) + list(self.output.values()) + [self.inputs, self.h0]
        return [s for a in arrays for s in a.ravel()]


def explicit_loss(convention: Convention, inputs, h0, params: dict[Param, object], head: LossHead,
                  layout: str | None = None) -> ExplicitLoss:
    """Build the fully expanded loss for these numbers (exact: ints, Fractions or SymPy Rationals).

    Refuses (GrukitError) problems whose graph is beyond :data:`MAX_GRAPH_COST`.
    """
    inputs = np.asarray(inputs, dtype=object)
    h0 = np.asarray(h0, dtype=object)
    T, D = inputs.shape
    H = h0.shape[0]
    check_size(D, H, T, "graph")
    c = convention
    eqs = _expanded_form(c)
    values: dict[sp.Symbol, sp.Rational] = {}

    def bind(symbols: np.ndarray, numbers) -> np.ndarray:
        numbers = np.asarray(numbers, dtype=object).reshape(symbols.shape)
        for s, v in zip(symbols.ravel(), numbers.ravel()):
            if s in values:
                raise GrukitError(f"explicit: two numbers share the symbol name {s} (rename a parameter)")
            values[s] = _rational(v)
        return symbols

    P = {p: bind(symbol_array(c.key(p), c.param_shape(p, D, H)), params[p]) for p in c.parameters()}
    X = bind(symbol_array("x", (T, D)), inputs)
    S0 = bind(symbol_array("h0", (H,)), h0)
    output: dict[str, np.ndarray] = {}
    if head.W_o is not None:
        output["W_o"] = bind(symbol_array("W_o", np.asarray(head.W_o).shape), head.W_o)
    if head.b_o is not None:
        output["b_o"] = bind(symbol_array("b_o", np.asarray(head.b_o).shape), head.b_o)

    traces = forward(eqs, P, X, S0, SymbolicEngine())
    term, o_syms, y_syms = loss_term(head.kind, head.outputs)
    terms = []
    for t, target in zip(head.steps, head.targets):
        h = traces[t].values["h"]
        if "W_o" in output:
            M = output["W_o"] if c.orientation == "column" else output["W_o"].T
            o = M.dot(h)
            if "b_o" in output:
                o = o + output["b_o"]
        else:
            o = h
        env = dict(zip(o_syms, o)) | {y: _rational(v) for y, v in zip(y_syms, target)}
        terms.append(term.xreplace(env))
    return ExplicitLoss(c, sp.Add(*terms), terms, tuple(head.steps), P, output, X, S0, values, layout)


def problem_loss(problem) -> ExplicitLoss:
    """The expanded loss of a :class:`~grukit.derive.numeric.problem.Problem` (which must have a loss head)."""
    if problem.loss is None:
        raise GrukitError(f"{problem.path}: loss: missing (gradients need a loss head)")
    return explicit_loss(problem.convention, problem.inputs, problem.h0, problem.params, problem.loss,
                         problem.layout)


# --- differentiating it -------------------------------------------------------------------------

@dataclass
class ExplicitGradient:
    """Every partial derivative of the expanded loss, as mpmath numbers, in grukit's shapes."""

    loss: object
    params: dict[Param, np.ndarray]
    output: dict[str, np.ndarray]
    inputs: np.ndarray
    h0: np.ndarray
    method: str
    by_symbol: dict[sp.Symbol, object] = field(repr=False, default_factory=dict)

    def named(self, explicit: ExplicitLoss) -> dict[str, np.ndarray]:
        """Parameter gradients under the problem's own names (framework arrays for layout files)."""
        D, H, _ = explicit.sizes
        return named_arrays(explicit.convention, self.params, explicit.layout, D, H) | self.output


def gradient(explicit: ExplicitLoss, method: str = "graph", digits: int = DIGITS,
             only_step: int | None = None, wrt: list[sp.Symbol] | None = None) -> ExplicitGradient:
    """The partial derivatives of the expanded loss (or of one step's term: ``only_step``).

    ``wrt`` restricts the symbols differentiated (the others come back as NaN); useful with the
    slow literal ``"diff"`` method.
    """
    D, H, T = explicit.sizes
    check_size(D, H, T, method)
    expr = explicit.expr
    if only_step is not None:
        if only_step not in explicit.steps:
            raise GrukitError(f"explicit: step {only_step} carries no loss term (steps: {list(explicit.steps)})")
        expr = explicit.terms[explicit.steps.index(only_step)]
    symbols = explicit.all_symbols() if wrt is None else list(wrt)
    if method == "graph":
        loss, partial = graph_gradient(expr, explicit.values, symbols, digits + 10)
    else:
        loss, partial = diff_gradient(expr, explicit.values, symbols, digits)
    nan = mpmath.mpf("nan")

    def fill(arr: np.ndarray) -> np.ndarray:
        out = np.empty(arr.shape, dtype=object)
        for idx in np.ndindex(*arr.shape):
            out[idx] = partial.get(arr[idx], nan)
        return out

    return ExplicitGradient(loss, {p: fill(a) for p, a in explicit.params.items()},
                            {k: fill(a) for k, a in explicit.output.items()},
                            fill(explicit.inputs), fill(explicit.h0), method, partial)


def diff_gradient(expr: sp.Expr, values: dict, symbols: list[sp.Symbol], digits: int = DIGITS):
    """Literal: ``sympy.diff(expr, s)`` for each symbol, evaluated at the problem's numbers to
    ``digits`` (+10) digits (each distinct sub-expression of the derivative evaluated once)."""
    dps = digits + 10
    return evaluate(expr, values, dps), {s: evaluate(sp.diff(expr, s), values, dps) for s in symbols}


# --- comparing with grukit's derivation ---------------------------------------------------------

def problem_gradient(problem, method: str = "graph", digits: int = DIGITS) -> tuple[ExplicitLoss, ExplicitGradient]:
    explicit = problem_loss(problem)
    return explicit, gradient(explicit, method, digits)


def differences(solution, explicit: ExplicitLoss, grad: ExplicitGradient) -> dict[str, float]:
    """Max |grukit - explicit| per gradient name (parameters as the problem names them, W_o, b_o,
    ``inputs`` and ``h0``) for a solved :class:`~grukit.derive.numeric.solve.Solution`."""
    ours = dict(solution.named_gradients())
    ours["inputs"], ours["h0"] = solution.gradient.inputs, solution.gradient.h0
    theirs = dict(grad.named(explicit))
    theirs["inputs"], theirs["h0"] = grad.inputs, grad.h0
    out = {}
    with mpmath.workdps(DIGITS + 10):
        for name, value in ours.items():
            a = np.asarray(value, dtype=object).ravel()
            b = np.asarray(theirs[name], dtype=object).ravel()
            if a.shape != b.shape:
                raise GrukitError(f"explicit: {name}: shapes differ ({a.shape} vs {b.shape})")
            out[name] = float(max((abs(mpmath.mpf(x) - mpmath.mpf(y)) for x, y in zip(a, b)), default=0))
    return out


@dataclass
class Agreement:
    """grukit's gradients against the derivative of the fully expanded loss, judged by the
    tolerance of the engine that computed them (``grad --check``)."""

    by_name: dict[str, float]  # max |grukit - explicit| per gradient name
    scale: float  # the largest |entry| of the explicit gradients: the relative difference divides by it
    tolerance: float | None  # the engine's; None where it makes no claim in significant digits

    @property
    def max_difference(self) -> float:
        return max(self.by_name.values(), default=0.0)

    @property
    def worst(self) -> str:
        """The gradient name with the largest difference."""
        return max(self.by_name, key=self.by_name.get)

    @property
    def relative(self) -> float:
        return self.max_difference / self.scale if self.scale else self.max_difference

    @property
    def agrees(self) -> bool:
        return self.tolerance is not None and self.relative <= self.tolerance


def agreement(solution, explicit: ExplicitLoss, grad: ExplicitGradient) -> Agreement:
    """:func:`differences`, with the scale they are relative to and the solving engine's tolerance."""
    arrays = list(grad.named(explicit).values()) + [grad.inputs, grad.h0]
    scale = float(max((abs(v) for a in arrays for v in np.ravel(a)), default=0))
    return Agreement(differences(solution, explicit, grad), scale, solution.engine.tolerance)

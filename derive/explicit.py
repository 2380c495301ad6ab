"""The explicit form: the loss as one fully expanded SymPy expression, differentiated directly.

This is grukit's independent check of its own derivation. :func:`explicit_loss` walks the forward
stage list with SymPy symbols for *every* number of the problem -- each weight entry, each input,
each entry of h0 and of the output layer -- and writes the loss as one scalar expression in them:
no named intermediate quantities, no adjoints, no index rules, no BPTT. Each nonlinearity is one
opaque :class:`Elementwise` node whose definition is a SymPy expression -- the logistic function as
``1/(1 + exp(-u))`` (so not even grukit's ``sigmoid`` derivative is used), ``tanh(u)``, the hard
sigmoids' ``Piecewise`` -- and whose derivative is ``sympy.diff`` of that definition.
What it shares with :mod:`grukit.derive.backward` is only what the cell *computes* (the stage list,
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
  Its cost grows linearly with the size of the problem (:func:`graph_cost`).

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

from .convention import Convention, Param
from .equations import CellEquations, Pointwise, cell_equations, param_matrix
from .errors import GrukitError
from .evaluate import Engine, forward
from .functions import sigmoid
from .layouts import LAYOUTS
from .losses import LossHead, loss_term

DIGITS = 50
"""Digits of the explicit derivative's value (the graph method works with ten more)."""

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

class Elementwise(sp.Function):
    """An elementwise function kept as one opaque node of the expanded loss.

    Its value is its ``definition`` (a SymPy ``Lambda``); its derivative is another such node whose
    definition is ``sympy.diff`` of this one (for a hard sigmoid's ``Piecewise``: 0 at the kinks,
    which belong to the outer constant pieces). Written out instead, ``1/(1 + exp(-a))`` and
    ``Piecewise`` make SymPy inspect (and, for ``Piecewise``, fold) their whole argument at every
    step: building the loss at D=H=3, T=4 took 10-40 s that way, 0.03 s with opaque nodes.
    """

    nargs = 1
    definition: sp.Lambda

    def fdiff(self, argindex=1):
        return _derivative_head(type(self))(self.args[0])

    def _eval_evalf(self, prec):  # prec in bits, as SymPy passes it
        dps = mpmath.libmp.prec_to_dps(prec)
        arg = self.args[0].evalf(dps)
        if arg.is_Number:
            return self.definition(arg).evalf(dps)
        return None


_ELEMENTWISE: dict[sp.Lambda, type] = {}
_U = sp.Dummy("u", real=True)  # the one bound variable of every definition, so equal ones are one head


def _elementwise_head(definition: sp.Lambda, name: str | None = None) -> type:
    if definition not in _ELEMENTWISE:
        name = name or f"f{len(_ELEMENTWISE)}"
        _ELEMENTWISE[definition] = type(name, (Elementwise,), {"definition": definition})
    return _ELEMENTWISE[definition]


def _derivative_head(head: type) -> type:
    u = head.definition.variables[0]
    return _elementwise_head(sp.Lambda(u, sp.diff(head.definition.expr, u)), head.__name__ + "_prime")


@lru_cache(maxsize=None)
def _expanded_form(convention: Convention) -> CellEquations:
    """The stage list as the explicit form writes it: each nonlinearity an :class:`Elementwise`
    node -- grukit's ``sigmoid`` defined as ``1/(1 + exp(-u))`` (so its derivative is SymPy's, not
    grukit's), ``tanh`` as SymPy's ``tanh``, each hard sigmoid as its ``Piecewise``."""
    eqs = cell_equations(convention)
    u = _U
    logistic = _elementwise_head(sp.Lambda(u, 1 / (1 + sp.exp(-u))), "logistic")
    tanh = _elementwise_head(sp.Lambda(u, sp.tanh(u)), "tanh")

    def piecewise(pw):
        (arg,) = pw.free_symbols
        return _elementwise_head(sp.Lambda(u, pw.xreplace({arg: u})), f"clip{len(_ELEMENTWISE)}")(arg)

    def rewrite(expr):
        expr = expr.replace(sigmoid, logistic).replace(sp.tanh, tanh)
        return expr.replace(lambda e: isinstance(e, sp.Piecewise), piecewise)

    stages = tuple(Pointwise(s.target, rewrite(s.expr)) if isinstance(s, Pointwise) else s for s in eqs.stages)
    return CellEquations(eqs.convention, eqs.quantities, stages)


def _rational(v) -> sp.Rational:
    if isinstance(v, sp.Basic):
        return v
    v = Fraction(v)
    return sp.Rational(v.numerator, v.denominator)


def _symbols(name: str, shape: tuple[int, ...]) -> np.ndarray:
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

    P = {}
    for p in c.parameters():
        shape = c.param_shape(p, D, H)
        P[p] = bind(np.array(param_matrix(c, p, D, H).tolist(), dtype=object).reshape(shape), params[p])
    X = bind(_symbols("x", (T, D)), inputs)
    S0 = bind(_symbols("h0", (H,)), h0)
    output: dict[str, np.ndarray] = {}
    if head.W_o is not None:
        output["W_o"] = bind(_symbols("W_o", np.asarray(head.W_o).shape), head.W_o)
    if head.b_o is not None:
        output["b_o"] = bind(_symbols("b_o", np.asarray(head.b_o).shape), head.b_o)

    traces = forward(eqs, P, X, S0, Engine("symbolic"))
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
    """The expanded loss of a :class:`~grukit.derive.problem.Problem` (which must have a loss head)."""
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
        conv = explicit.convention
        D, H, _ = explicit.sizes
        if explicit.layout is not None:
            out = LAYOUTS[explicit.layout].pack(conv, self.params, D, H)
        else:
            out = {conv.key(p): v for p, v in self.params.items()}
        out.update(self.output)
        return out


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


_HEADS: dict = {}


def _head(func, nargs: int):
    """Value and local derivatives (by sympy.diff) of a function head, as mpmath callables."""
    key = (func, nargs)
    if key not in _HEADS:
        u = sp.symbols(f"u0:{nargs}", real=True)
        f = func.definition(*u) if isinstance(func, type) and issubclass(func, Elementwise) else func(*u)
        mods = [{"sigmoid": lambda a: 1 / (1 + mpmath.exp(-a))}, "mpmath"]
        _HEADS[key] = (sp.lambdify(u, f, mods), [sp.lambdify(u, sp.diff(f, ui), mods) for ui in u])
    return _HEADS[key]


def _condition_exprs(cond) -> list[sp.Expr]:
    if isinstance(cond, sp.logic.boolalg.BooleanAtom):
        return []
    if isinstance(cond, sp.core.relational.Relational):
        return [cond.lhs, cond.rhs]
    if isinstance(cond, (sp.And, sp.Or, sp.Not)):
        return [e for a in cond.args for e in _condition_exprs(a)]
    raise GrukitError(f"explicit: unsupported condition {cond}")


_RELATIONS = {"<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b,
              ">": lambda a, b: a > b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}


def _truth(cond, value) -> bool:
    if cond is sp.true:
        return True
    if cond is sp.false:
        return False
    if isinstance(cond, sp.core.relational.Relational):
        return _RELATIONS[cond.rel_op](value[cond.lhs], value[cond.rhs])
    if isinstance(cond, sp.And):
        return all(_truth(a, value) for a in cond.args)
    if isinstance(cond, sp.Or):
        return any(_truth(a, value) for a in cond.args)
    return not _truth(cond.args[0], value)


def _children(node) -> list[sp.Expr]:
    if isinstance(node, sp.Piecewise):
        out = []
        for e, c in node.args:
            out.append(e)
            out.extend(_condition_exprs(c))
        return out
    return list(node.args)


def _forward(expr: sp.Expr, values: dict, dps: int):
    """Topological order (children first) of ``expr``'s distinct sub-expressions, and their values."""
    order: list[sp.Expr] = []
    seen: set = set()
    stack = [(expr, False)]
    while stack:  # iterative post-order: children before parents
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        stack.append((node, True))
        for child in _children(node):
            if child not in seen:
                stack.append((child, False))

    value: dict = {}
    choice: dict = {}
    with mpmath.workdps(dps):
        for node in order:
            if node.is_Symbol:
                if node not in values:
                    raise GrukitError(f"explicit: no number for symbol {node}")
                value[node] = mpmath.mpf(sp.Float(values[node], dps)._mpf_)
            elif node.is_Number or node.is_NumberSymbol:
                value[node] = mpmath.mpf(sp.Float(node, dps)._mpf_)
            elif node.is_Add:
                value[node] = mpmath.fsum(value[a] for a in node.args)
            elif node.is_Mul:
                value[node] = mpmath.fprod(value[a] for a in node.args)
            elif node.is_Pow:
                b, e = node.args
                value[node] = value[b] ** (int(e) if e.is_Integer else value[e])
            elif isinstance(node, sp.Piecewise):
                k = next((i for i, (_, c) in enumerate(node.args) if _truth(c, value)), None)
                if k is None:
                    raise GrukitError(f"explicit: no branch of {node} holds")
                choice[node] = k
                value[node] = value[node.args[k].expr]
            elif isinstance(node, sp.Function):
                f, _ = _head(node.func, len(node.args))
                value[node] = mpmath.mpf(f(*(value[a] for a in node.args)))
            else:
                raise GrukitError(f"explicit: unsupported expression node {type(node).__name__}: {node}")
    return order, value, choice


def evaluate(expr: sp.Expr, values: dict, dps: int = DIGITS + 10):
    """``expr`` at the numbers ``values`` (symbol -> exact number), in mpmath at ``dps`` digits."""
    with mpmath.workdps(dps):
        return +_forward(expr, values, dps)[1][expr]


def graph_gradient(expr: sp.Expr, values: dict, symbols: list[sp.Symbol], dps: int = DIGITS + 10):
    """The value of ``expr`` and its partial derivative by each symbol, by the chain rule on its
    expression graph (each distinct sub-expression once), in mpmath at ``dps`` digits.

    A ``Piecewise`` passes the derivative of the branch its conditions select (at a kink of the
    hard sigmoid, the outer constant piece: derivative 0, as ``sympy.diff`` of the Piecewise gives).
    """
    order, value, choice = _forward(expr, values, dps)
    with mpmath.workdps(dps):
        adj: dict = {expr: mpmath.mpf(1)}
        for node in reversed(order):
            a = adj.get(node)
            if a is None or a == 0 or node.is_Atom:
                continue
            args = node.args
            if node.is_Add:
                local = [mpmath.mpf(1)] * len(args)
            elif node.is_Mul:
                vals = [value[x] for x in args]
                local = [mpmath.fprod(vals[:i] + vals[i + 1:]) for i in range(len(args))]
            elif node.is_Pow:
                b, e = args
                vb, ve = value[b], value[e]
                local = [ve * vb ** (int(e) - 1 if e.is_Integer else ve - 1),
                         value[node] * mpmath.log(vb) if e.free_symbols else 0]
            elif isinstance(node, sp.Piecewise):
                branch = node.args[choice[node]].expr
                adj[branch] = adj.get(branch, 0) + a
                continue
            else:
                _, derivs = _head(node.func, len(args))
                local = [mpmath.mpf(d(*(value[x] for x in args))) for d in derivs]
            for x, lx in zip(args, local):
                if lx != 0:
                    adj[x] = adj.get(x, 0) + a * lx
        return value[expr], {s: +mpmath.mpf(adj.get(s, 0)) for s in symbols}


# --- comparing with grukit's derivation ---------------------------------------------------------

def problem_gradient(problem, method: str = "graph", digits: int = DIGITS) -> tuple[ExplicitLoss, ExplicitGradient]:
    explicit = problem_loss(problem)
    return explicit, gradient(explicit, method, digits)


def differences(solution, explicit: ExplicitLoss, grad: ExplicitGradient) -> dict[str, float]:
    """Max |grukit - explicit| per gradient name (parameters as the problem names them, W_o, b_o,
    ``inputs`` and ``h0``) for a solved :class:`~grukit.derive.solve.Solution`."""
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

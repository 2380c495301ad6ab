"""A SymPy expression as a graph: its value and every partial derivative by one reverse sweep.

The fully expanded loss of :mod:`grukit.derive.check.explicit` shares sub-expressions everywhere (each
state feeds every later step); walking it as a tree costs exponentially many visits. Here each
distinct sub-expression is a node visited once: :func:`evaluate` gives the value in mpmath,
:func:`graph_gradient` the chain rule from the root to every symbol. The local derivative of each
node's head (``exp``, ``log``, powers, the :class:`Elementwise` nonlinearities) comes from
``sympy.diff``. Nothing here knows about GRUs.
"""
from __future__ import annotations

import mpmath
import sympy as sp

from grukit.derive.errors import GrukitError

DIGITS = 50
"""Digits of the explicit derivative's value (the graph method works with ten more)."""


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


ELEMENTWISE: dict[sp.Lambda, type] = {}
BOUND_VARIABLE = sp.Dummy("u", real=True)
"""The one bound variable of every definition, so that equal definitions are one head."""


def elementwise_head(definition: sp.Lambda, name: str | None = None) -> type:
    if definition not in ELEMENTWISE:
        name = name or f"f{len(ELEMENTWISE)}"
        ELEMENTWISE[definition] = type(name, (Elementwise,), {"definition": definition})
    return ELEMENTWISE[definition]


def _derivative_head(head: type) -> type:
    u = head.definition.variables[0]
    return elementwise_head(sp.Lambda(u, sp.diff(head.definition.expr, u)), head.__name__ + "_prime")


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

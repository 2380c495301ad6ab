"""The elementwise functions of a GRU as SymPy objects.

``sigmoid`` is a SymPy ``Function`` so that equations print as ``\\sigma(a)`` and differentiate to
``\\sigma(a)(1-\\sigma(a))``. The hard sigmoids are ``Piecewise``: ``sympy.diff`` gives their
derivative, which is the slope strictly inside the linear piece and **0 at the kinks** (as the
frameworks' autograd does: Keras-on-torch's ``relu6`` and ``clip`` pass no gradient at the bounds).
"""
from __future__ import annotations

import sympy as sp


class sigmoid(sp.Function):
    """The logistic function, kept unevaluated so formulas stay readable."""

    nargs = 1

    def fdiff(self, argindex=1):
        s = sigmoid(self.args[0])
        return s * (1 - s)

    @classmethod
    def eval(cls, arg):
        if arg == 0:
            return sp.S.Half

    def _eval_rewrite_as_exp(self, arg, **kwargs):
        return 1 / (1 + sp.exp(-arg))

    def _latex(self, printer, exp=None):
        inner = printer._print(self.args[0])
        body = r"\sigma\left(%s\right)" % inner
        return body if exp is None else r"%s^{%s}" % (body, exp)


def _clip_linear(a, slope, offset):
    """clip(slope*a + offset, 0, 1) as a Piecewise whose kinks take the outer pieces."""
    low = -offset / slope
    high = (1 - offset) / slope
    return sp.Piecewise((0, a <= low), (1, a >= high), (slope * a + offset, True))


def gate_activation(kind: str, a: sp.Expr) -> sp.Expr:
    """The gate nonlinearity applied to the pre-activation ``a``."""
    if kind == "sigmoid":
        return sigmoid(a)
    if kind == "hard_sigmoid_keras2":
        return _clip_linear(a, sp.Rational(1, 5), sp.Rational(1, 2))
    if kind == "hard_sigmoid_keras3":
        return _clip_linear(a, sp.Rational(1, 6), sp.Rational(1, 2))
    raise ValueError(f"unknown gate activation {kind!r}")


def candidate_activation(kind: str, a: sp.Expr) -> sp.Expr:
    """The candidate nonlinearity applied to the pre-activation ``a``."""
    if kind == "tanh":
        return sp.tanh(a)
    if kind == "linear":
        return a
    raise ValueError(f"unknown candidate activation {kind!r}")

"""The elementwise functions of a GRU as SymPy objects.

``sigmoid`` is a SymPy ``Function`` so that equations print as ``\\sigma(a)`` and differentiate to
``\\sigma(a)(1-\\sigma(a))``. The hard sigmoids are ``Piecewise``: ``sympy.diff`` gives their
derivative, which is the slope strictly inside the linear piece and **0 at the kinks** (as the
frameworks' autograd does: Keras-on-torch's ``relu6`` and ``clip`` pass no gradient at the bounds).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

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


class softplus(sp.Function):
    """log(1 + e^a), kept unevaluated: its derivative is the logistic, and the evaluators use a
    stable form (``numpy.logaddexp``) where ``log(1 + exp(a))`` would overflow."""

    nargs = 1

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])

    def _eval_rewrite_as_log(self, arg, **kwargs):
        return sp.log(1 + sp.exp(arg))

    def _latex(self, printer, exp=None):
        body = r"\operatorname{softplus}\left(%s\right)" % printer._print(self.args[0])
        return body if exp is None else r"%s^{%s}" % (body, exp)


@dataclass(frozen=True)
class Activation:
    """One elementwise function a GRU may use for its gates or its candidate.

    ``expr(a, alpha, beta)`` builds it in SymPy; ``alpha``/``beta`` say whether it takes them and
    their defaults (ONNX Runtime's: ``rnn_helpers.cc`` NameToArgDefaultsMap, 0 where it has none);
    ``onnx`` is its name in an ONNX GRU node's ``activations``; ``kinks`` says, in words, which
    derivative grukit takes where the function has no derivative (checked against PyTorch autograd
    of ``torch_form``, tests/layers/test_activations.py)."""

    name: str
    meaning: str
    expr: Callable
    onnx: str | None = None
    alpha: object = None  # default alpha (None: takes no alpha)
    beta: object = None  # default beta (None: takes no beta)
    kinks: str = ""
    torch_form: str = ""


def _hard_sigmoid(a, alpha, beta):
    u = alpha * a + beta
    return sp.Piecewise((0, u <= 0), (1, u >= 1), (u, True))


_R = sp.Rational
ACTIVATIONS: dict[str, Activation] = {a.name: a for a in (
    Activation("sigmoid", "1 / (1 + exp(-a))", lambda a, al, be: sigmoid(a), "Sigmoid",
               torch_form="torch.sigmoid(a)"),
    Activation("hard_sigmoid_keras2", "clip(0.2 a + 0.5, 0, 1)",
               lambda a, al, be: _clip_linear(a, _R(1, 5), _R(1, 2)), kinks="0 at a = -2.5 and a = 2.5",
               torch_form="hardtanh(0.2 a + 0.5, 0, 1)"),
    Activation("hard_sigmoid_keras3", "clip(a / 6 + 1/2, 0, 1)",
               lambda a, al, be: _clip_linear(a, _R(1, 6), _R(1, 2)), kinks="0 at a = -3 and a = 3",
               torch_form="torch.nn.functional.hardsigmoid(a)"),
    Activation("tanh", "tanh(a)", lambda a, al, be: sp.tanh(a), "Tanh", torch_form="torch.tanh(a)"),
    Activation("linear", "a", lambda a, al, be: a, torch_form="a"),
    Activation("relu", "max(0, a)", lambda a, al, be: sp.Piecewise((0, a <= 0), (a, True)), "Relu",
               kinks="0 at a = 0", torch_form="torch.relu(a)"),
    Activation("affine", "alpha a + beta", lambda a, al, be: al * a + be, "Affine", 0, 0,
               torch_form="alpha * a + beta"),
    Activation("leaky_relu", "a if a >= 0 else alpha a", lambda a, al, be: sp.Piecewise((a, a > 0), (al * a, True)),
               "LeakyRelu", _R(1, 100), kinks="alpha at a = 0", torch_form="leaky_relu(a, alpha)"),
    Activation("thresholded_relu", "a if a > alpha else 0",
               lambda a, al, be: sp.Piecewise((0, a <= al), (a, True)), "ThresholdedRelu", 0,
               kinks="0 at a = alpha", torch_form="threshold(a, alpha, 0)"),
    Activation("scaled_tanh", "alpha tanh(beta a)", lambda a, al, be: al * sp.tanh(be * a), "ScaledTanh", 0, 0,
               torch_form="alpha * torch.tanh(beta * a)"),
    Activation("hard_sigmoid", "clip(alpha a + beta, 0, 1)", _hard_sigmoid, "HardSigmoid", _R(1, 5), _R(1, 2),
               kinks="0 where alpha a + beta = 0 or 1", torch_form="hardtanh(alpha a + beta, 0, 1)"),
    Activation("elu", "a if a >= 0 else alpha (exp(a) - 1)",
               lambda a, al, be: sp.Piecewise((a, a > 0), (al * (sp.exp(a) - 1), True)), "Elu", 1,
               kinks="alpha at a = 0", torch_form="elu(a, alpha)"),
    Activation("softsign", "a / (1 + |a|)", lambda a, al, be: a / (1 + sp.Abs(a)), "Softsign",
               torch_form="softsign(a)"),
    Activation("softplus", "log(1 + exp(a))", lambda a, al, be: softplus(a), "Softplus",
               torch_form="softplus(a)"),
)}
"""Every activation grukit knows, by the name a convention uses. A piecewise one ends with the piece
that holds ``a`` itself (or an expression of it): a NaN, for which every comparison is false, then
stays NaN in every engine, as in PyTorch (docs/security.md). The first three are the gate
activations of the built-in conventions, ``tanh`` and ``linear`` the candidate activations; the rest
are ONNX's list (``Sigmoid``, ``Tanh`` and ``Relu`` included), usable for either."""

ONNX_ACTIVATIONS = {a.onnx.lower(): a.name for a in ACTIVATIONS.values() if a.onnx}
"""ONNX's activation names (case-insensitive, as ONNX Runtime reads them) -> grukit's."""


def clipped(value: Callable, a: sp.Expr, clip) -> sp.Expr:
    """``value(clip(a, -clip, clip))``: the ONNX ``clip`` attribute, applied to a pre-activation.
    Outside the range the value is constant (derivative 0); at exactly +-clip grukit takes the
    inner piece's derivative, as ``torch.clamp``'s autograd does (the range is closed)."""
    if clip is None:
        return value(a)
    c = _number(clip) if not isinstance(clip, sp.Basic) else clip
    # one flat Piecewise (a piecewise activation's pieces folded in), so every reader sees one node
    return sp.piecewise_fold(sp.Piecewise((value(-c), a < -c), (value(c), a > c), (value(a), True)))


def activation(kind: str, a: sp.Expr, alpha=None, beta=None, clip=None) -> sp.Expr:
    """The activation ``kind`` of the pre-activation ``a`` (clipped to +-clip first, if given)."""
    if kind not in ACTIVATIONS:
        raise ValueError(f"unknown activation {kind!r}")
    act = ACTIVATIONS[kind]
    al = _number(act.alpha if alpha is None else alpha)
    be = _number(act.beta if beta is None else beta)
    return clipped(lambda u: act.expr(u, al, be), a, clip)


def _number(value):
    if value is None:
        return None
    return sp.Rational(value.numerator, value.denominator) if hasattr(value, "denominator") else sp.nsimplify(value)


def gate_activation(kind: str, a: sp.Expr, alpha=None, beta=None, clip=None) -> sp.Expr:
    """The gate nonlinearity applied to the pre-activation ``a``."""
    return activation(kind, a, alpha, beta, clip)


def candidate_activation(kind: str, a: sp.Expr, alpha=None, beta=None, clip=None) -> sp.Expr:
    """The candidate nonlinearity applied to the pre-activation ``a``."""
    return activation(kind, a, alpha, beta, clip)

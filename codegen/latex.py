"""LaTeX for the stage list, printed by a thin subclass of SymPy's ``LatexPrinter``.

Per-unit symbols are printed as the convention's vector names (``z_{t}``, ``\\tilde{h}_{t}``,
``s_{t-1}`` ...), products of vectors as ``\\odot`` and matrix products by juxtaposition in the
convention's orientation (``W_z x_t`` or ``x_t U^{z}``). Nothing here derives anything: it prints
what :mod:`grukit.derive.equations` and :mod:`grukit.derive.backward` built.
"""
from __future__ import annotations

import sympy as sp
from sympy.printing.latex import LatexPrinter

from grukit.derive.backward import CellAdjoint, LocalDerivative
from grukit.derive.convention import Convention, Param
from grukit.derive.equations import Affine, CellEquations, Pointwise


def step_tex(t, offset: int = 0) -> str:
    """The subscript for step ``t`` (an int or the letter 't') shifted by ``offset``."""
    if isinstance(t, int):
        return str(t + offset)
    return t if offset == 0 else f"{t}{offset:+d}"


def quantity_tex(conv: Convention, name: str, t="t") -> str:
    """A quantity's LaTeX name at step t."""
    n = conv.notation
    letter = {g: n.letter(g) for g in ("z", "r", "h")}
    base = {
        "x": (n.input_tex, 0),
        "h_prev": (n.state_tex, -1),
        "h": (n.state_tex, 0),
        "c": (n.candidate_tex, 0),
        "z": ("z", 0),
        "r": ("r", 0),
    }
    if name in base:
        tex, off = base[name]
        return f"{tex}_{{{step_tex(t, off)}}}"
    if name == "q":
        return f"q_{{{step_tex(t)}}}"
    if name.startswith("a_"):
        gate = {"a_z": letter["z"], "a_r": letter["r"], "a_h": letter["h"],
                "a_hx": letter["h"] + "x", "a_hh": letter["h"] + letter["h"]}[name]
        return f"a_{{{gate},{step_tex(t)}}}"
    raise KeyError(name)


def adjoint_tex(conv: Convention, name: str, t="t") -> str:
    return r"\delta " + quantity_tex(conv, name, t)


class GruLatexPrinter(LatexPrinter):
    """``LatexPrinter`` with elementwise products shown as ``\\odot``."""

    def __init__(self, names: dict[sp.Symbol, str], parenthesize: frozenset = frozenset()):
        super().__init__({"symbol_names": names})
        self._parenthesize = parenthesize

    def _print_Symbol(self, expr, style="plain"):
        tex = self._settings["symbol_names"].get(expr)
        if tex is None:
            return super()._print_Symbol(expr, style)
        return tex

    def _print_Mul(self, expr):
        coeff, factors = expr.as_coeff_mul()
        if not factors or not all(f.is_commutative for f in factors):
            return super()._print_Mul(expr)
        parts = []
        for f in factors:
            text = self._print(f)
            if f.is_Add or (f in self._parenthesize):
                text = r"\left(%s\right)" % text
            parts.append(text)
        body = r" \odot ".join(parts)
        if coeff == 1:
            return body
        if coeff == -1:
            return "- " + body
        return self._print(coeff) + " " + body


def _names(conv: Convention, t, extra: dict[str, str] | None = None) -> dict[sp.Symbol, str]:
    names = {}
    eqs_names = ("x", "h_prev", "h", "c", "z", "r", "q", "a_z", "a_r", "a_h", "a_hx", "a_hh")
    for n in eqs_names:
        names[sp.Symbol(n, real=True)] = quantity_tex(conv, n, t)
        names[sp.Symbol("d_" + n, real=True)] = adjoint_tex(conv, n, t)
    for k, v in (extra or {}).items():
        names[sp.Symbol(k, real=True)] = v
    return names


def transpose_tex(tex: str) -> str:
    return "{%s}^{\\top}" % tex


def product_tex(conv: Convention, param: Param, operand_tex: str) -> str:
    w = conv.tex(param)
    return f"{w} {operand_tex}" if conv.orientation == "column" else f"{operand_tex} {w}"


def operand_tex(conv: Convention, operands: tuple[str, ...], t="t", inline: dict[str, str] | None = None) -> str:
    texs = [(inline or {}).get(n) or quantity_tex(conv, n, t) for n in operands]
    if len(texs) == 1:
        return texs[0]
    sep = r" \\ " if conv.orientation == "column" else ", "
    env = "bmatrix"
    return r"\begin{%s} %s \end{%s}" % (env, sep.join(texs), env)


def affine_terms(conv: Convention, stage: Affine, t="t", inline: dict[str, str] | None = None) -> list[str]:
    terms = [product_tex(conv, p.param, operand_tex(conv, p.operands, t, inline)) for p in stage.products]
    terms += [conv.tex(b) for b in stage.biases]
    return terms


def pointwise_tex(conv: Convention, expr: sp.Expr, t="t", inline: dict[str, str] | None = None,
                  parenthesize: frozenset = frozenset()) -> str:
    names = _names(conv, t, inline)
    syms = frozenset(sp.Symbol(n, real=True) for n in parenthesize)
    return GruLatexPrinter(names, syms).doprint(expr)


def stage_equations(eqs: CellEquations, t="t") -> list[tuple[str, str]]:
    """(lhs, rhs) LaTeX of every stage of one step, in order."""
    conv = eqs.convention
    out = []
    for s in eqs.stages:
        lhs = quantity_tex(conv, s.target, t)
        rhs = " + ".join(affine_terms(conv, s, t)) if isinstance(s, Affine) else pointwise_tex(conv, s.expr, t)
        out.append((lhs, rhs))
    return out


def compact_equations(eqs: CellEquations, t="t") -> list[tuple[str, str]]:
    """The familiar four equations: pre-activations and r*h written inline."""
    conv = eqs.convention
    inline: dict[str, str] = {}
    multi: set[str] = set()
    out = []
    for s in eqs.stages:
        if isinstance(s, Affine):
            terms = affine_terms(conv, s, t, inline)
            inline[s.target] = " + ".join(terms)
            if len(terms) > 1:
                multi.add(s.target)
            continue
        if s.target in ("q", "a_h"):
            tex = pointwise_tex(conv, s.expr, t, inline, frozenset(multi))
            inline[s.target] = r"\left(%s\right)" % tex if s.target == "q" else tex
            if s.expr.is_Add:
                multi.add(s.target)
            continue
        out.append((quantity_tex(conv, s.target, t), pointwise_tex(conv, s.expr, t, inline, frozenset(multi))))
    return out


def local_tex(conv: Convention, loc: LocalDerivative, t="t") -> tuple[str, str]:
    """(operand adjoint, contribution) of one local derivative, e.g. (delta z_t, delta h_t (h~ - h))."""
    contribution = pointwise_tex(conv, loc.contribution, t)
    if loc.reduce:
        contribution = r"\sum_j \left[%s\right]_j" % contribution
    return adjoint_tex(conv, loc.operand, t), contribution


def backward_equations(adj: CellAdjoint, t="t") -> list[tuple[str, str]]:
    """(lhs, rhs) LaTeX of every adjoint of one step, in backward order (sums of contributions)."""
    conv = adj.equations.convention
    column = conv.orientation == "column"
    sums: dict[str, list[str]] = {}
    order: list[str] = []

    def add(name: str, term: str):
        if name not in sums:
            sums[name] = []
            order.append(name)
        sums[name].append(term)

    for a in adj.stages:
        s = a.stage
        if isinstance(s, Pointwise):
            for loc in a.locals:
                add(loc.operand, local_tex(conv, loc, t)[1])
            continue
        d = adjoint_tex(conv, s.target, t)
        for p in s.products:
            w = transpose_tex(conv.tex(p.param))
            term = f"{w} {d}" if column else f"{d} {w}"
            if len(p.operands) > 1:
                term = r"\left[%s\right]_{%s}" % (term, quantity_tex(conv, p.operands[0], t))
                add(p.operands[0], term)
                add(p.operands[1], term.replace(quantity_tex(conv, p.operands[0], t), quantity_tex(conv, p.operands[1], t)))
            else:
                add(p.operands[0], term)
    return [(adjoint_tex(conv, n, t), " + ".join(sums[n])) for n in order]


def gradient_tex(tex: str) -> str:
    """dL/d(tex) as a fraction."""
    return r"\frac{\partial L}{\partial %s}" % tex


def parameter_gradient_tex(eqs: CellEquations, param: Param, steps: str = "t") -> tuple[str, str]:
    """Closed form of dL/d(param) as a sum over time, e.g. sum_t delta a_{z,t} x_t^T."""
    conv = eqs.convention
    for s in eqs.stages:
        if not isinstance(s, Affine):
            continue
        d = adjoint_tex(conv, s.target, steps)
        lhs = gradient_tex(conv.tex(param))
        if param in s.biases:
            return lhs, r"\sum_{%s} %s" % (steps, d)
        for p in s.products:
            if p.param == param:
                v = operand_tex(conv, p.operands, steps)
                rhs = f"{d} {transpose_tex(v)}" if conv.orientation == "column" else f"{transpose_tex(v)} {d}"
                return lhs, r"\sum_{%s} %s" % (steps, rhs)
    raise KeyError(param)

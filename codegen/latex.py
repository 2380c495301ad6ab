"""LaTeX for the stage list, printed by a thin subclass of SymPy's ``LatexPrinter``.

Per-unit symbols are printed as the convention's vector names (``z_{t}``, ``\\tilde{h}_{t}``,
``s_{t-1}`` ...), products of vectors as ``\\odot`` and matrix products by juxtaposition in the
convention's orientation (``W_z x_t`` or ``x_t U^{z}``). Nothing here derives anything: it prints
what :mod:`grukit.derive.cell.equations` and :mod:`grukit.derive.cell.records` built.
"""
from __future__ import annotations

import sympy as sp
from sympy.printing.latex import LatexPrinter

from grukit.derive.cell.convention import Convention, Param
from grukit.derive.cell.equations import Affine, CellEquations, Pointwise
from grukit.derive.cell.records import (
    BackwardRecords,
    BiasRecord,
    LocalRecord,
    SumRecord,
    TransposedRecord,
    WeightRecord,
)


def step_tex(t, offset: int = 0) -> str:
    """The subscript for step ``t`` (an int or the letter 't') shifted by ``offset``."""
    if isinstance(t, int):
        return str(t + offset)
    return t if offset == 0 else f"{t}{offset:+d}"


def symbol_base(tex: str) -> str:
    """A notation's symbol ready for a subscript: a group of its own when it has a script or a prime
    (``{h'{}}_{t}``, ``{h_{enc}{}}_{t}``: ``h'_{t}^{2}`` would be a double superscript). The empty
    ``{}`` keeps TeX from unwrapping a group of one accented atom (``{\\hat{h}'}_{t}^{2}`` fails too)."""
    return "{%s{}}" % tex if any(ch in tex for ch in "_^'") else tex


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
        return f"{symbol_base(tex)}_{{{step_tex(t, off)}}}"
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
    """``LatexPrinter`` with elementwise products shown as ``\\odot`` (``product``). A subclass whose
    names may stand for numbers (a sheet's number tokens) says so through :meth:`restyle`, and each
    number is then styled by where it stands: a later term of a sum carries its sign as the operator
    (``a - 0.3``, never ``a + -0.3``), a factor is parenthesised when negative, a function's argument
    is written plain.

    ``order="none"`` prints a sum's terms and a product's factors in the order the expression holds
    them: a stage's written form (:attr:`~grukit.derive.cell.equations.Pointwise.written`) comes out as
    the convention's source writes it, not in SymPy's canonical order.
    """

    def __init__(self, names: dict[sp.Symbol, str], parenthesize: frozenset = frozenset(),
                 order: str | None = None, product: str = r"\odot"):
        settings = {"symbol_names": names, "mul_symbol": "dot" if product == r"\cdot" else None}
        if order is not None:
            settings["order"] = order
        super().__init__(settings)
        self._parenthesize = parenthesize
        self._product = product
        self._parents: list = []

    def _print(self, expr, **kwargs):
        self._parents.append(expr)
        try:
            return super()._print(expr, **kwargs)
        finally:
            self._parents.pop()

    def restyle(self, tex: str, style: str) -> str | None:
        """``tex`` in ``style`` when the name stands for one number, else None: never, for names."""
        return None

    def _number(self, expr, style: str) -> str | None:
        """The number token standing for ``expr`` in ``style``, or None when it is not one."""
        if not isinstance(expr, sp.Symbol):
            return None
        tex = self._settings["symbol_names"].get(expr)
        return None if tex is None else self.restyle(tex, style)

    def _scalar(self, expr) -> bool:
        """Whether ``expr`` stands for one number: every symbol in it is a number token."""
        names = self._settings["symbol_names"]
        return bool(expr.free_symbols) and all(
            self.restyle(names.get(s, ""), "v") is not None for s in expr.free_symbols)

    def _print_Symbol(self, expr, style="plain"):
        tex = self._settings["symbol_names"].get(expr)
        if tex is None:
            return super()._print_Symbol(expr, style)
        parent = self._parents[-2] if len(self._parents) > 1 else None
        number = self.restyle(tex, "f" if isinstance(parent, (sp.Mul, sp.Pow)) else "v")
        return tex if number is None else number

    def _print_Add(self, expr, order=None):
        terms = self._as_ordered_terms(expr, order=order)
        if (order or self.order) != "none" and terms[0].could_extract_minus_sign():
            # SymPy's order may lead with a subtracted term (-h~ + h): a person starts with a positive one
            first = next((k for k, term in enumerate(terms) if not term.could_extract_minus_sign()), 0)
            terms.insert(0, terms.pop(first))
        tex = ""
        for i, term in enumerate(terms):
            number = self._number(term, "v" if i == 0 else "t")
            if number is not None:
                tex += number if i == 0 else " " + number
                continue
            if i == 0:
                pass
            elif term.could_extract_minus_sign():
                number = self._number(-term, "m")
                if number is not None:
                    tex += " " + number
                    continue
                tex += " - "
                term = -term
            else:
                tex += " + "
            term_tex = self._print(term)
            if self._needs_add_brackets(term):
                term_tex = r"\left(%s\right)" % term_tex
            tex += term_tex
        return tex

    def _print_Mul(self, expr):
        coeff, factors = expr.as_coeff_mul()
        if not factors or not all(f.is_commutative for f in factors) or any(
                f.is_Pow and f.exp.is_negative for f in factors):
            return super()._print_Mul(expr)
        parts = []
        for f in factors:
            text = self._print(f)
            if f.is_Add or (f in self._parenthesize):
                text = r"\left(%s\right)" % text
            parts.append(text)
        product = self._product
        if product == r"\odot" and all(self._scalar(f) for f in factors):
            product = r"\cdot"  # numbers, not vectors: an ordinary product
        body = (" %s " % product if product else " ").join(parts)
        if coeff == 1:
            return body
        if coeff == -1:
            return "- " + body
        return self._print(coeff) + " " + body


def scalar_tex(expr: sp.Expr, names: dict[sp.Symbol, str], product: str = r"\cdot",
               printer: type[GruLatexPrinter] = GruLatexPrinter) -> str:
    """A scalar formula (a loss term, a softmax probability) with its symbols named (products
    juxtaposed: ``product=""``) or numbers in their place (products with ``\\cdot``)."""
    return printer(names, product=product).doprint(expr)


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
                  parenthesize: frozenset = frozenset(), order: str | None = None,
                  printer: type[GruLatexPrinter] = GruLatexPrinter) -> str:
    names = _names(conv, t, inline)
    syms = frozenset(sp.Symbol(n, real=True) for n in parenthesize)
    return printer(names, syms, order).doprint(expr)


def written_tex(conv: Convention, stage: Pointwise, t="t", inline: dict[str, str] | None = None,
                parenthesize: frozenset = frozenset(), printer: type[GruLatexPrinter] = GruLatexPrinter) -> str:
    """A pointwise stage's formula as its convention's source writes it (terms in the source's order)."""
    return pointwise_tex(conv, stage.written, t, inline, parenthesize, order="none", printer=printer)


def stage_equations(eqs: CellEquations, t="t") -> list[tuple[str, str]]:
    """(lhs, rhs) LaTeX of every stage of one step, in order."""
    conv = eqs.convention
    out = []
    for s in eqs.stages:
        lhs = quantity_tex(conv, s.target, t)
        rhs = " + ".join(affine_terms(conv, s, t)) if isinstance(s, Affine) else written_tex(conv, s, t)
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
            tex = written_tex(conv, s, t, inline, frozenset(multi))
            inline[s.target] = r"\left(%s\right)" % tex if s.target == "q" else tex
            if s.expr.is_Add:
                multi.add(s.target)
            continue
        out.append((quantity_tex(conv, s.target, t), written_tex(conv, s, t, inline, frozenset(multi))))
    return out


def local_tex(conv: Convention, loc: LocalRecord, t="t") -> tuple[str, str]:
    """(operand adjoint, contribution) of one local derivative, e.g. (delta z_t, delta h_t (h~ - h))."""
    contribution = pointwise_tex(conv, loc.contribution, t)
    if loc.reduce:
        contribution = r"\sum_j \left[%s\right]_j" % contribution
    return adjoint_tex(conv, loc.operand, t), contribution


def transposed_product_tex(conv: Convention, weight_tex: str, d_tex: str) -> str:
    """``M^T delta`` (column) or ``delta M^T`` (row)."""
    w = transpose_tex(weight_tex)
    return f"{w} {d_tex}" if conv.orientation == "column" else f"{d_tex} {w}"


def transposed_tex(conv: Convention, rec: TransposedRecord, t="t") -> str:
    """``M^T delta a`` (``delta a M^T`` for rows), restricted to the operand's rows of a stacked one."""
    term = transposed_product_tex(conv, conv.tex(rec.param), adjoint_tex(conv, rec.target, t))
    if len(rec.operands) > 1:
        term = r"\left[%s\right]_{%s}" % (term, quantity_tex(conv, rec.operand, t))
    return term


def contribution_tex(conv: Convention, rec: LocalRecord | TransposedRecord, t="t") -> str:
    return local_tex(conv, rec, t)[1] if isinstance(rec, LocalRecord) else transposed_tex(conv, rec, t)


def backward_equations(rec: BackwardRecords, t="t") -> list[tuple[str, str]]:
    """(lhs, rhs) LaTeX of every adjoint of one step, in backward order (sums of its paths)."""
    conv = rec.equations.convention
    return [(adjoint_tex(conv, r.name, t), " + ".join(contribution_tex(conv, p.record, t) for p in r.paths))
            for r in rec.records if isinstance(r, SumRecord)]


def gradient_tex(tex: str) -> str:
    """dL/d(tex) as a fraction."""
    return r"\frac{\partial L}{\partial %s}" % tex


def outer_tex(conv: Convention, d_tex: str, v_tex: str) -> str:
    """``delta v^T`` (column) or ``v^T delta`` (row): a weight's gradient from one product."""
    if conv.orientation == "column":
        return f"{d_tex} {transpose_tex(v_tex)}"
    return f"{transpose_tex(v_tex)} {d_tex}"


def parameter_gradient_tex(rec: BackwardRecords, param: Param, steps: str = "t") -> tuple[str, str]:
    """Closed form of dL/d(param) as a sum over time, e.g. sum_t delta a_{z,t} x_t^T."""
    conv = rec.equations.convention
    r = next(r for r in rec.records if isinstance(r, (WeightRecord, BiasRecord)) and r.param == param)
    d = adjoint_tex(conv, r.target, steps)
    rhs = d if isinstance(r, BiasRecord) else outer_tex(conv, d, operand_tex(conv, r.operands, steps))
    return gradient_tex(conv.tex(param)), r"\sum_{%s} %s" % (steps, rhs)

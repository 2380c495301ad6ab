"""The terms a worked example prints between the stages: ``1 - z``, ``(1 - z) h_{t-1}``, ``z(1 - z)`` ...

Sheets and course notes write down numbers that are no quantity of the cell -- the factors and
products of a stage's formula, or of a local derivative -- and a claims file may claim them. Each
is a :class:`Term`: a per-unit SymPy expression of the step's quantities (the unit symbols of
:mod:`grukit.derive.cell.equations`) and a name pattern. A term applies to a convention whose
equations have every quantity it reads (``r (1 - r)`` needs a reset gate, ``r a_hh`` the reset-after
split). The audit's walk (:mod:`grukit.derive.audit.replay`) evaluates them like any pointwise stage.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from grukit.derive.cell.equations import CellEquations, unit


@dataclass(frozen=True)
class Term:
    """``name`` with ``{z}``, ``{h_prev}``, ``{c}``, ``{r}``, ``{a_hh}`` for the step's quantities' names."""

    name: str
    expr: sp.Expr
    what: str

    @property
    def operands(self) -> tuple[str, ...]:
        return tuple(sorted(s.name for s in self.expr.free_symbols))


_z, _h, _c, _r, _hh = (unit(n) for n in ("z", "h_prev", "c", "r", "a_hh"))
TERMS = (
    Term("1 - {z}", 1 - _z, "one minus the update gate"),
    Term("{z} {h_prev}", _z * _h, "the update gate times the previous state"),
    Term("(1 - {z}) {h_prev}", (1 - _z) * _h, "one minus the update gate, times the previous state"),
    Term("{z} {c}", _z * _c, "the update gate times the candidate"),
    Term("(1 - {z}) {c}", (1 - _z) * _c, "one minus the update gate, times the candidate"),
    Term("{c} - {h_prev}", _c - _h, "the candidate minus the previous state"),
    Term("{h_prev} - {c}", _h - _c, "the previous state minus the candidate"),
    Term("{z} (1 - {z})", _z * (1 - _z), "the update gate times one minus it (the sigmoid's derivative)"),
    Term("{r} (1 - {r})", _r * (1 - _r), "the reset gate times one minus it (the sigmoid's derivative)"),
    Term("1 - {c}^2", 1 - _c ** 2, "one minus the candidate squared (tanh's derivative)"),
    Term("{r} {a_hh}", _r * _hh, "the reset-after product r * (U_h h_{t-1} + b_hh)"),
)
"""Every printed term grukit names, in the order ``grukit names`` lists them."""


def terms_of(eqs: CellEquations) -> tuple[Term, ...]:
    """The terms that apply to a convention: those whose every quantity its equations have."""
    have = {q.name for q in eqs.quantities}
    return tuple(t for t in TERMS if set(t.operands) <= have)

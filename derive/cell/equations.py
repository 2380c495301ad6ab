"""The GRU cell as a list of assignments: the one intermediate representation every emitter reads.

One time step is an ordered tuple of stages. A stage assigns one vector quantity and is either

* :class:`Affine` -- a sum of weight-times-vector products plus biases (the linear stages; their
  derivatives follow index rules: ``dW = delta v^T``, ``dv = W^T delta``), or
* :class:`Pointwise` -- a scalar SymPy expression applied per hidden unit to the per-unit symbols
  of earlier quantities (the elementwise stages; their derivatives come from ``sympy.diff``).

This is the per-unit form that scales to any size (see docs/design.md). The explicit form is the
same stages walked over arrays of symbols (:mod:`grukit.derive.check.explicit`, the ``symbolic`` engine
of :mod:`grukit.derive.numeric.evaluate`), which expands them fully for given small sizes.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from grukit.derive.cell.convention import Convention, Param
from grukit.derive.cell.functions import candidate_activation, gate_activation


@dataclass(frozen=True)
class Quantity:
    """A vector value of one time step. ``width`` is 'input', 'hidden' or a gate id (z, r)."""

    name: str
    width: str
    role: str  # what the sheet calls it
    via: str = ""  # the path through this stage, as a student reads it (pointwise stages)


@dataclass(frozen=True)
class Product:
    """``param`` times the operands stacked into one vector (two operands: Colah's [h, x])."""

    param: Param
    operands: tuple[str, ...]


@dataclass(frozen=True)
class Affine:
    target: str
    products: tuple[Product, ...]
    biases: tuple[Param, ...]


@dataclass(frozen=True)
class Pointwise:
    """``target = expr`` per unit. ``expr`` is what every evaluator and ``sympy.diff`` read (SymPy's
    canonical form); ``written`` is the same expression unevaluated, its terms and factors in the order
    the convention's source writes them (:data:`~grukit.derive.cell.convention.TERM_ORDERS`), for printing."""

    target: str
    expr: sp.Expr
    shown: sp.Expr | None = None

    @property
    def written(self) -> sp.Expr:
        return self.expr if self.shown is None else self.shown

    @property
    def operands(self) -> tuple[str, ...]:
        return tuple(sorted(s.name for s in self.expr.free_symbols))


def as_written(target: str, shown: sp.Expr) -> Pointwise:
    """A stage from its expression as the source writes it (built with ``evaluate=False``): the
    derivation reads the same expression evaluated, so the order changes what is printed only."""
    return Pointwise(target, shown.doit(), shown)


def _product(first: sp.Expr, second: sp.Expr) -> sp.Expr:
    return sp.Mul(first, second, evaluate=False)


def _sum(*terms: sp.Expr) -> sp.Expr:
    return sp.Add(*terms, evaluate=False)


Stage = Affine | Pointwise


def unit(name: str) -> sp.Symbol:
    """The per-unit symbol of a quantity: the value of one hidden unit (or the scalar gate)."""
    return sp.Symbol(name, real=True)


@dataclass(frozen=True)
class CellEquations:
    """One step of a convention's cell: quantities and stages, inputs ``x`` and ``h_prev``."""

    convention: Convention
    quantities: tuple[Quantity, ...]
    stages: tuple[Stage, ...]

    def quantity(self, name: str) -> Quantity:
        return next(q for q in self.quantities if q.name == name)

    def width(self, name: str, inputs: int, hidden: int) -> int:
        w = self.quantity(name).width
        if w == "input":
            return inputs
        if w == "hidden":
            return hidden
        return self.convention.gate_size(w, hidden)

    def stage(self, target: str) -> Stage:
        return next(s for s in self.stages if s.target == target)


@lru_cache(maxsize=None)
def cell_equations(convention: Convention) -> CellEquations:
    """Build the stage list of one step from the convention's axes."""
    c = convention
    P = {(p.role, p.gate): p for p in c.parameters()}

    def biases(gate: str, roles=("input_bias", "recurrent_bias")) -> tuple[Param, ...]:
        return tuple(P[(role, gate)] for role in roles if (role, gate) in P)

    def products(gate: str, state: str) -> tuple[Product, ...]:
        if c.concatenated:  # the stacking order is the convention's: [h, x] (Colah) or [x, h]
            stacked = ("x", state) if c.input_form == "concatenated_xh" else (state, "x")
            return (Product(P[("input_weight", gate)], stacked),)
        return (Product(P[("input_weight", gate)], ("x",)), Product(P[("recurrent_weight", gate)], (state,)))

    state = c.notation.state

    def reset_product(v: sp.Expr) -> sp.Expr:
        return _product(unit("r"), v) if c.notation.reset_product == "gate_first" else _product(v, unit("r"))

    quantities = [Quantity("x", "input", "input"), Quantity("h_prev", "hidden", "previous state")]
    stages: list[Stage] = []
    gate_roles = {"z": "update gate", "r": "reset gate"}
    for gate, role in ((g, gate_roles[g]) for g in c.gates if g in gate_roles):
        # a gate's width is the gate itself: one unit for scalar gates (Convention.gate_size)
        quantities += [Quantity("a_" + gate, gate, role + " pre-activation"),
                       Quantity(gate, gate, role, f"through the {role} activation")]
        stages += [Affine("a_" + gate, products(gate, "h_prev"), biases(gate)),
                   Pointwise(gate, gate_activation(c.gate_activation, unit("a_" + gate), c.gate_activation_alpha,
                                                   c.gate_activation_beta, c.clip))]

    if c.reset == "none":  # r = 1: the candidate reads the previous state itself
        quantities += [Quantity("a_h", "hidden", "candidate pre-activation")]
        stages += [Affine("a_h", products("h", "h_prev"), biases("h"))]
    elif c.reset == "before":
        written = f"r ⊙ {state}" if c.notation.reset_product == "gate_first" else f"{state} ⊙ r"
        quantities += [Quantity("q", "hidden", "reset state", f"through the reset product {written}"),
                       Quantity("a_h", "hidden", "candidate pre-activation")]
        stages += [as_written("q", reset_product(unit("h_prev"))), Affine("a_h", products("h", "q"), biases("h"))]
    else:
        quantities += [Quantity("a_hx", "hidden", "candidate input part"),
                       Quantity("a_hh", "hidden", "candidate recurrent part"),
                       Quantity("a_h", "hidden", "candidate pre-activation",
                                "through the reset product in the candidate pre-activation")]
        stages += [
            Affine("a_hx", (Product(P[("input_weight", "h")], ("x",)),), biases("h", ("input_bias",))),
            Affine("a_hh", (Product(P[("recurrent_weight", "h")], ("h_prev",)),), biases("h", ("recurrent_bias",))),
            as_written("a_h", _sum(unit("a_hx"), reset_product(unit("a_hh")))),
        ]
    quantities += [Quantity("c", "hidden", "candidate", "through the candidate activation"),
                   Quantity("h", "hidden", "new state", "directly through the state update")]
    z, h_prev, cand = unit("z"), unit("h_prev"), unit("c")
    keep, admit = (z, 1 - z) if c.update_rule == "z_keeps_old" else (1 - z, z)
    kept, new = _product(keep, h_prev), _product(admit, cand)
    stages += [
        Pointwise("c", candidate_activation(c.candidate_activation, unit("a_h"), c.candidate_activation_alpha,
                                            c.candidate_activation_beta, c.clip)),
        as_written("h", _sum(kept, new) if c.notation.update_terms == "state_first" else _sum(new, kept)),
    ]
    return CellEquations(c, tuple(quantities), tuple(stages))

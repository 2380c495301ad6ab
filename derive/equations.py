"""The GRU cell as a list of assignments: the one intermediate representation every emitter reads.

One time step is an ordered tuple of stages. A stage assigns one vector quantity and is either

* :class:`Affine` -- a sum of weight-times-vector products plus biases (the linear stages; their
  derivatives follow index rules: ``dW = delta v^T``, ``dv = W^T delta``), or
* :class:`Pointwise` -- a scalar SymPy expression applied per hidden unit to the per-unit symbols
  of earlier quantities (the elementwise stages; their derivatives come from ``sympy.diff``).

This is the per-unit form that scales to any size (see docs/design.md). The explicit form is the
same stages walked over matrices of symbols (:func:`param_matrix`, the ``symbolic`` engine of
:mod:`grukit.derive.evaluate`), which expands them fully for given small sizes.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from .convention import Convention, Param
from .functions import candidate_activation, gate_activation


@dataclass(frozen=True)
class Quantity:
    """A vector value of one time step. ``width`` is 'input', 'hidden' or a gate id (z, r)."""

    name: str
    width: str
    role: str  # what the sheet calls it


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
    target: str
    expr: sp.Expr

    @property
    def operands(self) -> tuple[str, ...]:
        return tuple(sorted(s.name for s in self.expr.free_symbols))


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
        if c.input_form == "concatenated":
            return (Product(P[("input_weight", gate)], (state, "x")),)
        return (Product(P[("input_weight", gate)], ("x",)), Product(P[("recurrent_weight", gate)], (state,)))

    gate_width = {"z": "z", "r": "r"}
    quantities = [Quantity("x", "input", "input"), Quantity("h_prev", "hidden", "previous state")]
    stages: list[Stage] = []
    for gate, role in (("z", "update gate"), ("r", "reset gate")):
        quantities += [Quantity("a_" + gate, gate_width[gate], role + " pre-activation"),
                       Quantity(gate, gate_width[gate], role)]
        stages += [Affine("a_" + gate, products(gate, "h_prev"), biases(gate)),
                   Pointwise(gate, gate_activation(c.gate_activation, unit("a_" + gate)))]

    if c.reset == "before":
        quantities += [Quantity("q", "hidden", "reset state"), Quantity("a_h", "hidden", "candidate pre-activation")]
        stages += [Pointwise("q", unit("r") * unit("h_prev")), Affine("a_h", products("h", "q"), biases("h"))]
    else:
        quantities += [Quantity("a_hx", "hidden", "candidate input part"),
                       Quantity("a_hh", "hidden", "candidate recurrent part"),
                       Quantity("a_h", "hidden", "candidate pre-activation")]
        stages += [
            Affine("a_hx", (Product(P[("input_weight", "h")], ("x",)),), biases("h", ("input_bias",))),
            Affine("a_hh", (Product(P[("recurrent_weight", "h")], ("h_prev",)),), biases("h", ("recurrent_bias",))),
            Pointwise("a_h", unit("a_hx") + unit("r") * unit("a_hh")),
        ]
    quantities += [Quantity("c", "hidden", "candidate"), Quantity("h", "hidden", "new state")]
    z, h_prev, cand = unit("z"), unit("h_prev"), unit("c")
    keep = z if c.update_rule == "z_keeps_old" else 1 - z
    stages += [
        Pointwise("c", candidate_activation(c.candidate_activation, unit("a_h"))),
        Pointwise("h", keep * h_prev + (1 - keep) * cand),
    ]
    return CellEquations(c, tuple(quantities), tuple(stages))


# --- the explicit form: SymPy matrices for given sizes ----------------------------------------

def param_matrix(convention: Convention, param: Param, inputs: int, hidden: int) -> sp.Matrix:
    """A matrix (column vector for biases) of fresh symbols named after the parameter's key."""
    shape = convention.param_shape(param, inputs, hidden)
    key = convention.key(param)
    if len(shape) == 1:
        return sp.Matrix(shape[0], 1, lambda i, _: sp.Symbol(f"{key}[{i}]", real=True))
    return sp.Matrix(*shape, lambda i, j: sp.Symbol(f"{key}[{i},{j}]", real=True))


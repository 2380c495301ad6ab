"""The backward pass as explicit records, derived once per convention.

:func:`backward_records` walks the stages of :func:`cell_equations` backwards and lowers each into
single assignments, in the order they are evaluated (a pystencils-style assignment collection):

* :class:`LocalRecord` -- a pointwise stage ``y = f(u, ...)``: ``delta_u += delta_y * df/du``, the
  local derivative from ``sympy.diff`` rewritten in forward values where that is shorter
  (``sigma(a_z)(1 - sigma(a_z))`` becomes ``z (1 - z)``); summed over units where ``u`` is a
  scalar gate feeding a hidden-width stage;
* :class:`TransposedRecord` -- an affine stage ``a = M [u, v] + ...``: ``delta_u += (M^T delta_a)``
  restricted to ``u``'s rows (the split of a concatenated operand);
* :class:`WeightRecord` -- ``dM = delta_a [u, v]^T`` (its transpose for row conventions);
* :class:`BiasRecord` -- ``db = delta_a``;
* :class:`SumRecord` -- an adjoint complete: the sum of its named :class:`AdjointPath` contributions.

This module derives; it computes no number. :func:`grukit.derive.numeric.bptt.step_backward` is the
one evaluator of the records (and the only place their index rules get numbers); the sheets print
them, the audits name their paths, and the kernel generator emits them.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from grukit.derive.cell.convention import Convention, Param
from grukit.derive.cell.equations import Affine, CellEquations, Pointwise, cell_equations, unit


def adjoint(name: str) -> sp.Symbol:
    """The per-unit symbol of a quantity's adjoint dL/d(name)."""
    return sp.Symbol("d_" + name, real=True)


# --- the records ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class LocalRecord:
    """``delta[operand] += delta[target] * local`` per unit (a pointwise stage)."""

    target: str
    operand: str
    local: sp.Expr
    reduce: bool  # the operand is a scalar gate feeding a hidden-width stage: sum over units

    @property
    def contribution(self) -> sp.Expr:
        return adjoint(self.target) * self.local


@dataclass(frozen=True)
class TransposedRecord:
    """``delta[operand] += (M^T delta[target])[rows of operand]``, ``M`` the column-form matrix of
    ``param`` multiplying the stacked ``operands`` (product ``index`` of the target's stage)."""

    target: str
    param: Param
    operands: tuple[str, ...]
    operand: str
    index: int


@dataclass(frozen=True)
class WeightRecord:
    """``d[param] = delta[target] [operands]^T`` in column form (transposed for row conventions)."""

    target: str
    param: Param
    operands: tuple[str, ...]


@dataclass(frozen=True)
class BiasRecord:
    """``d[param] = delta[target]``."""

    target: str
    param: Param


Contribution = LocalRecord | TransposedRecord


@dataclass(frozen=True)
class AdjointPath:
    """One path by which the loss reaches a quantity within a step: the stage it comes back through
    (``via``, the contributing record's target) and a name a student reads."""

    via: str
    name: str
    record: Contribution


@dataclass(frozen=True)
class SumRecord:
    """``delta[name] = sum of its paths`` (the adjoint is complete: every later stage contributed)."""

    name: str
    paths: tuple[AdjointPath, ...]


Record = LocalRecord | TransposedRecord | WeightRecord | BiasRecord | SumRecord


@dataclass(frozen=True)
class BackwardRecords:
    """The backward step of one convention's cell: records in evaluation order.

    ``delta[h]`` is the step's seed (from the loss and the next step); every other adjoint is
    assigned by its :class:`SumRecord` before the first record that reads it."""

    equations: CellEquations
    records: tuple[Record, ...]

    def sum_of(self, name: str) -> SumRecord:
        return next(r for r in self.records if isinstance(r, SumRecord) and r.name == name)

    def stage_records(self, target: str) -> tuple[Record, ...]:
        """The records that go back through the stage assigning ``target`` (not its SumRecord)."""
        return tuple(r for r in self.records if not isinstance(r, SumRecord) and r.target == target)


def _in_forward_values(expr: sp.Expr, stage: Pointwise) -> sp.Expr:
    """Write f(u) back as the stage's own value y where it appears (sigma(a) -> z, tanh(a) -> c)."""
    y = unit(stage.target)
    if isinstance(stage.expr, (sp.Function, sp.tanh)) and stage.expr.args:
        return sp.factor_terms(expr.subs(stage.expr, y))
    return expr


def _path_name(eqs: CellEquations, record: Contribution) -> str:
    conv = eqs.convention
    if isinstance(record, TransposedRecord):
        gate = "c" if record.param.gate == "h" else record.param.gate
        return f"through {conv.key(record.param)} ({eqs.quantity(gate).role})"
    return eqs.quantity(record.target).via


@lru_cache(maxsize=None)
def backward_records(convention: Convention) -> BackwardRecords:
    """Lower every backward stage of the convention's cell into records (the one derivation)."""
    eqs = cell_equations(convention)
    records: list[Record] = []
    paths: dict[str, list[AdjointPath]] = {}

    def contribute(record: Contribution) -> None:
        records.append(record)
        paths.setdefault(record.operand, []).append(AdjointPath(record.target, _path_name(eqs, record), record))

    def complete(name: str) -> None:
        records.append(SumRecord(name, tuple(paths.get(name, ()))))

    for stage in reversed(eqs.stages):
        if stage.target != "h":
            complete(stage.target)
        if isinstance(stage, Affine):
            for k, prod in enumerate(stage.products):
                records.append(WeightRecord(stage.target, prod.param, prod.operands))
                for operand in prod.operands:
                    contribute(TransposedRecord(stage.target, prod.param, prod.operands, operand, k))
            records.extend(BiasRecord(stage.target, b) for b in stage.biases)
            continue
        target_width = eqs.quantity(stage.target).width
        for name in stage.operands:
            local = _in_forward_values(sp.diff(stage.expr, unit(name)), stage)
            reduce = eqs.quantity(name).width in ("z", "r") and target_width == "hidden" \
                and convention.gate_width == "scalar"
            contribute(LocalRecord(stage.target, name, local, reduce))
    complete("x")
    complete("h_prev")
    return BackwardRecords(eqs, tuple(records))

"""The backward pass as explicit records, derived once per convention, evaluated through time.

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
* :class:`SumRecord` -- an adjoint complete: the sum of its named :class:`Path` contributions.

These are the only place the index rules of the affine stages are written down. :func:`step_backward`
is the one evaluator of the records; the sheets print them, the audits name their paths, and the
kernel generator emits them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import sympy as sp

from .convention import Convention, Param
from .equations import Affine, CellEquations, Pointwise, cell_equations, unit
from .evaluate import Engine, StepTrace, column_matrix
from .losses import LossHead, loss_gradient, loss_term


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
class Path:
    """One path by which the loss reaches a quantity within a step: the stage it comes back through
    (``via``, the contributing record's target) and a name a student reads."""

    via: str
    name: str
    record: Contribution


@dataclass(frozen=True)
class SumRecord:
    """``delta[name] = sum of its paths`` (the adjoint is complete: every later stage contributed)."""

    name: str
    paths: tuple[Path, ...]


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
    paths: dict[str, list[Path]] = {}

    def contribute(record: Contribution) -> None:
        records.append(record)
        paths.setdefault(record.operand, []).append(Path(record.target, _path_name(eqs, record), record))

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


# --- numbers -------------------------------------------------------------------------------------

@dataclass
class ProductValues:
    """A matrix-vector product: its value and, for sheets, each entry's terms ``M[j, i] v[i]``."""

    result: np.ndarray
    terms: np.ndarray | None = None


def product(eng: Engine, matrix: np.ndarray, vector: np.ndarray, detail: bool) -> ProductValues:
    return ProductValues(eng.matvec(matrix, vector), eng.product_terms(matrix, vector) if detail else None)


@dataclass
class StepGradient:
    """Every value of one step's backward pass, as the records assign them.

    ``adjoints``: each complete adjoint; ``paths[name]``: its contributions, path by path;
    ``contributions``: the value of each contribution record; ``units``: a scalar gate's
    contribution per unit, before the sum over units; ``params``: this step's contribution to each
    parameter; ``products[(target, k)]``: the transposed product ``M^T delta[target]`` of product k
    of that stage."""

    adjoints: dict[str, np.ndarray]
    params: dict[Param, np.ndarray]
    paths: dict[str, list[tuple[Path, np.ndarray]]] = field(default_factory=dict)
    contributions: dict[Contribution, np.ndarray] = field(default_factory=dict)
    units: dict[LocalRecord, np.ndarray] = field(default_factory=dict)
    products: dict[tuple[str, int], ProductValues] = field(default_factory=dict)


def step_backward(rec: BackwardRecords, params: dict[Param, np.ndarray], trace: StepTrace,
                  d_h: np.ndarray, eng: Engine, detail: bool = False) -> StepGradient:
    """Evaluate the records of one step, given dL/dh_t (all paths from later steps and losses)."""
    eqs = rec.equations
    column = eqs.convention.orientation == "column"
    values = trace.values
    out = StepGradient({"h": d_h}, {})
    contributions = out.contributions

    def operand_vector(names: tuple[str, ...]) -> np.ndarray:
        return np.concatenate([values[n] for n in names])

    for r in rec.records:
        if isinstance(r, SumRecord):
            parts = [(p, contributions[p.record]) for p in r.paths]
            out.paths[r.name] = parts
            out.adjoints[r.name] = eng.add(*(v for _, v in parts)) if parts else eng.zeros(values[r.name].shape)
        elif isinstance(r, LocalRecord):
            d_target = out.adjoints[r.target]
            names = sorted(x.name for x in r.contribution.free_symbols)
            env = {n: (d_target if n == adjoint(r.target).name else values[n]) for n in names}
            value = eng.apply(r.contribution, env) if env else eng.zeros(values[r.operand].shape)
            if r.reduce:
                out.units[r] = value
                value = eng.total(value)
            contributions[r] = value
        elif isinstance(r, TransposedRecord):
            key = (r.target, r.index)
            if key not in out.products:
                M = column_matrix(eqs, params[r.param])
                out.products[key] = product(eng, M.T, out.adjoints[r.target], detail)
            start = sum(values[n].shape[0] for n in r.operands[:r.operands.index(r.operand)])
            contributions[r] = out.products[key].result[start:start + values[r.operand].shape[0]]
        elif isinstance(r, WeightRecord):
            d_M = eng.outer(out.adjoints[r.target], operand_vector(r.operands))
            out.params[r.param] = d_M if column else d_M.T
        else:
            out.params[r.param] = out.adjoints[r.target]
    return out


# --- the loss head -------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def softmax_probabilities(outputs: int) -> tuple[sp.Expr, ...]:
    """exp(o_k) / sum_j exp(o_j) over the loss term's output symbols."""
    _, o, _ = loss_term("softmax_cross_entropy", outputs)
    return tuple(sp.exp(ok) / sum(sp.exp(oj) for oj in o) for ok in o)


@dataclass
class LossStep:
    """One loss term: the output layer forward and back, the term and its gradient at that step."""

    step: int  # 0-based time step
    target: np.ndarray
    output: np.ndarray  # o = W_o h + b_o, or h itself without an output layer
    term: object
    d_output: np.ndarray  # dL/do (by sympy.diff of the term)
    d_h: np.ndarray  # dL/dh_t from this term
    output_product: ProductValues | None = None  # W_o h (column form)
    d_h_product: ProductValues | None = None  # W_o^T dL/do
    d_W_o: np.ndarray | None = None  # this term's W_o gradient, in the convention's orientation
    probabilities: np.ndarray | None = None  # softmax heads


@dataclass
class LossValues:
    loss: object
    steps: list[LossStep]
    d_W_o: np.ndarray | None
    d_b_o: np.ndarray | None

    def d_h(self) -> dict[int, np.ndarray]:
        return {s.step: s.d_h for s in self.steps}


def loss_values(head: LossHead, traces: list[StepTrace], eng: Engine, orientation: str,
                detail: bool = False) -> LossValues:
    """The head's loss, dL/dh_t and output-layer gradients; ``head`` holds the engine's numbers."""
    column = orientation == "column"
    expr, o_syms, y_syms = loss_term(head.kind, head.outputs)
    grad_exprs = loss_gradient(head.kind, head.outputs)
    M = None if head.W_o is None else (head.W_o if column else head.W_o.T)
    steps = []
    for t, target in zip(head.steps, head.targets):
        h = traces[t].values["h"]
        s = LossStep(t, target, h, None, None, None)
        if M is not None:
            s.output_product = product(eng, M, h, detail)
            s.output = s.output_product.result if head.b_o is None else eng.add(s.output_product.result, head.b_o)
        env = {sym.name: v for sym, v in zip(o_syms, s.output)} | {sym.name: v for sym, v in zip(y_syms, target)}
        s.term = eng.scalar(expr, env)
        s.d_output = eng.array_of([eng.scalar(g, env) for g in grad_exprs])
        if head.kind == "softmax_cross_entropy":
            s.probabilities = eng.array_of([eng.scalar(p, env) for p in softmax_probabilities(head.outputs)])
        if M is None:
            s.d_h = s.d_output
        else:
            s.d_h_product = product(eng, M.T, s.d_output, detail)
            s.d_h = s.d_h_product.result
            outer = eng.outer(s.d_output, h)
            s.d_W_o = outer if column else outer.T
        steps.append(s)
    d_W = eng.add(*(s.d_W_o for s in steps)) if M is not None else None
    d_b = eng.add(*(s.d_output for s in steps)) if head.b_o is not None else None
    return LossValues(eng.add(*(s.term for s in steps)), steps, d_W, d_b)


# --- through time --------------------------------------------------------------------------------

@dataclass
class Gradient:
    """The result of back-propagation through time."""

    loss: object
    params: dict[Param, np.ndarray]
    output: dict[str, np.ndarray]  # W_o, b_o gradients when the loss has an output layer
    inputs: np.ndarray  # T x D
    h0: np.ndarray
    steps: list[StepGradient]  # per time step: adjoints, paths and parameter contributions
    head: LossValues
    seeds: list[list[tuple[str, np.ndarray]]]  # per step: the parts of dL/dh_t ("loss", "next step")


def backward(convention: Convention, params: dict[Param, np.ndarray], traces: list[StepTrace],
             head: LossHead, eng: Engine, only_step: int | None = None, detail: bool = False) -> Gradient:
    """BPTT: every parameter, input and h0 gradient of the loss. ``only_step`` keeps one loss term."""
    rec = backward_records(convention)
    values = loss_values(head, traces, eng, convention.orientation, detail)
    d_h_loss = {t: v for t, v in values.d_h().items() if only_step is None or t == only_step}
    T = len(traces)
    H = traces[0].values["h"].shape[0]
    carry = None
    steps: list[StepGradient] = [None] * T  # type: ignore[list-item]
    seeds: list[list[tuple[str, np.ndarray]]] = [[] for _ in range(T)]
    for t in reversed(range(T)):
        if t in d_h_loss:
            seeds[t].append(("loss", d_h_loss[t]))
        if carry is not None:
            seeds[t].append(("next step", carry))
        parts = [v for _, v in seeds[t]]
        d_h = eng.add(*parts) if parts else eng.zeros((H,))
        steps[t] = step_backward(rec, params, traces[t], d_h, eng, detail)
        carry = steps[t].adjoints["h_prev"]
    totals = {p: eng.add(*(s.params[p] for s in steps)) for p in convention.parameters()}
    output = {}
    if values.d_W_o is not None:
        output["W_o"] = values.d_W_o
    if values.d_b_o is not None:
        output["b_o"] = values.d_b_o
    inputs = np.array([s.adjoints["x"] for s in steps], dtype=steps[0].adjoints["x"].dtype)
    return Gradient(values.loss, totals, output, inputs, carry, steps, values, seeds)

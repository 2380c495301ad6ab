"""Back-propagation through time in numbers: the backward records evaluated step by step.

:func:`step_backward` is the one evaluator of the records of :mod:`grukit.derive.cell.records`;
:func:`loss_values` evaluates a loss head (its terms, dL/do, dL/dh_t and the output layer's
gradients) and :func:`backward` walks the steps from last to first, seeding each with the loss and
the next step. What each value is, the records say; here it only gets a number in some
:class:`~grukit.derive.numeric.evaluate.Engine`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from grukit.derive.cell.convention import Convention, Param
from grukit.derive.cell.losses import LossHead, loss_gradient, loss_term, softmax_probabilities
from grukit.derive.cell.records import (
    AdjointPath,
    BackwardRecords,
    Contribution,
    LocalRecord,
    SumRecord,
    TransposedRecord,
    WeightRecord,
    adjoint,
    backward_records,
)
from grukit.derive.numeric.evaluate import Engine, StepTrace, column_matrix

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
    paths: dict[str, list[tuple[AdjointPath, np.ndarray]]] = field(default_factory=dict)
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
    output = {}
    if values.d_W_o is not None:
        output["W_o"] = values.d_W_o
    if values.d_b_o is not None:
        output["b_o"] = values.d_b_o
    whole = None if detail else eng.sequence_backward(convention, params, traces, d_h_loss)
    if whole is not None:  # an engine that runs the sequence itself keeps no per-step values
        totals, inputs, h0 = whole
        return Gradient(values.loss, totals, output, inputs, h0, [], values, [])
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
    inputs = np.array([s.adjoints["x"] for s in steps], dtype=steps[0].adjoints["x"].dtype)
    return Gradient(values.loss, totals, output, inputs, carry, steps, values, seeds)

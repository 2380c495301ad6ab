"""Every named number of a problem, each computed from the numbers of its own inputs.

A hand calculation is a chain of named numbers: ``a_z[1]``, ``z[1]``, ``dL/dz[1]``, the part of
``dL/dh[0]`` through ``U_z``, ``dL/dW_z`` ... An audit needs each of them computed *from the
values its inputs have in the calculation under audit* -- the claimed ones where the claims give
them -- and needs to know which inputs those are. :class:`Walk` is that walk: the stages of
:func:`~grukit.derive.cell.equations.cell_equations` forward, the loss head, the records of
:func:`~grukit.derive.cell.records.backward_records` backward through time, then the sums over steps.
It evaluates nothing itself: a pointwise stage is ``eng.apply`` of the stage's expression, a
backward record is :func:`~grukit.derive.numeric.bptt.step_backward` of that one record, the loss head
is :func:`~grukit.derive.numeric.bptt.loss_values`; so the audit reads the same equations, records and
evaluators as every other part of grukit. With no claims and the exact engine it gives
:func:`~grukit.derive.numeric.solve.solve`'s numbers (a test checks it).

A :class:`Mutation` is a known mistake written as a change of that data (a path left out of a
record, another convention's equations, a transposed weight); :mod:`grukit.derive.audit.diagnose` walks
each and sees which reproduces a claimed number.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from grukit.derive.cell.convention import Convention, Param
from grukit.derive.cell.equations import Affine, cell_equations
from grukit.derive.cell.layouts import LAYOUTS
from grukit.derive.cell.losses import LossHead, loss_gradient, loss_term, softmax_probabilities
from grukit.derive.cell.records import (
    BackwardRecords,
    BiasRecord,
    LocalRecord,
    SumRecord,
    TransposedRecord,
    WeightRecord,
    adjoint,
    backward_records,
)
from grukit.derive.cell.terms import terms_of
from grukit.derive.numeric.bptt import loss_values, step_backward
from grukit.derive.numeric.evaluate import Engine, StepTrace, column_matrix
from grukit.derive.numeric.problem import Problem

SOFTMAX_HEADS = ("softmax_cross_entropy",)


@dataclass(frozen=True)
class NodeInfo:
    """One named number: what it is and the named numbers it is computed from."""

    name: str
    inputs: tuple[str, ...]
    what: str
    activation: str = ""  # the function, when the node is one nonlinear function of its one input


@dataclass(eq=False)
class Mutation:
    """A known mistake as a change to what the walk reads (see :mod:`grukit.derive.audit.diagnose`)."""

    text: str
    convention: Convention | None = None
    params: dict | None = None  # Param -> replacement value (exact numbers)
    records: BackwardRecords | None = None
    transposed_backward: Param | None = None  # M where M^T belongs, in the backward products of M
    state_lag: int | None = 1  # step t reads h[t - lag]; None: h0 at every step (state never carried)


def quantity_name(q: str, t: int) -> str:
    """The name of quantity ``q`` of step ``t`` (1-based): ``h_prev`` of step t is ``h[t-1]``."""
    if q == "h_prev":
        return f"h[{t - 1}]"
    return f"{'candidate' if q == 'c' else q}[{t}]"


def grad_name(name: str) -> str:
    return "dL/d" + name


def product_name(conv: Convention, key: str, operands: list[str]) -> str:
    """``W_z x[1]`` (column conventions) or ``x[1] W_z`` (row), ``W_z [h[0], x[1]]`` when stacked."""
    operand = operands[0] if len(operands) == 1 else "[" + ", ".join(operands) + "]"
    return f"{key} {operand}" if conv.orientation == "column" else f"{operand} {key}"


class Walk:
    """Every named number of ``problem`` in engine ``eng``.

    ``given``: node name -> [(index, value)], the claimed numbers; each replaces the computed one
    for everything after it. ``computed[name]`` is a node's value from its inputs' values (given
    ones included), ``values[name]`` the value it passes on, ``info`` the nodes in evaluation order,
    ``aliases`` other names of a node (alias -> name)."""

    def __init__(self, problem: Problem, eng: Engine, given: dict | None = None,
                 mutation: Mutation | None = None):
        m = mutation or Mutation("")
        self.problem, self.eng, self.given, self.mutation = problem, eng, given or {}, m
        self.convention = m.convention or problem.convention
        self.eqs = cell_equations(self.convention)
        self.rec = m.records or backward_records(self.convention)
        exact = dict(problem.params) | (m.params or {})
        self.params = {p: eng.array(v) for p, v in exact.items()}
        self.values: dict[str, np.ndarray] = {}
        self.computed: dict[str, np.ndarray] = {}
        self.info: dict[str, NodeInfo] = {}
        self.aliases: dict[str, str] = {}
        self.steps: list[dict[str, str]] = []  # per step: quantity -> node name
        self._path_names = {(p.via, r.name): p.name for r in backward_records(self.convention).records
                            if isinstance(r, SumRecord) for p in r.paths}
        self._forward()
        if problem.loss is not None:
            self._head()
            self._backward()

    # --- bookkeeping ---------------------------------------------------------------------------
    def node(self, name: str, inputs, compute, what: str, activation: str = "") -> np.ndarray:
        value = np.asarray(compute())
        self.info[name] = NodeInfo(name, tuple(self.name(i) for i in inputs), what, activation)
        self.computed[name] = value
        if name in self.given:
            value = value.copy()
            for index, number in self.given[name]:
                value[index] = self.eng.array([number])[0]
        self.values[name] = value
        return value

    def alias(self, other: str, name: str) -> None:
        target = self.name(name)
        if other != target:
            self.aliases[other] = target

    def value(self, name: str) -> np.ndarray:
        return self.values[self.name(name)]

    def _sum(self, name: str, parts: list[str], what: str) -> None:
        """A node that adds ``parts``; a single part is the node itself (named so when it was made)."""
        if len(parts) == 1:
            self.alias(name, parts[0])
            return
        self.node(name, parts, lambda: self.eng.add(*(self.value(p) for p in parts)), what)

    def sole(self, total: str, part: str, single: bool) -> str:
        """The name of a part that may be all of its sum: the sum's own name then (the part's, an alias)."""
        if single:
            self.alias(part, total)
            return total
        return part

    # --- forward -------------------------------------------------------------------------------
    def _forward(self) -> None:
        p, eng, eqs = self.problem, self.eng, self.eqs
        inputs, h0 = eng.array(p.inputs), eng.array(p.h0)
        self.node("h[0]", (), lambda: h0, "the initial state")
        self.alias("h0", "h[0]")
        for t in range(1, p.steps + 1):
            self.node(f"x[{t}]", (), lambda t=t: inputs[t - 1], f"the input of step {t}")
        lag = self.mutation.state_lag
        for t in range(1, p.steps + 1):
            names = {"x": f"x[{t}]", "h_prev": f"h[{0 if lag is None else max(t - lag, 0)}]"}
            for stage in eqs.stages:
                target = quantity_name(stage.target, t)
                role = eqs.quantity(stage.target).role
                if isinstance(stage, Affine):
                    parts = [self._product(stage, k, names) for k in range(len(stage.products))]
                    biases = [self.params[b] for b in stage.biases]
                    self.node(target, parts, lambda parts=parts, biases=biases: eng.add(
                        *(self.values[q] for q in parts), *biases), f"{role}, step {t}")
                else:
                    ops = {o: names[o] for o in stage.operands}
                    self.node(target, ops.values(), lambda stage=stage, ops=ops: eng.apply(
                        stage.expr, {o: self.values[n] for o, n in ops.items()}), f"{role}, step {t}",
                        activation=self._activation(stage.target, len(ops)))
                names[stage.target] = target
            for term in terms_of(eqs):
                ops = {o: names[o] for o in term.operands}
                self.node(term.name.format(**names), ops.values(), lambda term=term, ops=ops: eng.apply(
                    term.expr, {o: self.values[n] for o, n in ops.items()}), f"{term.what}, step {t}")
            self.steps.append(names)

    def _activation(self, target: str, operands: int) -> str:
        """The activation's name when the stage is one (a gate or the candidate of its pre-activation)."""
        if operands != 1 or target not in ("z", "r", "c"):
            return ""
        return self.convention.candidate_activation if target == "c" else self.convention.gate_activation

    def _product(self, stage: Affine, k: int, names: dict[str, str]) -> str:
        prod = stage.products[k]
        ops = [names[o] for o in prod.operands]
        name = product_name(self.convention, self.convention.key(prod.param), ops)
        M = column_matrix(self.eqs, self.params[prod.param])
        self.node(name, ops, lambda: self.eng.matvec(M, np.concatenate([self.values[o] for o in ops])),
                  f"the product {name}")
        return name

    # --- the loss head -------------------------------------------------------------------------
    def _head(self) -> None:
        head, eng = self.problem.loss, self.eng
        W_o = None if head.W_o is None else eng.array(head.W_o)
        b_o = None if head.b_o is None else eng.array(head.b_o)
        expr, o_syms, y_syms = loss_term(head.kind, head.outputs)
        grads = loss_gradient(head.kind, head.outputs)
        self.loss_steps = [s + 1 for s in head.steps]
        terms = []
        for t, target in zip(self.loss_steps, head.targets):
            h = f"h[{t}]"
            y = {s.name: v for s, v in zip(y_syms, eng.array(target))}
            if W_o is not None:
                out = self._output_layer(t, W_o, b_o)
            else:
                out = h
            env = lambda out=out, y=y: {s.name: v for s, v in zip(o_syms, self.value(out))} | y  # noqa: E731
            if head.kind in SOFTMAX_HEADS:
                self.node(f"p[{t}]", (out,), lambda env=env: eng.array_of(
                    [eng.scalar(pk, env()) for pk in softmax_probabilities(head.outputs)]),
                    f"softmax probabilities, step {t}", activation="softmax")
            term = self.sole("loss", f"loss[{t}]", len(self.loss_steps) == 1)
            self.node(term, (out,), lambda env=env: eng.array_of([eng.scalar(expr, env())]),
                      f"loss term of step {t}")
            terms.append(term)
            d_out = f"dL/do[{t}]" if W_o is not None else self._loss_part(t)
            self.node(d_out, (out,), lambda env=env: eng.array_of([eng.scalar(g, env()) for g in grads]),
                      f"gradient of the loss term of step {t} w.r.t. its output")
            if W_o is not None:
                self._output_gradients(t, W_o, d_out, h)
            else:
                self.alias(f"dL/do[{t}]", d_out)
        self._sum("loss", terms, "the loss")
        if W_o is not None:
            self._sum("dL/dW_o", [self.name(f"dL/dW_o|t={t}") for t in self.loss_steps], "gradient w.r.t. W_o")
        if b_o is not None:
            self._sum("dL/db_o", [f"dL/do[{t}]" for t in self.loss_steps], "gradient w.r.t. b_o")

    def _output_layer(self, t: int, W_o, b_o) -> str:
        M = W_o if self.convention.orientation == "column" else W_o.T
        h = f"h[{t}]"
        prod = product_name(self.convention, "W_o", [h])
        self.node(prod, (h,), lambda: self.eng.matvec(M, self.value(h)), f"the product {prod}")
        if b_o is None:
            self.alias(f"o[{t}]", prod)
            return prod
        what = "logits" if self.problem.loss.kind in SOFTMAX_HEADS else "the output (y-hat)"
        self.node(f"o[{t}]", (prod,), lambda: self.eng.add(self.value(prod), b_o), f"{what}, step {t}")
        return f"o[{t}]"

    def _output_gradients(self, t: int, W_o, d_out: str, h: str) -> None:
        """W_o^T dL/do and dL/do h^T by the loss head's own evaluator: a weighted-sum head's dL/do
        is its weight vector G, so G = dL/do (given or computed) is carried back as written."""
        def through(field: str):
            probe = LossHead("weighted_sum", (0,), (self.value(d_out),), W_o)
            values = loss_values(probe, [StepTrace({"h": self.value(h)})], self.eng, self.convention.orientation)
            return getattr(values.steps[0], field)

        part = self._loss_part(t)
        self.node(part, (d_out,), lambda: through("d_h"), f"the part of dL/dh[{t}] from the loss")
        self.alias(f"W_o^T {d_out}" if self.convention.orientation == "column" else f"{d_out} W_o^T", part)
        self.node(self.sole("dL/dW_o", f"dL/dW_o|t={t}", len(self.loss_steps) == 1), (d_out, h),
                  lambda: through("d_W_o"), f"step {t}'s part of dL/dW_o")

    def _loss_part(self, t: int) -> str:
        """dL/dh[t]|L: all of dL/dh[t] at the last step, where no later step adds to it."""
        return self.sole(f"dL/dh[{t}]", f"dL/dh[{t}]|L", t == self.problem.steps)

    # --- backward through time -----------------------------------------------------------------
    def _backward(self) -> None:
        T, conv = self.problem.steps, self.convention
        carried: list[str] = []
        for t in range(T, 0, -1):
            parts = ([self.name(f"dL/dh[{t}]|L")] if t in self.loss_steps else []) + carried
            if parts:
                self._sum(f"dL/dh[{t}]", parts, f"gradient w.r.t. the state h[{t}]")
            else:  # no loss at or after this step
                self.node(f"dL/dh[{t}]", (), lambda: self.eng.zeros((self.problem.hidden_size,)),
                          f"gradient w.r.t. the state h[{t}]")
            carried = self._step(t)
        self._sum("dL/dh[0]", carried, "gradient w.r.t. the initial state h[0]")
        self.alias("dL/dh0", "dL/dh[0]")
        totals = {}
        for p in conv.parameters():
            key = grad_name(conv.key(p))
            totals[p] = key
            self._sum(key, [self.name(f"{key}|t={t}") for t in range(1, T + 1)], f"gradient w.r.t. {conv.key(p)}")
        if self.problem.layout is not None:
            self._packed(totals)

    def _packed(self, totals: dict[Param, str]) -> None:
        """The parameter gradients as the framework's arrays (the problem's own names)."""
        p, conv = self.problem, self.convention
        layout = LAYOUTS[p.layout]
        blocks = layout.blocks(conv, p.input_size, p.hidden_size)
        for array in layout.array_shapes(conv, p.input_size, p.hidden_size):
            inputs = [totals[q] for q, b in blocks.items() if b.array == array]
            self.node(grad_name(array), inputs, lambda array=array: layout.pack(
                conv, {q: self.value(n) for q, n in totals.items()}, p.input_size,
                p.hidden_size)[array], f"gradient w.r.t. the framework array {array}")

    def name(self, name: str) -> str:
        return self.aliases.get(name, name)

    def _step(self, t: int) -> list[str]:
        """The records of step ``t``; returns the names of the parts of dL/dh[t-1]."""
        conv, T = self.convention, self.problem.steps
        names = self.steps[t - 1]
        adj = {q: grad_name(quantity_name(q, t)) for q in names}
        adj["h"] = f"dL/dh[{t}]"
        trace = lambda: StepTrace({q: self.values[n] for q, n in names.items()})  # noqa: E731
        state_parts = []
        for r in self.rec.records:
            if isinstance(r, SumRecord):
                if r.name != "h_prev":
                    self._sum(adj[r.name], [self._part(r.name, p.via, t) for p in r.paths],
                              f"gradient w.r.t. {quantity_name(r.name, t)}")
                continue
            d = self.name(adj[r.target])
            if isinstance(r, (WeightRecord, BiasRecord)):
                key = grad_name(conv.key(r.param))
                ops = [names[o] for o in r.operands] if isinstance(r, WeightRecord) else []
                self.node(self.sole(key, f"{key}|t={t}", T == 1), [d, *ops],
                          lambda r=r, d=d: self._record(r, d, trace()), f"step {t}'s part of {key}")
                continue
            single = r.operand != "h_prev" and len(self.rec.sum_of(r.operand).paths) == 1
            name = self.sole(adj[r.operand], self._part(r.operand, r.target, t), single)
            if isinstance(r, LocalRecord):
                symbols = sorted(s.name for s in r.local.free_symbols if s != adjoint(r.target))
                ops = [names[s] for s in symbols]
            else:
                ops = []
                if len(r.operands) == 1:
                    key = conv.key(r.param)
                    self.alias(f"{key}^T {d}" if conv.orientation == "column" else f"{d} {key}^T", name)
            self.node(name, [d, *ops], lambda r=r, d=d: self._record(r, d, trace()),
                      f"the part of dL/d{quantity_name(r.operand, t)} {self._path_names[(r.target, r.operand)]}")
            if r.operand == "h_prev" and any(p.record == r for p in self.rec.sum_of("h_prev").paths):
                state_parts.append(name)
        return state_parts

    def _part(self, operand: str, via: str, t: int) -> str:
        return f"{grad_name(quantity_name(operand, t))}|{quantity_name(via, t)}"

    def _record(self, r, d_target: str, trace: StepTrace) -> np.ndarray:
        """One record evaluated by the records' own evaluator, its target's adjoint taken as given:
        re-targeted at ``h``, the record reads that adjoint as the step's seed dL/dh."""
        params = self.params
        m = self.mutation
        if isinstance(r, TransposedRecord) and r.param == m.transposed_backward:
            params = dict(params) | {r.param: params[r.param].T}
        single = BackwardRecords(self.eqs, (replace(r, target="h"),))
        out = step_backward(single, params, trace, self.value(d_target), self.eng)
        if isinstance(r, (WeightRecord, BiasRecord)):
            return out.params[r.param]
        return out.contributions[single.records[0]]

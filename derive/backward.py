"""Reverse mode over the stage list, derived once per convention, evaluated through time.

:func:`cell_adjoint` walks the stages of :func:`cell_equations` backwards. For a pointwise stage
``y = f(u, ...)`` it asks ``sympy.diff`` for each local derivative ``df/du`` and rewrites it in the
forward values where that is shorter (``sigma(a_z)(1 - sigma(a_z))`` becomes ``z (1 - z)``); the
adjoint contribution is ``delta_u += delta_y * df/du`` (summed over units where ``u`` is a scalar
gate). For an affine stage ``a = sum_k M_k v_k + sum b`` the index rules give
``delta_v_k += M_k^T delta_a``, ``dM_k += delta_a v_k^T``, ``db += delta_a``.

The resulting :class:`CellAdjoint` is the one derivation: :func:`backward` evaluates it with any
engine, the sheet prints it and the kernel generator emits it.
"""
from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class LocalDerivative:
    """``delta_operand += delta_target * local`` (a per-unit SymPy expression)."""

    target: str
    operand: str
    local: sp.Expr
    reduce: bool  # the operand is a scalar gate feeding a hidden-width stage: sum over units

    @property
    def contribution(self) -> sp.Expr:
        return adjoint(self.target) * self.local


@dataclass(frozen=True)
class AdjointStage:
    """The backward step of one forward stage."""

    stage: Affine | Pointwise
    locals: tuple[LocalDerivative, ...] = ()  # empty for affine stages (index rules)


@dataclass(frozen=True)
class CellAdjoint:
    equations: CellEquations
    stages: tuple[AdjointStage, ...]  # in backward order


def _in_forward_values(expr: sp.Expr, stage: Pointwise) -> sp.Expr:
    """Write f(u) back as the stage's own value y where it appears (sigma(a) -> z, tanh(a) -> c)."""
    y = unit(stage.target)
    if isinstance(stage.expr, (sp.Function, sp.tanh)) and stage.expr.args:
        return sp.factor_terms(expr.subs(stage.expr, y))
    return expr


@lru_cache(maxsize=None)
def cell_adjoint(convention: Convention) -> CellAdjoint:
    eqs = cell_equations(convention)
    out = []
    for stage in reversed(eqs.stages):
        if isinstance(stage, Affine):
            out.append(AdjointStage(stage))
            continue
        target_width = eqs.quantity(stage.target).width
        locals_ = []
        for name in stage.operands:
            local = _in_forward_values(sp.diff(stage.expr, unit(name)), stage)
            reduce = eqs.quantity(name).width in ("z", "r") and target_width == "hidden" \
                and convention.gate_width == "scalar"
            locals_.append(LocalDerivative(stage.target, name, local, reduce))
        out.append(AdjointStage(stage, tuple(locals_)))
    return CellAdjoint(eqs, tuple(out))


# --- numbers -------------------------------------------------------------------------------------

@dataclass
class StepGradient:
    """Adjoints of every quantity of one step and that step's contribution to each parameter."""

    adjoints: dict[str, np.ndarray]
    params: dict[Param, np.ndarray]


def step_backward(adj: CellAdjoint, params: dict[Param, np.ndarray], trace: StepTrace,
                  d_h: np.ndarray, eng: Engine) -> StepGradient:
    """Back through one step, given dL/dh_t (all paths from later steps and losses)."""
    eqs = adj.equations
    values = trace.values
    deltas: dict[str, list[np.ndarray]] = {"h": [d_h]}
    grads: dict[Param, np.ndarray] = {}
    total: dict[str, np.ndarray] = {}

    def adjoint_of(name: str) -> np.ndarray:
        """The complete adjoint of ``name``: every later stage has contributed when it is asked for."""
        if name not in total:
            parts = deltas.get(name)
            total[name] = eng.add(*parts) if parts else eng.zeros(values[name].shape)
        return total[name]

    for a in adj.stages:
        s = a.stage
        d_target = adjoint_of(s.target)
        if isinstance(s, Pointwise):
            for loc in a.locals:
                names = sorted(x.name for x in loc.contribution.free_symbols)
                env = {n: (d_target if n == "d_" + s.target else values[n]) for n in names}
                contrib = eng.apply(loc.contribution, env) if env else eng.zeros(values[loc.operand].shape)
                if loc.reduce:
                    contrib = eng.total(contrib)
                deltas.setdefault(loc.operand, []).append(contrib)
            continue
        for prod in s.products:
            operand = np.concatenate([values[n] for n in prod.operands])
            M = column_matrix(eqs, params[prod.param])
            d_M = eng.outer(d_target, operand)
            grads[prod.param] = d_M if eqs.convention.orientation == "column" else d_M.T
            d_operand = eng.matvec(M.T, d_target)
            start = 0
            for n in prod.operands:
                size = values[n].shape[0]
                deltas.setdefault(n, []).append(d_operand[start:start + size])
                start += size
        for b in s.biases:
            grads[b] = d_target
    for name in ("x", "h_prev"):
        adjoint_of(name)
    return StepGradient(total, grads)


@dataclass
class Gradient:
    """The result of back-propagation through time."""

    loss: object
    params: dict[Param, np.ndarray]
    output: dict[str, np.ndarray]  # W_o, b_o gradients when the loss has an output layer
    inputs: np.ndarray  # T x D
    h0: np.ndarray
    steps: list[StepGradient]  # per time step: adjoints and parameter contributions


def loss_and_output_grads(head: LossHead, traces: list[StepTrace], eng: Engine, orientation: str):
    """Loss value, dL/dh_t from the head, output-layer gradients, per-step outputs.

    ``head`` holds its targets and output layer in the engine's numbers."""
    W_o, b_o = head.W_o, head.b_o
    expr, o_syms, y_syms = loss_term(head.kind, head.outputs)
    grad_exprs = loss_gradient(head.kind, head.outputs)
    H = traces[0].values["h"].shape[0]
    d_h = {}
    d_W = eng.zeros(W_o.shape) if W_o is not None else None
    d_b = eng.zeros(b_o.shape) if b_o is not None else None
    losses, d_outputs, outputs = [], [], []
    for t, target in zip(head.steps, head.targets):
        h = traces[t].values["h"]
        if W_o is not None:
            M = W_o if orientation == "column" else W_o.T
            o = eng.matvec(M, h)
            if b_o is not None:
                o = eng.add(o, b_o)
        else:
            M, o = None, h
        env = {s.name: v for s, v in zip(o_syms, o)} | {s.name: v for s, v in zip(y_syms, target)}
        losses.append(eng.scalar(expr, env))
        d_o = eng.array_of([eng.scalar(g, env) for g in grad_exprs])
        d_outputs.append(d_o)
        outputs.append(o)
        if M is not None:
            outer = eng.outer(d_o, h)
            d_W = eng.add(d_W, outer if orientation == "column" else outer.T)
            if d_b is not None:
                d_b = eng.add(d_b, d_o)
            d_h[t] = eng.matvec(M.T, d_o)
        else:
            d_h[t] = d_o
    assert all(v.shape == (H,) for v in d_h.values())
    return eng.add(*losses), d_h, d_W, d_b, losses, d_outputs, outputs


def backward(convention: Convention, params: dict[Param, np.ndarray], traces: list[StepTrace],
             head: LossHead, eng: Engine, only_step: int | None = None) -> Gradient:
    """BPTT: every parameter, input and h0 gradient of the loss. ``only_step`` keeps one loss term."""
    adj = cell_adjoint(convention)
    loss, d_h_loss, d_W, d_b, *_ = loss_and_output_grads(
        head, traces, eng, convention.orientation)
    if only_step is not None:
        d_h_loss = {t: v for t, v in d_h_loss.items() if t == only_step}
    T = len(traces)
    H = traces[0].values["h"].shape[0]
    carry = eng.zeros((H,))
    steps: list[StepGradient] = [None] * T  # type: ignore[list-item]
    for t in reversed(range(T)):
        d_h = eng.add(carry, d_h_loss[t]) if t in d_h_loss else carry
        steps[t] = step_backward(adj, params, traces[t], d_h, eng)
        carry = steps[t].adjoints["h_prev"]
    totals = {p: eng.add(*(s.params[p] for s in steps)) for p in convention.parameters()}
    output = {}
    if d_W is not None:
        output["W_o"] = d_W
    if d_b is not None:
        output["b_o"] = d_b
    inputs = np.array([s.adjoints["x"] for s in steps], dtype=steps[0].adjoints["x"].dtype)
    return Gradient(loss, totals, output, inputs, carry, steps)

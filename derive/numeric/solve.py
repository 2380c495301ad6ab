"""A problem, solved: forward traces and gradients in a chosen engine, named as the problem names them.

This is the one entry point the CLI, the sheets and the tests use, so that every consumer reads
the same numbers from the same derivation. With ``detail=True`` the solution also keeps what a
worked sheet shows beyond the results -- each product's entry-by-entry terms, the parameter update,
the largest entry of each gradient -- so that no emitter computes a number itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from grukit.derive.cell.equations import Affine, CellEquations, cell_equations
from grukit.derive.cell.layouts import named_arrays
from grukit.derive.cell.losses import LossHead
from grukit.derive.errors import GrukitError
from grukit.derive.numeric.bptt import Gradient, ProductValues, backward, product
from grukit.derive.numeric.evaluate import Engine, StepTrace, column_matrix, engine
from grukit.derive.numeric.problem import Problem

DEFAULT_LEARNING_RATE = Fraction(1, 10)


def learning_rate(problem: Problem) -> Fraction:
    """The problem's learning rate, or one chosen for illustration when it gives none."""
    return problem.learning_rate if problem.learning_rate is not None else DEFAULT_LEARNING_RATE


@dataclass
class Solution:
    problem: Problem
    engine: Engine
    equations: CellEquations
    params: dict  # Param -> array in the engine's numbers
    traces: list[StepTrace]
    gradient: Gradient | None = None
    head: LossHead | None = None  # the loss head with the engine's numbers
    products: dict[tuple[int, str, int], ProductValues] = field(default_factory=dict)
    """(step, stage target, product index) -> the forward product with its terms (``detail``)."""
    update: dict = field(default_factory=dict)
    """Param, "W_o" or "b_o" -> its value after one gradient-descent step (``detail``)."""
    largest: dict = field(default_factory=dict)
    """Param, "W_o", "b_o", ("x", t) or "h0" -> the largest |entry| of its gradient (``detail``)."""

    @property
    def learning_rate(self) -> Fraction:
        return learning_rate(self.problem)

    def named_gradients(self) -> dict[str, np.ndarray]:
        """Parameter gradients under the problem's own names (framework arrays for layout files)."""
        p, g = self.problem, self.gradient
        out = named_arrays(p.convention, g.params, p.layout, p.input_size, p.hidden_size)
        out.update(g.output)
        return out


def solve(problem: Problem, engine_name: str = "exact", gradients: bool = False,
          decimals: int | None = None, detail: bool = False) -> Solution:
    eng = engine(engine_name, decimals)
    with eng.numbers(str(problem.path)):
        return _solve(problem, eng, gradients, detail)


def _solve(problem: Problem, eng: Engine, gradients: bool, detail: bool) -> Solution:
    eqs = cell_equations(problem.convention)
    params = {k: eng.array(v) for k, v in problem.params.items()}
    traces = eng.run_forward(eqs, params, eng.array(problem.inputs), eng.array(problem.h0))
    sol = Solution(problem, eng, eqs, params, traces)
    if detail:
        sol.products = _forward_products(eqs, params, traces, eng)
    if gradients:
        if problem.loss is None:
            raise GrukitError(f"{problem.path}: loss: missing (gradients need a loss head)")
        head = problem.loss
        W_o = eng.array(head.W_o) if head.W_o is not None else None
        b_o = eng.array(head.b_o) if head.b_o is not None else None
        sol.head = LossHead(head.kind, head.steps, tuple(eng.array(t) for t in head.targets), W_o, b_o)
        sol.gradient = backward(problem.convention, params, traces, sol.head, eng, detail=detail)
        if detail:
            sol.update = _update(sol)
            sol.largest = _largest(sol.gradient)
    g = sol.gradient
    eng.check_finite(str(problem.path), [tr.values for tr in traces]
                     + ([g.params, g.output, {"loss": g.loss, "inputs": g.inputs, "h0": g.h0}] if g else []))
    return sol


def _forward_products(eqs: CellEquations, params: dict, traces: list[StepTrace], eng: Engine) -> dict:
    """Each forward product with its terms (the trace keeps only the products' values)."""
    out = {}
    for t, trace in enumerate(traces):
        for stage in eqs.stages:
            if not isinstance(stage, Affine):
                continue
            for k, prod in enumerate(stage.products):
                v = np.concatenate([trace.values[n] for n in prod.operands])
                out[(t, stage.target, k)] = product(eng, column_matrix(eqs, params[prod.param]), v, True)
    return out


def _update(sol: Solution) -> dict:
    """One gradient-descent step, every parameter at once (the output layer's too)."""
    eng, g = sol.engine, sol.gradient
    lr = eng.array([sol.learning_rate])
    current: dict = dict(sol.params)
    grads: dict = dict(g.params)
    for name in g.output:
        current[name] = getattr(sol.head, name)
        grads[name] = g.output[name]
    return {k: eng.add(current[k], eng.outer(-lr, grads[k])[0]) for k in grads}


def _largest(g: Gradient) -> dict:
    arrays: dict = dict(g.params) | dict(g.output)
    arrays |= {("x", t): v for t, v in enumerate(g.inputs)}
    arrays["h0"] = g.h0
    return {k: max((abs(v) for v in np.ravel(np.asarray(a, dtype=object))), default=0) for k, a in arrays.items()}


def as_floats(values) -> list:
    """Nested lists of Python floats (full double precision) for JSON."""
    return np.asarray(values, dtype=float).tolist()

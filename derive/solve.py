"""A problem, solved: forward traces and gradients in a chosen engine, named as the problem names them.

This is the one entry point the CLI, the sheets and the tests use, so that every consumer reads
the same numbers from the same derivation.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .backward import Gradient, backward
from .equations import CellEquations, cell_equations
from .errors import GrukitError
from .evaluate import Engine, StepTrace, engine, forward
from .layouts import LAYOUTS
from .losses import LossHead
from .problem import Problem


@dataclass
class Solution:
    problem: Problem
    engine: Engine
    equations: CellEquations
    params: dict  # Param -> array in the engine's numbers
    traces: list[StepTrace]
    gradient: Gradient | None = None
    head: LossHead | None = None  # the loss head with the engine's numbers

    def named_gradients(self) -> dict[str, np.ndarray]:
        """Parameter gradients under the problem's own names (framework arrays for layout files)."""
        conv, p, g = self.problem.convention, self.problem, self.gradient
        if p.layout is not None:
            out = LAYOUTS[p.layout].pack(conv, g.params, p.input_size, p.hidden_size)
        else:
            out = {conv.key(k): v for k, v in g.params.items()}
        out.update(g.output)
        return out


def solve(problem: Problem, engine_name: str = "exact", gradients: bool = False,
          decimals: int | None = None) -> Solution:
    eng = engine(engine_name, decimals)
    eqs = cell_equations(problem.convention)
    params = {k: eng.array(v) for k, v in problem.params.items()}
    traces = forward(eqs, params, eng.array(problem.inputs), eng.array(problem.h0), eng)
    sol = Solution(problem, eng, eqs, params, traces)
    if gradients:
        if problem.loss is None:
            raise GrukitError(f"{problem.path}: loss: missing (gradients need a loss head)")
        head = problem.loss
        W_o = eng.array(head.W_o) if head.W_o is not None else None
        b_o = eng.array(head.b_o) if head.b_o is not None else None
        sol.head = LossHead(head.kind, head.steps, tuple(eng.array(t) for t in head.targets), W_o, b_o)
        sol.gradient = backward(problem.convention, params, traces, sol.head, eng)
    return sol


def as_floats(values) -> list:
    """Nested lists of Python floats (full double precision) for JSON."""
    return np.asarray(values, dtype=float).tolist()

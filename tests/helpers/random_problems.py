"""Random problems with one-decimal numbers, and grukit's reverse mode run on SymPy symbols.

Shared by the tests of the explicit (fully expanded) derivative.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import sympy as sp
import yaml

from grukit.derive.audit.compare import problem_mapping
from grukit.derive.cell.equations import cell_equations
from grukit.derive.cell.losses import LossHead
from grukit.derive.cell.presets import PRESETS
from grukit.derive.numeric.bptt import Gradient, backward
from grukit.derive.numeric.evaluate import engine, forward
from grukit.derive.numeric.problem import Problem

RESET_FREE = {c.name: c for c in (
    PRESETS["course-notes"].with_changes(name="course-notes-reset-free", reset="none",
                                         description="the course notes' cell without a reset gate (r = 1)"),
    PRESETS["d2l"].with_changes(name="d2l-reset-free", reset="none",
                                description="d2l's cell (row vectors, z keeps the old state) without a reset gate"),
)}
"""Conventions without a reset gate (``reset: none``), which no preset has: checked as the presets are."""
CHECKED = PRESETS | RESET_FREE
"""Every convention the independent checks run on: the presets and the reset-free ones."""


def random_problem(name: str, D: int, H: int, T: int, seed: int, **numbers) -> Problem:
    """One-decimal numbers in [-0.9, 0.9]; a weighted-sum loss. ``numbers`` overrides parameters by key."""
    conv = CHECKED[name]
    rng = np.random.default_rng(seed)

    def rnd(shape):
        flat = [Fraction(int(v), 10) for v in rng.integers(-9, 10, size=int(np.prod(shape)))]
        return np.array(flat, dtype=object).reshape(shape)

    params = {p: rnd(conv.param_shape(p, D, H)) for p in conv.parameters()}
    for key, value in numbers.items():
        p = next(p for p in conv.parameters() if conv.key(p) == key)
        params[p] = np.array(value, dtype=object).reshape(conv.param_shape(p, D, H))
    head = LossHead("weighted_sum", tuple(range(T)), tuple(rnd((T, H))))
    return Problem(Path(f"<{name}>"), conv, rnd((T, D)), rnd((H,)), params, loss=head)


def problem_yaml(problem: Problem) -> str:
    """A random problem as a problem file's text, its convention written out as axes when it is no preset."""
    data = problem_mapping(problem.convention, {"inputs": problem.inputs, "h0": problem.h0, "params": problem.params})
    data["loss"] = {"type": "weighted_sum", "G": np.asarray(problem.loss.targets, dtype=float).tolist()}
    return yaml.safe_dump(data, sort_keys=False)


def symbolic_backward(problem: Problem, explicit) -> Gradient:
    """grukit's reverse mode evaluated on the explicit loss's symbols (SymPy expressions out)."""
    eng = engine("symbolic")
    traces = forward(cell_equations(problem.convention), explicit.params, explicit.inputs, explicit.h0, eng)
    head = LossHead(problem.loss.kind, problem.loss.steps,
                    tuple(np.array([sp.Rational(v.numerator, v.denominator) for v in t], dtype=object)
                          for t in problem.loss.targets))
    return backward(problem.convention, explicit.params, traces, head, eng)

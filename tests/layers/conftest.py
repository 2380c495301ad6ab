"""Every problem the layer tests solve through the command line (``grukit forward`` / ``grukit grad``
on the exact or numpy engine) whose cells are built-in conventions is solved on the generated kernels
too (``--engine numba``), which must give the same numbers: 1e-12 relative to each array's largest
entry (issue 16: the layer tests' cases on the kernels). The tests' own oracles (PyTorch, Keras, ONNX
Runtime, finite differences, SymPy) then hold for the kernels as well.

A cell of another convention (an ONNX activation or ``clip``) would be rendered and compiled for this
one check -- about 10 s each with an empty cache, some forty of them here -- so those cases are left
to tests/kernels/test_network.py, which runs every activation, ``clip`` and composition rule on the
kernels against the numpy engine directly."""
from __future__ import annotations

import numpy as np
import pytest
from helpers.networks import close

import grukit.codegen.cli.cell as cli_cell
import grukit.codegen.cli.layers as cli_layers
from grukit.derive.cell.presets import PRESETS
from grukit.derive.layers.problem import solve_layers
from grukit.derive.numeric.solve import solve

TOL = 1e-12


def built_in(convention) -> bool:
    """Whether the kernels of this convention are committed under generated/ (a preset, unchanged)."""
    return PRESETS.get(convention.name) == convention


def same(ours, theirs, what: str) -> None:
    if isinstance(theirs, (list, tuple)) and len({np.shape(t) for t in theirs}) > 1:  # arrays of several shapes
        assert len(ours) == len(theirs), what
        for i, (a, b) in enumerate(zip(ours, theirs)):
            same(a, b, f"{what}[{i}]")
        return
    close(ours, theirs, TOL, f"--engine numba: {what}")


@pytest.fixture(autouse=True)
def kernels_agree(monkeypatch):
    def layers(problem, engine="exact", gradients=False):
        sol = solve_layers(problem, engine, gradients)
        if engine != "numba" and all(built_in(c.convention) for _, c in problem.network.cells):
            ours = solve_layers(problem, "numba", gradients)
            same(ours.outputs, sol.outputs, "outputs")
            same(ours.h_n, sol.h_n, "h_n")
            if problem.single_cell:  # the steps forward --json prints
                T = problem.steps
                for name in ("z", "r", "c", "h"):
                    same([ours.run.cells[0].traces[t].values[name] for t in range(T)],
                         [sol.run.cells[0].traces[t].values[name] for t in range(T)], f"steps' {name}")
            if gradients:
                same(ours.loss, sol.loss, "loss")
                assert set(ours.grads) == set(sol.grads)
                for name, value in sol.grads.items():
                    same(ours.grads[name], value, name)
                same(ours.d_inputs, sol.d_inputs, "inputs")
                same(ours.d_h0, sol.d_h0, "h0")
        return sol

    def cell(problem, engine="exact", gradients=False, **kwargs):
        sol = solve(problem, engine, gradients, **kwargs)
        if engine != "numba" and built_in(problem.convention):
            ours = solve(problem, "numba", gradients)
            same([t.values["h"] for t in ours.traces], [t.values["h"] for t in sol.traces], "states")
            if gradients:
                same(ours.gradient.loss, sol.gradient.loss, "loss")
                for p, value in sol.gradient.params.items():
                    same(ours.gradient.params[p], value, str(p))
                for name, value in sol.gradient.output.items():
                    same(ours.gradient.output[name], value, name)
                same(ours.gradient.inputs, sol.gradient.inputs, "inputs")
                same(ours.gradient.h0, sol.gradient.h0, "h0")
        return sol

    monkeypatch.setattr(cli_layers, "solve_layers", layers)
    monkeypatch.setattr(cli_cell, "solve", cell)

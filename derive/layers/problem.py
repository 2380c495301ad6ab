"""A layer problem -- a network, a batch of inputs, initial states, lengths or masks, an optional loss --
and its solution: outputs, h_n and every gradient, under the names of the file the weights came from.
Reading one from a file is :mod:`grukit.derive.files.layer_file`'s job."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol

import numpy as np
import sympy as sp

from grukit.derive.cell.equations import unit
from grukit.derive.cell.layouts import named_arrays
from grukit.derive.errors import GrukitError
from grukit.derive.layers.network import LAYER_LOSSES, Network
from grukit.derive.layers.run import (
    NetworkGradient,
    NetworkRun,
    arrange_outputs,
    backward_network,
    outputs_axes,
    run_network,
    unarrange_outputs,
)
from grukit.derive.numeric.batch import batched_engine


class GradientNames(Protocol):
    """What a weights file does for its problem: names the network's parameter gradients as the file
    names its arrays (:class:`grukit.derive.files.model_files.WeightFile`)."""

    def named_gradients(self, params: list[dict]) -> dict[str, np.ndarray]: ...



@dataclass
class LayerLoss:
    kind: str
    outputs: np.ndarray  # G or the targets, shaped as the outputs
    h_n: np.ndarray | None = None  # G_h_n, shaped as h_n


INPUT_LAYOUTS: dict[str, tuple[str, ...]] = {
    "batch_major": ("batch", "time", "features"),
    "time_major": ("time", "batch", "features"),
}
"""How a problem may give a batch of inputs: input layout -> its axes. ``batch_major`` (B x T x D, the
default: PyTorch's ``batch_first=True``, Keras) or ``time_major`` (T x B x D: ONNX's ``X`` in layout 0,
PyTorch's default). One sequence is T x D either way."""

H0_AXES = {1: ("hidden",), 2: ("batch", "hidden"), 3: ("cells", "batch", "hidden")}
"""h0's axes by the number it was given with (cells x H for one sequence is told apart where read)."""


@dataclass
class LayerProblem:
    path: Path
    network: Network
    inputs: np.ndarray  # B x T x D (exact numbers: Fractions or float64)
    h0: list[np.ndarray]  # per cell (PyTorch's h_n order), B x H
    valid: np.ndarray | None  # B x T of 0/1, or None: every step of every sequence
    batched: bool  # the inputs were given B x T x D
    h0_shape: tuple[int, ...] | None  # the shape h0 was given in (its gradient comes back so)
    weights: GradientNames | None = None
    loss: LayerLoss | None = None
    lengths: list[int] | None = None
    title: str = ""
    description: str = ""
    input_layout: str = "batch_major"  # how a batch of inputs was given (a key of INPUT_LAYOUTS)

    @property
    def batch(self) -> int:
        return self.inputs.shape[0]

    @property
    def steps(self) -> int:
        return self.inputs.shape[1]

    @property
    def single_cell(self) -> bool:
        """One sequence through one forward cell with every step: what a plain problem is."""
        return (not self.batched and len(self.network.cells) == 1 and self.valid is None
                and self.network.layers[0].cells[0].direction == "forward")

    def axes(self) -> dict[str, list[str]]:
        """The axes of the inputs and h0 as the problem gave them (their gradients come back so), and
        of the outputs and h_n as grukit returns them."""
        inputs = list(INPUT_LAYOUTS[self.input_layout]) if self.batched else ["time", "features"]
        shape = self.h0_shape
        if shape is None:
            h0 = ["cells", "batch", "hidden"]
        elif len(shape) == 2 and not self.batched:
            h0 = ["cells", "hidden"]
        else:
            h0 = list(H0_AXES[len(shape)])
        return {"inputs": inputs, "h0": h0,
                "outputs": [name for name, _ in outputs_axes(self.network, self.batch, self.steps)],
                "h_n": ["cells", "batch", "hidden"]}

    def cell_label(self, index: int) -> str:
        k, cell = self.network.cells[index]
        name = self.network.layers[k].name
        return f"layer {k}" + (f" ({name})" if name else "") + f", {cell.direction}"



# --- solving -------------------------------------------------------------------------------------

@dataclass
class LayerSolution:
    problem: LayerProblem
    run: NetworkRun  # or, on an engine that runs networks itself, its run seen the same way
    outputs: np.ndarray  # as the framework returns them
    h_n: np.ndarray | list  # cells x B x H (a list of B x H_cell when the layers' sizes differ)
    loss: object = None
    gradient: NetworkGradient | None = None
    grads: dict[str, np.ndarray] = field(default_factory=dict)  # parameter gradients by the file's names
    d_inputs: np.ndarray | None = None  # shaped as the problem's inputs
    d_h0: np.ndarray | None = None  # shaped as the problem's h0

    @property
    def engine(self):
        return self.run.engine


def solve_layers(problem: LayerProblem, engine_name: str = "exact", gradients: bool = False) -> LayerSolution:
    eng = batched_engine(engine_name)
    with eng.numbers(str(problem.path)):
        sol = _solve_layers(problem, eng, gradients)
    eng.check_finite(str(problem.path), [{"outputs": sol.outputs, "h_n": sol.h_n, "loss": sol.loss,
                                          "inputs": sol.d_inputs, "h0": sol.d_h0}, sol.grads])
    return sol


def _solve_layers(problem: LayerProblem, eng, gradients: bool) -> LayerSolution:
    if eng.runs_networks:  # the engine runs whole networks itself (the generated kernels)
        forward, backward = eng.run_network, eng.backward_network
    else:  # every cell walked step by step on a batched engine
        forward, backward = partial(run_network, eng=eng), backward_network
    run = forward(problem.network, problem.inputs, problem.h0, problem.valid)
    outputs = arrange_outputs(problem.network, run.outputs)
    h_n = _stack([h.T for h in run.h_n])
    sol = LayerSolution(problem, run, outputs, h_n)
    if not gradients:
        return sol
    if problem.loss is None:
        raise GrukitError(f"{problem.path}: loss: missing (gradients need a loss head)")
    loss = problem.loss
    term = LAYER_LOSSES[loss.kind]
    y = eng.array(loss.outputs)
    terms = eng.apply(term, {"o": outputs, "y": y})
    d_out = eng.apply(_diff(term), {"o": outputs, "y": y}) if loss.kind != "weighted_sum" else y
    total = [terms.ravel()]
    d_h_n: list = [None] * len(run.cells)
    if loss.h_n is not None:
        g = eng.array(loss.h_n)
        total.append(eng.apply(term, {"o": np.stack([h.T for h in run.h_n]), "y": g}).ravel())
        d_h_n = [g[i].T for i in range(len(run.cells))]
    with eng.precision():
        sol.loss = eng.settle(np.array([np.concatenate(total).sum()], dtype=object))[0]
    grad = backward(run, unarrange_outputs(problem.network, d_out), d_h_n)
    sol.gradient = grad
    if problem.weights is not None:
        sol.grads = problem.weights.named_gradients(grad.params)
    else:
        cell = problem.network.layers[0].cells[0]
        sol.grads = named_arrays(cell.convention, grad.params[0], problem.network.layout, cell.input_size,
                                 cell.hidden_size)
    d_in = np.stack(grad.inputs).transpose(2, 0, 1)  # B x T x D
    sol.d_inputs = d_in[0] if not problem.batched else \
        d_in.transpose(1, 0, 2) if problem.input_layout == "time_major" else d_in
    d_h0 = [h.T for h in grad.h0]  # per cell, B x H
    shape = problem.h0_shape
    if shape is not None and len(shape) == 1:  # one h0 shared by the batch: the sum over it
        with eng.precision():
            sol.d_h0 = eng.settle(d_h0[0].sum(axis=0))
    elif shape is not None and len(shape) == 2 and not problem.batched:  # cells x H, one sequence
        sol.d_h0 = np.stack([h[0] for h in d_h0])
    elif shape is not None and len(shape) == 2:  # B x H, one cell
        sol.d_h0 = d_h0[0]
    else:
        sol.d_h0 = _stack(d_h0)
    return sol


def _stack(arrays: list[np.ndarray]):
    """Per-cell arrays as one array when they have one shape, else a list (JSON writes either)."""
    return np.stack(arrays) if len({a.shape for a in arrays}) == 1 else list(arrays)


def _diff(term):


    return sp.diff(term, unit("o"))

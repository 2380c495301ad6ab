"""The generated kernels as an engine (``--engine numba``): a problem's sequence run forward and back
by the float64 kernels, as one batch row; a layer problem (batches, directions, stacked layers,
lengths and masks) as a whole network (:mod:`grukit.codegen.kernels.network`).

Its numbers are float64 arrays like the ``numpy`` engine's, and everything that is not the cell's
sequence -- the loss head, dL/dh_t, the output layer's gradients -- is computed by the same numeric
code as for every engine (:func:`grukit.derive.numeric.bptt.backward`); only the forward walk and
the records' backward walk are replaced by the kernels. The registry finds this class through the
``grukit.engines`` entry point (:func:`grukit.derive.numeric.evaluate.engine`).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from grukit.codegen.kernels.api import load, refuse_non_real
from grukit.codegen.kernels.network import CellForward, NetworkForward, NetworkKernels
from grukit.derive.cell.equations import CellEquations
from grukit.derive.errors import GrukitError
from grukit.derive.layers.network import Network
from grukit.derive.numeric.evaluate import NumpyEngine, StepTrace


class NumbaEngine(NumpyEngine):
    """float64 arrays; whole sequences through the generated kernels."""

    name = "numba"
    accuracy = "float64 rounding (the generated kernels)"
    runs_networks = True

    def run_forward(self, eqs: CellEquations, params, inputs: np.ndarray, h0: np.ndarray) -> list[StepTrace]:
        conv = eqs.convention
        kernels = load(conv, "float64")
        for name, value in (*((conv.key(p), v) for p, v in params.items()), ("inputs", inputs), ("h0", h0)):
            refuse_non_real(name, np.asarray(value))  # before the float64 copies, which would drop it
        weights = {conv.key(p): np.ascontiguousarray(v, dtype=np.float64) for p, v in params.items()}
        fwd = kernels.forward(np.ascontiguousarray(inputs[None], dtype=np.float64),
                              np.ascontiguousarray(h0[None], dtype=np.float64), weights)
        saved = kernels.module.SAVED
        traces = []
        for t in range(inputs.shape[0]):
            values = {name: fwd.value(name)[0, t].copy() for name in saved}
            values |= {"x": inputs[t], "h_prev": h0 if t == 0 else fwd.h[0, t - 1].copy(), "h": fwd.h[0, t].copy()}
            traces.append(_KernelTrace(values, kernels, fwd))
        return traces

    def sequence_backward(self, convention, params, traces: list[StepTrace], d_h: dict[int, np.ndarray]):
        first = traces[0]
        dh = np.zeros(first.forward.h.shape)
        for t, d in d_h.items():
            dh[0, t] = d
        grads = first.kernels.backward(first.forward, dh)
        return ({p: grads[convention.key(p)] for p in convention.parameters()}, grads["inputs"][0],
                grads["h0"][0])


    def run_network(self, network, inputs, h0, valid) -> _KernelRun:
        """A layer problem's forward pass on the float64 kernels, in the shapes of
        :func:`grukit.derive.layers.run.run_network`'s result: per position (units x B)."""
        kernels = NetworkKernels(self._numbers(network), "float64")
        fwd = kernels.forward(self.array(inputs), [self.array(h) for h in h0], valid)
        return _KernelRun(self, kernels, fwd)

    def _numbers(self, network: Network) -> Network:
        """The network with its parameters in this engine's numbers (a file's exact fractions as float64)."""
        layers = [replace(layer, cells=tuple(replace(c, params={p: self.array(v) for p, v in c.params.items()})
                                             for c in layer.cells)) for layer in network.layers]
        return replace(network, layers=layers)

    def backward_network(self, run: _KernelRun, d_outputs: list[np.ndarray], d_h_n: list) -> _KernelGradient:
        """Back-propagation as :func:`grukit.derive.layers.run.backward_network` takes and returns it."""
        d_above = np.ascontiguousarray(np.stack(d_outputs).transpose(2, 0, 1), dtype=np.float64)
        d_h_n = [None if d is None else self.array(d).T for d in d_h_n]
        g = run.kernels.backward_merged(run.forward, d_above, d_h_n)
        return _KernelGradient(g.params, g.inputs.transpose(1, 2, 0), [h.T for h in g.h0])


class _KernelRun:
    """A network's kernel pass seen as :class:`grukit.derive.layers.run.NetworkRun` is seen."""

    def __init__(self, engine: NumbaEngine, kernels: NetworkKernels, forward: NetworkForward):
        self.engine, self.kernels, self.forward = engine, kernels, forward
        self.network = forward.network
        self.cells = [_KernelCellRun(c) for c in forward.cells]

    @property
    def outputs(self) -> np.ndarray:
        return self.forward.layer_outputs[-1].transpose(1, 2, 0)  # T x units x B

    @property
    def h_n(self) -> list[np.ndarray]:
        return [h.T for h in self.forward.h_n]


class _KernelCellRun:
    def __init__(self, cell: CellForward):
        self.cell_forward = cell
        self.cell = cell.cell

    @property
    def traces(self) -> list[StepTrace]:
        """Each input position's saved values (units x B), for a cell that takes every step of every row."""
        c = self.cell_forward
        if not c.steps.valid.all():
            raise GrukitError("traces by input position: some steps are outside their sequences")
        fwd, held = c.forward, c.steps.held
        rows = np.arange(held.shape[0])
        values = {n: fwd.value(n) for n in c.kernels.module.SAVED} | {"h": fwd.h}
        return [StepTrace({n: v[rows, held[:, t]].T for n, v in values.items()}) for t in range(held.shape[1])]


class _KernelGradient:
    """A network's kernel gradients seen as :class:`grukit.derive.layers.run.NetworkGradient` is seen."""

    def __init__(self, params: list, inputs: np.ndarray, h0: list[np.ndarray]):
        self.params, self.inputs, self.h0 = params, inputs, h0


class _KernelTrace(StepTrace):
    """A step's values, and the kernels' own record of the forward pass that backward reads."""

    def __init__(self, values: dict, kernels, forward):
        super().__init__(values)
        self.kernels, self.forward = kernels, forward

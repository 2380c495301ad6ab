"""The generated kernels as an engine (``--engine numba``): a problem's sequence run forward and back
by the float64 kernels, as one batch row.

Its numbers are float64 arrays like the ``numpy`` engine's, and everything that is not the cell's
sequence -- the loss head, dL/dh_t, the output layer's gradients -- is computed by the same numeric
code as for every engine (:func:`grukit.derive.numeric.bptt.backward`); only the forward walk and
the records' backward walk are replaced by the kernels. The registry finds this class through the
``grukit.engines`` entry point (:func:`grukit.derive.numeric.evaluate.engine`).
"""
from __future__ import annotations

import numpy as np

from grukit.codegen.kernels.api import load, refuse_non_real
from grukit.derive.cell.equations import CellEquations
from grukit.derive.numeric.evaluate import NumpyEngine, StepTrace


class NumbaEngine(NumpyEngine):
    """float64 arrays; whole sequences through the generated kernels."""

    name = "numba"
    accuracy = "float64 rounding (the generated kernels)"

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


class _KernelTrace(StepTrace):
    """A step's values, and the kernels' own record of the forward pass that backward reads."""

    def __init__(self, values: dict, kernels, forward):
        super().__init__(values)
        self.kernels, self.forward = kernels, forward

"""Whole networks in numbers: a :class:`~grukit.derive.layers.network.Network` run forward and back
through the one stage list and the one set of backward records, on (units x batch) arrays of a
batched engine, under the rules of :mod:`grukit.derive.layers.network`."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import sympy as sp

from grukit.derive.cell.convention import Param
from grukit.derive.cell.equations import cell_equations, unit
from grukit.derive.cell.records import backward_records
from grukit.derive.layers.network import FINAL_RULES, MERGES, OUTPUT_RULES, STATE_RULE, Cell, Layer, Network
from grukit.derive.numeric.bptt import step_backward
from grukit.derive.numeric.evaluate import Engine, StepTrace, step


@lru_cache(maxsize=None)
def _partials(expr: sp.Expr, names: tuple[str, ...]) -> tuple[sp.Expr, ...]:
    return tuple(sp.diff(expr, unit(n)) for n in names)


# --- forward -----------------------------------------------------------------------------------

@dataclass
class CellRun:
    """One cell through the sequence: its step traces and states by input position."""

    layer: int
    cell: Cell
    order: list[int]  # input positions in processing order
    inputs: list[np.ndarray]  # by input position, (D x B)
    h0: np.ndarray
    traces: dict[int, StepTrace] = field(default_factory=dict)
    states: dict[int, np.ndarray] = field(default_factory=dict)  # state after the step at position t
    outputs: list[np.ndarray] = field(default_factory=list)  # in the cell's output order
    last: np.ndarray | None = None  # the state after the last step
    final: np.ndarray | None = None  # h_n (the final rule applied)


@dataclass
class NetworkRun:
    network: Network
    engine: Engine
    params: list[dict[Param, np.ndarray]]  # per cell, the engine's numbers (biases as columns)
    valid: list[np.ndarray] | None  # per position, (1 x B) 0/1, or None: every step valid
    nonempty: np.ndarray | None  # (1 x B): 1 where a sequence has a step
    cells: list[CellRun]
    layer_outputs: list[list[np.ndarray]]  # per layer, per position: the merged output (units x B)

    @property
    def outputs(self) -> list[np.ndarray]:
        return self.layer_outputs[-1]

    @property
    def h_n(self) -> list[np.ndarray]:
        return [c.final for c in self.cells]


def engine_params(cell: Cell, eng: Engine) -> dict[Param, np.ndarray]:
    out = {}
    for p, v in cell.params.items():
        arr = eng.array(v)
        out[p] = eng.column(arr) if p.is_bias else arr
    return out


def run_network(network: Network, inputs: np.ndarray, h0: list[np.ndarray], valid: np.ndarray | None,
                eng: Engine) -> NetworkRun:
    """The forward pass. ``inputs`` B x T x D, ``h0`` per cell B x H (exact numbers), ``valid``
    B x T of 0/1 or None; ``eng`` a batched engine."""
    B, T, _ = inputs.shape
    x = eng.array(np.asarray(inputs, dtype=object).transpose(1, 2, 0))  # T x D x B
    layer_in = [x[t] for t in range(T)]
    v_rows = None if valid is None else [eng.array(np.asarray(valid, dtype=object)[:, t][None, :]) for t in range(T)]
    nonempty = None
    if valid is not None:
        nonempty = eng.array((np.asarray(valid, dtype=int).sum(axis=1) > 0).astype(int)[None, :].tolist())
    h0_e = [eng.array(np.asarray(h, dtype=object).T) for h in h0]  # per cell, H x B
    run = NetworkRun(network, eng, [], v_rows, nonempty, [], [])
    index = 0
    for k, layer in enumerate(network.layers):
        cell_outputs = []
        for cell in layer.cells:
            params = engine_params(cell, eng)
            run.params.append(params)
            cr = _run_cell(k, cell, params, layer, layer_in, h0_e[index], v_rows, eng)
            cr.final = _final(network.final_state, cr.last, nonempty, eng)
            run.cells.append(cr)
            cell_outputs.append(cr.outputs)
            index += 1
        merged = [merge(layer.merge, [o[t] for o in cell_outputs], eng) for t in range(T)]
        run.layer_outputs.append(merged)
        layer_in = merged
    return run


def _run_cell(k: int, cell: Cell, params, layer: Layer, inputs, h0, valid, eng: Engine) -> CellRun:
    eqs = cell_equations(cell.convention)
    T = len(inputs)
    order = list(range(T)) if cell.direction == "forward" else list(reversed(range(T)))
    cr = CellRun(k, cell, order, inputs, h0)
    h = h0
    y_prev = eng.zeros(h0.shape)
    produced = {}
    for t in order:
        trace = step(eqs, params, inputs[t], h, eng)
        cr.traces[t] = trace
        if valid is None:
            h = y = trace.values["h"]
        else:
            h = eng.apply(STATE_RULE, {"m": valid[t], "h_cell": trace.values["h"], "h_prev": h})
            env = {"m": valid[t], "h": h}
            if layer.padded_output == "previous":
                env["y_prev"] = y_prev
            y = eng.apply(OUTPUT_RULES[layer.padded_output], env)
        cr.states[t] = h
        produced[t] = y
        y_prev = y
    cr.last = h
    if cell.direction == "reverse" and layer.reverse_order == "processing":
        cr.outputs = [produced[t] for t in order]
    else:
        cr.outputs = [produced[t] for t in range(T)]
    return cr


def _final(rule: str, last: np.ndarray, nonempty, eng: Engine) -> np.ndarray:
    if rule == "last" or nonempty is None:
        return last
    return eng.apply(FINAL_RULES[rule], {"m": nonempty, "h": last})


def merge(mode: str, parts: list[np.ndarray], eng: Engine) -> np.ndarray:
    if len(parts) == 1:
        return parts[0]
    expr = MERGES[mode]
    if expr is None:
        return np.concatenate(parts)
    return eng.apply(expr, {"a": parts[0], "b": parts[1]})


def unmerge(mode: str, d: np.ndarray, parts: list[np.ndarray], eng: Engine) -> list[np.ndarray]:
    """The adjoints of the parts from the adjoint of the merged output (``sympy.diff`` of the merge)."""
    if len(parts) == 1:
        return [d]
    expr = MERGES[mode]
    if expr is None:
        n = parts[0].shape[0]
        return [d[:n], d[n:]]
    env = {"a": parts[0], "b": parts[1]}
    return [_chain(eng, g, d, env) for g in _partials(expr, ("a", "b"))]


_D = unit("d")


def _chain(eng: Engine, partial: sp.Expr, d: np.ndarray, env: dict) -> np.ndarray:
    """``d * partial`` per unit: an adjoint times a rule's local derivative (from ``sympy.diff``)."""
    names = {s.name for s in partial.free_symbols}
    return eng.apply(_D * partial, {"d": d, **{k: v for k, v in env.items() if k in names}})


# --- backward ----------------------------------------------------------------------------------

@dataclass
class NetworkGradient:
    params: list[dict[Param, np.ndarray]]  # per cell, in the convention's shapes
    inputs: list[np.ndarray]  # per position, (D x B)
    h0: list[np.ndarray]  # per cell, (H x B)
    cell_seeds: list[dict[int, np.ndarray]]
    """Per cell, by input position: dL/dh at that step from outside the cell's recurrence (the
    outputs and h_n), before the padding rules -- what a sheet of one cell takes as its loss."""


def backward_network(run: NetworkRun, d_outputs: list[np.ndarray], d_h_n: list[np.ndarray | None]
                     ) -> NetworkGradient:
    """Back-propagation through layers, directions and time. ``d_outputs``: per position the
    adjoint of the network's (merged) output, (units x B); ``d_h_n``: per cell, or None."""
    eng, net = run.engine, run.network
    n_cells = len(run.cells)
    grads: list[dict] = [None] * n_cells  # type: ignore[list-item]
    d_h0: list = [None] * n_cells
    seeds: list[dict] = [None] * n_cells  # type: ignore[list-item]
    d_above = d_outputs
    index = n_cells
    for k in reversed(range(len(net.layers))):
        layer = net.layers[k]
        index -= len(layer.cells)
        runs = run.cells[index:index + len(layer.cells)]
        T = len(d_above)
        d_parts = [unmerge(layer.merge, d_above[t], [cr.outputs[t] for cr in runs], eng) for t in range(T)]
        d_in = None
        for j, cr in enumerate(runs):
            d_seq = [d_parts[t][j] for t in range(T)]
            g, dx, dh0, seed = _cell_backward(run, index + j, layer, d_seq, d_h_n[index + j])
            grads[index + j], d_h0[index + j], seeds[index + j] = g, dh0, seed
            d_in = dx if d_in is None else [eng.add(a, b) for a, b in zip(d_in, dx)]
        d_above = d_in
    return NetworkGradient(grads, d_above, d_h0, seeds)


def _cell_backward(run: NetworkRun, index: int, layer: Layer, d_seq: list[np.ndarray], d_final):
    eng = run.engine
    cr = run.cells[index]
    cell = cr.cell
    rec = backward_records(cell.convention)
    params = run.params[index]
    H, B = cr.h0.shape
    # the output sequence's index -> input position
    if cell.direction == "reverse" and layer.reverse_order == "processing":
        d_y = {t: d_seq[i] for i, t in enumerate(cr.order)}
    else:
        d_y = {t: d_seq[t] for t in range(len(d_seq))}
    carry = eng.zeros((H, B))
    if d_final is not None:
        if run.network.final_state != "last" and run.nonempty is not None:
            d_final = _chain(eng, _partials(FINAL_RULES[run.network.final_state], ("h",))[0], d_final,
                             {"m": run.nonempty})
        carry = d_final
    d_y_prev = None
    totals: dict[Param, np.ndarray] = {}
    d_x: dict[int, np.ndarray] = {}
    seeds: dict[int, np.ndarray] = {}
    valid = run.valid
    out_names = ("h", "y_prev") if layer.padded_output == "previous" else ("h",)
    out_partials = _partials(OUTPUT_RULES[layer.padded_output], out_names)
    state_partials = _partials(STATE_RULE, ("h_cell", "h_prev"))
    for t in reversed(cr.order):
        dy = d_y[t] if d_y_prev is None else eng.add(d_y[t], d_y_prev)
        if valid is None:
            d_from_y, d_cell, d_keep = dy, None, None
        else:
            env = {"m": valid[t], "h": cr.states[t]}
            d_from_y = _chain(eng, out_partials[0], dy, env)
            if layer.padded_output == "previous":
                d_y_prev = _chain(eng, out_partials[1], dy, env)
        seeds[t] = d_from_y
        d_h = eng.add(carry, d_from_y)
        if valid is None:
            d_cell = d_h
        else:
            d_cell = _chain(eng, state_partials[0], d_h, {"m": valid[t]})
            d_keep = _chain(eng, state_partials[1], d_h, {"m": valid[t]})
        sg = step_backward(rec, params, cr.traces[t], d_cell, eng)
        for p, v in sg.params.items():
            v = eng.batch_sum(v) if p.is_bias else v
            totals[p] = v if p not in totals else eng.add(totals[p], v)
        d_x[t] = sg.adjoints["x"]
        carry = sg.adjoints["h_prev"] if d_keep is None else eng.add(sg.adjoints["h_prev"], d_keep)
    if d_final is not None:
        last = cr.order[-1]
        seeds[last] = eng.add(seeds[last], d_final)
    return totals, [d_x[t] for t in range(len(cr.order))], carry, seeds


# --- arranging outputs as each framework returns them ------------------------------------------

def arrange_outputs(network: Network, outputs: list[np.ndarray]) -> np.ndarray:
    """Per position (units x B) -> the framework's output array: B x T x units (PyTorch, Keras),
    directions x B x T x H (Keras ``merge_mode=None``), ONNX's Y (T x dirs x B x H, or B x T x dirs x H
    for ``layout=1``)."""
    seq = np.stack(outputs)  # T x units x B
    T, U, B = seq.shape
    last = network.layers[-1]
    if last.merge in ("stack", "none") and len(last.cells) > 1 or network.output_form.startswith("onnx"):
        dirs = len(last.cells)
        split = seq.reshape(T, dirs, U // dirs, B)  # T x dirs x H x B
        if network.output_form == "onnx_layout0":
            return split.transpose(0, 1, 3, 2)
        if network.output_form == "onnx_layout1":
            return split.transpose(3, 0, 1, 2)
        return split.transpose(1, 3, 0, 2)  # dirs x B x T x H
    return seq.transpose(2, 0, 1)


def unarrange_outputs(network: Network, array: np.ndarray) -> list[np.ndarray]:
    """The inverse of :func:`arrange_outputs`: per position, (units x B)."""
    last = network.layers[-1]
    a = np.asarray(array)
    if last.merge in ("stack", "none") and len(last.cells) > 1 or network.output_form.startswith("onnx"):
        if network.output_form == "onnx_layout0":
            split = a.transpose(0, 1, 3, 2)
        elif network.output_form == "onnx_layout1":
            split = a.transpose(1, 2, 3, 0)
        else:
            split = a.transpose(2, 0, 3, 1)
        T, dirs, H, B = split.shape
        seq = split.reshape(T, dirs * H, B)
    else:
        seq = a.transpose(1, 2, 0)
    return [seq[t] for t in range(seq.shape[0])]


def outputs_axes(network: Network, batch: int, steps: int) -> tuple[tuple[str, int], ...]:
    """The outputs' axes as the framework returns them: (name, size), in order."""
    last = network.layers[-1]
    dirs, H = len(last.cells), last.hidden_size
    if network.output_form == "onnx_layout0":
        return ("time", steps), ("directions", dirs), ("batch", batch), ("hidden", H)
    if network.output_form == "onnx_layout1":
        return ("batch", batch), ("time", steps), ("directions", dirs), ("hidden", H)
    if last.merge == "none" and dirs > 1:
        return ("directions", dirs), ("batch", batch), ("time", steps), ("hidden", H)
    return ("batch", batch), ("time", steps), ("units", last.output_size)


def outputs_shape(network: Network, batch: int, steps: int) -> tuple[int, ...]:
    return tuple(size for _, size in outputs_axes(network, batch, steps))

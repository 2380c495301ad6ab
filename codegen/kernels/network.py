"""Whole networks on the generated kernels: a :class:`~grukit.derive.layers.network.Network` -- any
stack of layers, forward, reverse or bidirectional, a padded or masked batch under its framework's
rules, Keras's merges, ONNX's activations and ``clip`` -- run forward and back with one kernel call
per cell and direction, giving the numpy engine's numbers (:mod:`grukit.derive.layers.run`).

Why one kernel call per cell is enough: a step outside a sequence keeps the state
(:data:`~grukit.derive.layers.network.STATE_RULE`), so what a cell does to one row of the batch is
the kernel run over that row's valid steps alone, in the order the cell takes them. Each row's
valid steps are gathered to the front (:class:`Steps`; a reverse cell takes them last first) and the
row is padded at the end with zero inputs. Then

* the output at input position ``t`` is the state after the row's last valid step at or before
  ``t`` in processing order, shown where :data:`SHOWN` says for the layer's output rule
  (:data:`~grukit.derive.layers.network.OUTPUT_RULES`) and 0 elsewhere;
* the last state is the state after the row's last valid step (h0 for a row without one), and h_n
  is :data:`~grukit.derive.layers.network.FINAL_RULES`'s expression of it;
* backward, dL/dh of a gathered step is the sum of dL/d(output) over the positions that show its
  state, plus dL/dh_n at the row's last valid step; the padded steps get 0, so their pre-activation
  adjoints are 0 and they add nothing to any gradient (their states, never read, need only be
  finite);
* two directions' outputs are merged by :data:`~grukit.derive.layers.network.MERGES` (side by side,
  or Keras's SymPy expressions) and split back by ``sympy.diff`` of the same expressions, lambdified
  once (:func:`_rule`).

The two directions of a layer run in two Python threads when their kernels release the GIL and
start no parallel region of their own (:func:`_concurrent`).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

from grukit.codegen.kernels.api import Kernels, load, refuse_non_real
from grukit.derive.cell.convention import Param
from grukit.derive.cell.equations import unit
from grukit.derive.errors import GrukitError
from grukit.derive.layers.network import FINAL_RULES, MERGES, OUTPUT_RULES, Cell, Layer, Network
from grukit.derive.layers.run import arrange_outputs, unarrange_outputs

__all__ = ["NetworkKernels", "NetworkForward", "NetworkGradients", "Steps"]

SHOWN = {"zero": "valid", "previous": "after_first"}
"""Where an output rule (:data:`~grukit.derive.layers.network.OUTPUT_RULES`) shows the held state,
0 elsewhere: ``m h`` at the valid positions only; ``m h + (1 - m) y_prev`` wherever a valid step
came before (at or before ``t`` in processing order), since ``y_prev`` starts at 0."""

assert set(SHOWN) == set(OUTPUT_RULES), "every output rule needs its gather here"


@lru_cache(maxsize=None)
def _rule(expr: sp.Expr, names: tuple[str, ...], wrt: str | None = None):
    """``expr`` (or ``d * diff(expr, wrt)``, an adjoint times its local derivative) as a NumPy function
    of ``names`` (and ``d``), lambdified once."""
    symbols = [unit(n) for n in names]
    if wrt is not None:
        expr = unit("d") * sp.diff(expr, unit(wrt))
        symbols.append(unit("d"))
    return sp.lambdify(symbols, expr, modules="numpy")


def _evaluate(expr: sp.Expr, args: dict[str, np.ndarray], like: np.ndarray, wrt: str | None = None,
              d: np.ndarray | None = None) -> np.ndarray:
    """A rule's value (or an adjoint through it) per entry, shaped and typed as ``like``."""
    names = tuple(sorted(args))
    fn = _rule(expr, names, wrt)
    values = np.asarray(fn(*(args[n] for n in names), *(() if d is None else (d,))), dtype=like.dtype)
    return values if values.shape == like.shape else np.broadcast_to(values, like.shape).copy()


# --- where each row's steps go ----------------------------------------------------------------------

@dataclass(frozen=True)
class Steps:
    """One direction's steps over a batch: the valid steps of each row gathered to the front in the
    order the cell takes them, and the way back to input positions (all arrays are B x T)."""

    gather: np.ndarray  # gathered step s of row b is input position gather[b, s] (padding past counts[b])
    counts: np.ndarray  # (B,) valid steps per row
    held: np.ndarray  # by input position: the gathered step whose state the position holds, -1 before any
    valid: np.ndarray  # by input position, bool

    @classmethod
    def of(cls, valid: np.ndarray, reverse: bool) -> Steps:
        B, T = valid.shape
        order = np.arange(T)[::-1] if reverse else np.arange(T)
        in_order = valid[:, order]
        held = np.cumsum(in_order, axis=1) - 1  # by processing index
        first = np.argsort(~in_order, axis=1, kind="stable")  # valid processing indices first, in order
        return cls(order[first], in_order.sum(axis=1), held[:, order], valid)

    @property
    def padding(self) -> np.ndarray:
        """Gathered steps past each row's valid ones."""
        return np.arange(self.gather.shape[1])[None, :] >= self.counts[:, None]

    def _pairs(self, rule: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, position, gathered step) of every output that shows a state, by row then position."""
        shown = self.valid if SHOWN[rule] == "valid" else self.held >= 0
        b, t = np.nonzero(shown)
        return b, t, self.held[b, t]

    def shown(self, rule: str, states: np.ndarray) -> np.ndarray:
        """The outputs by input position (B, T, H) from the states by gathered step, time-major
        (T, B, H) as the kernels keep them (``Forward.states[1:]``)."""
        T, B, H = states.shape
        b, t, s = self._pairs(rule)
        out = np.zeros((B * T, H), states.dtype)
        out[b * T + t] = states.reshape(T * B, H)[s * B + b]
        return out.reshape(B, T, H)

    def collected(self, rule: str, d: np.ndarray) -> np.ndarray:
        """The adjoint of :meth:`shown`: dL/d(outputs) by position summed onto the gathered steps whose
        states they show, by gathered step (B, T, H). Those positions follow one another in a row (a
        state is held until the next valid step), so each step's sum is one run of
        ``np.add.reduceat`` (a plain copy where every run is one position)."""
        B, T, H = d.shape
        b, t, s = self._pairs(rule)
        out = np.zeros((B * T, H), d.dtype)
        flat = b * T + s
        starts = np.flatnonzero(np.diff(flat, prepend=-1))
        if starts.size == flat.size:
            out[flat] = d[b, t]
        elif flat.size:
            out[flat[starts]] = np.add.reduceat(d[b, t], starts, axis=0)
        return out.reshape(B, T, H)

    def gathered(self, values: np.ndarray) -> np.ndarray:
        """(B, T, n) by input position -> by gathered step, zero at the padding."""
        B, T, n = values.shape
        rows = np.arange(B)[:, None] * T
        out = np.ascontiguousarray(values).reshape(B * T, n)[(rows + self.gather).ravel()]
        out[self.padding.ravel()] = 0
        return out.reshape(B, T, n)

    def scattered(self, values: np.ndarray) -> np.ndarray:
        """(B, T, n) by gathered step -> by input position (0 where a position has no step)."""
        B, T, n = values.shape
        real = ~self.padding
        b = np.nonzero(real)[0]
        out = np.zeros((B * T, n), values.dtype)
        out[b * T + self.gather[real]] = np.ascontiguousarray(values).reshape(B * T, n)[real.ravel()]
        return out.reshape(B, T, n)

    def last(self, states: np.ndarray, h0: np.ndarray) -> np.ndarray:
        """The state after each row's last valid step; h0 for a row without one."""
        rows = np.arange(states.shape[0])
        return np.where((self.counts > 0)[:, None], states[rows, np.maximum(self.counts - 1, 0)], h0)


# --- results ---------------------------------------------------------------------------------------

@dataclass
class CellForward:
    """One cell's pass: the kernels' record over the gathered steps, and what the layer sees."""

    layer: int
    cell: Cell
    kernels: Kernels
    steps: Steps
    forward: object  # the kernels' Forward over the gathered steps
    outputs: np.ndarray  # (B, T, H) in the cell's output order
    last: np.ndarray  # (B, H): the state after the last valid step
    final: np.ndarray  # (B, H): h_n, the final rule applied


@dataclass
class NetworkForward:
    """A network's forward pass (keep it for :meth:`NetworkKernels.backward`)."""

    network: Network
    cells: list[CellForward]  # PyTorch's h_n order: layer by layer, forward before reverse
    layer_outputs: list[np.ndarray]  # per layer, the merged output (B, T, units) by position
    nonempty: np.ndarray  # (B,) bool: rows with a valid step

    @property
    def outputs(self) -> np.ndarray:
        """The last layer's outputs as the framework returns them (PyTorch, Keras: B x T x units;
        Keras ``merge_mode=None``: directions x B x T x H; ONNX's Y in the node's layout)."""
        return arrange_outputs(self.network, self.layer_outputs[-1].transpose(1, 2, 0))

    @property
    def h_n(self) -> list[np.ndarray]:
        """Per cell, (B, H)."""
        return [c.final for c in self.cells]


@dataclass
class NetworkGradients:
    params: list[dict[Param, np.ndarray]]  # per cell, by parameter, in the convention's shapes
    inputs: np.ndarray  # (B, T, D)
    h0: list[np.ndarray]  # per cell, (B, H)

    def named(self, network: Network) -> list[dict[str, np.ndarray]]:
        """Per cell, the parameters' gradients under the convention's own names (``W_z``, ``b_in`` ...)."""
        return [{c.convention.key(p): v for p, v in g.items()} for (_, c), g in zip(network.cells, self.params)]


# --- the runner -------------------------------------------------------------------------------------

def _concurrent(kernels: list[Kernels]) -> bool:
    """Whether cells' kernels may run in two threads at once: every time loop releases the GIL and
    starts no parallel region (a parallel kernel has every core already; two would oversubscribe
    them, and Numba's workqueue threading layer refuses concurrent regions)."""
    loops = [getattr(k.module, name, None) for k in kernels for name in ("_forward_steps", "_backward_steps")]
    options = [getattr(f, "targetoptions", None) for f in loops]
    return all(o is not None and o.get("nogil") and not o.get("parallel") for o in options)


class NetworkKernels:
    """A network's cells on their kernels in one dtype, the weights packed once (build a new one
    after changing them).

        net = NetworkKernels(network, "float32")
        fwd = net.forward(x, h0, valid)       # x (B, T, D); h0 per cell (B, H) or None; valid (B, T) or None
        fwd.outputs, fwd.h_n
        grads = net.backward(fwd, d_outputs, d_h_n)   # shaped as fwd.outputs; per cell (B, H) or None
    """

    def __init__(self, network: Network, dtype: str = "float64", threads: bool = True):
        self.network, self.dtype = network, dtype
        self.kernels: list[Kernels] = []
        self.packed = []
        for k, cell in network.cells:
            kernels = load(cell.convention, dtype)
            conv = cell.convention
            weights = {}
            for p, v in cell.params.items():
                arr = np.asarray(v)
                refuse_non_real(f"layer {k} {cell.direction} {conv.key(p)}", arr)
                weights[conv.key(p)] = np.ascontiguousarray(arr, dtype=dtype)
            self.kernels.append(kernels)
            self.packed.append(kernels.pack(weights, cell.input_size, cell.hidden_size))
        self.threads = threads and _concurrent(self.kernels)

    def _map(self, fn, items: list) -> list:
        if self.threads and len(items) > 1:
            with ThreadPoolExecutor(len(items)) as pool:
                return list(pool.map(fn, items))
        return [fn(item) for item in items]

    # --- forward -------------------------------------------------------------------------------------
    def _array(self, name: str, value, shape: tuple[int, ...]) -> np.ndarray:
        refuse_non_real(name, value)
        arr = np.ascontiguousarray(value, dtype=self.dtype)
        if arr.shape != shape:
            raise GrukitError(f"{name}: expected shape {shape}, got {arr.shape}")
        return arr

    def forward(self, x: np.ndarray, h0=None, valid: np.ndarray | None = None) -> NetworkForward:
        """The pass over inputs ``x`` (B, T, D) from ``h0`` (per cell (B, H), or cells x B x H; None:
        zeros) where ``valid`` (B, T; None: every step) marks the steps inside each sequence."""
        if getattr(x, "ndim", 0) != 3:
            raise GrukitError(f"x: expected (B, T, D), got shape {getattr(x, 'shape', None)}")
        B, T, _ = x.shape
        x = self._array("x", x, (B, T, self.network.input_size))
        cells = self.network.cells
        if h0 is None:
            h0 = [np.zeros((B, c.hidden_size), self.dtype) for _, c in cells]
        if len(h0) != len(cells):
            raise GrukitError(f"h0: expected {len(cells)} states (one per cell), got {len(h0)}")
        h0 = [self._array(f"h0[{i}]", h, (B, c.hidden_size)) for i, (h, (_, c)) in enumerate(zip(h0, cells))]
        mask = np.ones((B, T), bool) if valid is None else self._mask(valid, (B, T))
        steps = {d: Steps.of(mask, d == "reverse") for d in ("forward", "reverse")}
        nonempty = mask.any(axis=1)
        run = NetworkForward(self.network, [], [], nonempty)
        layer_in, index = x, 0
        for k, layer in enumerate(self.network.layers):
            jobs = [(index + j, k, layer, layer_in, h0[index + j], steps[c.direction])
                    for j, c in enumerate(layer.cells)]
            done = self._map(self._cell_forward, jobs)
            run.cells.extend(done)
            index += len(layer.cells)
            layer_in = _merge(layer.merge, [c.outputs for c in done])
            run.layer_outputs.append(layer_in)
        return run

    @staticmethod
    def _mask(valid, shape) -> np.ndarray:
        mask = np.asarray(valid)
        if mask.shape != shape:
            raise GrukitError(f"valid: expected shape {shape} (B, T), got {mask.shape}")
        if mask.dtype.kind not in "biuf" or not np.all((mask == 0) | (mask == 1)):
            raise GrukitError("valid: expected 0/1 (or booleans): 1 for a step inside its sequence")
        return mask.astype(bool)

    def _cell_forward(self, job) -> CellForward:
        index, k, layer, x, h0, steps = job
        cell, kernels = self.network.cells[index][1], self.kernels[index]
        fwd = kernels.forward(steps.gathered(x), h0, self.packed[index])
        outputs = steps.shown(layer.padded_output, fwd.states[1:])
        if _processing_order(layer, cell):
            outputs = np.ascontiguousarray(outputs[:, ::-1])
        last = steps.last(fwd.h, h0)
        final = _evaluate(FINAL_RULES[self.network.final_state], _final_args(steps, last), last)
        return CellForward(k, cell, kernels, steps, fwd, outputs, last, final)

    # --- backward ------------------------------------------------------------------------------------
    def backward(self, run: NetworkForward, d_outputs: np.ndarray, d_h_n=None) -> NetworkGradients:
        """Every gradient from dL/d(outputs) (shaped as ``run.outputs``) and dL/dh_n (per cell (B, H) or
        None; None: h_n is not in the loss)."""
        seq = np.stack(unarrange_outputs(self.network, self._array("d_outputs", d_outputs, run.outputs.shape)))
        return self.backward_merged(run, np.ascontiguousarray(seq.transpose(2, 0, 1)), d_h_n)

    def backward_merged(self, run: NetworkForward, d_above: np.ndarray, d_h_n=None) -> NetworkGradients:
        """As :meth:`backward`, from dL/d(the last layer's merged output) (B, T, units) by position."""
        cells = run.cells
        d_h_n = [None] * len(cells) if d_h_n is None else list(d_h_n)
        params: list = [None] * len(cells)
        d_h0: list = [None] * len(cells)
        index = len(cells)
        for layer in reversed(self.network.layers):
            index -= len(layer.cells)
            mine = cells[index:index + len(layer.cells)]
            d_parts = _unmerge(layer.merge, d_above, [c.outputs for c in mine])
            jobs = [(index + j, layer, d, d_h_n[index + j]) for j, d in enumerate(d_parts)]
            done = self._map(lambda job: self._cell_backward(run, *job), jobs)
            for j, (grads, dx, dh0) in enumerate(done):
                params[index + j], d_h0[index + j] = grads, dh0
            d_above = done[0][1] if len(done) == 1 else done[0][1] + done[1][1]
        return NetworkGradients(params, d_above, d_h0)

    def _cell_backward(self, run: NetworkForward, index: int, layer: Layer, d_y: np.ndarray, d_final):
        c = run.cells[index]
        steps, fwd = c.steps, c.forward
        B, T, H = c.outputs.shape
        if _processing_order(layer, c.cell):
            d_y = d_y[:, ::-1]
        dh = steps.collected(layer.padded_output, d_y)
        extra = None
        if d_final is not None:
            d_final = self._array(f"d_h_n[{index}]", d_final, (B, H))
            d_last = _evaluate(FINAL_RULES[self.network.final_state], _final_args(steps, c.last), c.last, "h",
                               d_final)
            rows = np.nonzero(steps.counts)[0]
            dh[rows, steps.counts[rows] - 1] += d_last[rows]
            extra = np.where((steps.counts > 0)[:, None], 0, d_last)  # an empty row's h_n is its h0
        grads = c.kernels.backward(fwd, dh)
        conv = c.cell.convention
        params = {p: grads[conv.key(p)] for p in conv.parameters()}
        dx = steps.scattered(grads["inputs"])
        return params, dx, grads["h0"] if extra is None else grads["h0"] + extra


def _processing_order(layer: Layer, cell: Cell) -> bool:
    """Whether a cell's outputs come in the order it takes the steps (a plain Keras ``go_backwards``)."""
    return cell.direction == "reverse" and layer.reverse_order == "processing"


def _final_args(steps: Steps, last: np.ndarray) -> dict[str, np.ndarray]:
    """The final rule's arguments: ``h`` the last state, ``m`` 1 for a row with a valid step."""
    return {"h": last, "m": (steps.counts > 0).astype(last.dtype)[:, None]}


def _merge(mode: str, parts: list[np.ndarray]) -> np.ndarray:
    if len(parts) == 1:
        return parts[0]
    expr = MERGES[mode]
    if expr is None:
        return np.concatenate(parts, axis=-1)
    return _evaluate(expr, {"a": parts[0], "b": parts[1]}, parts[0])


def _unmerge(mode: str, d: np.ndarray, parts: list[np.ndarray]) -> list[np.ndarray]:
    """The adjoints of the parts from the merged output's (``sympy.diff`` of the merge)."""
    if len(parts) == 1:
        return [d]
    expr = MERGES[mode]
    if expr is None:
        n = parts[0].shape[-1]
        return [d[..., :n], d[..., n:]]
    args = {"a": parts[0], "b": parts[1]}
    return [_evaluate(expr, args, parts[0], wrt, d) for wrt in ("a", "b")]

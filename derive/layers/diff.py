"""Do two networks compute the same GRU? Run, and where they differ, find the convention axis that explains it.

``grukit diff A B`` reads both files' networks (:mod:`grukit.derive.files.networks`) and this module
runs them with the NumPy engine on the same trials: random inputs and non-zero initial states, inputs large
enough to saturate every gate (where activations and clipping differ), and, where either file runs
sequences of their own lengths (an ONNX ``sequence_lens``, a Keras ``Masking`` layer, a problem's
lengths or mask), a batch of different lengths (outputs compared at the steps each sequence has).

Where they differ, the explanation is found by trying repairs on A, one at a time, and keeping the
first that makes A compute B's function on every trial:

* a convention axis on which the two files' cells differ (:data:`AXIS_GROUPS`: the reset placement --
  ONNX's ``linear_before_reset``, Keras's ``reset_after`` --, each activation with its alpha and
  beta, ``clip``, the update rule): A's cells take B's value, weights unchanged;
* the gate order: A's gate blocks permuted (every order of the ``Convention`` gates);
* the bias merge: A's candidate recurrent bias (PyTorch's ``b_hn``) added into its input bias, which
  changes the function under reset-after (it sits inside ``r * (U h + b_hn)``);
* the directions: a bidirectional layer's two cells' weights swapped, a lone cell's direction flipped.

Each repair is built from the cells' :class:`~grukit.derive.cell.convention.Convention` values and
parameters; none reads a convention's name.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import permutations

import numpy as np

from grukit.derive.cell.convention import GATES, ConventionError, Param
from grukit.derive.cell.layouts import LAYOUTS
from grukit.derive.layers.network import Network
from grukit.derive.layers.run import run_network
from grukit.derive.numeric.batch import batched_engine

TOLERANCE = 1e-5
"""The largest difference between two networks' outputs or final states that is still "the same":
float32 weights computed in float64 agree to ~1e-7 after a bias fold rounded once."""
BATCH, STEPS = 3, 6

AXIS_GROUPS: dict[str, tuple[str, ...]] = {
    "reset position (linear_before_reset)": ("reset",),
    "gate activation": ("gate_activation", "gate_activation_alpha", "gate_activation_beta"),
    "candidate activation": ("candidate_activation", "candidate_activation_alpha", "candidate_activation_beta"),
    "clip": ("clip",),
    "update rule": ("update_rule",),
}
"""The convention axes a repair takes from B, each group as one axis (an activation with its parameters)."""


@dataclass
class Trial:
    name: str
    inputs: np.ndarray  # B x T x D
    h0: list[np.ndarray]  # per cell, B x H
    lengths: list[int] | None = None

    @property
    def valid(self) -> np.ndarray | None:
        if self.lengths is None:
            return None
        return (np.arange(self.inputs.shape[1])[None, :] < np.array(self.lengths)[:, None]).astype(int)


@dataclass
class Repair:
    axis: str  # a key of AXIS_GROUPS, or "gate order", "bias merge", "direction"
    explanation: str
    network: Network  # A repaired


@dataclass
class Difference:
    same: bool
    largest: float = 0.0
    where: str = ""
    trial: Trial | None = None
    sequence: int = 0  # the trial's sequence where the difference is largest
    structure: str = ""  # the networks differ in shape: what differs
    repair: Repair | None = None


# --- running ---------------------------------------------------------------------------------------

def trials(a: Network, lengths: bool, seed: int = 0) -> list[Trial]:
    """The inputs both networks run on (``lengths``: either file runs sequences of their own lengths)."""
    rng = np.random.default_rng(seed)
    D, sizes = a.input_size, [c.hidden_size for _, c in a.cells]

    def trial(name, scale, lengths=None):
        return Trial(name, rng.uniform(-scale, scale, (BATCH, STEPS, D)),
                     [rng.uniform(-0.9, 0.9, (BATCH, n)) for n in sizes], lengths)

    out = [trial("random inputs and initial states", 1.5), trial("inputs that saturate every gate", 6.0)]
    if lengths:
        out.append(trial("sequences of lengths 6, 3, 1", 1.5, [STEPS, 3, 1]))
    return out


def _run(net: Network, t: Trial) -> tuple[np.ndarray, np.ndarray]:
    """Outputs (T x units x B, zero past each sequence's length: what every framework's padding has
    in common) and the final states of every cell, one above the other (units x B)."""
    eng = batched_engine("numpy")
    with eng.numbers("diff"):
        run = run_network(net, t.inputs, t.h0, t.valid, eng)
    outputs = np.stack(run.outputs).astype(float)
    if t.valid is not None:
        outputs = outputs * t.valid.T[:, None, :]
    return outputs, np.concatenate([np.asarray(h, dtype=float) for h in run.h_n])


def _gaps(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    gap = np.abs(x - y)
    return np.where(np.isnan(gap), np.inf, gap)  # NaN on one side only is the largest difference there is


def _largest(a: Network, b: Network, t: Trial) -> tuple[float, str, int]:
    """The largest difference of the two networks' outputs and final states on ``t``, where it is in
    words, and the sequence it is in."""
    (ya, ha), (yb, hb) = _run(a, t), _run(b, t)
    dy, dh = _gaps(ya, yb), _gaps(ha, hb)
    if dy.max() >= dh.max():
        step, unit, seq = np.unravel_index(np.argmax(dy), dy.shape)
        return float(dy.max()), f"outputs: sequence {seq}, step {step}, unit {unit} ({ya[step, unit, seq]:.9g} vs " \
                                f"{yb[step, unit, seq]:.9g})", int(seq)
    row, seq = np.unravel_index(np.argmax(dh), dh.shape)
    ends = np.cumsum([c.hidden_size for _, c in a.cells])
    cell = int(np.searchsorted(ends, row, side="right"))
    unit = row - (ends[cell - 1] if cell else 0)
    return float(dh.max()), f"final state of cell {cell}: sequence {seq}, unit {unit} ({ha[row, seq]:.9g} " \
                            f"vs {hb[row, seq]:.9g})", int(seq)


def _agree(a: Network, b: Network, runs: list[Trial]) -> bool:
    return all(_largest(a, b, t)[0] <= TOLERANCE for t in runs)


def structure(a: Network, b: Network) -> str:
    """How the two networks differ in shape (sizes, layers, directions, merges), or ''."""
    if a.input_size != b.input_size:
        return f"input sizes {a.input_size} and {b.input_size}"
    if len(a.layers) != len(b.layers):
        return f"{len(a.layers)} and {len(b.layers)} layers"
    for k, (la, lb) in enumerate(zip(a.layers, b.layers)):
        if la.hidden_size != lb.hidden_size or len(la.cells) != len(lb.cells):
            return f"layer {k}: H = {la.hidden_size}, {la.direction} and H = {lb.hidden_size}, {lb.direction}"
        if la.output_size != lb.output_size:
            return f"layer {k}: directions merged by {la.merge} and by {lb.merge}"
    return ""


# --- repairs ---------------------------------------------------------------------------------------

def _with_cells(net: Network, change) -> Network:
    """``net`` with every cell replaced by ``change(k, j, cell)`` (layer k, cell j)."""
    layers = [replace(layer, cells=tuple(change(k, j, c) for j, c in enumerate(layer.cells)))
              for k, layer in enumerate(net.layers)]
    return replace(net, layers=layers)


def axis_repairs(a: Network, b: Network):
    cells_b = [layer.cells for layer in b.layers]
    for axis, group in AXIS_GROUPS.items():
        differing = [(ca.convention, cb.convention) for (_, ca), (_, cb) in zip(a.cells, b.cells)
                     if any(getattr(ca.convention, x) != getattr(cb.convention, x) for x in group)]
        if not differing:
            continue

        def take(k, j, cell, group=group):
            theirs = cells_b[k][j].convention
            return replace(cell, convention=cell.convention.with_changes(**{x: getattr(theirs, x) for x in group}))

        try:
            repaired = _with_cells(a, take)
        except ConventionError:  # B's value cannot exist in A's convention (reset-after on [h, x] weights)
            continue
        ours, theirs = differing[0]
        shown = ", ".join(f"{x}={getattr(ours, x)}" for x in group if getattr(ours, x) is not None)
        shown_b = ", ".join(f"{x}={getattr(theirs, x)}" for x in group if getattr(theirs, x) is not None)
        yield Repair(axis, f"A's cells have {shown}, B's {shown_b}: the same weights under B's {group[0]} give "
                           f"B's outputs", repaired)


def gate_order_repairs(a: Network, b: Network):
    for order in permutations(GATES):
        if order == GATES:
            continue
        moved = dict(zip(GATES, order))
        if any(np.shape(v) != np.shape(c.params[Param(p.role, moved[p.gate])]) for _, c in a.cells
               for p, v in c.params.items()):
            continue  # scalar gates: only the two of one width trade places

        def permute(k, j, cell, moved=moved):
            return replace(cell, params={p: cell.params[Param(p.role, moved[p.gate])] for p in cell.params})

        conv_b = b.layers[0].cells[0].convention
        native = LAYOUTS[b.framework].gate_order(conv_b) if b.framework in LAYOUTS else GATES
        letter = conv_b.notation.letter
        held = "|".join(letter(moved[g]) for g in native)
        yield Repair("gate order", f"B's gate blocks hold A's gates in the order [{held}] where "
                                   f"{b.framework if b.framework in LAYOUTS else 'its convention'} reads "
                                   f"[{'|'.join(map(letter, native))}]", _with_cells(a, permute))


def bias_merge_repairs(a: Network, b: Network):
    hn, hin = Param("recurrent_bias", "h"), Param("input_bias", "h")
    if not any(hn in c.params and c.convention.reset == "after" for _, c in a.cells):
        return

    def merge(k, j, cell):
        if hn not in cell.params:
            return cell
        params = dict(cell.params)
        params[hin] = np.asarray(params[hin], dtype=object) + np.asarray(params[hn], dtype=object)
        params[hn] = np.asarray(params[hn], dtype=object) * 0
        return replace(cell, params=params)

    yield Repair("bias merge", "B's candidate input bias is A's b_in + b_hn and its b_hn is 0: under reset-after "
                               "b_hn sits inside r * (U h + b_hn) and cannot join the input bias",
                 _with_cells(a, merge))


def direction_repairs(a: Network, b: Network):
    flip = {"forward": "reverse", "reverse": "forward"}

    def swap(k, j, cell):
        layer = a.layers[k]
        if len(layer.cells) == 2:
            return replace(layer.cells[1 - j], direction=cell.direction)
        return replace(cell, direction=flip[cell.direction])

    yield Repair("direction", "B's forward and reverse weights are A's reverse and forward ones (a lone cell: "
                              "run the other way)", _with_cells(a, swap))


REPAIRS = (axis_repairs, gate_order_repairs, bias_merge_repairs, direction_repairs)
"""The repairs tried, in order: what the conventions say first, then what only the values show."""


def diff(a: Network, b: Network, lengths: bool = False, seed: int = 0) -> Difference:
    """Whether ``a`` and ``b`` compute the same function on :func:`trials`, and if not, where they differ
    most and the first repair of ``a`` (:data:`REPAIRS`) that makes it compute ``b``'s."""
    shape = structure(a, b)
    if shape:
        return Difference(False, float("inf"), structure=shape)
    runs = trials(a, lengths, seed)
    worst = max(((*_largest(a, b, t), t) for t in runs), key=lambda r: r[0])
    if worst[0] <= TOLERANCE:
        return Difference(True, worst[0], worst[1], worst[3], worst[2])
    out = Difference(False, worst[0], worst[1], worst[3], worst[2])
    for source in REPAIRS:
        for repair in source(a, b):
            if _agree(repair.network, b, runs):
                out.repair = repair
                return out
    return out


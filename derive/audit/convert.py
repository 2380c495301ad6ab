"""Weights from one convention (or framework layout) to another, exactly where a map exists.

``grukit convert --from A --to B IN.npz OUT.npz``: IN holds A's weights -- the framework's own
arrays when A is bound to a layout (Keras ``kernel``/``recurrent_kernel``/``bias``, PyTorch
``weight_ih_l0``..., ONNX ``W``/``R``/``B``), else one array per parameter under A's keys. They are
read as exact numbers (every float is a binary fraction), carried over by the map of
:func:`~grukit.derive.audit.reparam.reparameterization` in rational arithmetic, and written in B's form
and IN's float type. Reordering, transposing, splitting and negating are exact in any float type;
a bias fold (b_i + b_r) or a hard-sigmoid rescale is rounded once, to that type, and the notes say
so. Where no map exists the error says why.

:func:`network_as` does the same for a whole network (``grukit convert IN OUT`` with model files):
each cell into the target framework's convention (:data:`TARGETS`: its preset for the cell's reset
placement, with the cell's activations where the framework has them), each layer's composition
checked against what the framework can hold; where it has none, one line says why and points to
grukit's PyTorch module, which runs any convention.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from grukit.derive.audit.reparam import NoMap, Reparameterization, reparameterization
from grukit.derive.cell.convention import Convention
from grukit.derive.cell.functions import ACTIVATIONS
from grukit.derive.cell.layouts import LAYOUTS
from grukit.derive.cell.presets import PRESETS
from grukit.derive.errors import GrukitError
from grukit.derive.files.keras_files import KERAS_ACTIVATIONS
from grukit.derive.files.problem_file import WeightSource, exact_params, layout_source, read_npz, weight_sizes
from grukit.derive.layers.network import FRAMEWORKS, MERGES, Cell, Layer, Network


@dataclass
class Conversion:
    arrays: dict[str, np.ndarray]
    rep: Reparameterization
    sizes: tuple[int, int]
    notes: list[str] = field(default_factory=list)


def read_weights(conv: Convention, path: Path):
    """A convention's exact parameters from an .npz (its layout's arrays, or one per key), and D, H, dtype."""
    if conv.layout is not None:
        source = layout_source({"layout": conv.layout, "file": path.name}, conv, path)
    else:
        arrays = read_npz(path, str(path))
        keys = [conv.key(p) for p in conv.parameters()]
        missing, unknown = [k for k in keys if k not in arrays], sorted(set(arrays) - set(keys))
        if missing or unknown:
            raise GrukitError(f"{path}: {conv.name} weights are the arrays {', '.join(keys)}"
                              + (f"; missing {', '.join(missing)}" if missing else "")
                              + (f"; unknown {', '.join(unknown)}" if unknown else ""))
        source = WeightSource(arrays, f"{path}: ")
    D, H = weight_sizes(source, conv)
    dtypes = {np.asarray(a).dtype for a in source.arrays.values()}
    dtype = dtypes.pop() if len(dtypes) == 1 else np.dtype(float)
    return exact_params(source, conv, D, H), (D, H), dtype


def convert(source: Convention, target: Convention, path: Path) -> Conversion:
    path = Path(path)
    where = f"convert {source.name} -> {target.name}"
    try:
        rep = reparameterization(source, target)
    except NoMap as exc:
        raise GrukitError(f"{where}: no exact mapping: {exc}") from None
    params, (D, H), dtype = read_weights(source, path)
    try:
        mapped = rep.apply(params, D, H)
    except NoMap as exc:
        raise GrukitError(f"{path}: {where}: {exc}") from None
    if target.layout is not None:
        exact = LAYOUTS[target.layout].pack(target, mapped, D, H)
    else:
        exact = {target.key(p): v for p, v in mapped.items()}
    arrays = {name: np.vectorize(float, otypes=[float])(np.asarray(v, dtype=object)).astype(dtype)
              for name, v in exact.items()}
    out = Conversion(arrays, rep, (D, H))
    out.notes += [f"holds in {path.name}, so the map is exact: {c}" for c in rep.conditions]
    if source.layout or target.layout:
        out.notes.append(f"read as {_form(source)}; written as {_form(target)}")
    if any(not _exactly(v, arrays[n]) for n, v in exact.items()):
        out.notes.append(f"rounded once to {np.dtype(dtype).name} (the map adds or scales values)")
    return out


def _form(conv: Convention) -> str:
    if conv.layout is None:
        return f"one array per parameter ({', '.join(conv.key(p) for p in conv.parameters())})"
    layout = LAYOUTS[conv.layout]
    return f"{conv.layout} arrays, gate blocks [{'|'.join(layout.gate_order(conv))}]"


def _exactly(exact: np.ndarray, stored: np.ndarray) -> bool:
    return all(Fraction(float(s)) == Fraction(e) for e, s in zip(np.ravel(exact), np.ravel(stored)))


# --- whole networks into a framework's own form ------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """What a framework's GRU layers can hold: the preset of each reset placement, the activation axes
    it takes from a cell (and the activation kinds it has), and how it composes cells (directions,
    merges) -- data, never a branch on a convention's name."""

    framework: str
    shown: str
    presets: dict[str, str]  # reset placement -> preset
    carried: tuple[str, ...] = ()  # axes it takes from the source cell
    activations: frozenset[str] = frozenset()  # the activation kinds it has
    directions: tuple[str, ...] = ("forward", "reverse", "bidirectional")
    merges: tuple[str, ...] = ("concat",)
    last_merges: tuple[str, ...] = ("concat",)  # the top layer's (its output is the model's)
    one_size: bool = False  # every layer the same hidden size and direction (one nn.GRU)


ONNX_CARRIED = ("gate_activation", "candidate_activation", "gate_activation_alpha", "gate_activation_beta",
                "candidate_activation_alpha", "candidate_activation_beta", "clip")
"""ONNX's ``activations``, ``activation_alpha``/``beta`` and ``clip`` attributes, as convention axes."""
TARGETS: dict[str, Target] = {t.framework: t for t in (
    Target("pytorch", "PyTorch's nn.GRU", {"after": "pytorch"}, directions=("forward", "bidirectional"),
           one_size=True),
    Target("onnx", "ONNX's GRU operator", {"before": "onnx", "after": "onnx-lbr1"}, ONNX_CARRIED,
           frozenset(a.name for a in ACTIVATIONS.values() if a.onnx), last_merges=("concat", "none")),
    Target("keras", "Keras's GRU layer", {"before": "keras-reset-before", "after": "keras"},
           ("gate_activation", "candidate_activation"),
           frozenset(kind for kind, alpha in KERAS_ACTIVATIONS.values() if alpha is None),
           merges=tuple(m for m in MERGES if m not in ("stack", "none")),
           last_merges=tuple(m for m in MERGES if m != "stack")),
)}
"""The frameworks ``grukit convert`` writes model files of."""
SAME_MERGES = {"stack": "concat"}
"""Merges that hold the same numbers as another, arranged differently (ONNX's directions axis)."""
MODULE_HINT = "grukit's PyTorch module runs it as it is: use grukit.GRU(convention={})"


def target_convention(cell: Convention, target: Target) -> Convention:
    """The target's convention closest to ``cell``'s: its preset for the cell's reset placement, with
    the cell's activations where the target has them. :func:`reparameterization` then says whether
    the weights carry over (a :class:`NoMap` naming the axis where they do not)."""
    preset = target.presets.get(cell.reset)
    if preset is None:
        raise NoMap(f"it has no reset={cell.reset} GRU")
    base = PRESETS[preset]
    carried = {a: getattr(cell, a) for a in target.carried}
    if all(carried.get(a, getattr(base, a)) in target.activations | {getattr(base, a)}
           for a in ("gate_activation", "candidate_activation")):
        return base.with_changes(**carried)
    return base


def network_as(net: Network, framework: str, where: str) -> Network:
    """``net`` in ``framework``'s conventions, cell by cell (each exact by :func:`reparameterization`, a
    bias fold rounded once), or one line saying why the framework has no exact form of it."""
    target = TARGETS[framework]
    rules = FRAMEWORKS[framework]
    layers = []
    for k, layer in enumerate(net.layers):
        at = f"{where}: layer {k}{f' ({layer.name})' if layer.name else ''}"
        last = k == len(net.layers) - 1
        merges = target.last_merges if last else target.merges
        merge = SAME_MERGES.get(layer.merge, layer.merge)
        problem = None
        if layer.direction not in target.directions:
            problem = f"a {layer.direction} layer"
        elif layer.direction == "reverse" and layer.reverse_order != rules.reverse_order:
            problem = f"a reverse layer with its outputs in {layer.reverse_order} order"
        elif len(layer.cells) > 1 and merge not in merges:
            problem = f"directions merged by {layer.merge}"
        elif target.one_size and (layer.hidden_size != net.layers[0].hidden_size
                                  or layer.direction != net.layers[0].direction):
            problem = "layers of different sizes or directions (one nn.GRU has one of each)"
        if problem:
            raise GrukitError(f"{at}: {target.shown} has no exact form of {problem}")
        cells = []
        for cell in layer.cells:
            try:
                conv = target_convention(cell.convention, target)
                rep = reparameterization(cell.convention, conv)
                params = rep.apply(cell.params, cell.input_size, cell.hidden_size)
            except NoMap as exc:
                conv = cell.convention
                shown = repr(conv.name) if PRESETS.get(conv.name) == conv else "..."
                raise GrukitError(f"{at}, {cell.direction}: {target.shown} has no exact form of this {conv.name} "
                                  f"cell: {exc}; {MODULE_HINT.format(shown)}") from None
            cells.append(Cell(conv, params, cell.direction))
        layers.append(Layer(tuple(cells), merge, rules.padded_output, rules.reverse_order, layer.name))
    return Network(framework, layers, rules.final_state)

"""Problem files: YAML read safely, decimals read exactly, every error naming the file and field.

A problem names a convention, gives the inputs (T x D), the initial state (default zeros) and the
weights -- either under the convention's own symbols or as ``{layout: keras|pytorch|onnx, file:
weights.npz}`` with the framework's own array names -- and optionally a loss head. All reading and
checking of files happens here; :mod:`grukit.derive.cell.losses` and :mod:`grukit.derive.cell.layouts` only
compute.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from grukit.derive.cell.convention import (
    AXES,
    Convention,
    Param,
)
from grukit.derive.cell.layouts import LAYOUTS, Layout
from grukit.derive.cell.losses import LAST_STEP_OUTPUT_HEADS, LOSS_TYPES, LossHead
from grukit.derive.errors import GrukitError
from grukit.derive.files.arrays import read_npz, referenced_file
from grukit.derive.files.convention_file import resolve_convention
from grukit.derive.files.yaml_values import load_yaml, matrix_rows, object_array, shown, to_array, to_number
from grukit.derive.numeric.problem import Problem

PROBLEM_KEYS = ("title", "description", "convention", "inputs", "h0", "weights", "loss", "learning_rate",
                "observed")
LOSS_KEYS = {
    "softmax_cross_entropy": {"type", "W_o", "b_o", "target", "targets"},
    "squared_error": {"type", "W_o", "b_o", "targets"},
    "weighted_sum": {"type", "G"},
    "final_mse": {"type", "target"},
    **{kind: {"type", "W_o", "b_o", "target"} for kind in LAST_STEP_OUTPUT_HEADS},
}



# --- weights ------------------------------------------------------------------------------------

@dataclass
class WeightSource:
    """The weights as a problem gives them, every name checked, not yet their shapes: the values by
    name, the prefix of an error about one of them, and the framework layout if they came in one."""

    arrays: dict[str, object]
    where: str  # "p.yaml: weights." (the problem's own names) or "w.npz: " (a layout file)
    layout: Layout | None = None


def weight_source(spec, conv: Convention, path: Path) -> WeightSource:
    where = f"{path}: weights"
    if not isinstance(spec, dict):
        raise GrukitError(f"{where}: expected a mapping")
    if "layout" in spec:
        return layout_source(spec, conv, path)
    keys = [conv.key(p) for p in conv.parameters()]
    unknown = [k for k in spec if k not in keys]
    if unknown:
        raise GrukitError(f"{where}.{unknown[0]}: unknown weight for convention {conv.name!r} "
                          f"(expected: {', '.join(keys)})")
    missing = [k for k in keys if k not in spec]
    if missing:
        raise GrukitError(f"{where}.{missing[0]}: missing (convention {conv.name!r} needs {', '.join(keys)})")
    return WeightSource(spec, f"{where}.")


def layout_source(spec: dict, conv: Convention, path: Path) -> WeightSource:
    """``{layout: NAME, file: weights.npz}``: the archive's arrays, their names checked all at once."""
    where = f"{path}: weights"
    unknown = sorted(map(str, set(spec) - {"layout", "file"}))
    if unknown:
        raise GrukitError(f"{where}.{unknown[0]}: unknown key (allowed: layout, file)")
    name = spec["layout"]
    if not isinstance(name, str) or name not in LAYOUTS:
        raise GrukitError(f"{where}.layout: unknown layout {shown(name)} (choose from {', '.join(LAYOUTS)})")
    layout = LAYOUTS[name]
    layout.check(conv, f"{where}.layout")
    if "file" not in spec:
        raise GrukitError(f"{where}.file: missing (an .npz file with the {name} arrays)")
    file = referenced_file(path, spec["file"], f"{where}.file")
    arrays = read_npz(file, f"{where}.file")
    expected = layout.array_names(conv)
    problems = [_listed("missing", [n for n in expected if n not in arrays]),
                _listed("unknown", sorted(set(arrays) - set(expected)))]
    if any(problems):
        raise GrukitError(f"{where}.file: {file}: {'; '.join(filter(None, problems))} "
                          f"(layout {name} holds {', '.join(expected)})")
    return WeightSource(arrays, f"{file}: ", layout)


def _listed(what: str, names: list[str]) -> str:
    """``missing arrays 'a', 'b'`` (empty for no names)."""
    if not names:
        return ""
    return f"{what} array{'s' if len(names) > 1 else ''} {', '.join(map(repr, names))}"


def weight_sizes(source: WeightSource, conv: Convention) -> tuple[int, int]:
    """(D, H) from the weights alone, so that inputs and h0 of the wrong size are blamed on themselves."""
    if source.layout is not None:
        return _layout_sizes(source)
    key = conv.key(Param("input_weight", "h"))
    w = object_array(source.arrays[key], f"{source.where}{key}")
    if w.ndim != 2:
        raise GrukitError(f"{source.where}{key}: expected a matrix")
    hidden, cols = w.shape if conv.orientation == "column" else w.shape[::-1]
    if conv.input_form == "separate":
        return cols, hidden
    if cols <= hidden:
        side = "columns" if conv.orientation == "column" else "rows"
        raise GrukitError(f"{source.where}{key}: acts on [h, x], so needs more than H = {hidden} {side}, got {cols}")
    return cols - hidden, hidden


def _layout_sizes(source: WeightSource) -> tuple[int, int]:
    layout = source.layout
    for name in (layout.input_weight, layout.recurrent_weight):
        shape = np.shape(source.arrays[name])
        if len(shape) != 2 + layout.lead:
            raise GrukitError(f"{source.where}{name}: expected {2 + layout.lead} axes, got shape "
                              f"{'x'.join(map(str, shape)) or 'a scalar'}")
    return layout.sizes(source.arrays)


def _read_weights(spec, conv: Convention, path: Path) -> None:
    """The weights read under ``conv`` (names, sizes, shapes), or the one-line error saying why not."""
    source = weight_source(spec, conv, path)
    exact_params(source, conv, *weight_sizes(source, conv))


def held_biases(spec, conv: Convention, path: Path) -> Convention | None:
    """``conv`` with the bias axis the weights hold when it is not ``conv``'s own: what a file's arrays
    say about its convention (a Keras ``bias`` of 3H entries is a ``reset_after=False`` layer's one
    bias per gate, a PyTorch file without ``bias_ih_l0`` has none). None when no other kind reads them."""
    for kind in AXES["biases"]:
        if kind == conv.biases:
            continue
        try:
            changed = conv.with_changes(biases=kind)
            _read_weights(spec, changed, path)
        except GrukitError:
            continue
        return changed
    return None


def weights_convention(spec, conv: Convention, path: Path) -> Convention:
    """The stated convention if its weights read under it, else the one whose bias axis they hold
    (:func:`held_biases`); the stated one when none does (its own error is then raised where it arises)."""
    try:
        _read_weights(spec, conv, path)
        return conv
    except GrukitError:
        return held_biases(spec, conv, path) or conv


def _hinted(error: GrukitError, spec, conv: Convention, path: Path) -> GrukitError:
    """``error`` about the weights, with what they hold when another bias axis reads them."""
    other = held_biases(spec, conv, path)
    if other is None:
        return error
    return GrukitError(f"{error} (these weights hold {AXES['biases'][other.biases]} (biases: {other.biases}), not "
                       f"what convention {conv.name!r} has; `grukit identify` reads them under every convention "
                       f"they fit)")


def exact_params(source: WeightSource, conv: Convention, inputs: int, hidden: int) -> dict[Param, np.ndarray]:
    """Every parameter, shape-checked, as exact numbers (unpacked from the layout's arrays if need be)."""
    if source.layout is None:
        return {p: to_array(source.arrays[conv.key(p)], conv.param_shape(p, inputs, hidden),
                            f"{source.where}{conv.key(p)}") for p in conv.parameters()}
    exact = {}
    for name, shape in source.layout.array_shapes(conv, inputs, hidden).items():
        if not np.issubdtype(source.arrays[name].dtype, np.number):
            raise GrukitError(f"{source.where}{name}: not a numeric array")
        exact[name] = to_array(source.arrays[name], shape, f"{source.where}{name}")
    return source.layout.unpack(conv, exact)


# --- the loss head -------------------------------------------------------------------------------

def parse_loss(spec, problem: Problem, where: str) -> LossHead:
    """A problem's ``loss`` mapping, checked against its sizes (T, H and the output layer's O)."""
    if not isinstance(spec, dict) or "type" not in spec:
        raise GrukitError(f"{where}: expected a mapping with a 'type' ({', '.join(LOSS_TYPES)})")
    kind = spec["type"]
    if not isinstance(kind, str) or kind not in LOSS_TYPES:
        raise GrukitError(f"{where}.type: unknown loss {shown(kind)} (choose from {', '.join(LOSS_TYPES)})")
    extra = sorted(map(str, set(spec) - LOSS_KEYS[kind]))
    if extra:
        raise GrukitError(f"{where}.{extra[0]}: unknown key for {kind} (allowed: {', '.join(sorted(LOSS_KEYS[kind]))})")
    T, H = problem.steps, problem.hidden_size
    W_o, b_o = _output_layer(spec, problem, where)
    O = (W_o.shape[0] if problem.convention.orientation == "column" else W_o.shape[1]) if W_o is not None else H
    if kind == "softmax_cross_entropy":
        if W_o is None:
            raise GrukitError(f"{where}.W_o: missing (softmax_cross_entropy needs an output layer)")
        if "targets" in spec:  # one target per step: cross-entropy summed over t (sequence labelling)
            if "target" in spec or not isinstance(spec["targets"], list) or len(spec["targets"]) != T:
                raise GrukitError(f"{where}.targets: expected {T} targets (one per step), or 'target' alone")
            return LossHead(kind, tuple(range(T)), tuple(_class_target(y, O, f"{where}.targets[{t}]")
                                                         for t, y in enumerate(spec["targets"])), W_o, b_o)
        return LossHead(kind, (T - 1,), (_class_target(spec.get("target"), O, f"{where}.target"),), W_o, b_o)
    if kind == "squared_error":
        if "targets" not in spec:
            raise GrukitError(f"{where}.targets: missing ({T}x{O})")
        targets = to_array(spec["targets"], (T, O), f"{where}.targets")
        return LossHead(kind, tuple(range(T)), tuple(targets), W_o, b_o)
    if kind in LAST_STEP_OUTPUT_HEADS:
        if "target" not in spec:
            raise GrukitError(f"{where}.target: missing ({O} numbers)")
        return LossHead(kind, (T - 1,), (to_array(spec["target"], (O,), f"{where}.target"),), W_o, b_o)
    if kind == "weighted_sum":
        if "G" not in spec:
            raise GrukitError(f"{where}.G: missing ({T}x{H})")
        G = to_array(spec["G"], (T, H), f"{where}.G")
        return LossHead(kind, tuple(range(T)), tuple(G))
    if "target" not in spec:
        raise GrukitError(f"{where}.target: missing ({H} numbers)")
    return LossHead(kind, (T - 1,), (to_array(spec["target"], (H,), f"{where}.target"),))


def _output_layer(spec: dict, problem: Problem, where: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """W_o (O x H, or H x O in row conventions, O read off the matrix) and b_o, if given."""
    if "W_o" not in spec:
        if "b_o" in spec:
            raise GrukitError(f"{where}.b_o: given without W_o")
        return None, None
    column = problem.convention.orientation == "column"
    w = object_array(spec["W_o"], f"{where}.W_o")
    if w.ndim != 2:
        raise GrukitError(f"{where}.W_o: expected a matrix")
    O, H = (w.shape[0] if column else w.shape[1]), problem.hidden_size
    W_o = to_array(spec["W_o"], (O, H) if column else (H, O), f"{where}.W_o")
    b_o = to_array(spec["b_o"], (O,), f"{where}.b_o") if "b_o" in spec else None
    return W_o, b_o


def _class_target(target, outputs: int, where: str) -> np.ndarray:
    """A one-hot list, or a class index turned into one."""
    if target is None:
        raise GrukitError(f"{where}: missing (one-hot list or class index)")
    if isinstance(target, int) and not isinstance(target, bool):
        if not 0 <= target < outputs:
            raise GrukitError(f"{where}: class index {target} outside 0..{outputs - 1}")
        target = [1 if k == target else 0 for k in range(outputs)]
    return to_array(target, (outputs,), where)


# --- the problem ---------------------------------------------------------------------------------

def load_problem(path: str | Path, fit_weights: bool = False) -> Problem:
    path = Path(path)
    data = load_yaml(path)
    return problem_from_mapping(data, path, fit_weights)


def problem_from_mapping(data, path: Path, fit_weights: bool = False) -> Problem:
    """Checked in the order that blames each mistake on its own field: keys, convention, inputs,
    weight names, sizes (D and H from the weights), inputs' width, h0, weight shapes, loss.

    Weights that the stated convention cannot hold but another bias axis can are refused with a hint
    that says so; with ``fit_weights`` (``grukit identify``, which searches from what the arrays
    say) they are read under that axis, and the problem keeps the stated convention beside it."""
    if not isinstance(data, dict):
        raise GrukitError(f"{path}: expected a mapping with keys {', '.join(PROBLEM_KEYS)}")
    unknown = [k for k in data if k not in PROBLEM_KEYS]
    if unknown:
        raise GrukitError(f"{path}: {unknown[0]}: unknown key (allowed: {', '.join(PROBLEM_KEYS)})")
    for key in ("convention", "inputs", "weights"):
        if key not in data:
            raise GrukitError(f"{path}: {key}: missing")
    stated = conv = resolve_convention(data["convention"], f"{path}: convention", path)
    if fit_weights:
        conv = weights_convention(data["weights"], conv, path)
    inputs = matrix_rows(data["inputs"], f"{path}: inputs")
    try:
        source = weight_source(data["weights"], conv, path)
    except GrukitError as exc:
        raise _hinted(exc, data["weights"], conv, path) from None
    D, H = weight_sizes(source, conv)
    if inputs.shape[1] != D:
        raise GrukitError(f"{path}: inputs: rows have {inputs.shape[1]} values, the weights expect D = {D}")
    h0 = to_array(data["h0"], (H,), f"{path}: h0") if data.get("h0") is not None else \
        np.array([Fraction(0)] * H, dtype=object)
    try:
        params = exact_params(source, conv, D, H)
    except GrukitError as exc:
        raise _hinted(exc, data["weights"], conv, path) from None
    lr = None
    if data.get("learning_rate") is not None:
        lr = to_number(data["learning_rate"], f"{path}: learning_rate")
    problem = Problem(path, conv, inputs, h0, params, title=str(data.get("title") or ""),
                      description=str(data.get("description") or ""),
                      layout=source.layout.name if source.layout else None, learning_rate=lr,
                      observed=data.get("observed"), stated_convention=stated if stated != conv else None)
    if data.get("loss") is not None:
        problem.loss = parse_loss(data["loss"], problem, f"{path}: loss")
    return problem

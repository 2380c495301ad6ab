"""Problem files: YAML read safely, decimals read exactly, every error naming the file and field.

A problem names a convention, gives the inputs (T x D), the initial state (default zeros) and the
weights -- either under the convention's own symbols or as ``{layout: keras|pytorch|onnx, file:
weights.npz}`` with the framework's own array names -- and optionally a loss head. All reading and
checking of files happens here; :mod:`grukit.derive.losses` and :mod:`grukit.derive.layouts` only
compute.
"""
from __future__ import annotations

import math
import re
import zipfile
from dataclasses import dataclass, fields, replace
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path

import numpy as np
import yaml

from .convention import ARRANGEMENT_AXES, AXES, GATES, PARAMETER_AXES, Convention, ConventionError, Notation, Param
from .errors import GrukitError
from .layouts import LAYOUTS, Layout
from .losses import LOSS_TYPES, LossHead
from .presets import PRESETS

PROBLEM_KEYS = ("title", "description", "convention", "inputs", "h0", "weights", "loss", "learning_rate",
                "observed")
CONVENTION_KEYS = ("name", "description", "source", "preset", "notation", *AXES, *ARRANGEMENT_AXES, *PARAMETER_AXES)
CONVENTION_SUFFIXES = (".yaml", ".yml")
LOSS_KEYS = {
    "softmax_cross_entropy": {"type", "W_o", "b_o", "target", "targets"},
    "squared_error": {"type", "W_o", "b_o", "targets"},
    "weighted_sum": {"type", "G"},
    "final_mse": {"type", "target"},
}


class ExactLoader(yaml.SafeLoader):
    """SafeLoader that reads decimal numbers, exponent forms included, as exact fractions (0.1 is
    1/10, 1.5e-3 is 3/2000). The resolver below is added to this class only, not to PyYAML's own."""


def _exact_float(loader, node):
    text = loader.construct_scalar(node).replace("_", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        return float(yaml.SafeLoader.construct_yaml_float(loader, node))  # .inf / .nan
    if not value.is_finite():
        return float(value)
    return Fraction(value)


ExactLoader.add_constructor("tag:yaml.org,2002:float", _exact_float)
# YAML 1.1 (PyYAML) reads a number in exponent form as a float only with a dot and a signed
# exponent (1.0e+6); 1e6, 1.5e3 and -2E+2 would be strings. This loader reads them all as numbers.
ExactLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def load_yaml(path: Path) -> object:
    try:
        text = path.read_text()
    except OSError as exc:
        raise GrukitError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_yaml(text, ExactLoader, str(path))


def parse_yaml(text: str, loader: type, where: str) -> object:
    """``text`` read safely with ``loader`` (a SafeLoader subclass); bad YAML is a one-line error."""
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark else ""
        raise GrukitError(f"{where}: not valid YAML{line}: {getattr(exc, 'problem', exc)}") from None


@dataclass
class Problem:
    """A validated problem: exact numbers as numpy object arrays of Fractions."""

    path: Path
    convention: Convention
    inputs: np.ndarray  # T x D
    h0: np.ndarray  # H
    params: dict[Param, np.ndarray]
    title: str = ""
    description: str = ""
    layout: str | None = None  # the framework layout the weights came in, if any
    loss: LossHead | None = None
    learning_rate: Fraction | None = None
    observed: object = None  # the ``observed`` mapping as written; derive/identify.py checks and reads it

    @property
    def steps(self) -> int:
        return self.inputs.shape[0]

    @property
    def input_size(self) -> int:
        return self.inputs.shape[1]

    @property
    def hidden_size(self) -> int:
        return self.h0.shape[0]


# --- numbers ------------------------------------------------------------------------------------

def to_number(value, where: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, Fraction, float, np.integer, np.floating)):
        raise GrukitError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise GrukitError(f"{where}: {value} is not a finite number")
        return Fraction(float(value))
    return Fraction(value)


def to_array(value, shape: tuple[int, ...], where: str) -> np.ndarray:
    """A nested list (or array) of numbers with exactly ``shape``; vectors may be written as columns."""
    arr = np.array(value, dtype=object) if not isinstance(value, np.ndarray) else value.astype(object)
    if arr.dtype == object and arr.ndim and any(isinstance(v, (list, tuple)) for v in arr.ravel()):
        raise GrukitError(f"{where}: rows of unequal length")
    if len(shape) == 1 and arr.ndim == 2 and 1 in arr.shape and arr.size == shape[0]:
        arr = arr.reshape(-1)
    if arr.shape != shape:
        got = "x".join(map(str, arr.shape)) or "a scalar"
        raise GrukitError(f"{where}: expected shape {'x'.join(map(str, shape))}, got {got}")
    flat = [to_number(v, where) for v in arr.ravel()]
    return np.array(flat, dtype=object).reshape(shape)


def matrix_rows(value, where: str) -> np.ndarray:
    """A matrix of unknown shape (inputs): a list of equal-length lists of numbers."""
    if not isinstance(value, list) or not value:
        raise GrukitError(f"{where}: expected a non-empty list of rows")
    rows = [v if isinstance(v, list) else [v] for v in value]
    width = len(rows[0])
    if width == 0 or any(len(r) != width for r in rows):
        raise GrukitError(f"{where}: rows of unequal length")
    return to_array(rows, (len(rows), width), where)


# --- conventions ------------------------------------------------------------------------------

def resolve_convention(spec, where: str, base_dir: Path) -> Convention:
    """A problem file's ``convention``: a preset name or a file name, an inline mapping, or ``{file: conv.yaml}``."""
    if isinstance(spec, str):
        return named_convention(spec, where, base_dir)
    if not isinstance(spec, dict):
        raise GrukitError(f"{where}: expected a preset name or a mapping")
    if set(spec) == {"file"}:
        return convention_file(base_dir / str(spec["file"]))
    file, _, field = where.partition(": ")
    return convention_from_mapping(spec, file, field + ".", "custom")


def named_convention(text: str, where: str, base_dir: Path = Path(".")) -> Convention:
    """A preset name, or a convention file (``.yaml``/``.yml``, relative to ``base_dir``): what the
    command line and problem files accept wherever they take a convention."""
    if text in PRESETS:
        return PRESETS[text]
    if Path(text).suffix.lower() in CONVENTION_SUFFIXES:
        return convention_file(base_dir / text)
    raise GrukitError(f"{where}: unknown convention {text!r} (presets: {', '.join(PRESETS)}; "
                      f"or a convention file ending in {' or '.join(CONVENTION_SUFFIXES)})")


def convention_file(path: Path) -> Convention:
    """A convention YAML file (a mapping of axes, optionally from a preset); its name defaults to the stem."""
    return convention_from_mapping(load_yaml(path), str(path), "", path.stem)


def convention_from_mapping(data, file: str, field: str, default_name: str) -> Convention:
    """A convention from its axes; errors read ``FILE: FIELD.axis: ...`` (FIELD empty for its own file)."""

    def at(sub: str) -> str:
        return f"{file}: {field}{sub}" if (field or sub) else file

    if not isinstance(data, dict):
        raise GrukitError(f"{at(field and field[:-1])}: expected a mapping of convention axes")
    unknown = sorted(set(map(str, data)) - set(CONVENTION_KEYS))
    if unknown:
        raise GrukitError(f"{at(unknown[0])}: unknown key (allowed: {', '.join(CONVENTION_KEYS)})")
    base = Convention(default_name)
    if "preset" in data:
        if data["preset"] not in PRESETS:
            raise GrukitError(f"{at('preset')}: unknown convention {data['preset']!r}")
        base = PRESETS[data["preset"]]
    changes = {k: data[k] for k in (*AXES, *ARRANGEMENT_AXES) if k in data}
    if "gate_order" in changes:
        if not isinstance(changes["gate_order"], list):
            raise GrukitError(f"{at('gate_order')}: expected a list such as [z, r, h]")
        changes["gate_order"] = tuple(changes["gate_order"])
    for key in PARAMETER_AXES:  # a number (read exactly) or none
        if key in data:
            changes[key] = None if data[key] is None else to_number(data[key], at(key))
    for key in ("name", "description", "source"):
        if key in data:
            changes[key] = str(data[key])
    changes.setdefault("name", default_name if "preset" not in data else f"{data['preset']}-custom")
    if "notation" in data:
        changes["notation"] = notation_from_mapping(data["notation"], at("notation"), base.notation)
    if "preset" in data and "description" not in data:
        changes["description"] = derived_description(data["preset"], base, changes)
    try:
        return base.with_changes(**changes)
    except ConventionError as exc:
        raise GrukitError(f"{at(str(exc))}") from None


def derived_description(preset: str, base: Convention, changes: dict) -> str:
    """What a convention built on a preset changed, e.g. ``The keras preset with update_rule =
    z_admits_new (h_t = (1 - z) * h_{t-1} + z * candidate)``; the preset's own description when
    it changed nothing."""
    parts = []
    for axis in (*AXES, *ARRANGEMENT_AXES, *PARAMETER_AXES):
        if axis in changes and changes[axis] != getattr(base, axis):
            value = changes[axis]
            shown = ", ".join(map(str, value)) if isinstance(value, tuple) else str(value)
            meaning = AXES.get(axis, {}).get(value)
            parts.append(f"{axis} = {shown}" + (f" ({meaning})" if meaning else ""))
    if "notation" in changes and changes["notation"] != base.notation:
        parts.append("its own notation")
    if not parts:
        return base.description
    return f"The {preset} preset with " + ("; ".join(parts[:-1]) + " and " if len(parts) > 1 else "") + parts[-1]


def notation_from_mapping(data, where: str, base: Notation) -> Notation:
    """A notation from a mapping of its fields, starting from ``base`` (``where`` names the mapping)."""
    if not isinstance(data, dict):
        raise GrukitError(f"{where}: expected a mapping")
    allowed = [f.name for f in fields(Notation) if f.name != "overrides"]
    changes = {}
    for key, value in data.items():
        if key not in allowed:
            raise GrukitError(f"{where}: unknown key {key!r} (allowed: {', '.join(allowed)})")
        if key == "gate_letters":
            if not isinstance(value, dict) or set(value) != set(GATES):
                raise GrukitError(f"{where}.gate_letters: expected a mapping with keys z, r, h")
            value = tuple((g, str(value[g])) for g in GATES)
        elif not isinstance(value, str):
            raise GrukitError(f"{where}.{key}: expected text")
        changes[key] = value
    try:
        return replace(base, **changes)
    except ConventionError as exc:  # "notation.update_terms: ...": the field, under this file's prefix
        raise GrukitError(f"{where}{str(exc).removeprefix('notation')}") from None


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
    unknown = sorted(set(spec) - {"layout", "file"})
    if unknown:
        raise GrukitError(f"{where}.{unknown[0]}: unknown key (allowed: layout, file)")
    name = spec["layout"]
    if name not in LAYOUTS:
        raise GrukitError(f"{where}.layout: unknown layout {name!r} (choose from {', '.join(LAYOUTS)})")
    layout = LAYOUTS[name]
    layout.check(conv, f"{where}.layout")
    if "file" not in spec:
        raise GrukitError(f"{where}.file: missing (an .npz file with the {name} arrays)")
    file = path.parent / str(spec["file"])
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


def read_npz(file: Path, where: str) -> dict[str, np.ndarray]:
    """The arrays of an .npz archive (no pickles); anything else is a one-line error."""
    try:
        with open(file, "rb") as fh:
            is_zip = zipfile.is_zipfile(fh)
    except OSError as exc:
        raise GrukitError(f"{where}: cannot read {file} ({exc.strerror or exc})") from None
    if not is_zip:
        raise GrukitError(f"{where}: {file} is not an .npz archive (write one with numpy.savez)")
    try:
        with np.load(file, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise GrukitError(f"{where}: cannot read {file} ({exc})") from None
    for name, value in arrays.items():
        if not isinstance(value, np.ndarray):
            raise GrukitError(f"{file}: {name}: not a NumPy array (the archive member is not .npy data)")
    return arrays


def weight_sizes(source: WeightSource, conv: Convention) -> tuple[int, int]:
    """(D, H) from the weights alone, so that inputs and h0 of the wrong size are blamed on themselves."""
    if source.layout is not None:
        return _layout_sizes(source)
    key = conv.key(Param("input_weight", "h"))
    w = np.array(source.arrays[key], dtype=object)
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
    if kind not in LOSS_TYPES:
        raise GrukitError(f"{where}.type: unknown loss {kind!r} (choose from {', '.join(LOSS_TYPES)})")
    extra = sorted(set(spec) - LOSS_KEYS[kind])
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
    w = np.array(spec["W_o"], dtype=object)
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

def load_problem(path: str | Path) -> Problem:
    path = Path(path)
    data = load_yaml(path)
    return problem_from_mapping(data, path)


def problem_from_mapping(data, path: Path) -> Problem:
    """Checked in the order that blames each mistake on its own field: keys, convention, inputs,
    weight names, sizes (D and H from the weights), inputs' width, h0, weight shapes, loss."""
    if not isinstance(data, dict):
        raise GrukitError(f"{path}: expected a mapping with keys {', '.join(PROBLEM_KEYS)}")
    unknown = [k for k in data if k not in PROBLEM_KEYS]
    if unknown:
        raise GrukitError(f"{path}: {unknown[0]}: unknown key (allowed: {', '.join(PROBLEM_KEYS)})")
    for key in ("convention", "inputs", "weights"):
        if key not in data:
            raise GrukitError(f"{path}: {key}: missing")
    conv = resolve_convention(data["convention"], f"{path}: convention", path.parent)
    inputs = matrix_rows(data["inputs"], f"{path}: inputs")
    source = weight_source(data["weights"], conv, path)
    D, H = weight_sizes(source, conv)
    if inputs.shape[1] != D:
        raise GrukitError(f"{path}: inputs: rows have {inputs.shape[1]} values, the weights expect D = {D}")
    h0 = to_array(data["h0"], (H,), f"{path}: h0") if data.get("h0") is not None else \
        np.array([Fraction(0)] * H, dtype=object)
    params = exact_params(source, conv, D, H)
    lr = None
    if data.get("learning_rate") is not None:
        lr = to_number(data["learning_rate"], f"{path}: learning_rate")
    problem = Problem(path, conv, inputs, h0, params, title=str(data.get("title") or ""),
                      description=str(data.get("description") or ""),
                      layout=source.layout.name if source.layout else None, learning_rate=lr,
                      observed=data.get("observed"))
    if data.get("loss") is not None:
        problem.loss = parse_loss(data["loss"], problem, f"{path}: loss")
    return problem

"""Problem files: YAML read safely, decimals read exactly, every error naming the file and field.

A problem names a convention, gives the inputs (T x D), the initial state (default zeros) and the
weights -- either under the convention's own symbols or as ``{layout: keras|pytorch|onnx, file:
weights.npz}`` with the framework's own array names -- and optionally a loss head.
"""
from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path

import numpy as np
import yaml

from .convention import GATES, Convention, ConventionError, Notation, Param
from .errors import GrukitError
from .layouts import LAYOUTS
from .presets import PRESETS

PROBLEM_KEYS = ("title", "description", "convention", "inputs", "h0", "weights", "loss", "learning_rate")
CONVENTION_AXES = ("update_rule", "reset", "biases", "gate_activation", "candidate_activation",
                   "orientation", "gate_width", "input_form", "gate_order", "layout")
CONVENTION_KEYS = ("name", "description", "source", "preset", "notation") + CONVENTION_AXES


class ExactLoader(yaml.SafeLoader):
    """SafeLoader that reads decimal numbers as exact fractions (0.1 is 1/10)."""


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


def load_yaml(path: Path) -> object:
    try:
        text = path.read_text()
    except OSError as exc:
        raise GrukitError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return yaml.load(text, Loader=ExactLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise GrukitError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None


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
    loss: object = None  # a parsed loss head (grukit.derive.losses), or None
    learning_rate: Fraction | None = None

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
    """A preset name, an inline mapping, or ``{file: conv.yaml}``."""
    if isinstance(spec, str):
        if spec in PRESETS:
            return PRESETS[spec]
        raise GrukitError(f"{where}: unknown convention {spec!r} (presets: {', '.join(PRESETS)})")
    if not isinstance(spec, dict):
        raise GrukitError(f"{where}: expected a preset name or a mapping")
    if set(spec) == {"file"}:
        path = base_dir / str(spec["file"])
        return convention_from_mapping(load_yaml(path), str(path), "", path.stem)
    file, _, field = where.partition(": ")
    return convention_from_mapping(spec, file, field + ".", "custom")


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
    changes = {k: data[k] for k in CONVENTION_AXES if k in data}
    if "gate_order" in changes:
        if not isinstance(changes["gate_order"], list):
            raise GrukitError(f"{at('gate_order')}: expected a list such as [z, r, h]")
        changes["gate_order"] = tuple(changes["gate_order"])
    for key in ("name", "description", "source"):
        if key in data:
            changes[key] = str(data[key])
    changes.setdefault("name", default_name if "preset" not in data else f"{data['preset']}-custom")
    if "notation" in data:
        changes["notation"] = notation_from_mapping(data["notation"], at("notation"), base.notation)
    try:
        return base.with_changes(**changes)
    except ConventionError as exc:
        raise GrukitError(f"{at(str(exc))}") from None


def notation_from_mapping(data, where: str, base: Notation) -> Notation:
    from dataclasses import fields, replace

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
    return replace(base, **changes)


# --- weights ------------------------------------------------------------------------------------

def read_weights(spec, conv: Convention, inputs: int, hidden: int, path: Path
                 ) -> tuple[dict[Param, np.ndarray], str | None]:
    where = f"{path}: weights"
    if not isinstance(spec, dict):
        raise GrukitError(f"{where}: expected a mapping")
    if "layout" in spec:
        return read_layout_weights(spec, conv, inputs, hidden, path), str(spec["layout"])
    keys = {conv.key(p): p for p in conv.parameters()}
    unknown = [k for k in spec if k not in keys]
    if unknown:
        raise GrukitError(f"{where}.{unknown[0]}: unknown weight for convention {conv.name!r} "
                          f"(expected: {', '.join(keys)})")
    missing = [k for k in keys if k not in spec]
    if missing:
        raise GrukitError(f"{where}.{missing[0]}: missing (convention {conv.name!r} needs {', '.join(keys)})")
    return {p: to_array(spec[k], conv.param_shape(p, inputs, hidden), f"{where}.{k}") for k, p in keys.items()}, None


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


def read_layout_weights(spec: dict, conv: Convention, inputs: int, hidden: int, path: Path
                        ) -> dict[Param, np.ndarray]:
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
    shapes = layout.array_shapes(conv, inputs, hidden)
    extra = sorted(set(arrays) - set(shapes))
    if extra:
        raise GrukitError(f"{file}: unknown array {extra[0]!r} for layout {name} (expected: {', '.join(shapes)})")
    exact = {}
    for array_name, shape in shapes.items():
        if array_name not in arrays:
            raise GrukitError(f"{file}: missing array {array_name!r} for layout {name}")
        if not np.issubdtype(arrays[array_name].dtype, np.number):
            raise GrukitError(f"{file}: {array_name}: not a numeric array")
        exact[array_name] = to_array(arrays[array_name], shape, f"{file}: {array_name}")
    return layout.unpack(conv, exact)


# --- the problem ---------------------------------------------------------------------------------

def load_problem(path: str | Path) -> Problem:
    path = Path(path)
    data = load_yaml(path)
    return problem_from_mapping(data, path)


def problem_from_mapping(data, path: Path) -> Problem:
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
    hidden = infer_hidden(data, conv, path)
    h0 = to_array(data["h0"], (hidden,), f"{path}: h0") if data.get("h0") is not None else \
        np.array([Fraction(0)] * hidden, dtype=object)
    params, layout = read_weights(data["weights"], conv, inputs.shape[1], hidden, path)
    lr = None
    if data.get("learning_rate") is not None:
        lr = to_number(data["learning_rate"], f"{path}: learning_rate")
    problem = Problem(path, conv, inputs, h0, params, title=str(data.get("title") or ""),
                      description=str(data.get("description") or ""), layout=layout, learning_rate=lr)
    if data.get("loss") is not None:
        from .losses import parse_loss

        problem.loss = parse_loss(data["loss"], problem, f"{path}: loss")
    return problem


def infer_hidden(data: dict, conv: Convention, path: Path) -> int:
    """H from the candidate's input weight (or the layout file), else from h0.

    The weights come first so that an h0 of the wrong length is reported as h0's error.
    """
    weights = data["weights"]
    if isinstance(weights, dict) and "layout" in weights:
        return _hidden_from_layout(weights, path)
    key = conv.key(Param("input_weight", "h"))
    if isinstance(weights, dict) and key in weights:
        w = np.array(weights[key], dtype=object)
        if w.ndim != 2:
            raise GrukitError(f"{path}: weights.{key}: expected a matrix")
        return w.shape[0] if conv.orientation == "column" else w.shape[1]
    h0 = data.get("h0")
    if isinstance(h0, list) and h0:
        return len(h0) if not isinstance(h0[0], list) else max(len(h0), len(h0[0]))
    raise GrukitError(f"{path}: weights.{key}: missing (needed to know the hidden size)")


def _hidden_from_layout(weights: dict, path: Path) -> int:
    layout = LAYOUTS.get(weights.get("layout"))
    if layout is None:
        raise GrukitError(f"{path}: weights.layout: unknown layout {weights.get('layout')!r} "
                          f"(choose from {', '.join(LAYOUTS)})")
    if "file" not in weights:
        raise GrukitError(f"{path}: weights.file: missing (an .npz file with the {weights['layout']} arrays)")
    file = path.parent / str(weights["file"])
    arrays = read_npz(file, f"{path}: weights.file")
    if layout.recurrent_weight not in arrays:
        raise GrukitError(f"{file}: missing array {layout.recurrent_weight!r} for layout {weights['layout']}")
    shape = arrays[layout.recurrent_weight].shape
    if len(shape) != 2 + layout.lead:
        raise GrukitError(f"{file}: {layout.recurrent_weight}: expected {2 + layout.lead} axes, got shape "
                          f"{'x'.join(map(str, shape)) or 'a scalar'}")
    # H is the recurrent weight's unpacked axis: (H, 3H) in row layouts (Keras), (..., 3H, H) in column ones.
    return shape[-1] if layout.orientation == "column" else shape[layout.lead]

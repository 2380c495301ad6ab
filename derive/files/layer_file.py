"""Layer problems: batches, directions, stacked layers, lengths and masks, real model files.

A problem file is a *layer problem* when it uses any of that: ``inputs`` B x T x D (or from a
``.npy`` file), ``h0`` per sequence or per cell, ``lengths``, ``mask``, ``direction``, ``merge``,
``framework``, or weights from a model file (``.onnx``, ``.pt``/``.pth``, ``.safetensors``,
``.weights.h5``, ``.keras``) or an ``.npz`` holding more than one cell. Any other problem is read
by :func:`grukit.derive.files.problem_file.problem_from_mapping` exactly as before.

Keys beyond a single-cell problem's:

* ``inputs``: T x D or B x T x D, or ``{file: x.npy}``; ``input_layout: time_major`` reads a batch as
  T x B x D (ONNX's ``X`` in layout 0), and what the problem says elsewhere about the batch (lengths,
  a mask, h0, a model file's ``sequence_lens`` and ``initial_h``) must fit the order stated;
* ``h0``: H or B x H (one cell), or cells x B x H in PyTorch's h_n order (layer by layer, forward
  before reverse); default zeros;
* ``lengths`` (B integers) or ``mask`` (B x T of 0/1): which steps each sequence has;
* ``direction`` (``forward``, ``reverse``, ``bidirectional``) and ``merge`` (``concat``, ``sum``,
  ``mul``, ``ave``, ``none``) where the weights file does not decide them;
* ``framework`` (``pytorch``, ``keras``, ``onnx``): whose rules for padded steps apply to weights
  given under a convention's symbols (a weights file decides it);
* ``loss``: ``{type: weighted_sum, G: <outputs' shape>, G_h_n: <h_n's shape>}`` or
  ``{type: squared_error, targets: <outputs' shape>}``.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from grukit.derive.cell.convention import Convention
from grukit.derive.errors import GrukitError
from grukit.derive.files.arrays import read_npy, read_npz, referenced_file
from grukit.derive.files.convention_file import resolve_convention
from grukit.derive.files.model_files import MODEL_SUFFIXES, read_weight_file
from grukit.derive.files.problem_file import (
    PROBLEM_KEYS,
    exact_params,
    problem_from_mapping,
    weight_sizes,
    weight_source,
)
from grukit.derive.files.yaml_values import load_yaml, shown, to_array
from grukit.derive.layers.network import DIRECTIONS, FRAMEWORKS, MERGES, Cell, Layer, Network
from grukit.derive.layers.problem import INPUT_LAYOUTS, LayerLoss, LayerProblem
from grukit.derive.layers.run import (
    outputs_shape,
)
from grukit.derive.numeric.problem import Problem

LAYER_KEYS = ("lengths", "mask", "direction", "merge", "framework", "input_layout")
LOSS_KEYS = {"weighted_sum": {"type", "G", "G_h_n"}, "squared_error": {"type", "targets"}}


# --- deciding and reading ------------------------------------------------------------------------

def _depth(value) -> int:
    d = 0
    while isinstance(value, list) and value:
        d += 1
        value = value[0]
    return d


def is_layer_problem(data, path: Path) -> bool:
    if not isinstance(data, dict):
        return False
    if any(k in data for k in LAYER_KEYS):
        return True
    h0 = data.get("h0")
    column = _depth(h0) == 2 and all(isinstance(r, list) and len(r) == 1 for r in h0)  # a vector as a column
    if isinstance(data.get("inputs"), dict) or _depth(data.get("inputs")) >= 3 or (_depth(h0) >= 2 and not column):
        return True
    w = data.get("weights")
    if isinstance(w, dict) and "file" in w:
        suffix = Path(str(w["file"])).suffix.lower()
        if suffix in MODEL_SUFFIXES or suffix != ".npz":  # the model-file reader names what a suffix is not
            return True
        if suffix == ".npz" and w.get("layout") in ("pytorch", "onnx"):
            file = referenced_file(path, w["file"], f"{path}: weights.file")
            try:
                arrays = read_npz(file, f"{path}: weights.file")
            except GrukitError:
                return False  # the plain reader says what is wrong with it
            if w["layout"] == "pytorch":
                return any(k not in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0") for k in arrays)
            return np.ndim(arrays.get("W")) == 3 and np.shape(arrays["W"])[0] == 2
    return False


def load_any(path: str | Path) -> Problem | LayerProblem:
    """A problem file, read as a layer problem if it uses any layer feature, else as before."""
    path = Path(path)
    data = load_yaml(path)
    if is_layer_problem(data, path):
        return layer_problem_from_mapping(data, path)
    return problem_from_mapping(data, path)


def _inputs(value, path: Path, layout: str) -> tuple[np.ndarray, bool]:
    """B x T x D whatever ``layout`` the batch was given in, and whether it was a batch."""
    where = f"{path}: inputs"
    if isinstance(value, dict):
        if set(value) != {"file"}:
            raise GrukitError(f"{where}: expected a list of rows, or {{file: inputs.npy}}")
        file = referenced_file(path, value["file"], f"{where}.file")
        arr = read_npy(file, f"{where}.file")
        if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr) or not np.all(np.isfinite(arr)):
            raise GrukitError(f"{where}.file: {file}: expected finite real numbers")
        arr = arr.astype(np.float64)
    else:
        depth = _depth(value)
        if depth not in (2, 3):
            raise GrukitError(f"{where}: expected T x D rows or B x T x D sequences")
        shape = _shape(value, where)
        arr = to_array(value, shape, where)
    if arr.ndim == 2:
        return arr[None], False
    if arr.ndim != 3 or 0 in arr.shape:
        batch = "T x B x D" if layout == "time_major" else "B x T x D"
        raise GrukitError(f"{where}: expected T x D or {batch}, got shape {'x'.join(map(str, arr.shape))}")
    return (arr.transpose(1, 0, 2) if layout == "time_major" else arr), True


def _stated_batches(data: dict, weights) -> list[tuple[str, int, int | None]]:
    """(what, sequences, steps or None) for each thing a problem says about its batch besides the inputs."""
    out = []
    if isinstance(data.get("lengths"), list):
        out.append(("lengths", len(data["lengths"]), None))
    mask = data.get("mask")
    if _depth(mask) == 2 and isinstance(mask[0], list):
        out.append(("mask", len(mask), len(mask[0])))
    h0 = data.get("h0")
    if _depth(h0) == 3 and isinstance(h0[0], list):
        out.append(("h0", len(h0[0]), None))
    if weights is not None and weights.lengths is not None:
        out.append((f"{weights.path}: sequence_lens", len(weights.lengths), None))
    if weights is not None and weights.h0 is not None and np.ndim(weights.h0) == 3:
        out.append((f"{weights.path}: initial_h", np.shape(weights.h0)[1], None))
    return out


def _check_order(data: dict, weights, inputs: np.ndarray, layout: str, path: Path) -> None:
    """A batch whose order cannot be the stated one -- the lengths, the mask, h0 or the model file count
    other sequences (or steps) than the inputs read in that order have -- refused in one line, saying
    when the other order fits."""
    B, T = inputs.shape[:2]
    for what, sequences, steps in _stated_batches(data, weights):
        if sequences == B and steps in (None, T):
            continue
        other = next(k for k in INPUT_LAYOUTS if k != layout)
        fits = sequences == T and steps in (None, B)
        given = "x".join(map(str, (T, B) if layout == "time_major" else (B, T)))
        raise GrukitError(f"{path}: inputs: read {layout} ({' x '.join(INPUT_LAYOUTS[layout])} = {given} x "
                          f"{inputs.shape[2]}), the batch has B = {B} sequences of T = {T} steps, but {what} gives "
                          f"{sequences} sequences" + (f" of {steps} steps" if steps is not None else "")
                          + (f"; the inputs fit input_layout: {other}" if fits else ""))


def _shape(value, where: str) -> tuple[int, ...]:
    shape = []
    v = value
    while isinstance(v, list):
        if not v:
            raise GrukitError(f"{where}: an empty list")
        shape.append(len(v))
        v = v[0]
    return tuple(shape)


def _choice(data: dict, key: str, allowed, path: Path):
    if data.get(key) is None:
        return None
    value = data[key]
    if not isinstance(value, str) or value not in allowed:
        raise GrukitError(f"{path}: {key}: unknown value {shown(value)} (choose from {', '.join(allowed)})")
    return value


def layer_problem_from_mapping(data: dict, path: Path) -> LayerProblem:
    allowed = (*PROBLEM_KEYS, *LAYER_KEYS)
    unknown = [k for k in data if k not in allowed]
    if unknown:
        raise GrukitError(f"{path}: {unknown[0]}: unknown key (allowed: {', '.join(allowed)})")
    for key in ("inputs", "weights"):
        if key not in data:
            raise GrukitError(f"{path}: {key}: missing")
    direction = _choice(data, "direction", DIRECTIONS, path)
    merge = _choice(data, "merge", [m for m in MERGES if m != "stack"], path)
    framework = _choice(data, "framework", [f for f in FRAMEWORKS if f != "none"], path)
    conv = None
    if data.get("convention"):
        conv = resolve_convention(data["convention"], f"{path}: convention", path)
    layout = _choice(data, "input_layout", INPUT_LAYOUTS, path) or "batch_major"
    inputs, batched = _inputs(data["inputs"], path, layout)
    spec = data["weights"]
    weights = None
    if isinstance(spec, dict) and "file" in spec:
        weights = read_weight_file(spec, path, conv, direction, merge)
        if data.get("merge") is not None and "merge" in weights.decided:
            raise GrukitError(f"{path}: merge: {weights.path} decides it")
        if framework not in (None, weights.framework):
            raise GrukitError(f"{path}: framework: {weights.path} is a {weights.framework} file")
        network = weights.network
    else:
        if conv is None:
            raise GrukitError(f"{path}: convention: missing (weights under a convention's symbols)")
        network = _symbol_network(spec, conv, path, direction or "forward", framework or "none")
    D = network.input_size
    if inputs.shape[2] != D:
        raise GrukitError(f"{path}: inputs: rows have {inputs.shape[2]} values, the weights expect D = {D}")
    if batched:
        _check_order(data, weights, inputs, layout, path)
    B, T = inputs.shape[:2]
    rules = FRAMEWORKS[network.framework]
    if weights is not None and weights.lengths is not None and data.get("lengths") is None and data.get("mask") is None:
        data = dict(data, lengths=[int(v) for v in weights.lengths])  # sequence_lens stored in the file
    valid, lengths = _validity(data, path, B, T, rules)
    if valid is None and weights is not None and weights.mask_value is not None and data.get("mask") is None:
        valid = np.any(np.asarray(inputs, dtype=float) != weights.mask_value, axis=2).astype(int)
        if valid.all():
            valid = None
    h0, h0_shape = _h0(data.get("h0"), network, B, batched, path, weights)
    problem = LayerProblem(path, network, inputs, h0, valid, batched, h0_shape, weights, lengths=lengths,
                           title=str(data.get("title") or ""), description=str(data.get("description") or ""),
                           input_layout=layout)
    if data.get("loss") is not None:
        problem.loss = _loss(data["loss"], problem, f"{path}: loss")
    return problem


def _symbol_network(spec, conv: Convention, path: Path, direction: str, framework: str) -> Network:
    if direction == "bidirectional":
        raise GrukitError(f"{path}: direction: bidirectional needs a weights file holding both directions")
    source = weight_source(spec, conv, path)
    D, H = weight_sizes(source, conv)
    params = exact_params(source, conv, D, H)
    rules = FRAMEWORKS[framework]
    layout = source.layout.name if source.layout else None
    cell = Cell(conv, params, direction)
    return Network(framework, [Layer((cell,), rules.merge, rules.padded_output, rules.reverse_order)],
                   rules.final_state, layout=layout)


def _validity(data: dict, path: Path, B: int, T: int, rules) -> tuple[np.ndarray | None, list[int] | None]:
    if data.get("lengths") is not None and data.get("mask") is not None:
        raise GrukitError(f"{path}: give lengths or mask, not both")
    if data.get("lengths") is not None:
        value = data["lengths"]
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list) or len(value) != B or any(
                isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= T for v in value):
            raise GrukitError(f"{path}: lengths: expected {B} whole numbers from 0 to T = {T}, "
                              f"got {shown(data['lengths'])}")
        if not rules.empty and 0 in value:
            raise GrukitError(f"{path}: lengths: {rules.name} has no sequence of length 0 "
                              f"(pack_padded_sequence refuses it)")
        valid = (np.arange(T)[None, :] < np.array(value)[:, None]).astype(int)
        return (None if valid.all() else valid), list(value)
    if data.get("mask") is not None:
        value = data["mask"]
        if _depth(value) == 1 and B == 1:
            value = [value]
        m = to_array(value, (B, T), f"{path}: mask")
        if any(v not in (0, 1) for v in m.ravel()):
            raise GrukitError(f"{path}: mask: expected 0 or 1 at every step")
        valid = m.astype(int)
        if rules.masks == "lengths":
            lengths = valid.sum(axis=1)
            if not np.array_equal(valid, (np.arange(T)[None, :] < lengths[:, None]).astype(int)):
                raise GrukitError(f"{path}: mask: {rules.name} masks only the end of a sequence (lengths); "
                                  f"a masked step in the middle is Keras's")
            if not rules.empty and (lengths == 0).any():
                raise GrukitError(f"{path}: mask: {rules.name} has no sequence without steps")
        return (None if valid.all() else valid), None
    return None, None


def _h0(value, network: Network, B: int, batched: bool, path: Path, weights) -> tuple[list[np.ndarray], tuple | None]:
    """Per cell, B x H_cell; and the shape h0 was given in."""
    cells = len(network.cells)
    sizes = [c.hidden_size for _, c in network.cells]
    H = sizes[0]
    where = f"{path}: h0"
    if value is None:
        if weights is not None and weights.h0 is not None:
            h = np.asarray(weights.h0, dtype=np.float64)
            if h.shape != (cells, B, H):
                raise GrukitError(f"{weights.path}: initial_h: shape {'x'.join(map(str, h.shape))} does not fit "
                                  f"{cells} x {B} x {H}")
            return list(h), None
        return [np.full((B, n), Fraction(0), dtype=object) for n in sizes], None
    if len(set(sizes)) != 1:
        raise GrukitError(f"{where}: the layers have hidden sizes {sizes}; give h0 per cell as a list of B x H arrays "
                          f"is not supported, leave h0 out (zeros)")
    depth = _depth(value)
    if depth == 1:
        if cells != 1:
            raise GrukitError(f"{where}: one vector fits one cell; this network has {cells} (give {cells} x {B} x {H})")
        h = to_array(value, (H,), where)
        return [np.broadcast_to(h, (B, H)).copy()], (H,)
    if depth == 2:
        rows = len(value)
        if cells == 1 and rows == B and batched:
            return [to_array(value, (B, H), where)], (B, H)
        if not batched and rows == cells:
            return list(to_array(value, (cells, H), where)[:, None, :]), (cells, H)
        expected = (f"B x H = {B} x {H} or " if cells == 1 else "") + f"{cells} x {B} x {H}"
        raise GrukitError(f"{where}: expected {expected} (cells x B x H, in PyTorch's h_n order)")
    return list(to_array(value, (cells, B, H), where)), (cells, B, H)


def _loss(spec, problem: LayerProblem, where: str) -> LayerLoss:
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str) or spec["type"] not in LOSS_KEYS:
        raise GrukitError(f"{where}: expected {{type: weighted_sum, G: ...}} or {{type: squared_error, targets: ...}} "
                          f"for a layer problem")
    kind = spec["type"]
    extra = sorted(map(str, set(spec) - LOSS_KEYS[kind]))
    if extra:
        raise GrukitError(f"{where}.{extra[0]}: unknown key for {kind} (allowed: {', '.join(sorted(LOSS_KEYS[kind]))})")
    shape = outputs_shape(problem.network, problem.batch, problem.steps)
    key = "G" if kind == "weighted_sum" else "targets"
    if key not in spec:
        raise GrukitError(f"{where}.{key}: missing ({'x'.join(map(str, shape))}, the outputs' shape)")
    value = spec[key]
    if not problem.batched and _depth(value) == len(shape) - 1 and shape[0] == 1:
        value = [value]
    out = _array_of(value, shape, f"{where}.{key}", path=problem.path)
    h_n = None
    if spec.get("G_h_n") is not None:
        cells, B = len(problem.network.cells), problem.batch
        h_n = _array_of(spec["G_h_n"], (cells, B, problem.network.hidden_size), f"{where}.G_h_n", path=problem.path)
    return LayerLoss(kind, out, h_n)


def _array_of(value, shape, where: str, path: Path):
    if isinstance(value, dict) and set(value) == {"file"}:
        file = referenced_file(path, value["file"], f"{where}.file")
        arr = read_npy(file, f"{where}.file")
        if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr) or not np.all(np.isfinite(arr)):
            raise GrukitError(f"{where}.file: {file}: expected finite real numbers")
        arr = arr.astype(np.float64)
        if arr.shape != tuple(shape):
            raise GrukitError(f"{where}: expected shape {'x'.join(map(str, shape))}, got "
                              f"{'x'.join(map(str, arr.shape))}")
        return arr
    return to_array(value, tuple(shape), where)

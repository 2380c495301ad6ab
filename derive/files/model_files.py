"""Real model files as weight sources: ONNX graphs, PyTorch state dicts, Keras weight files.

Each reader turns a file into a :class:`~grukit.derive.layers.network.Network` (its layers, each cell with
its convention and parameters) and remembers where every parameter sits in the file, so that
gradients come back under the file's own names. The convention follows from the file where the
file says it:

* ONNX (``.onnx``): the GRU node's ``W``, ``R``, ``B`` initializers and its attributes
  (``direction``, ``linear_before_reset``, ``activations`` with ``activation_alpha``/``beta``,
  ``clip``, ``layout``); ``node: NAME`` (or an index) picks one of several GRU nodes;
* PyTorch (``.pt``/``.pth`` read with ``torch.load(weights_only=True)``, ``.safetensors``, or an
  ``.npz`` of the same arrays): ``weight_ih_l{k}[_reverse]``, ... give the layers and directions
  (an ``nn.GRUCell``'s ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``: one forward cell);
  ``module: PREFIX`` picks a GRU among several (``encoder.gru.``), ``layers: [k, ...]`` a sub-stack;
* Keras (``.weights.h5``, ``.keras``): each GRU's ``cell/vars/0..2`` (kernel, recurrent kernel,
  bias); a ``Bidirectional`` holds ``forward_layer`` and ``backward_layer``. ``.keras`` files add
  the model's config (layer order, ``merge_mode``, ``go_backwards``, activations, ``reset_after``,
  a ``Masking`` layer); with several GRU layers in a ``.weights.h5``, ``layers: [name, ...]`` says
  which, in order.

Every error names the file and what is missing or unsupported. Nothing here computes.

Read as files someone else wrote (docs/security.md): a ``.pt`` is loaded with
``torch.load(weights_only=True)`` only if its bytes are PyTorch's zip format (its archive checked
first; a legacy pickle, or a safetensors, ONNX, HDF5 or NumPy file under that name, is named for
what it is), and every tensor must be dense, with values, of real numbers; a ``.safetensors`` file
is read by a bounded reader of its own; an ONNX model is loaded with ``load_external_data=False``
and refused if any initializer keeps its data outside the file, each tensor's declared dims are
checked against the data it holds, and each GRU attribute against its type and range.
"""
from __future__ import annotations

import json
import math
import os
import re
import warnings
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from grukit.derive.cell.convention import ACTIVATION_PARAMETERS, Convention, ConventionError
from grukit.derive.cell.functions import ONNX_ACTIVATIONS
from grukit.derive.cell.layouts import LAYOUTS
from grukit.derive.cell.presets import PRESETS
from grukit.derive.errors import GrukitError
from grukit.derive.files.arrays import check_shape, file_name, open_zip, printable, referenced_file, shape_text
from grukit.derive.files.keras_files import read_keras
from grukit.derive.files.weight_files import (
    CellSource,
    WeightFile,
    arrays_of_npz,
    check_stack,
    file_cell,
    file_kind,
    float_array,
    zip_kind,
)
from grukit.derive.layers.network import FRAMEWORKS, Layer, Network

MODEL_SUFFIXES = {".onnx": "onnx", ".pt": "pytorch", ".pth": "pytorch", ".safetensors": "pytorch",
                  ".h5": "keras", ".keras": "keras"}
"""File suffix -> the framework whose file it is (an ``.npz`` says it with ``layout:``)."""
SPEC_KEYS = ("layout", "file", "node", "module", "layers")


FORMATS = ".onnx, .pt, .pth, .safetensors, .weights.h5, .keras, or .npz with a layout"


def read_weight_file(spec: dict, problem_path: Path, convention: Convention | None, direction: str | None,
                     merge: str | None) -> WeightFile:
    """``weights: {layout: ..., file: ...}`` of a layer problem: the network the file holds."""
    where = f"{problem_path}: weights"
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise GrukitError(f"{where}.{unknown[0]}: unknown key (allowed: {', '.join(SPEC_KEYS)})")
    if "file" not in spec:
        raise GrukitError(f"{where}.file: missing")
    name = file_name(problem_path, spec["file"], f"{where}.file")
    shown = Path(problem_path).parent / name
    suffix = shown.suffix.lower()
    framework = MODEL_SUFFIXES.get(suffix)
    layout = spec.get("layout")
    if layout is not None and layout not in LAYOUTS:
        raise GrukitError(f"{where}.layout: unknown layout {layout!r} (choose from {', '.join(LAYOUTS)})")
    if framework is None and suffix != ".npz":
        raise GrukitError(f"{where}.file: {shown}: unsupported file type {suffix or '(none)'!r}: not a weights "
                          f"format (grukit reads {FORMATS})")
    if framework is not None and layout is not None and layout != framework:
        raise GrukitError(f"{where}.layout: {layout!r} does not match {shown} (a {framework} file)")
    framework = framework or layout
    if framework is None:
        raise GrukitError(f"{where}.layout: missing (an .npz holds arrays of keras, pytorch or onnx)")
    file = referenced_file(problem_path, name, f"{where}.file")
    for key, only in (("node", "onnx"), ("module", "pytorch")):
        if key in spec and framework != only:
            raise GrukitError(f"{where}.{key}: only for {only} files")
    if framework == "onnx":
        return _onnx(file, spec, convention, direction, where)
    if framework == "pytorch":
        return _torch(file, spec, convention, direction, where)
    return read_keras(file, spec, convention, direction, merge, where)


# --- PyTorch ------------------------------------------------------------------------------------

_TORCH_KEY = re.compile(r"^(?P<prefix>.*?)(?P<kind>weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)"
                        r"(?:_l(?P<layer>\d+)(?P<rev>_reverse)?)?$")
"""An nn.GRU key (``weight_ih_l1_reverse``) or an nn.GRUCell's (``weight_ih``: no layer, one direction)."""


_RENAME = {"a safetensors file": ".safetensors", "an ONNX model (protobuf)": ".onnx",
           "an HDF5 file (Keras .weights.h5?)": ".weights.h5", "a Keras .keras archive": ".keras",
           "an .npz archive (numpy.savez)": ".npz (with layout: pytorch)", "a NumPy .npy file": ".npy"}


def _not_torch(file: Path, kind: str) -> GrukitError:
    rename = _RENAME.get(kind)
    advice = f"name it {rename}" if rename else "torch.save writes a zip archive"
    return GrukitError(f"{file}: not a PyTorch file: it is {kind} ({advice})")


def _load_torch(file: Path, where: str) -> dict[str, np.ndarray]:
    suffix = file.suffix.lower()
    if suffix == ".npz":
        return arrays_of_npz(file, where)
    if suffix == ".safetensors":
        return read_safetensors(file)
    kind = file_kind(file)
    if kind.startswith("a Python pickle"):
        raise GrukitError(f"{file}: a legacy PyTorch file (a bare pickle, PyTorch before 1.6): grukit reads the zip "
                          f"format torch.save writes since PyTorch 1.6; load and save it again there")
    if kind != "a zip archive":
        raise _not_torch(file, kind)
    with open_zip(file, where, "a PyTorch file (a zip archive)") as z:
        kind = zip_kind(z.namelist())
    if kind != "a PyTorch file (torch.save)":
        raise _not_torch(file, kind)
    try:
        import torch
    except ImportError:
        raise GrukitError(f"{file}: reading a PyTorch file needs torch (pip install torch), or save the "
                          f"state dict as .safetensors") from None
    try:
        with warnings.catch_warnings():  # torch's warnings about the file would be lines on stderr
            warnings.simplefilter("ignore")
            data = torch.load(str(file), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise GrukitError(f"{file}: cannot read with torch.load(weights_only=True): {_torch_reason(exc)} (grukit "
                          f"runs no code from a file: save gru.state_dict(), not the module)") from None
    if isinstance(data, dict) and "state_dict" in data and isinstance(data["state_dict"], dict):
        data = data["state_dict"]
    if not isinstance(data, dict):
        raise GrukitError(f"{file}: holds a {type(data).__name__}, not a state dict")
    out = {}
    for key, value in data.items():
        if isinstance(value, torch.Tensor):
            out[str(key)] = _torch_array(value, f"{file}: {printable(key)}")
    return out


def _torch_reason(exc: Exception) -> str:
    """The line of torch's message that says what it refused, never its advice to unpickle anyway."""
    lines = [" ".join(line.split()) for line in str(exc).splitlines() if line.strip()]
    chosen = next((line for line in lines if "Unsupported global" in line or "Unsupported operand" in line),
                  next((line for line in lines if "WeightsUnpickler error" in line), lines[0] if lines else ""))
    chosen = chosen.replace("WeightsUnpickler error: ", "").split(" Please ")[0].split(" Check the ")[0]
    chosen = "".join(c for c in chosen if c.isprintable())
    if not chosen or any(w in chosen for w in ("weights_only", "arbitrary code", "safe_globals", "trust")):
        chosen = type(exc).__name__
    return chosen[:300]


def _torch_array(value, where: str) -> np.ndarray:
    """A dense tensor of real numbers, with values, of a bounded size, as float64."""
    import torch

    if value.layout != torch.strided:
        raise GrukitError(f"{where}: a {str(value.layout).removeprefix('torch.')} tensor: grukit reads dense tensors "
                          f"(save tensor.to_dense())")
    if value.device.type == "meta":
        raise GrukitError(f"{where}: a meta tensor (a shape without values): grukit reads tensors that hold numbers")
    if value.is_quantized:
        raise GrukitError(f"{where}: a quantized tensor ({value.dtype}): save tensor.dequantize()")
    if value.is_complex() or value.dtype == torch.bool or not (value.is_floating_point() or value.dtype in (
            torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)):
        raise GrukitError(f"{where}: holds {str(value.dtype).removeprefix('torch.')} values: grukit reads tensors "
                          f"of real numbers")
    check_shape(tuple(value.shape), where)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return value.detach().to("cpu", torch.float64).numpy()
    except Exception as exc:  # noqa: BLE001 - a tensor torch itself cannot convert
        raise GrukitError(f"{where}: cannot convert ({' '.join(str(exc).split())[:200]})") from None


SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4",
                      "I16": "<i2", "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1"}
"""safetensors' dtype names -> NumPy's (bfloat16 read as its 16 bits, widened below)."""
MAX_SAFETENSORS_HEADER = 2 ** 24


def read_safetensors(file: Path) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file, by a bounded reader: the header is checked (its length, its
    JSON, every tensor's dtype, shape and offsets, which must tile the file's data exactly, as the
    format demands) before any tensor is read, so what is read is at most the file's size."""
    try:
        with open(file, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(8)
            if len(head) < 8:
                raise GrukitError(f"{file}: not a safetensors file (it is {file_kind(file)})")
            n = int.from_bytes(head, "little")
            if n > MAX_SAFETENSORS_HEADER or n > size - 8:
                raise GrukitError(f"{file}: not a safetensors file: its header length {n} is beyond the file or "
                                  f"more than grukit reads (it is {file_kind(file)})")
            try:
                header = json.loads(fh.read(n).decode("utf-8"))
            except RecursionError:
                raise GrukitError(f"{file}: safetensors header: nested too deeply") from None
            except (ValueError, UnicodeDecodeError) as exc:
                raise GrukitError(f"{file}: not a safetensors file: its header is not JSON "
                                  f"({' '.join(str(exc).split())[:120]})") from None
            if not isinstance(header, dict):
                raise GrukitError(f"{file}: safetensors header: expected a mapping of tensors")
            data_size = size - 8 - n
            entries = {}
            for name, entry in header.items():
                if name == "__metadata__":
                    continue
                where = f"{file}: {printable(name)}"
                if not isinstance(entry, dict) or not isinstance(entry.get("dtype"), str) \
                        or not isinstance(entry.get("shape"), list) or not isinstance(entry.get("data_offsets"), list):
                    raise GrukitError(f"{where}: expected {{dtype, shape, data_offsets}} in the header")
                dtype = SAFETENSORS_DTYPES.get(entry["dtype"])
                if dtype is None:
                    raise GrukitError(f"{where}: holds {printable(entry['dtype'][:20])} values: grukit reads tensors "
                                      f"of real numbers ({', '.join(SAFETENSORS_DTYPES)})")
                shape, offsets = entry["shape"], entry["data_offsets"]
                if any(isinstance(v, bool) or not isinstance(v, int) for v in shape + offsets) or len(offsets) != 2:
                    raise GrukitError(f"{where}: shape and data_offsets must be whole numbers")
                count = check_shape(tuple(shape), where)
                begin, end = offsets
                need = count * np.dtype(dtype).itemsize
                if not 0 <= begin <= end <= data_size or end - begin != need:
                    raise GrukitError(f"{where}: data_offsets {begin}..{end} do not hold shape {shape_text(shape)} "
                                      f"({need} bytes) within the file's {data_size} bytes of data")
                entries[str(name)] = (entry["dtype"], dtype, tuple(shape), begin, need)
            at = 0
            for name, (_, _, _, begin, need) in sorted(entries.items(), key=lambda e: (e[1][3], e[1][4])):
                if begin != at:
                    raise GrukitError(f"{file}: {printable(name)}: data_offsets overlap or leave a gap (the tensors' "
                                      f"data must follow one another)")
                at = begin + need
            if at != data_size:
                raise GrukitError(f"{file}: the tensors hold {at} bytes of the file's {data_size} bytes of data")
            out = {}
            for name, (kind, dtype, shape, begin, need) in entries.items():
                fh.seek(8 + n + begin)
                raw = np.frombuffer(fh.read(need), dtype=dtype).reshape(shape)
                if kind == "BF16":
                    raw = (raw.astype(np.uint32) << 16).view(np.float32)
                out[name] = np.array(raw)
    except OSError as exc:
        raise GrukitError(f"{file}: cannot read ({exc.strerror or exc})") from None
    return out


def _torch(file: Path, spec: dict, convention: Convention | None, direction: str | None, where: str) -> WeightFile:
    arrays = _load_torch(file, where)
    found: dict[str, dict] = {}
    for key, value in arrays.items():
        m = _TORCH_KEY.match(key)
        if m:
            found.setdefault(m["prefix"], {})[key] = value
    if not found:
        shown = ", ".join(sorted(arrays)[:8]) + (", ..." if len(arrays) > 8 else "")
        raise GrukitError(f"{file}: no GRU weights (expected nn.GRU's weight_ih_l0, weight_hh_l0, ... or nn.GRUCell's "
                          f"weight_ih, weight_hh, ...); its arrays: "
                          f"{shown or 'none'}")
    if "module" in spec:
        prefix = str(spec["module"])
        prefix = prefix if prefix == "" or prefix.endswith(".") else prefix + "."
        if prefix not in found:
            raise GrukitError(f"{where}.module: {file} has no GRU weights under {prefix!r} (it has: "
                              f"{', '.join(repr(p) for p in sorted(found))})")
    elif len(found) > 1:
        raise GrukitError(f"{where}.module: missing: {file} holds several recurrent modules "
                          f"({', '.join(repr(p) for p in sorted(found))}); say which")
    else:
        prefix = next(iter(found))
    mine = found[prefix]
    cell_keys = sorted(k for k in mine if _TORCH_KEY.match(k)["layer"] is None)
    if cell_keys and len(cell_keys) != len(mine):
        raise GrukitError(f"{file}: {cell_keys[0]} (an nn.GRUCell's) beside an nn.GRU's arrays under the same "
                          f"prefix {prefix!r}: save one module's state dict")
    suffix = "" if cell_keys else "_l0"  # an nn.GRUCell: one layer, one direction, keys without _l0
    layers = sorted({int(_TORCH_KEY.match(k)["layer"] or 0) for k in mine})
    reverse = any(_TORCH_KEY.match(k)["rev"] for k in mine)
    w_hh = mine.get(f"{prefix}weight_hh{suffix}")
    if w_hh is None or f"{prefix}weight_ih{suffix}" not in mine:
        raise GrukitError(f"{file}: missing array {prefix}weight_ih{suffix} or {prefix}weight_hh{suffix}")
    if any(_TORCH_KEY.match(k)["kind"] == "weight_hr" for k in mine) or w_hh.ndim != 2:
        raise GrukitError(f"{file}: {prefix}weight_hh{suffix} is not a GRU's (an LSTM with projections?)")
    H = w_hh.shape[1]
    gates = w_hh.shape[0] / H if H else 0
    if gates != 3:
        kind = {4: "an LSTM", 1: "a plain RNN"}.get(gates, f"{w_hh.shape[0]} rows for H = {H}")
        raise GrukitError(f"{file}: not a GRU state dict: {prefix}weight_hh{suffix} has {w_hh.shape[0]} rows for "
                          f"hidden size {H} ({kind}; a GRU has 3H)")
    if layers != list(range(len(layers))):
        raise GrukitError(f"{file}: layers {layers} are not numbered 0, 1, ...")
    chosen = layers
    if "layers" in spec:
        chosen = spec["layers"]
        if not isinstance(chosen, list) or not chosen or any(not isinstance(k, int) or k not in layers
                                                             for k in chosen) \
                or chosen != list(range(chosen[0], chosen[0] + len(chosen))):
            raise GrukitError(f"{where}.layers: expected consecutive layer numbers from {layers}, got "
                              f"{spec['layers']!r}")
    biased = f"{prefix}bias_ih{suffix}" in mine
    conv = convention or PRESETS["pytorch"]
    if not biased:
        conv = conv.with_changes(biases="none")
    LAYOUTS["pytorch"].check(conv, f"{where}.layout")
    if direction not in (None, "bidirectional" if reverse else "forward"):
        raise GrukitError(f"{where}: {file} holds a {'bidirectional' if reverse else 'forward'} GRU; the "
                          f"problem says direction: {direction}")
    rules = FRAMEWORKS["pytorch"]
    net = Network("pytorch", [], rules.final_state)
    sources = []
    for k in chosen:
        cells = []
        for sfx, dirn in (("", "forward"), ("_reverse", "reverse")) if reverse else (("", "forward"),):
            at = f"_l{k}{sfx}" if suffix else ""
            names = {r: f"{prefix}{r}{at}" for r in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
            layout = replace(LAYOUTS["pytorch"], input_weight=names["weight_ih"], recurrent_weight=names["weight_hh"],
                             biases={"none": (), "double": (names["bias_ih"], names["bias_hh"])})
            missing = [n for n in layout.array_names(conv) if n not in mine]
            if missing:
                raise GrukitError(f"{file}: missing array {missing[0]!r}")
            D = mine[names["weight_ih"]].shape[1] if mine[names["weight_ih"]].ndim == 2 else -1
            arrays = {n: float_array(mine[n], f"{file}: {n}") for n in layout.array_names(conv)}
            cells.append(file_cell(conv, layout, arrays, D, H, dirn, file))
            sources.append(CellSource(layout))
        net.layers.append(Layer(tuple(cells), rules.merge, rules.padded_output, rules.reverse_order, f"l{k}"))
    check_stack(net, file)
    return WeightFile(file, "pytorch", net, sources, decided=("direction", "merge"), arrays=mine)


# --- ONNX ---------------------------------------------------------------------------------------

ONNX_DEFAULTS = {"leaky_relu": (Fraction(float(np.float32(0.01))), None),
                 "hard_sigmoid": (Fraction(float(np.float32(0.2))), Fraction(float(np.float32(0.5)))),
                 "elu": (Fraction(1), None)}
"""ONNX Runtime's defaults for a missing alpha/beta (rnn_helpers.cc NameToArgDefaultsMap, float32);
0 for every other function that takes one (the ONNX operator's ThresholdedRelu default of 1.0 is
not what ONNX Runtime's GRU uses)."""


def onnx_activations(names: list[str], alphas: list[float], betas: list[float], where: str
                     ) -> list[tuple[str, Fraction | None, Fraction | None]]:
    """The ``activations`` list with alpha/beta consumed in order, as ONNX Runtime reads them."""

    out = []
    a_iter, b_iter = iter(alphas), iter(betas)
    for name in names:
        kind = ONNX_ACTIVATIONS.get(name.lower())
        if kind is None:
            raise GrukitError(f"{where}: activation {name!r} is not one of ONNX's GRU activations")
        takes = ACTIVATION_PARAMETERS.get(kind, (False, False))
        defaults = ONNX_DEFAULTS.get(kind, (Fraction(0), Fraction(0)))
        alpha = beta = None
        if takes[0]:
            v = next(a_iter, None)
            alpha = Fraction(float(np.float32(v))) if v is not None else defaults[0]
        if takes[1]:
            v = next(b_iter, None)
            beta = Fraction(float(np.float32(v))) if v is not None else defaults[1]
        out.append((kind, alpha, beta))
    return out


def onnx_convention(base: Convention, gate, candidate, clip, where: str = "ONNX GRU") -> Convention:
    """The cell's convention from a GRU node's attributes (each direction has its own)."""
    changes = dict(gate_activation=gate[0], gate_activation_alpha=gate[1], gate_activation_beta=gate[2],
                   candidate_activation=candidate[0], candidate_activation_alpha=candidate[1],
                   candidate_activation_beta=candidate[2], clip=clip)
    if all(getattr(base, k) == v for k, v in changes.items()):
        return base
    shown = f"{gate[0]}/{candidate[0]}" + (f", clip {float(clip):g}" if clip is not None else "")
    try:
        return base.with_changes(name=f"{base.name} ({shown})", **changes)
    except ConventionError as exc:
        raise GrukitError(f"{where}: {exc}") from None


GRU_ATTRIBUTES = {"activation_alpha": "FLOATS", "activation_beta": "FLOATS", "activations": "STRINGS",
                  "clip": "FLOAT", "direction": "STRING", "hidden_size": "INT", "layout": "INT",
                  "linear_before_reset": "INT"}
"""The ONNX GRU operator's attributes and their types."""
_ATTRIBUTE_WORDS = {"FLOATS": "a list of floats", "STRINGS": "a list of strings", "FLOAT": "a float",
                    "STRING": "a string", "INT": "an integer"}


def onnx_attributes(node, file: Path) -> dict:
    """A GRU node's attributes, each of the operator's type and in its range: one line naming the file,
    the node and the attribute otherwise."""
    from onnx import AttributeProto, helper

    where = f"{file}: GRU node {node.name[:80]!r}"
    out = {}
    for a in node.attribute:
        expected = GRU_ATTRIBUTES.get(a.name)
        at = f"{where}: attribute {a.name[:60]!r}"
        if expected is None:
            raise GrukitError(f"{at}: not an attribute of the GRU operator ({', '.join(GRU_ATTRIBUTES)})")
        if a.name in out:
            raise GrukitError(f"{at}: given twice")
        if a.ref_attr_name:
            raise GrukitError(f"{at}: refers to a function's attribute: grukit reads values stored in the node")
        if a.type != getattr(AttributeProto, expected):
            got = AttributeProto.AttributeType.Name(a.type) if a.type in AttributeProto.AttributeType.values() \
                else str(a.type)
            raise GrukitError(f"{at}: expected {_ATTRIBUTE_WORDS[expected]}, got {got.lower()}")
        value = helper.get_attribute_value(a)
        if expected in ("STRING", "STRINGS"):
            try:
                value = value.decode("utf-8") if expected == "STRING" else [v.decode("utf-8") for v in value]
            except UnicodeDecodeError:
                raise GrukitError(f"{at}: not UTF-8 text") from None
        if expected in ("FLOAT", "FLOATS"):
            for v in [value] if expected == "FLOAT" else value:
                if not math.isfinite(v):
                    raise GrukitError(f"{at}: {v} is not a finite number")
        if a.name == "clip" and not value > 0:
            raise GrukitError(f"{at}: {value:g}: the clip threshold must be positive")
        if a.name == "hidden_size" and value < 1:
            raise GrukitError(f"{at}: {value}: expected a positive size")
        if a.name in ("layout", "linear_before_reset") and value not in (0, 1):
            raise GrukitError(f"{at}: {value}: expected 0 or 1")
        if a.name == "direction" and value not in ("forward", "reverse", "bidirectional"):
            raise GrukitError(f"{at}: {value[:40]!r} is not forward, reverse or bidirectional")
        out[a.name] = value
    return out


ONNX_NUMBER_TYPES = {"FLOAT": 4, "DOUBLE": 8, "FLOAT16": 2, "BFLOAT16": 2, "INT8": 1, "INT16": 2, "INT32": 4,
                     "INT64": 8, "UINT8": 1, "UINT16": 2, "UINT32": 4, "UINT64": 8}
"""ONNX tensor types of real numbers, with their sizes in bytes."""


def _external(tensor) -> bool:
    from onnx import TensorProto

    return tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data) > 0


def onnx_tensor(tensor, file: Path) -> np.ndarray:
    """An initializer's values: real numbers, stored in the file, as many as its dims declare."""
    from onnx import TensorProto, helper, numpy_helper

    where = f"{file}: tensor {tensor.name[:80]!r}"
    if _external(tensor):
        raise GrukitError(f"{where}: its data is stored outside the model (ONNX external data): grukit reads only "
                          f"the files you name; save the model with its weights inside")
    type_name = TensorProto.DataType.Name(tensor.data_type) if tensor.data_type in TensorProto.DataType.values() \
        else str(tensor.data_type)
    if type_name not in ONNX_NUMBER_TYPES:
        raise GrukitError(f"{where}: holds {type_name.lower()} values: grukit reads tensors of real numbers")
    if tensor.HasField("segment"):
        raise GrukitError(f"{where}: a segment of a tensor: grukit reads whole tensors")
    dims = tuple(tensor.dims)
    count = check_shape(dims, where)
    if tensor.HasField("raw_data"):
        have, need, unit = len(tensor.raw_data), count * ONNX_NUMBER_TYPES[type_name], "bytes"
    else:
        have, need, unit = len(getattr(tensor, helper.tensor_dtype_to_field(tensor.data_type))), count, "values"
    if have != need:
        raise GrukitError(f"{where}: its dims {shape_text(dims)} need {need} {unit} of data, it holds {have}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = numpy_helper.to_array(tensor)
    except Exception as exc:  # noqa: BLE001
        raise GrukitError(f"{where}: cannot read ({' '.join(str(exc).split())[:200]})") from None
    if arr.dtype.kind not in "fiu":  # bfloat16 and other extended floats
        with np.errstate(all="ignore"):
            arr = arr.astype(np.float32)
    return arr


def _onnx(file: Path, spec: dict, convention: Convention | None, direction: str | None, where: str) -> WeightFile:
    if file.suffix.lower() == ".npz":
        return _onnx_arrays(file, arrays_of_npz(file, where), {}, convention, direction, where, None)
    try:
        import onnx
        from onnx import AttributeProto
    except ImportError:
        raise GrukitError(f"{file}: reading an ONNX model needs the onnx package (pip install onnx)") from None
    kind = file_kind(file)
    if kind in ("a zip archive", "an HDF5 file (Keras .weights.h5?)", "a NumPy .npy file", "a safetensors file",
                "an empty file", "a text file") or kind.startswith("a Python pickle"):
        raise GrukitError(f"{file}: not an ONNX model: it is {kind}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = onnx.load(str(file), load_external_data=False)
    except Exception as exc:  # noqa: BLE001
        raise GrukitError(f"{file}: cannot read as an ONNX model ({' '.join(str(exc).split())[:200]})") from None
    graph = model.graph
    texts = [v for n in graph.node for v in (n.name, n.op_type, n.domain, *n.input, *n.output,
                                             *(a.name for a in n.attribute))]
    if any(not isinstance(v, str) for v in texts + [t.name for t in graph.initializer]):
        raise GrukitError(f"{file}: a node or tensor name that is not UTF-8 text (a corrupt ONNX model)")
    tensors = {}
    for init in graph.initializer:
        if _external(init):
            onnx_tensor(init, file)  # refused, naming it
        tensors[init.name] = init
    for n in graph.node:
        if n.op_type == "Constant" and n.output:
            for a in n.attribute:
                if a.name == "value" and a.type == AttributeProto.TENSOR:
                    if _external(a.t):
                        onnx_tensor(a.t, file)
                    tensors[n.output[0]] = a.t
    grus = [n for n in graph.node if n.op_type == "GRU"]
    if not grus:
        ops = sorted({n.op_type[:40] for n in graph.node})
        raise GrukitError(f"{file}: no GRU node (its nodes: {', '.join(ops[:20]) or 'none'})")
    if "node" in spec:
        want = spec["node"]
        match = [n for i, n in enumerate(grus) if n.name == want or (isinstance(want, int) and i == want)]
        if not match:
            raise GrukitError(f"{where}.node: {file} has no GRU node {want!r} (its GRU nodes: "
                              f"{', '.join(repr(n.name) for n in grus)})")
        node = match[0]
    elif len(grus) > 1:
        chain = onnx_stack(grus, graph.node, tensors, file)
        if chain is None:
            raise GrukitError(f"{where}.node: missing: {file} has {len(grus)} GRU nodes "
                              f"({', '.join(repr(n.name) for n in grus)}); say which (a name or an index): they "
                              f"are not one stack (each node's Y the next one's X, as PyTorch exports a stack)")
        return _onnx_stack([_onnx_node(n, tensors, file, convention, direction, where) for n in chain], file)
    else:
        node = grus[0]
    return _onnx_node(node, tensors, file, convention, direction, where)


STACK_JOINS = {"Transpose": "perm", "Reshape": "shape", "Squeeze": "axes", "Identity": None}
"""The operators that may join one GRU node's Y (T x directions x B x H) to the next one's X (T x B x
directions*H) in a stack: Transpose(perm=[0, 2, 1, 3]) then Reshape([0, 0, -1]), or, for one
direction, Squeeze(axes=[1]) -- PyTorch's export and grukit's own."""


def _join_value(node, tensors: dict, file: Path) -> list[int] | None:
    """A joining node's perm, shape or axes (an attribute or a constant input)."""
    from onnx import helper

    key = STACK_JOINS[node.op_type]
    if key is None:
        return None
    for a in node.attribute:
        if a.name == key:
            return [int(v) for v in helper.get_attribute_value(a)]
    if len(node.input) > 1 and node.input[1] in tensors:
        return [int(v) for v in np.ravel(onnx_tensor(tensors[node.input[1]], file))]
    return []


def _attribute(node, name: str, default):
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def onnx_stack(grus: list, nodes, tensors: dict, file: Path) -> list | None:
    """The GRU nodes in layer order when they form one stack (each node's X made from the previous
    node's Y by :data:`STACK_JOINS` alone, every join exactly the concatenation of the directions);
    None otherwise. Nodes are told apart by identity (ONNX lets several share a name, or have none)."""
    made = {out: n for n in nodes for out in n.output}
    before = {}  # id(node) -> (the GRU node below it, the joins' (op, value) in data-flow order)
    for g in grus:
        x, joins = g.input[0], []
        while x in made and made[x].op_type in STACK_JOINS and len(joins) <= len(nodes):
            joins.append(made[x])
            x = made[x].input[0] if made[x].input else ""
        source = made.get(x)
        if source is not None and source.op_type == "GRU" and source.output and source.output[0] == x:
            before[id(g)] = (source, [(j.op_type, _join_value(j, tensors, file)) for j in reversed(joins)
                                      if j.op_type != "Identity"])
    firsts = [g for g in grus if id(g) not in before]
    after = {id(below): g for g in grus if id(g) in before for below in [before[id(g)][0]]}
    if len(firsts) != 1 or len(after) != len(before):
        return None
    chain = [firsts[0]]
    while id(chain[-1]) in after and len(chain) <= len(grus):
        nxt = after[id(chain[-1])]
        joins = before[id(nxt)][1]
        one_direction = _attribute(chain[-1], "direction", b"forward") != b"bidirectional"
        concat = joins == [("Transpose", [0, 2, 1, 3]), ("Reshape", [0, 0, -1])] or \
            one_direction and joins == [("Squeeze", [1])]
        if not concat or any(_attribute(n, "layout", 0) for n in (chain[-1], nxt)):
            return None
        chain.append(nxt)
    return chain if len(chain) == len(grus) else None


def _onnx_stack(parts: list[WeightFile], file: Path) -> WeightFile:
    """The one-node networks of a stack's GRU nodes as one network of their layers."""
    top = parts[-1].network
    net = Network("onnx", [p.network.layers[0] for p in parts], top.final_state, top.output_form)
    check_stack(net, file)
    starts = [p.h0 for p in parts]
    if any(h is None for h in starts) and any(h is not None for h in starts):
        raise GrukitError(f"{file}: initial_h is given to some GRU nodes of the stack and not others")
    h0 = None if starts[0] is None else np.concatenate(starts)
    sources = [s for p in parts for s in p.sources]
    return WeightFile(file, "onnx", net, sources, h0=h0, lengths=parts[0].lengths, decided=("direction", "merge"))


def _onnx_node(node, tensors: dict, file: Path, convention: Convention | None, direction: str | None,
               where: str) -> WeightFile:
    """One GRU node of a model: its weights, attributes, initial_h and sequence_lens initializers."""
    attrs = onnx_attributes(node, file)
    inputs = list(node.input) + [""] * (6 - len(node.input))
    arrays = {}
    for role, name in zip(("W", "R", "B"), inputs[1:4]):
        if not name:
            continue
        if name not in tensors:
            raise GrukitError(f"{file}: GRU node {node.name!r}: its {role} ({name!r}) is not an initializer "
                              f"(grukit reads weights stored in the file)")
        arrays[role] = onnx_tensor(tensors[name], file)
    names = {role: name for role, name in zip(("W", "R", "B"), inputs[1:4]) if name}
    h0 = onnx_tensor(tensors[inputs[5]], file) if inputs[5] and inputs[5] in tensors else None
    out = _onnx_arrays(file, arrays, attrs, convention, direction, where, node.name, names, h0)
    if inputs[4] and inputs[4] in tensors:
        lengths = onnx_tensor(tensors[inputs[4]], file)
        if lengths.dtype.kind not in "iu":
            raise GrukitError(f"{file}: sequence_lens ({inputs[4]!r}): expected integers, got {lengths.dtype}")
        out.lengths = lengths.ravel()
    return out


def _onnx_arrays(file: Path, arrays: dict, attrs: dict, convention: Convention | None, direction: str | None,
                 where: str, node: str | None, names: dict | None = None, h0=None) -> WeightFile:
    names = names or {"W": "W", "R": "R", "B": "B"}
    for role in ("W", "R"):
        if role not in arrays:
            raise GrukitError(f"{file}: missing array {role!r}")
        if np.ndim(arrays[role]) != 3:
            raise GrukitError(f"{file}: {names[role]}: expected 3 axes [num_directions, 3H, ...], got shape "
                              f"{'x'.join(map(str, np.shape(arrays[role])))}")
    decode = lambda v: v.decode() if isinstance(v, bytes) else v  # noqa: E731
    stored = "bidirectional" if np.shape(arrays["W"])[0] == 2 else "forward"  # an .npz: its W's direction axis
    file_direction = decode(attrs.get("direction", stored if direction is None else direction))
    if file_direction not in ("forward", "reverse", "bidirectional"):
        raise GrukitError(f"{file}: GRU direction {file_direction!r} is not forward, reverse or bidirectional")
    if node is not None and direction not in (None, file_direction):
        raise GrukitError(f"{file}: the GRU node is {file_direction}; the problem says direction: {direction}")
    dirs = 2 if file_direction == "bidirectional" else 1
    W, R = float_array(arrays["W"], f"{file}: {names['W']}"), float_array(arrays["R"], f"{file}: {names['R']}")
    if W.shape[0] != dirs or R.shape[0] != dirs:
        raise GrukitError(f"{file}: {names['W']}: {W.shape[0]} direction(s) for direction {file_direction}")
    H = R.shape[2]
    if "hidden_size" in attrs and int(attrs["hidden_size"]) != H:
        raise GrukitError(f"{file}: hidden_size {attrs['hidden_size']} but {names['R']} is for H = {H}")
    if W.shape[1] != 3 * H or R.shape[1] != 3 * H:
        raise GrukitError(f"{file}: {names['W']}/{names['R']}: expected 3H = {3 * H} rows (a GRU's), got "
                          f"{W.shape[1]}/{R.shape[1]}")
    lbr = int(attrs.get("linear_before_reset", 0))
    if node is None:  # an .npz: the convention (onnx or onnx-lbr1) says it
        base = convention or PRESETS["onnx"]
    else:
        base = convention or PRESETS["onnx-lbr1" if lbr else "onnx"]
        if convention is not None:
            base = base.with_changes(reset="after" if lbr else "before")
    B = arrays.get("B")
    if B is None:
        base = base.with_changes(biases="none")
    layout_name = int(attrs.get("layout", 0))
    acts = [decode(a) for a in attrs.get("activations", [])]
    if acts and len(acts) != 2 * dirs:
        raise GrukitError(f"{file}: activations: {len(acts)} given, a {file_direction} GRU needs {2 * dirs}")
    parsed = onnx_activations(acts, list(attrs.get("activation_alpha", [])), list(attrs.get("activation_beta", [])),
                              f"{file}: GRU node {node!r}: attribute 'activations'") if acts else None
    clip = attrs.get("clip")
    clip = Fraction(float(np.float32(clip))) if clip is not None else None
    rules = FRAMEWORKS["onnx"]
    cells, sources = [], []
    at = f"{file}: GRU node {node!r}" if node is not None else str(file)
    dir_names = ("forward", "reverse") if dirs == 2 else (file_direction,)
    for d, dirn in enumerate(dir_names):
        conv = base
        if parsed:
            conv = onnx_convention(base, parsed[2 * d], parsed[2 * d + 1], clip, at)
        elif clip is not None:
            conv = onnx_convention(base, (base.gate_activation, None, None),
                                   (base.candidate_activation, None, None), clip, at)
        layout = replace(LAYOUTS["onnx"], input_weight=names["W"], recurrent_weight=names["R"],
                         biases={"none": (), "double": (names.get("B", "B"),)})
        cell_arrays = {names["W"]: W[d:d + 1], names["R"]: R[d:d + 1]}
        if B is not None:
            cell_arrays[names["B"]] = float_array(B, f"{file}: {names['B']}")[d:d + 1]
        cells.append(file_cell(conv, layout, cell_arrays, W.shape[2], H, dirn, file))
        sources.append(CellSource(layout, d, dirs))
    form = f"onnx_layout{layout_name}"
    net = Network("onnx", [Layer(tuple(cells), "stack", rules.padded_output, rules.reverse_order, node or "")],
                  rules.final_state, form)
    h0_arr = None
    if h0 is not None:
        h0_arr = float_array(h0, f"{file}: initial_h")
        if layout_name == 1:
            h0_arr = h0_arr.transpose(1, 0, 2)
    return WeightFile(file, "onnx", net, sources, h0=h0_arr, decided=("direction", "merge"))

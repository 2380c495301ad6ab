"""Real model files as weight sources: ONNX graphs, PyTorch state dicts, Keras weight files.

Each reader turns a file into a :class:`~grukit.derive.layers.network.Network` (its layers, each cell with
its convention and parameters) and remembers where every parameter sits in the file, so that
gradients come back under the file's own names. The convention follows from the file where the
file says it:

* ONNX (``.onnx``): the GRU node's ``W``, ``R``, ``B`` initializers and its attributes
  (``direction``, ``linear_before_reset``, ``activations`` with ``activation_alpha``/``beta``,
  ``clip``, ``layout``); ``node: NAME`` (or an index) picks one of several GRU nodes;
* PyTorch (``.pt``/``.pth`` read with ``torch.load(weights_only=True)``, ``.safetensors``, or an
  ``.npz`` of the same arrays): ``weight_ih_l{k}[_reverse]``, ... give the layers and directions;
  ``module: PREFIX`` picks a GRU among several (``encoder.gru.``), ``layers: [k, ...]`` a sub-stack;
* Keras (``.weights.h5``, ``.keras``): each GRU's ``cell/vars/0..2`` (kernel, recurrent kernel,
  bias); a ``Bidirectional`` holds ``forward_layer`` and ``backward_layer``. ``.keras`` files add
  the model's config (layer order, ``merge_mode``, ``go_backwards``, activations, ``reset_after``,
  a ``Masking`` layer); with several GRU layers in a ``.weights.h5``, ``layers: [name, ...]`` says
  which, in order.

Every error names the file and what is missing or unsupported. Nothing here computes.
"""
from __future__ import annotations

import re
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from grukit.derive.cell.convention import ACTIVATION_PARAMETERS, Convention, ConventionError
from grukit.derive.cell.functions import ONNX_ACTIVATIONS
from grukit.derive.cell.layouts import LAYOUTS
from grukit.derive.cell.presets import PRESETS
from grukit.derive.errors import GrukitError
from grukit.derive.files.arrays import referenced_file
from grukit.derive.files.keras_files import read_keras
from grukit.derive.files.weight_files import CellSource, WeightFile, arrays_of_npz, check_stack, file_cell, float_array
from grukit.derive.layers.network import FRAMEWORKS, Layer, Network

MODEL_SUFFIXES = {".onnx": "onnx", ".pt": "pytorch", ".pth": "pytorch", ".safetensors": "pytorch",
                  ".h5": "keras", ".keras": "keras"}
"""File suffix -> the framework whose file it is (an ``.npz`` says it with ``layout:``)."""
SPEC_KEYS = ("layout", "file", "node", "module", "layers")


def read_weight_file(spec: dict, problem_path: Path, convention: Convention | None, direction: str | None,
                     merge: str | None) -> WeightFile:
    """``weights: {layout: ..., file: ...}`` of a layer problem: the network the file holds."""
    where = f"{problem_path}: weights"
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise GrukitError(f"{where}.{unknown[0]}: unknown key (allowed: {', '.join(SPEC_KEYS)})")
    if "file" not in spec:
        raise GrukitError(f"{where}.file: missing")
    file = referenced_file(problem_path, spec["file"], f"{where}.file")
    suffix = file.suffix.lower()
    framework = MODEL_SUFFIXES.get(suffix)
    layout = spec.get("layout")
    if layout is not None and layout not in LAYOUTS:
        raise GrukitError(f"{where}.layout: unknown layout {layout!r} (choose from {', '.join(LAYOUTS)})")
    if framework is None and suffix != ".npz":
        raise GrukitError(f"{where}.file: {file}: unsupported file type {suffix or '(none)'!r} (read: "
                          f"{', '.join(sorted(MODEL_SUFFIXES))}, or .npz with a layout)")
    if framework is not None and layout is not None and layout != framework:
        raise GrukitError(f"{where}.layout: {layout!r} does not match {file} (a {framework} file)")
    framework = framework or layout
    if framework is None:
        raise GrukitError(f"{where}.layout: missing (an .npz holds arrays of keras, pytorch or onnx)")
    if not file.exists():
        raise GrukitError(f"{where}.file: {file}: no such file")
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
                        r"_l(?P<layer>\d+)(?P<rev>_reverse)?$")


def _load_torch(file: Path) -> dict[str, np.ndarray]:
    suffix = file.suffix.lower()
    if suffix == ".npz":
        return arrays_of_npz(file, str(file))
    if suffix == ".safetensors":
        try:
            from safetensors.numpy import load_file
        except ImportError:
            raise GrukitError(f"{file}: reading .safetensors needs the safetensors package") from None
        try:
            return dict(load_file(str(file)))
        except Exception as exc:  # noqa: BLE001 - any unreadable file is one message
            raise GrukitError(f"{file}: cannot read as safetensors ({exc})") from None
    try:
        import torch
    except ImportError:
        raise GrukitError(f"{file}: reading a PyTorch file needs torch (pip install torch), or save the "
                          f"state dict as .safetensors") from None
    try:
        data = torch.load(str(file), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GrukitError(f"{file}: cannot read with torch.load(weights_only=True): {first} (save "
                          f"gru.state_dict(), not the module)") from None
    if isinstance(data, dict) and "state_dict" in data and isinstance(data["state_dict"], dict):
        data = data["state_dict"]
    if not isinstance(data, dict):
        raise GrukitError(f"{file}: holds a {type(data).__name__}, not a state dict")
    out = {}
    for key, value in data.items():
        if hasattr(value, "detach"):
            out[str(key)] = value.detach().cpu().double().numpy()
    return out


def _torch(file: Path, spec: dict, convention: Convention | None, direction: str | None, where: str) -> WeightFile:
    arrays = _load_torch(file)
    found: dict[str, dict] = {}
    for key, value in arrays.items():
        m = _TORCH_KEY.match(key)
        if m:
            found.setdefault(m["prefix"], {})[key] = value
    if not found:
        shown = ", ".join(sorted(arrays)[:8]) + (", ..." if len(arrays) > 8 else "")
        raise GrukitError(f"{file}: no GRU weights (expected weight_ih_l0, weight_hh_l0, ...); its arrays: "
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
    layers = sorted({int(_TORCH_KEY.match(k)["layer"]) for k in mine})
    reverse = any(_TORCH_KEY.match(k)["rev"] for k in mine)
    w_hh = mine.get(f"{prefix}weight_hh_l0")
    if w_hh is None or f"{prefix}weight_ih_l0" not in mine:
        raise GrukitError(f"{file}: missing array {prefix}weight_ih_l0 or {prefix}weight_hh_l0")
    if any(_TORCH_KEY.match(k)["kind"] == "weight_hr" for k in mine) or w_hh.ndim != 2:
        raise GrukitError(f"{file}: {prefix}weight_hh_l0 is not a GRU's (an LSTM with projections?)")
    H = w_hh.shape[1]
    gates = w_hh.shape[0] / H if H else 0
    if gates != 3:
        kind = {4: "an LSTM", 1: "a plain RNN"}.get(gates, f"{w_hh.shape[0]} rows for H = {H}")
        raise GrukitError(f"{file}: not a GRU state dict: {prefix}weight_hh_l0 has {w_hh.shape[0]} rows for "
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
    biased = f"{prefix}bias_ih_l0" in mine
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
            names = {r: f"{prefix}{r}_l{k}{sfx}" for r in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
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


def onnx_convention(base: Convention, gate, candidate, clip) -> Convention:
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
        raise GrukitError(str(exc)) from None


def _onnx(file: Path, spec: dict, convention: Convention | None, direction: str | None, where: str) -> WeightFile:
    if file.suffix.lower() == ".npz":
        return _onnx_arrays(file, arrays_of_npz(file, where), {}, convention, direction, where, None)
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise GrukitError(f"{file}: reading an ONNX model needs the onnx package (pip install onnx)") from None
    try:
        model = onnx.load(str(file))
    except Exception as exc:  # noqa: BLE001
        raise GrukitError(f"{file}: cannot read as an ONNX model ({exc})") from None
    graph = model.graph
    grus = [n for n in graph.node if n.op_type == "GRU"]
    if not grus:
        ops = sorted({n.op_type for n in graph.node})
        raise GrukitError(f"{file}: no GRU node (its nodes: {', '.join(ops) or 'none'})")
    if "node" in spec:
        want = spec["node"]
        match = [n for i, n in enumerate(grus) if n.name == want or (isinstance(want, int) and i == want)]
        if not match:
            raise GrukitError(f"{where}.node: {file} has no GRU node {want!r} (its GRU nodes: "
                              f"{', '.join(repr(n.name) for n in grus)})")
        node = match[0]
    elif len(grus) > 1:
        raise GrukitError(f"{where}.node: missing: {file} has {len(grus)} GRU nodes "
                          f"({', '.join(repr(n.name) for n in grus)}); say which (a name or an index)")
    else:
        node = grus[0]
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and n.output:
            for a in n.attribute:
                if a.name == "value":
                    inits[n.output[0]] = numpy_helper.to_array(a.t)
    inputs = list(node.input) + [""] * (6 - len(node.input))
    arrays = {}
    for role, name in zip(("W", "R", "B"), inputs[1:4]):
        if not name:
            continue
        if name not in inits:
            raise GrukitError(f"{file}: GRU node {node.name!r}: its {role} ({name!r}) is not an initializer "
                              f"(grukit reads weights stored in the file)")
        arrays[role] = inits[name]
    names = {role: name for role, name in zip(("W", "R", "B"), inputs[1:4]) if name}
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    h0 = inits.get(inputs[5]) if inputs[5] else None
    out = _onnx_arrays(file, arrays, attrs, convention, direction, where, node.name, names, h0)
    if inputs[4] and inputs[4] in inits:
        out.lengths = np.asarray(inits[inputs[4]]).ravel()
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
                              f"{file}: activations") if acts else None
    clip = attrs.get("clip")
    clip = Fraction(float(np.float32(clip))) if clip is not None else None
    rules = FRAMEWORKS["onnx"]
    cells, sources = [], []
    dir_names = ("forward", "reverse") if dirs == 2 else (file_direction,)
    for d, dirn in enumerate(dir_names):
        conv = base
        if parsed:
            conv = onnx_convention(base, parsed[2 * d], parsed[2 * d + 1], clip)
        elif clip is not None:
            conv = onnx_convention(base, (base.gate_activation, None, None),
                                   (base.candidate_activation, None, None), clip)
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

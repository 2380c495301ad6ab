"""Keras weight files: ``.weights.h5`` (each GRU's ``cell/vars/0..2``; a ``Bidirectional``'s
``forward_layer``/``backward_layer``) and ``.keras`` (the same weights and the model's config: layer
order, ``merge_mode``, ``go_backwards``, ``reset_after``, activations, ``zero_output_for_mask``, a
``Masking`` layer). Reached through :func:`grukit.derive.files.model_files.read_weight_file`."""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from grukit.derive.cell.convention import Convention, ConventionError
from grukit.derive.cell.layouts import LAYOUTS
from grukit.derive.cell.presets import PRESETS
from grukit.derive.errors import GrukitError
from grukit.derive.files.weight_files import CellSource, WeightFile, arrays_of_npz, check_stack, file_cell, float_array
from grukit.derive.layers.network import FRAMEWORKS, MERGES, Layer, Network

# --- Keras --------------------------------------------------------------------------------------

KERAS_ACTIVATIONS = {"tanh": ("tanh", None), "sigmoid": ("sigmoid", None),
                     "hard_sigmoid": ("hard_sigmoid_keras3", None),
                     "relu": ("relu", None), "softsign": ("softsign", None), "softplus": ("softplus", None),
                     "elu": ("elu", Fraction(1)), "linear": ("linear", None)}
"""Keras 3's activation names -> grukit's (an activation Keras names but grukit lacks is an error)."""


@dataclass
class _KerasGRU:
    path: str  # the h5 group holding cell/vars
    name: str  # the layer's name
    arrays: list[np.ndarray]


def _h5_groups(h5, file: Path) -> dict[str, _KerasGRU]:
    """Every GRU-like group (one with cell/vars) in a Keras 3 weights file, by path."""
    out = {}

    def visit(name, obj):
        if name.endswith("/cell/vars") or name == "cell/vars":
            path = name[: -len("/cell/vars")] if name != "cell/vars" else ""
            keys = sorted(obj.keys(), key=int)
            label = h5[path + "/vars"].attrs.get("name", path) if path and (path + "/vars") in h5 else path
            out[path] = _KerasGRU(path, str(label), [np.asarray(obj[k]) for k in keys])
    h5.visititems(visit)
    return out


def _keras_layers(groups: dict[str, _KerasGRU], h5) -> list[dict]:
    """The layers (plain GRUs and Bidirectionals) among the groups, with the names users see."""
    layers, used = [], set()
    for path in sorted(groups):
        side = next((s for s in ("forward_layer", "backward_layer") if path.endswith("/" + s)), None)
        if side is None:
            layers.append({"path": path, "name": groups[path].name, "kind": "gru", "cells": [groups[path]]})
            continue
        parent = path[: -len(side) - 1]
        if parent in used:
            continue
        used.add(parent)
        name = h5[parent + "/vars"].attrs.get("name", parent) if (parent + "/vars") in h5 else parent
        layers.append({"path": parent, "name": str(name), "kind": "bidirectional",
                       "cells": [groups.get(parent + "/forward_layer"), groups.get(parent + "/backward_layer")]})
    return layers


def read_keras(file: Path, spec: dict, convention: Convention | None, direction: str | None, merge: str | None,
           where: str) -> WeightFile:
    suffix = file.suffix.lower()
    if suffix == ".npz":
        arrays = arrays_of_npz(file, where)
        g = _KerasGRU("", "", [arrays[k] for k in ("kernel", "recurrent_kernel", "bias") if k in arrays])
        if "kernel" not in arrays or "recurrent_kernel" not in arrays:
            raise GrukitError(f"{file}: missing array 'kernel' or 'recurrent_kernel' (layout keras)")
        layer = {"path": "", "name": "", "kind": "gru", "cells": [g]}
        names = {"kernel": "kernel", "recurrent_kernel": "recurrent_kernel", "bias": "bias"}
        return _keras_network(file, [layer], {}, convention, direction, merge, where, None, names)
    try:
        import h5py
    except ImportError:
        raise GrukitError(f"{file}: reading Keras weights needs h5py (pip install h5py)") from None
    config = None
    try:
        if suffix == ".keras":
            with zipfile.ZipFile(file) as z:
                config = json.loads(z.read("config.json"))
                import io

                data = io.BytesIO(z.read("model.weights.h5"))
            h5 = h5py.File(data, "r")
        else:
            h5 = h5py.File(file, "r")
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise GrukitError(f"{file}: cannot read as a Keras {suffix} file ({exc})") from None
    with h5:
        groups = _h5_groups(h5, file)
        layers = _keras_layers(groups, h5)
    if not layers:
        raise GrukitError(f"{file}: no GRU layer (no group with cell/vars)")
    configs = {}
    mask_value = None
    if config is not None:
        order, configs, mask_value = _keras_config(config, file)
        by_name = {layer["name"]: layer for layer in layers}
        missing = [n for n in order if n not in by_name]
        if missing:
            raise GrukitError(f"{file}: layer {missing[0]!r} of the config has no weights")
        layers = [by_name[n] for n in order]
    if "layers" in spec:
        want = spec["layers"]
        if not isinstance(want, list) or not want:
            raise GrukitError(f"{where}.layers: expected a list of layer names")
        by = {layer["name"]: layer for layer in layers}
        by |= {layer["path"].removeprefix("layers/"): layer for layer in layers}
        bad = [w for w in want if str(w) not in by]
        if bad:
            raise GrukitError(f"{where}.layers: {file} has no GRU layer {bad[0]!r} (its GRU layers: "
                              f"{', '.join(repr(layer['name']) for layer in layers)})")
        layers = [by[str(w)] for w in want]
    elif len(layers) > 1 and config is None:
        raise GrukitError(f"{where}.layers: missing: {file} holds {len(layers)} GRU layers "
                          f"({', '.join(repr(layer['name']) for layer in layers)}); list them in order "
                          f"(a .weights.h5 file does not keep the model's order)")
    return _keras_network(file, layers, configs, convention, direction, merge, where, mask_value)


def _keras_config(config: dict, file: Path) -> tuple[list[str], dict, float | None]:
    """The GRU layers of a .keras model's config, in order, with their settings."""
    layers = config.get("config", {}).get("layers", [])
    order, configs, mask_value = [], {}, None
    passive = {"InputLayer", "Masking", "Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout"}
    seen_gru = False
    for layer in layers:
        cls = layer.get("class_name")
        cfg = layer.get("config", {})
        if str(layer.get("module", "")).startswith("keras.src.ops") or cls in passive:
            if cls == "Masking":
                mask_value = float(cfg.get("mask_value", 0.0))
            continue
        if cls == "GRU" or (cls == "Bidirectional" and cfg.get("layer", {}).get("class_name") == "GRU"):
            order.append(cfg.get("name", layer.get("name")))
            configs[order[-1]] = (cls, cfg)
            seen_gru = True
        elif cls in ("LSTM", "SimpleRNN", "Bidirectional", "RNN"):
            raise GrukitError(f"{file}: layer {cfg.get('name')!r} is a {cls} (not a GRU): unsupported")
        elif not seen_gru:
            raise GrukitError(f"{file}: layer {cfg.get('name')!r} ({cls}) comes before the GRU layers: "
                              f"unsupported (grukit reads a stack of GRU layers)")
        else:
            break  # the head after the recurrent stack (Dense, ...) is not part of it
    if not order:
        raise GrukitError(f"{file}: no GRU layer in the model's config")
    return order, configs, mask_value


def _keras_activation(name, file: Path, layer: str) -> tuple[str, Fraction | None]:
    if isinstance(name, dict):
        name = name.get("config", {}).get("name", name.get("class_name"))
    if name not in KERAS_ACTIVATIONS:
        raise GrukitError(f"{file}: layer {layer!r}: activation {name!r} is not supported "
                          f"(supported: {', '.join(KERAS_ACTIVATIONS)})")
    return KERAS_ACTIVATIONS[name]


def _keras_cell_convention(arrays: list[np.ndarray], cfg: dict | None, convention: Convention | None,
                           file: Path, label: str) -> Convention:
    H = arrays[1].shape[0] if len(arrays) > 1 and arrays[1].ndim == 2 else 0
    kernel = arrays[0]
    if len(arrays) < 2 or kernel.ndim != 2 or arrays[1].ndim != 2 or H == 0:
        raise GrukitError(f"{file}: {label}: expected a kernel and a recurrent kernel")
    if arrays[1].shape[1] != 3 * H:
        kind = {4 * H: " (an LSTM)", H: " (a SimpleRNN)"}.get(arrays[1].shape[1], "")
        raise GrukitError(f"{file}: {label}: recurrent kernel {arrays[1].shape[0]}x{arrays[1].shape[1]} is not a "
                          f"GRU's (H x 3H){kind}")
    if len(arrays) > 2:
        reset_after = arrays[2].ndim == 2
    else:
        reset_after = bool(cfg.get("reset_after", True)) if cfg else True
    base = convention or PRESETS["keras" if reset_after else "keras-reset-before"]
    changes = {}
    if convention is None:
        if len(arrays) == 2:
            changes["biases"] = "none"
        if cfg:
            cand, cand_alpha = _keras_activation(cfg.get("activation", "tanh"), file, label)
            gate, gate_alpha = _keras_activation(cfg.get("recurrent_activation", "sigmoid"), file, label)
            if gate == "linear":
                gate, gate_alpha = "affine", Fraction(1)
                changes["gate_activation_beta"] = Fraction(0)
            changes.update(candidate_activation=cand, candidate_activation_alpha=cand_alpha,
                           gate_activation=gate, gate_activation_alpha=gate_alpha)
            if not reset_after and len(arrays) == 2:
                changes["reset"] = "before"
    changes = {k: v for k, v in changes.items() if getattr(base, k) != v}
    if not changes:
        return base
    try:
        return base.with_changes(name=f"{base.name} ({label})", **changes)
    except ConventionError as exc:
        raise GrukitError(f"{file}: {label}: {exc}") from None


def _keras_network(file: Path, layers: list[dict], configs: dict, convention: Convention | None, direction, merge,
                   where: str, mask_value, npz_names: dict | None = None) -> WeightFile:
    net = Network("keras", [], FRAMEWORKS["keras"].final_state)
    sources = []
    decided = []
    for k, layer in enumerate(layers):
        cls, cfg = configs.get(layer["name"], (None, {}))
        cells = []
        if layer["kind"] == "bidirectional":
            if None in layer["cells"]:
                raise GrukitError(f"{file}: Bidirectional {layer['name']!r} lacks a forward or backward layer")
            inner = [cfg.get("layer", {}).get("config"), cfg.get("backward_layer", {}).get("config")] \
                if cfg else [None, None]
            if inner[1] is None and inner[0] is not None:
                inner[1] = inner[0]
            mode = cfg.get("merge_mode", "concat") if cfg else (merge or "concat")
            mode = "none" if mode is None else mode
            if cfg and merge not in (None, mode):
                raise GrukitError(f"{where}: {file} merges {layer['name']!r} by {mode}; the problem says "
                                  f"merge: {merge}")
            if mode not in MERGES or mode == "stack":
                raise GrukitError(f"{file}: merge_mode {mode!r} is not one of Keras's (concat, sum, mul, ave, None)")
            zero = [bool(c.get("zero_output_for_mask", True)) if c else True for c in inner]
            plan = [("forward_layer", "forward", inner[0]), ("backward_layer", "reverse", inner[1])]
            padded = "zero" if all(zero) else "previous"
            order = "input"
            decided.append("direction")
        else:
            cfg_gru = cfg if cls == "GRU" else None
            back = bool(cfg_gru.get("go_backwards", False)) if cfg_gru else direction == "reverse"
            if cfg_gru is None and direction == "bidirectional":
                raise GrukitError(f"{where}: direction: {file} layer {layer['name'] or 'kernel'!r} is a plain GRU, "
                                  f"not a Bidirectional")
            if cfg_gru is not None:
                decided.append("direction")
            plan = [(None, "reverse" if back else "forward", cfg_gru)]
            mode = "concat"
            zero = bool(cfg_gru.get("zero_output_for_mask", False)) if cfg_gru else False
            padded = "zero" if zero else "previous"
            order = "processing"
        for (side, dirn, c), g in zip(plan, layer["cells"]):
            label = layer["name"] + (f"/{side}" if side else "") if layer["name"] else "kernel"
            conv = _keras_cell_convention(g.arrays, c, convention, file, label)
            if npz_names is not None:
                names = [npz_names["kernel"], npz_names["recurrent_kernel"], npz_names["bias"]]
            else:
                base = f"{g.path}/cell/vars"
                names = [f"{base}/{i}" for i in range(len(g.arrays))] + [f"{base}/2"] * (3 - len(g.arrays))
            layout = replace(LAYOUTS["keras"], input_weight=names[0], recurrent_weight=names[1],
                             biases={"none": (), "single": (names[2],), "double": (names[2],)})
            LAYOUTS["keras"].check(conv, f"{where}.layout")
            arrays = {n: float_array(a, f"{file}: {n}") for n, a in zip(names, g.arrays)}
            D, H = g.arrays[0].shape[0], g.arrays[1].shape[0]
            cells.append(file_cell(conv, layout, arrays, D, H, dirn, file))
            sources.append(CellSource(layout))
        net.layers.append(Layer(tuple(cells), mode, padded, order, layer["name"]))
    check_stack(net, file)
    if any(layer.merge == "none" for layer in net.layers[:-1]):
        raise GrukitError(f"{file}: merge_mode None gives two sequences; only the last layer may have it")
    if configs:
        decided.append("merge")
    return WeightFile(file, "keras", net, sources, mask_value=mask_value, decided=tuple(sorted(set(decided))))

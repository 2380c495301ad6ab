"""Keras weight files: ``.weights.h5`` (each GRU's ``cell/vars/0..2``; a ``Bidirectional``'s
``forward_layer``/``backward_layer``) and ``.keras`` (the same weights and the model's config: layer
order, ``merge_mode``, ``go_backwards``, ``reset_after``, activations, ``zero_output_for_mask``, a
``Masking`` layer). Reached through :func:`grukit.derive.files.model_files.read_weight_file`.

Read as files someone else wrote: before any dataset is read, every link in the HDF5 file must be a
hard link to an object stored in it (no soft, external or user-defined links), and every dataset
must keep its data in the file (no external storage, no virtual dataset, only HDF5's own filters);
each array read is real numbers of a bounded shape (:mod:`grukit.derive.files.arrays`). A ``.keras``
archive is checked member by member before anything is decompressed, and its ``config.json`` is
read with every value's type checked: each error is one line naming the file and the dataset or
the config key."""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import select
import signal
import time
import warnings
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from grukit.derive.cell.convention import Convention, ConventionError
from grukit.derive.cell.layouts import LAYOUTS
from grukit.derive.cell.presets import PRESETS
from grukit.derive.errors import GrukitError
from grukit.derive.files.arrays import (
    MAX_TOTAL_BYTES,
    NUMBER_KINDS,
    check_shape,
    dtype_words,
    npy_from_bytes,
    open_zip,
    printable,
    read_member,
)
from grukit.derive.files.weight_files import (
    CellSource,
    WeightFile,
    arrays_of_npz,
    check_stack,
    file_cell,
    file_kind,
    float_array,
)
from grukit.derive.layers.network import FRAMEWORKS, MERGES, Layer, Network

# --- Keras --------------------------------------------------------------------------------------

KERAS_ACTIVATIONS = {"tanh": ("tanh", None), "sigmoid": ("sigmoid", None),
                     "hard_sigmoid": ("hard_sigmoid_keras3", None),
                     "relu": ("relu", None), "softsign": ("softsign", None), "softplus": ("softplus", None),
                     "elu": ("elu", Fraction(1)), "linear": ("linear", None)}
"""Keras 3's activation names -> grukit's (an activation Keras names but grukit lacks is an error)."""
KERAS_NAMES = {kind: name for name, (kind, _) in KERAS_ACTIVATIONS.items()}
"""grukit's activation kinds -> the names Keras gives them (what a Keras file of a convention says)."""

H5_FILTERS = {1: "gzip", 2: "shuffle", 3: "fletcher32", 4: "szip", 5: "nbit", 6: "scaleoffset", 32000: "lzf"}
"""The HDF5 filters a dataset may use (HDF5's own and lzf); any other would load a plugin."""
MAX_H5_LINKS = 10_000
"""The most links (groups and datasets) an HDF5 file may have."""
MAX_CONFIG_BYTES = 2 ** 24
"""The largest ``config.json`` of a ``.keras`` archive read (16 MiB)."""


@dataclass
class _KerasGRU:
    path: str  # the h5 group holding cell/vars
    name: str  # the layer's name
    arrays: list[np.ndarray]


# --- the HDF5 file -------------------------------------------------------------------------------

def _h5_links(h5, file: Path | str) -> list[str]:
    """Every object's path in the file; anything but a hard link to an object stored in the file, and
    any dataset whose data lives elsewhere, is refused naming it."""
    import h5py

    links: list[tuple[bytes, int]] = []

    def visit(name, info):
        links.append((name, info.type))
        return True if len(links) > MAX_H5_LINKS else None

    try:
        h5.id.links.visit(visit, info=True)
    except Exception as exc:  # noqa: BLE001 - a corrupt file is one message
        raise GrukitError(f"{file}: cannot read the HDF5 file's structure ({_first_line(exc)})") from None
    if len(links) > MAX_H5_LINKS:
        raise GrukitError(f"{file}: more than {MAX_H5_LINKS} HDF5 objects: refused")
    names = []
    for raw, kind in links:
        name = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        if kind != h5py.h5l.TYPE_HARD:
            what = {h5py.h5l.TYPE_SOFT: "a soft link", h5py.h5l.TYPE_EXTERNAL: "an external link (to another file)"
                    }.get(kind, "a user-defined link")
            raise GrukitError(f"{file}: {printable(name)}: {what}: grukit reads only datasets stored in the file "
                              f"itself")
        names.append(name)
    for name in names:
        try:
            obj = h5[name]
            if not isinstance(obj, h5py.Dataset):
                continue
            plist = obj.id.get_create_plist()
            external = plist.get_external_count()
            virtual = obj.is_virtual
            filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
        except GrukitError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise GrukitError(f"{file}: {printable(name)}: cannot read ({_first_line(exc)})") from None
        shown = printable(name)
        if external:
            raise GrukitError(f"{file}: dataset {shown}: its data is stored in another file (HDF5 external storage): "
                              f"grukit reads only data stored in the file itself")
        if virtual:
            raise GrukitError(f"{file}: dataset {shown}: a virtual dataset (its data lives in other datasets or "
                              f"files): grukit reads only data stored in the file itself")
        unknown = [f for f in filters if f not in H5_FILTERS]
        if unknown:
            raise GrukitError(f"{file}: dataset {shown}: uses HDF5 filter {unknown[0]} (grukit reads "
                              f"{', '.join(H5_FILTERS.values())})")
    return names


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__


def _h5_label(h5, path: str, default: str) -> str:
    """A group's ``name`` attribute (the name Keras gave the layer), if it is a short string."""
    import h5py

    try:
        obj = h5.get(path)
        if obj is None or "name" not in obj.attrs:
            return default
        attr = h5py.h5a.open(obj.id, b"name")
        if attr.shape not in ((), (1,)) or attr.dtype.kind not in "OSU":
            return default
        value = obj.attrs["name"]
    except Exception:  # noqa: BLE001 - an unreadable label falls back to the path
        return default
    value = value.item() if isinstance(value, np.ndarray) and value.size == 1 else value
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str) or not value or len(value) > 200 or not value.isprintable():
        return default
    return value


class _Budget:
    """The bytes read from one file so far, at most :data:`MAX_TOTAL_BYTES`."""

    def __init__(self, file: Path | str):
        self.file, self.used = file, 0

    def take(self, nbytes: int, where: str) -> None:
        self.used += nbytes
        if self.used > MAX_TOTAL_BYTES:
            raise GrukitError(f"{where}: the arrays read from {self.file} would take more than {MAX_TOTAL_BYTES} "
                              f"bytes: refused")


def _h5_array(ds, file: Path | str, name: str, budget: _Budget) -> np.ndarray:
    """A dataset's values: real numbers, a bounded shape, checked before it is read."""
    where = f"{file}: dataset {printable(name)}"
    dtype = ds.dtype
    if dtype.kind == "O":
        raise GrukitError(f"{where}: holds variable-length data ({ds.dtype}): grukit reads arrays of real numbers")
    if dtype.kind not in NUMBER_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise GrukitError(f"{where}: holds {dtype_words(dtype)}: grukit reads arrays of real numbers")
    if ds.shape is None:
        raise GrukitError(f"{where}: an empty dataset (no shape)")
    count = check_shape(ds.shape, where)
    budget.take(count * dtype.itemsize, where)
    try:
        return np.asarray(ds[()])
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt data
        raise GrukitError(f"{where}: cannot read ({_first_line(exc)})") from None


def _h5_groups(h5, names: list[str], file: Path | str) -> dict[str, _KerasGRU]:
    """Every GRU-like group (one with cell/vars) in a Keras 3 weights file, by path."""
    import h5py

    out = {}
    budget = _Budget(file)
    for name in names:
        if not (name.endswith("/cell/vars") or name == "cell/vars"):
            continue
        obj = h5[name]
        if not isinstance(obj, h5py.Group):
            raise GrukitError(f"{file}: {printable(name)}: expected a group of datasets 0, 1, 2 (kernel, recurrent "
                              f"kernel, bias), got a dataset")
        keys = list(obj.keys())
        if any(not (k.isdigit() and k.isascii()) for k in keys) or sorted(map(int, keys)) != list(range(len(keys))) \
                or len(keys) > 3:
            raise GrukitError(f"{file}: {printable(name)}: expected datasets 0, 1 and maybe 2 (kernel, recurrent "
                              f"kernel, bias), got {', '.join(map(repr, sorted(keys)[:5])) or 'none'}")
        arrays = []
        for k in sorted(keys, key=int):
            ds = obj[k]
            if not isinstance(ds, h5py.Dataset):
                raise GrukitError(f"{file}: {printable(name)}/{k}: expected a dataset, got a group")
            arrays.append(_h5_array(ds, file, f"{name}/{k}", budget))
        path = name[: -len("/cell/vars")] if name != "cell/vars" else ""
        label = _h5_label(h5, path + "/vars", path) if path else path
        out[path] = _KerasGRU(path, label, arrays)
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
        name = _h5_label(h5, parent + "/vars", parent)
        layers.append({"path": parent, "name": name, "kind": "bidirectional",
                       "cells": [groups.get(parent + "/forward_layer"), groups.get(parent + "/backward_layer")]})
    return layers


def _keras_archive(file: Path, where: str) -> tuple[object, bytes]:
    """A ``.keras`` archive's config (parsed JSON) and its ``model.weights.h5`` (bytes)."""
    with open_zip(file, where, "a Keras .keras archive (a zip file)") as z:
        infos = {i.filename: i for i in z.infolist()}
        for member in ("config.json", "model.weights.h5"):
            if member not in infos:
                raise GrukitError(f"{file}: a .keras archive without {member} (it holds: "
                                  f"{', '.join(sorted(infos)[:8]) or 'nothing'})")
        if infos["config.json"].file_size > MAX_CONFIG_BYTES:
            raise GrukitError(f"{file}: config.json: {infos['config.json'].file_size} bytes, more than grukit "
                              f"reads ({MAX_CONFIG_BYTES})")
        text = read_member(z, infos["config.json"], file, where)
        data = read_member(z, infos["model.weights.h5"], file, where)
    try:
        config = json.loads(text.decode("utf-8"))
    except RecursionError:
        raise GrukitError(f"{file}: config.json: nested too deeply to be a model's config") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise GrukitError(f"{file}: config.json: not valid JSON ({_first_line(exc)})") from None
    return config, data


def _h5_layers(source, file: Path, shown: str) -> list[dict]:
    """Everything grukit reads from a Keras HDF5 file (``source``: a path or a BytesIO): its GRU layers,
    every link and dataset checked first. ``shown``: what an error calls the HDF5 file."""
    import h5py

    try:
        h5 = h5py.File(source, "r")
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError and others for a file it cannot open
        kind = file_kind(file) if isinstance(source, Path) else "not an HDF5 file"
        raise GrukitError(f"{shown}: cannot read as a Keras {file.suffix.lower()} file ({kind}: "
                          f"{_first_line(exc)})") from None
    with h5:
        names = _h5_links(h5, shown)
        groups = _h5_groups(h5, names, shown)
        return _keras_layers(groups, h5)


H5_TIME_LIMIT = 30.0
"""Seconds the HDF5 library may take to read a Keras file. It runs in a child process (where the
system has ``fork``), killed past this limit: libhdf5 loops forever on some corrupt files (a global
heap whose free-space size is wrong) and may crash on others, and neither can be interrupted from
Python."""


def _pack_layers(layers: list[dict]) -> bytes:
    """Layers as bytes a parent reads without unpickling: JSON, then each array as .npy data."""
    blobs, meta = [], []
    for layer in layers:
        cells = []
        for g in layer["cells"]:
            if g is None:
                cells.append(None)
                continue
            ids = []
            for arr in g.arrays:
                buf = io.BytesIO()
                np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
                ids.append(len(blobs))
                blobs.append(buf.getvalue())
            cells.append({"path": g.path, "name": g.name, "arrays": ids})
        meta.append({"path": layer["path"], "name": layer["name"], "kind": layer["kind"], "cells": cells})
    head = json.dumps(meta).encode()
    return b"".join([len(head).to_bytes(8, "little"), head, *(len(b).to_bytes(8, "little") + b for b in blobs)])


def _unpack_layers(data: bytes, shown: str) -> list[dict]:
    at, blobs = 8, []
    n = int.from_bytes(data[:8], "little")
    meta = json.loads(data[at:at + n].decode())
    at += n
    while at < len(data):
        size = int.from_bytes(data[at:at + 8], "little")
        blobs.append(npy_from_bytes(data[at + 8:at + 8 + size], shown))
        at += 8 + size
    for layer in meta:
        layer["cells"] = [None if c is None else _KerasGRU(c["path"], c["name"], [blobs[i] for i in c["arrays"]])
                          for c in layer["cells"]]
    return meta


def _isolated(work, shown: str) -> list[dict]:
    """``work()`` (the HDF5 reading) in a forked child, killed after :data:`H5_TIME_LIMIT` seconds; its
    result comes back as :func:`_pack_layers` bytes, never pickled. In this process where there is no fork."""
    if not hasattr(os, "fork"):
        return work()
    limit = H5_TIME_LIMIT
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():  # Python 3.12 warns when a process with threads forks; the child needs none
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: no output of its own, no cleanup, exit at once
        try:
            os.close(read_end)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            try:
                warnings.simplefilter("ignore")
                payload = b"O" + _pack_layers(work())
            except GrukitError as exc:
                payload = b"E" + str(exc).encode("utf-8", "replace")
            except BaseException as exc:  # noqa: BLE001 - whatever the library raises is one line
                payload = b"E" + f"{shown}: cannot read ({_first_line(exc)})".encode("utf-8", "replace")
            with os.fdopen(write_end, "wb") as fh:
                fh.write(payload)
        finally:
            os._exit(0)
    os.close(write_end)
    chunks, size, done = [], 0, False
    deadline = time.monotonic() + limit
    try:
        with os.fdopen(read_end, "rb", buffering=0) as fh:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if not select.select([fh], [], [], min(left, 1.0))[0]:
                    continue
                chunk = fh.read(1 << 20)
                if not chunk:
                    done = True
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > 2 * MAX_TOTAL_BYTES:  # cannot happen: the child reads at most MAX_TOTAL_BYTES
                    raise GrukitError(f"{shown}: more data than grukit reads")
    finally:
        if not done:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.waitpid(pid, 0)
    data = b"".join(chunks)
    if not done:
        raise GrukitError(f"{shown}: the HDF5 library did not finish reading it in {limit:g} s (a corrupt file?): "
                          f"refused")
    if not data:
        raise GrukitError(f"{shown}: the HDF5 library failed on it (a corrupt file?)")
    if data[:1] == b"E":
        raise GrukitError(data[1:].decode("utf-8", "replace"))
    return _unpack_layers(data[1:], shown)


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
        import h5py  # noqa: F401 - only to say what is missing
    except ImportError:
        raise GrukitError(f"{file}: reading Keras weights needs h5py (pip install h5py)") from None
    if suffix == ".keras":
        config, data = _keras_archive(file, where)
        source, shown = io.BytesIO(data), f"{file}: model.weights.h5"
    else:
        config, source, shown = None, file, str(file)
    layers = _isolated(lambda: _h5_layers(source, file, shown), shown)
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


# --- the .keras config ---------------------------------------------------------------------------

_MISSING = object()
_TYPES = {bool: "true or false", str: "a string", dict: "a mapping", list: "a list", float: "a number"}


def _shown(value) -> str:
    if isinstance(value, (dict, list)):
        return f"a {'mapping' if isinstance(value, dict) else 'list'}"
    text = json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _get(mapping, key: str, kind: type, path: str, file: Path, default=_MISSING, nullable: bool = False):
    """``mapping[key]`` of the type ``kind`` (None too if ``nullable``); ``default`` if absent (else an error)."""
    if not isinstance(mapping, dict):
        raise GrukitError(f"{file}: config.json: {path}: expected a mapping, got {_shown(mapping)}")
    if key not in mapping:
        if default is _MISSING:
            raise GrukitError(f"{file}: config.json: {path}.{key}: missing")
        return default
    value = mapping[key]
    if value is None and nullable:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) if kind is float else \
        isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if not ok:
        raise GrukitError(f"{file}: config.json: {path}.{key}: expected {_TYPES[kind]}"
                          f"{' or null' if nullable else ''}, got {_shown(value)}")
    return value


def _gru_config(cfg, path: str, file: Path) -> dict:
    """The settings grukit reads from a GRU layer's config, each of its type."""
    out = {}
    for key in ("go_backwards", "zero_output_for_mask", "reset_after"):
        value = _get(cfg, key, bool, path, file, None)
        if value is not None:
            out[key] = value
    for key in ("activation", "recurrent_activation"):
        value = cfg.get(key) if isinstance(cfg, dict) else None
        if value is None:
            continue
        if isinstance(value, dict):  # {"class_name": ..., "config": {"name": ...}}
            inner = _get(value, "config", dict, f"{path}.{key}", file, {})
            value = _get(inner, "name", str, f"{path}.{key}.config", file, None) or \
                _get(value, "class_name", str, f"{path}.{key}", file)
        elif not isinstance(value, str):
            raise GrukitError(f"{file}: config.json: {path}.{key}: expected an activation's name, got {_shown(value)}")
        out[key] = value
    return out


def _keras_config(config, file: Path) -> tuple[list[str], dict, float | None]:
    """The GRU layers of a .keras model's config, in order, with their settings (types checked)."""
    inner = _get(config, "config", dict, "(top)", file)
    layers = _get(inner, "layers", list, "config", file)
    order, configs, mask_value = [], {}, None
    passive = {"InputLayer", "Masking", "Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout"}
    seen_gru = False
    for i, layer in enumerate(layers):
        at = f"config.layers[{i}]"
        cls = _get(layer, "class_name", str, at, file)
        cfg = _get(layer, "config", dict, at, file, {})
        name = _get(cfg, "name", str, f"{at}.config", file, None) or _get(layer, "name", str, at, file, None)
        module = layer.get("module")
        if (isinstance(module, str) and module.startswith("keras.src.ops")) or cls in passive:
            if cls == "Masking":
                mask_value = _get(cfg, "mask_value", float, f"{at}.config", file, 0.0)
                if not math.isfinite(mask_value):
                    raise GrukitError(f"{file}: config.json: {at}.config.mask_value: not a finite number")
                mask_value = float(mask_value)
            continue
        wrapped = _get(cfg, "layer", dict, f"{at}.config", file, {}) if cls == "Bidirectional" else {}
        wrapped_cls = _get(wrapped, "class_name", str, f"{at}.config.layer", file, None) if wrapped else None
        if cls == "GRU" or (cls == "Bidirectional" and wrapped_cls == "GRU"):
            if name is None:
                raise GrukitError(f"{file}: config.json: {at}.config.name: missing")
            if name in configs:
                raise GrukitError(f"{file}: config.json: {at}: a second layer named {name!r}")
            if cls == "GRU":
                checked = _gru_config(cfg, f"{at}.config", file)
            else:
                checked = {"merge_mode": _get(cfg, "merge_mode", str, f"{at}.config", file, "concat", nullable=True)}
                for key in ("layer", "backward_layer"):
                    sub = _get(cfg, key, dict, f"{at}.config", file, None, nullable=True)
                    if sub is not None:
                        sub_cfg = _get(sub, "config", dict, f"{at}.config.{key}", file, None, nullable=True)
                        if sub_cfg is not None:
                            checked[key] = {"config": _gru_config(sub_cfg, f"{at}.config.{key}.config", file)}
            order.append(name)
            configs[name] = (cls, checked)
            seen_gru = True
        elif cls in ("LSTM", "SimpleRNN", "Bidirectional", "RNN"):
            raise GrukitError(f"{file}: layer {name!r} is a {cls} (not a GRU): unsupported")
        elif not seen_gru:
            raise GrukitError(f"{file}: layer {name!r} ({cls}) comes before the GRU layers: "
                              f"unsupported (grukit reads a stack of GRU layers)")
        else:
            break  # the head after the recurrent stack (Dense, ...) is not part of it
    if not order:
        raise GrukitError(f"{file}: no GRU layer in the model's config")
    return order, configs, mask_value


def _keras_activation(name, file: Path, layer: str) -> tuple[str, Fraction | None]:
    if not isinstance(name, str) or name not in KERAS_ACTIVATIONS:
        raise GrukitError(f"{file}: layer {layer!r}: activation {_shown(name)} is not supported "
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

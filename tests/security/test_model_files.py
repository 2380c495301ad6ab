"""Model and array files someone else wrote (docs/security.md): ONNX, PyTorch .pt, safetensors, Keras
.weights.h5 and .keras, .npz and .npy. Each hostile file is written here with the real framework (or
forged byte by byte), named by a problem beside it, and run through ``grukit forward --json``,
``grukit grad --json`` and ``grukit sheet -o x.md``. The promises kept:

* **no code from the file**: pickles in .npy/.npz and .pt files are never unpickled (a planted
  ``__reduce__`` would write the marker file);
* **no file it does not name**: HDF5 external storage, external and soft links, virtual datasets and
  ONNX external data are refused before a byte is read from elsewhere (a planted secret never
  appears), and a problem names files only inside its own folder;
* **bounded time and memory**: declared sizes (npy headers, ONNX dims, HDF5 shapes, zip members,
  safetensors offsets) are checked before anything is allocated;
* **one line naming the file and field**, never a traceback, never a half-written output.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers.hostile import MARKER, assert_nothing_leaked, clean, plant_secret, refused, run

D = H = 2
X = [[0.5, -1.0], [1.0, 0.5]]
LOSS = {"type": "weighted_sum", "G": [[0.1, 0.2], [0.3, -0.4]]}
ONNX_LOSS = {"type": "weighted_sum", "G": [[[[0.1, 0.2]]], [[[0.3, -0.4]]]]}  # ONNX's Y: T x directions x B x H
SYMBOLS = {"W_z": [[0.1, 0.2], [0.3, -0.4]], "W_r": [[0.5, -0.1], [0.2, 0.3]], "W_h": [[-0.3, 0.6], [0.4, 0.1]],
           "U_z": [[0.2, 0.1], [-0.2, 0.3]], "U_r": [[0.1, -0.5], [0.4, 0.2]], "U_h": [[0.3, 0.2], [-0.1, 0.5]],
           "b_z": [0.1, -0.1], "b_r": [0.2, 0.0], "b_h": [-0.2, 0.1]}
LIMIT = 30  # seconds per command


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def needs(*modules):
    missing = [m for m in modules if not _has(m)]
    return pytest.mark.skipif(bool(missing), reason=f"{', '.join(missing)} not installed")


# --- the files: valid ones, and ways to spoil them ------------------------------------------------

class Plant:
    """Unpickling this object writes the marker file: proof that code from a file ran."""

    def __init__(self, folder: Path):
        self.path = str(folder / MARKER)

    def __reduce__(self):
        return (open, (self.path, "w"))


def rng_arrays(shapes: dict, seed=0, dtype=np.float32) -> dict:
    rng = np.random.default_rng(seed)
    return {k: (0.5 * rng.standard_normal(s)).astype(dtype) for k, s in shapes.items()}


def torch_arrays(**change):
    out = rng_arrays({"weight_ih_l0": (3 * H, D), "weight_hh_l0": (3 * H, H), "bias_ih_l0": (3 * H,),
                      "bias_hh_l0": (3 * H,)})
    out.update(change)
    return out


def keras_arrays():
    return rng_arrays({"0": (D, 3 * H), "1": (H, 3 * H), "2": (2, 3 * H)})


def npy_bytes(arr: np.ndarray, shape=None, descr=None, version=(1, 0), tail: bytes | None = None) -> bytes:
    """.npy data, its header forged if asked (another shape or dtype than the data)."""
    fmt = np.lib.format
    header = fmt.header_data_from_array_1_0(arr)
    if shape is not None:
        header["shape"] = shape
    if descr is not None:
        header["descr"] = descr
    buf = io.BytesIO()
    (fmt.write_array_header_1_0 if version == (1, 0) else fmt.write_array_header_2_0)(buf, header)
    buf.write(arr.tobytes() if tail is None else tail)
    return buf.getvalue()


def write_zip(path: Path, members: dict, method=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def forge_zip(path: Path, member: str = "", size: int | None = None, flags: int | None = None,
              members: int | None = None) -> None:
    """Rewrite a member's declared uncompressed size or its flags in both its headers, or the number of
    members the end record declares."""
    data = bytearray(path.read_bytes())
    if members is not None:
        at = data.rfind(b"PK\x05\x06")
        struct.pack_into("<HH", data, at + 8, members, members)
    name = member.encode()
    for sig, size_at, flag_at, name_at in ((b"PK\x03\x04", 22, 6, 30), (b"PK\x01\x02", 24, 8, 46)):
        at = data.find(sig)
        while at >= 0:
            if data[at + name_at:at + name_at + len(name)] == name:
                if size is not None:
                    data[at + size_at:at + size_at + 4] = struct.pack("<I", size)
                if flags is not None:
                    data[at + flag_at:at + flag_at + 2] = struct.pack("<H", flags)
            at = data.find(sig, at + 1)
    path.write_bytes(bytes(data))


def bomb_member(size: int = 64 * 2 ** 20) -> bytes:
    """An .npy member of zeros that deflates about a thousandfold."""
    return npy_bytes(np.zeros(size // 8))


def keras_h5(target, arrays=None, hook=None):
    """A Keras 3 .weights.h5 of one GRU layer ('gru'), written with h5py; ``hook(h5, vars_group)`` spoils it."""
    import h5py

    arrays = keras_arrays() if arrays is None else arrays
    with h5py.File(target, "w") as h5:
        group = h5.create_group("layers/gru/cell/vars")
        group.attrs["name"] = "gru_cell"
        h5.create_group("layers/gru/vars").attrs["name"] = "gru"
        for k, v in arrays.items():
            group.create_dataset(k, data=v)
        if hook is not None:
            hook(h5, group)
    return target


def h5_bytes(arrays=None, hook=None) -> bytes:
    buf = io.BytesIO()
    keras_h5(buf, arrays, hook)
    return buf.getvalue()


def keras_config(**gru) -> dict:
    cfg = {"name": "gru", "activation": "tanh", "recurrent_activation": "sigmoid", "reset_after": True,
           "go_backwards": False, **gru}
    return {"module": "keras", "class_name": "Sequential", "config": {"name": "sequential", "layers": [
        {"module": "keras.layers", "class_name": "InputLayer", "config": {"batch_shape": [None, 2, 2],
                                                                        "name": "input_layer"}},
        {"module": "keras.layers", "class_name": "GRU", "config": cfg}]}}


def keras_zip(path: Path, config=None, h5: bytes | None = None, text: str | None = None, extra=None) -> Path:
    members = {"metadata.json": "{}", "config.json": text if text is not None else json.dumps(config or keras_config()),
               "model.weights.h5": h5 if h5 is not None else h5_bytes(), **(extra or {})}
    return write_zip(path, members, zipfile.ZIP_DEFLATED)


def onnx_model(attrs=None, W=None, R=None, B=None, tweak=None):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    W = (0.5 * rng.standard_normal((1, 3 * H, D))).astype(np.float32) if W is None else W
    R = (0.5 * rng.standard_normal((1, 3 * H, H))).astype(np.float32) if R is None else R
    B = (0.5 * rng.standard_normal((1, 6 * H))).astype(np.float32) if B is None else B
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R"), numpy_helper.from_array(B, "B")]
    node = helper.make_node("GRU", ["X", "W", "R", "B"], ["Y", "Y_h"], name="gru",
                            **({"hidden_size": H} if attrs is None else attrs))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2, 1, D])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 7
    if tweak is not None:
        tweak(model)
    return model


def save_onnx(path: Path, model) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def initializer(model, name):
    return next(t for t in model.graph.initializer if t.name == name)


def safetensors_bytes(header: dict, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def torch_save(path: Path, obj) -> Path:
    import torch

    torch.save(obj, path)
    return path


def torch_tensors(**change):
    import torch

    out = {k: torch.from_numpy(v) for k, v in torch_arrays().items()}
    out.update(change)
    return out


# --- the problems that name them -------------------------------------------------------------------

def write_problem(folder: Path, weights, name: str = "p.yaml", **extra) -> Path:
    data = {"inputs": X, "weights": weights, "loss": LOSS, **extra}
    path = folder / name
    path.write_text(yaml.safe_dump(data))
    return path


def commands(problem: Path, folder: Path):
    return (["forward", problem, "--json"], ["grad", problem, "--json"], ["sheet", problem, "-o", folder / "x.md"])


def run_all(folder: Path, problem: Path, words):
    """The three commands on ``problem``: each refused in one line holding ``words`` (a normal result
    if ``words`` is None), within the time limit, no sheet written on refusal, nothing leaked."""
    for argv in commands(problem, folder):
        o = run(argv, cwd=folder, limit=LIMIT)
        if words is None:
            clean(o)
            assert o.status == 0, o.err
        else:
            refused(o, *words)
            assert not (folder / "x.md").exists()
        assert_nothing_leaked(o, folder)


# One entry per hostile file: (needed modules, build(folder) -> the problem's weights spec and extra keys,
# words of the one-line refusal, or None where the file is legitimate and the commands succeed).

def _npy_case(data, words, named=True):
    def build(folder):
        (folder / "x.npy").write_bytes(data if isinstance(data, bytes) else data(folder))
        return SYMBOLS, {"inputs": {"file": "x.npy"}, "convention": "course-notes"}
    return (), build, None if words is None else ["x.npy", *words] if named else ["p.yaml", *words]


def _pickled_npy(folder):
    buf = io.BytesIO()
    np.save(buf, np.array([Plant(folder)], dtype=object), allow_pickle=True)
    return buf.getvalue()


def _npz_case(members, words, method=zipfile.ZIP_STORED, forge=None, layout="pytorch"):
    def build(folder):
        made = members(folder) if callable(members) else members
        if isinstance(made, bytes):
            (folder / "w.npz").write_bytes(made)
        else:
            write_zip(folder / "w.npz", made, method)
        if forge:
            forge_zip(folder / "w.npz", **forge)
        return {"layout": layout, "file": "w.npz"}, {"lengths": [2]}
    return (), build, None if words is None else ["w.npz", *words]


def _npz_members(**change):
    members = {f"{k}.npy": npy_bytes(v) for k, v in torch_arrays().items()}
    members.update({f"{k}.npy": v for k, v in change.items()})
    return members


def _onnx_case(words, needs_=("onnx",), **model):
    def build(folder):
        plant_secret(folder)  # what external data beside the model would read
        if "raw" in model:
            (folder / "gru.onnx").write_bytes(model["raw"](folder) if callable(model["raw"]) else model["raw"])
        else:
            save_onnx(folder / "gru.onnx", onnx_model(**model))
        return {"file": "gru.onnx"}, {"loss": ONNX_LOSS}
    return needs_, build, None if words is None else ["gru.onnx", *words]


def _external_onnx(location):
    def tweak(model):
        from onnx import TensorProto
        from onnx.external_data_helper import set_external_data

        w = initializer(model, "W")
        set_external_data(w, location=location, offset=0, length=4 * 3 * H * D)
        w.ClearField("raw_data")
        w.data_location = TensorProto.EXTERNAL
    return tweak


def _raw_short(model):
    w = initializer(model, "W")
    w.raw_data = w.raw_data[:8]


def _huge_dims(model):
    w = initializer(model, "W")
    del w.dims[:]
    w.dims.extend([1, 2 ** 40, 2])
    w.raw_data = b""


def _gru_cycle(model):
    """A second GRU node whose Y feeds the first one's X, and the first's Y the second's: no stack."""
    from onnx import helper

    first = model.graph.node[0]
    first.input[0] = "Y2"
    model.graph.node.append(helper.make_node("GRU", ["Y", "W", "R", "B"], ["Y2"], name="second", hidden_size=H))


def _onnx_type(data_type):
    def tweak(model):
        w = initializer(model, "W")
        w.data_type = data_type
    return tweak


def _pt_case(build_file, words, needs_=("torch",)):
    def build(folder):
        build_file(folder)
        return {"file": "w.pt"}, {}
    return needs_, build, None if words is None else ["w.pt", *words]


def _pt_spoiled(name, spoil):
    """A state dict whose tensor ``name`` is ``spoil(tensor, torch)``."""
    def write(folder):
        import warnings

        import torch

        tensors = torch_tensors()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's deprecation of quantized tensors
            tensors[name] = spoil(tensors[name], torch)
        torch_save(folder / "w.pt", tensors)
    return write


def _pt_bfloat16(folder):
    import torch

    torch_save(folder / "w.pt", {k: v.to(torch.bfloat16) for k, v in torch_tensors().items()})


def _legacy_pickle(folder):
    (folder / "w.pt").write_bytes(pickle.dumps({"weight_ih_l0": Plant(folder)}, protocol=2))


def _pt_with_plant(folder):
    torch_save(folder / "w.pt", {**torch_tensors(), "weight_ih_l0": Plant(folder)})


def _pt_zip_bomb(folder):
    torch_save(folder / "w.pt", torch_tensors())
    with zipfile.ZipFile(folder / "w.pt") as z:
        name = next(n for n in z.namelist() if n.endswith("data/0"))
    forge_zip(folder / "w.pt", name, size=0xF0000000)


def _st_case(data, words, name="w.safetensors"):
    def build(folder):
        (folder / name).write_bytes(data(folder) if callable(data) else data)
        return {"file": name}, {}
    return (), build, None if words is None else [name, *words]


def _st_valid(**change):
    arrays = {**torch_arrays(), **change}
    header, blobs, at = {}, [], 0
    for k, v in arrays.items():
        raw = np.ascontiguousarray(v).tobytes()
        header[k] = {"dtype": {"float32": "F32", "float64": "F64", "complex64": "C64", "bool": "BOOL"}[str(v.dtype)],
                     "shape": list(v.shape), "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    return safetensors_bytes(header, b"".join(blobs))


def _st_library(folder):
    from safetensors.numpy import save_file

    save_file(torch_arrays(), str(folder / "w.safetensors"))
    return (folder / "w.safetensors").read_bytes()


def _h5_case(words, hook=None, arrays=None, raw=None, needs_=("h5py",)):
    def build(folder):
        if raw is not None:
            (folder / "w.weights.h5").write_bytes(raw(folder) if callable(raw) else raw)
        else:
            keras_h5(folder / "w.weights.h5", arrays, (lambda h5, g: hook(h5, g, folder)) if hook else None)
        return {"file": "w.weights.h5"}, {}
    return needs_, build, None if words is None else ["w.weights.h5", *words]


def _replace(name, **dataset):
    def hook(h5, group, folder):
        del group[name]
        if "external" in dataset and dataset["external"] == "SECRET":
            dataset["external"] = [(str(plant_secret(folder)), 0, 4 * D * 3 * H)]
        group.create_dataset(name, **dataset)
    return hook


def _link(kind):
    def hook(h5, group, folder):
        import h5py

        if kind == "external":
            keras_h5(folder / "other.h5")
            plant_secret(folder)
            del group["0"]
            group["0"] = h5py.ExternalLink("other.h5", "layers/gru/cell/vars/0")
        else:
            h5["elsewhere"] = np.asarray(group["0"])
            del group["0"]
            group["0"] = h5py.SoftLink("/elsewhere")
    return hook


def _virtual(h5, group, folder):
    import h5py

    keras_h5(folder / "other.h5")
    layout = h5py.VirtualLayout(shape=(D, 3 * H), dtype="f4")
    layout[:] = h5py.VirtualSource("other.h5", "layers/gru/cell/vars/0", shape=(D, 3 * H))
    del group["0"]
    group.create_virtual_dataset("0", layout)


def _keras_case(words, **parts):
    def build(folder):
        made = {k: (v(folder) if callable(v) else v) for k, v in parts.items()}
        forge = made.pop("forge", None)
        keras_zip(folder / "m.keras", **made)
        if forge:
            forge_zip(folder / "m.keras", **forge)
        return {"file": "m.keras"}, {}
    return ("h5py",), build, None if words is None else ["m.keras", *words]


def _raw_keras(write, words):
    def build(folder):
        write(folder)
        return {"file": "m.keras"}, {}
    return ("h5py",), build, ["m.keras", *words]


def _h5_external(folder):
    """Weights whose kernel is HDF5 external storage over the planted secret."""
    def hook(h5, group):
        del group["0"]
        group.create_dataset("0", shape=(D, 3 * H), dtype="<f4", external=[(str(plant_secret(folder)), 0, 48)])
    return h5_bytes(hook=hook)


def _deep_json(depth=10_000):
    return '{"config": {"layers": ' + "[" * depth + "]" * depth + "}}"


def _keras_ratio_bomb(folder):
    return h5_bytes() + b"\0" * (64 * 2 ** 20)


CASES = {
    # .npy (inputs: {file: x.npy})
    "npy: text named .npy": _npy_case(b"0.5 -1.0\n1.0 0.5\n", ["not an .npy file"]),
    "npy: empty file": _npy_case(b"", ["not an .npy file"]),
    "npy: truncated data": _npy_case(npy_bytes(np.zeros((2, 2)))[:-8], ["declares shape 2x2", "holds 24"]),
    "npy: trailing bytes": _npy_case(npy_bytes(np.zeros((2, 2))) + b"extra", ["declares shape 2x2"]),
    "npy: shape larger than the file": _npy_case(npy_bytes(np.zeros((2, 2)), shape=(2 ** 40, 2)),
                                                 ["more than grukit reads"]),
    "npy: negative shape": _npy_case(npy_bytes(np.zeros((2, 2)), shape=(-1, 2)), ["negative or non-integer dimension"]),
    "npy: header garbage": _npy_case(b"\x93NUMPY\x01\x00\x10\x00{'descr': (((((}\n", ["not a valid .npy header"]),
    "npy: format version 9": _npy_case(b"\x93NUMPY\x09\x00" + npy_bytes(np.zeros((2, 2)))[8:],
                                       ["format version 9.0"]),
    "npy: pickled objects": _npy_case(_pickled_npy, ["pickled data", "never unpickles"]),
    "npy: complex": _npy_case(npy_bytes(np.ones((2, 2), complex)), ["complex numbers"]),
    "npy: strings": _npy_case(npy_bytes(np.array([["a", "b"], ["c", "d"]])), ["text"]),
    "npy: booleans": _npy_case(npy_bytes(np.ones((2, 2), bool)), ["booleans"]),
    "npy: records": _npy_case(npy_bytes(np.zeros(2, dtype=[("a", "f8"), ("b", "f8")])), ["records"]),
    "npy: NaN": _npy_case(npy_bytes(np.array([[0.5, np.nan], [1.0, 0.5]])), ["not a finite number"]),
    "npy: inf": _npy_case(npy_bytes(np.array([[0.5, np.inf], [1.0, 0.5]])), ["not a finite number"]),
    "npy: zero rows": _npy_case(npy_bytes(np.zeros((0, 2))), ["holds no numbers"]),
    "npy: wrong width": _npy_case(npy_bytes(np.zeros((2, 3))), ["inputs", "D = 2"], named=False),
    "npy: float32, Fortran order (legitimate)": _npy_case(npy_bytes(np.asfortranarray(np.array(X, np.float32))),
                                                          None),
    # .npz (weights: {layout: pytorch, file: w.npz})
    "npz: text named .npz": _npz_case(b"weight_ih_l0 = 1\n", ["not an .npz archive"]),
    "npz: empty file": _npz_case(b"", ["not an .npz archive"]),
    "npz: truncated": _npz_case(lambda folder: write_zip(folder / "t.zip", _npz_members()).read_bytes()[:300],
                                ["not an .npz archive"]),
    "npz: pickled member": _npz_case(lambda folder: _npz_members(weight_ih_l0=_pickled_npy(folder)),
                                     ["weight_ih_l0", "pickled data"]),
    "npz: member is not .npy": _npz_case(_npz_members(weight_ih_l0=b"garbage"), ["weight_ih_l0", "not .npy data"]),
    "npz: member declares 2**40 rows": _npz_case(_npz_members(
        weight_ih_l0=npy_bytes(np.zeros((6, 2), np.float32), shape=(2 ** 40, 2))), ["weight_ih_l0", "more than"]),
    "npz: zip bomb (ratio)": _npz_case(_npz_members(weight_ih_l0=bomb_member()), ["zip bomb"], zipfile.ZIP_DEFLATED),
    "npz: member declares 3.75 GiB": _npz_case(_npz_members(), ["declares 4026531840 bytes"],
                                               forge={"member": "weight_ih_l0.npy", "size": 0xF0000000}),
    "npz: end record declares 60,000 members": _npz_case(_npz_members(), ["60000 archive members"],
                                                         forge={"members": 60000}),
    "npz: encrypted member": _npz_case(_npz_members(), ["encrypted"], forge={"member": "bias_ih_l0.npy", "flags": 1}),
    "npz: complex weights": _npz_case(_npz_members(weight_hh_l0=npy_bytes(np.ones((6, 2), np.complex64))),
                                      ["weight_hh_l0", "complex numbers"]),
    "npz: NaN weights": _npz_case(_npz_members(bias_ih_l0=npy_bytes(np.full(6, np.nan))),
                                  ["bias_ih_l0", "not a finite number"]),
    "npz: no GRU arrays": _npz_case({"a.npy": npy_bytes(np.zeros(3))}, ["no GRU weights"]),
    "npz: legitimate": _npz_case(_npz_members(), None),
    # ONNX (weights: {file: gru.onnx})
    "onnx: two GRU nodes feeding each other": _onnx_case(["2 GRU nodes", "not one stack"], tweak=_gru_cycle),
    "onnx: external data beside it (the planted secret)": _onnx_case(["'W'", "external data"],
                                                                     tweak=_external_onnx("secret.txt")),
    "onnx: external data at an absolute path": _onnx_case(["'W'", "external data"],
                                                          tweak=_external_onnx("/etc/passwd")),
    "onnx: raw data shorter than the dims": _onnx_case(["'W'", "need 48 bytes", "holds 8"], tweak=_raw_short),
    "onnx: dims of 2**41 numbers": _onnx_case(["'W'", "more than grukit reads"], tweak=_huge_dims),
    "onnx: string tensor": _onnx_case(["'W'", "string"], tweak=_onnx_type(8)),
    "onnx: complex tensor": _onnx_case(["'W'", "complex64"], tweak=_onnx_type(14)),
    "onnx: NaN weights": _onnx_case(["W", "not a finite number"], W=np.full((1, 3 * H, D), np.nan, np.float32)),
    "onnx: W of 2 axes": _onnx_case(["W", "expected 3 axes"], W=np.zeros((3 * H, D), np.float32)),
    "onnx: clip NaN": _onnx_case(["node 'gru'", "'clip'", "not a finite number"],
                                 attrs={"hidden_size": H, "clip": float("nan")}),
    "onnx: clip inf": _onnx_case(["node 'gru'", "'clip'", "not a finite number"],
                                 attrs={"hidden_size": H, "clip": float("inf")}),
    "onnx: clip -1": _onnx_case(["node 'gru'", "'clip'", "must be positive"], attrs={"hidden_size": H, "clip": -1.0}),
    "onnx: activation_alpha inf": _onnx_case(["'activation_alpha'", "not a finite number"], attrs={
        "hidden_size": H, "activations": ["LeakyRelu", "Tanh"], "activation_alpha": [float("inf")]}),
    "onnx: activation_beta NaN": _onnx_case(["'activation_beta'", "not a finite number"], attrs={
        "hidden_size": H, "activations": ["HardSigmoid", "Tanh"], "activation_beta": [float("nan")]}),
    "onnx: hidden_size a string": _onnx_case(["'hidden_size'", "expected an integer, got string"],
                                             attrs={"hidden_size": "2"}),
    "onnx: linear_before_reset a string": _onnx_case(["'linear_before_reset'", "expected an integer"],
                                                     attrs={"hidden_size": H, "linear_before_reset": "1"}),
    "onnx: linear_before_reset 2": _onnx_case(["'linear_before_reset'", "expected 0 or 1"],
                                              attrs={"hidden_size": H, "linear_before_reset": 2}),
    "onnx: layout a float": _onnx_case(["'layout'", "expected an integer, got float"],
                                       attrs={"hidden_size": H, "layout": 1.5}),
    "onnx: direction an integer": _onnx_case(["'direction'", "expected a string, got int"],
                                             attrs={"hidden_size": H, "direction": 1}),
    "onnx: direction sideways": _onnx_case(["'direction'", "sideways"],
                                           attrs={"hidden_size": H, "direction": "sideways"}),
    "onnx: unknown attribute": _onnx_case(["'colour'", "not an attribute"], attrs={"hidden_size": H, "colour": 1}),
    "onnx: text named .onnx": _onnx_case(["not an ONNX model", "text"], raw=b"ir_version: 7\n"),
    "onnx: empty file": _onnx_case(["not an ONNX model", "empty"], raw=b""),
    "onnx: truncated": _onnx_case(["gru.onnx"], raw=lambda f: onnx_model().SerializeToString()[:-30]),
    "onnx: a zip archive named .onnx": _onnx_case(["not an ONNX model", "zip"],
                                                  raw=lambda f: write_zip(f / "t.zip", _npz_members()).read_bytes()),
    "onnx: legitimate": _onnx_case(None),
    # PyTorch (weights: {file: w.pt})
    "pt: a pickle that would run code": _pt_case(_pt_with_plant, ["weights_only=True", "Unsupported global"]),
    "pt: a legacy pickle that would run code": _pt_case(_legacy_pickle, ["legacy PyTorch file"], ()),
    "pt: a sparse tensor": _pt_case(_pt_spoiled("weight_hh_l0", lambda t, torch: t.to_sparse()),
                                    ["weight_hh_l0", "sparse"]),
    "pt: a meta tensor": _pt_case(_pt_spoiled("weight_ih_l0", lambda t, torch: t.to("meta")), ["weight_ih_l0", "meta"]),
    "pt: a quantized tensor": _pt_case(_pt_spoiled("bias_ih_l0", lambda t, torch: torch.quantize_per_tensor(
        t, 0.1, 0, torch.qint8)), ["bias_ih_l0", "quantized"]),
    "pt: a complex tensor": _pt_case(_pt_spoiled("bias_hh_l0", lambda t, torch: t.to(torch.complex64)),
                                     ["bias_hh_l0", "complex64"]),
    "pt: a bool tensor": _pt_case(_pt_spoiled("bias_hh_l0", lambda t, torch: t > 0), ["bias_hh_l0", "bool"]),
    "pt: NaN weights": _pt_case(_pt_spoiled("bias_hh_l0", lambda t, torch: t * float("nan")),
                                ["bias_hh_l0", "not a finite number"]),
    "pt: a list, not a state dict": _pt_case(lambda f: torch_save(f / "w.pt", list(torch_tensors().values())),
                                             ["holds a list"]),
    "pt: a safetensors file named .pt": _st_case(lambda f: _st_valid(), ["safetensors", "name it .safetensors"],
                                                 name="w.pt"),
    "pt: an ONNX model named .pt": _pt_case(lambda f: save_onnx(f / "w.pt", onnx_model()), ["ONNX", "name it .onnx"],
                                            ("onnx",)),
    "pt: an HDF5 file named .pt": _pt_case(lambda f: keras_h5(f / "w.pt"), ["HDF5"], ("h5py",)),
    "pt: an .npz named .pt": _pt_case(lambda f: write_zip(f / "w.pt", _npz_members()), [".npz"], ()),
    "pt: text named .pt": _pt_case(lambda f: (f / "w.pt").write_text("weights\n"), ["not a PyTorch file", "text"], ()),
    "pt: empty file": _pt_case(lambda f: (f / "w.pt").write_bytes(b""), ["not a PyTorch file", "empty"], ()),
    "pt: truncated": _pt_case(lambda f: (f / "w.pt").write_bytes(
        torch_save(f / "t.pt", torch_tensors()).read_bytes()[:400]), ["w.pt"]),
    "pt: a storage declared 3.75 GiB": _pt_case(_pt_zip_bomb, ["declares 4026531840 bytes"]),
    "pt: bfloat16 (legitimate)": _pt_case(_pt_bfloat16, None),
    "pt: an nn.GRUCell (legitimate)": _pt_case(lambda f: torch_save(f / "w.pt", {
        k.removesuffix("_l0"): v for k, v in torch_tensors().items()}), None),
    "pt: nn.GRUCell keys beside nn.GRU's": _pt_case(lambda f: torch_save(f / "w.pt", {
        **torch_tensors(), "weight_ih": torch_tensors()["weight_ih_l0"]}), ["weight_ih", "nn.GRUCell", "beside"]),
    "pt: an nn.LSTMCell": _pt_case(lambda f: torch_save(f / "w.pt", {
        "weight_ih": torch_tensors()["weight_ih_l0"].repeat(2, 1)[:4 * H], "weight_hh": torch_tensors()[
            "weight_hh_l0"].repeat(2, 1)[:4 * H]}), ["weight_hh", "not a GRU state dict", "an LSTM"]),
    # safetensors (weights: {file: w.safetensors})
    "safetensors: header length 2**60": _st_case(struct.pack("<Q", 2 ** 60) + b"{}", ["not a safetensors file"]),
    "safetensors: header not JSON": _st_case(struct.pack("<Q", 4) + b"{{{{", ["not JSON"]),
    "safetensors: header nested 100,000 deep": _st_case(
        struct.pack("<Q", 200_000) + b"[" * 100_000 + b"]" * 100_000, ["nested too deeply"]),
    "safetensors: offsets beyond the file": _st_case(safetensors_bytes(
        {"weight_ih_l0": {"dtype": "F32", "shape": [6, 2], "data_offsets": [0, 48]}}, b"\0" * 8), ["data_offsets"]),
    "safetensors: shape of 2**40": _st_case(safetensors_bytes(
        {"weight_ih_l0": {"dtype": "F32", "shape": [2 ** 40], "data_offsets": [0, 8]}}, b"\0" * 8), ["more than"]),
    "safetensors: complex tensor": _st_case(lambda f: _st_valid(bias_hh_l0=np.ones(6, np.complex64)),
                                            ["bias_hh_l0", "C64"]),
    "safetensors: bool tensor": _st_case(lambda f: _st_valid(bias_hh_l0=np.ones(6, bool)), ["bias_hh_l0", "BOOL"]),
    "safetensors: overlapping tensors": _st_case(safetensors_bytes(
        {k: {"dtype": "F32", "shape": [6, 2], "data_offsets": [0, 48]} for k in ("weight_ih_l0", "weight_hh_l0")},
        b"\0" * 48), ["overlap"]),
    "safetensors: empty file": _st_case(b"", ["not a safetensors file"]),
    "safetensors: written by safetensors (legitimate)": (("safetensors",), *_st_case(_st_library, None)[1:]),
    "safetensors: legitimate": _st_case(lambda f: _st_valid(), None),
    # Keras .weights.h5 (weights: {file: w.weights.h5})
    "h5: external storage over the planted secret": _h5_case(
        ["layers/gru/cell/vars/0", "external storage"],
        _replace("0", shape=(D, 3 * H), dtype="<f4", external="SECRET")),
    "h5: external storage over /etc/passwd": _h5_case(
        ["layers/gru/cell/vars/1", "external storage"],
        _replace("1", shape=(H, 3 * H), dtype="u1", external=[("/etc/passwd", 0, H * 3 * H)])),
    "h5: an external link": _h5_case(["layers/gru/cell/vars/0", "external link"], _link("external")),
    "h5: a soft link": _h5_case(["layers/gru/cell/vars/0", "soft link"], _link("soft")),
    "h5: a virtual dataset": _h5_case(["layers/gru/cell/vars/0", "virtual dataset"], _virtual),
    "h5: shape of 2**40 numbers": _h5_case(["layers/gru/cell/vars/0", "more than grukit reads"],
                                           _replace("0", shape=(2 ** 20, 2 ** 20), dtype="f4", chunks=(16, 16))),
    "h5: strings": _h5_case(["layers/gru/cell/vars/2", "variable-length"],
                            _replace("2", data=np.array(["a", "b"], dtype=object))),
    "h5: records": _h5_case(["layers/gru/cell/vars/2", "records"],
                            _replace("2", data=np.zeros(3, dtype=[("a", "f4"), ("b", "f4")]))),
    "h5: NaN weights": _h5_case(["vars/1", "not a finite number"], _replace("1", data=np.full((H, 3 * H), np.nan))),
    "h5: vars not numbered": _h5_case(["cell/vars", "expected datasets 0, 1"],
                                      lambda h5, g, f: g.create_dataset("kernel", data=np.zeros(3))),
    "h5: cell/vars a dataset": _h5_case(["cell/vars", "got a dataset"], raw=lambda f: h5_bytes(
        hook=lambda h5, g: (h5.__delitem__("layers/gru/cell/vars"),
                            h5.create_dataset("layers/gru/cell/vars", data=[1])))),
    "h5: text named .weights.h5": _h5_case(["cannot read", "text"], raw=b"kernel = 1\n"),
    "h5: empty file": _h5_case(["cannot read", "empty"], raw=b""),
    "h5: truncated": _h5_case(["w.weights.h5"], raw=lambda f: h5_bytes()[:1500]),
    "h5: legitimate": _h5_case(None),
    # Keras .keras (weights: {file: m.keras})
    "keras: zip bomb (the weights expand a thousandfold)": _keras_case(["model.weights.h5", "zip bomb"],
                                                                        h5=_keras_ratio_bomb),
    "keras: weights declared 3.75 GiB": _keras_case(["declares 4026531840 bytes"],
                                                    forge={"member": "model.weights.h5", "size": 0xF0000000}),
    "keras: config nested 10,000 deep": _keras_case(["config.json", "nested too deeply"], text=_deep_json()),
    "keras: config not JSON": _keras_case(["config.json", "not valid JSON"], text="{'layers': ["),
    "keras: config a list": _keras_case(["config.json", "expected a mapping"], text="[1, 2]"),
    "keras: layers a string": _keras_case(["config.layers", "expected a list"], text='{"config": {"layers": "x"}}'),
    "keras: layer without class_name": _keras_case(["config.layers[0].class_name", "missing"],
                                                   text='{"config": {"layers": [{}]}}'),
    "keras: layer name a list": _keras_case(["config.layers[1].config.name", "expected a string"],
                                            config=keras_config(name=["gru"])),
    "keras: go_backwards a string": _keras_case(["go_backwards", "expected true or false"],
                                                config=keras_config(go_backwards="yes")),
    "keras: reset_after a number": _keras_case(["reset_after", "expected true or false"],
                                               config=keras_config(reset_after=1)),
    "keras: activation a list": _keras_case(["activation", "expected an activation"],
                                            config=keras_config(activation=["tanh"])),
    "keras: activation unknown": _keras_case(["activation", "not supported"], config=keras_config(activation="gelu")),
    "keras: no config.json": _raw_keras(lambda f: write_zip(f / "m.keras", {"model.weights.h5": h5_bytes()}),
                                        ["without config.json"]),
    "keras: external storage in the weights": _keras_case(["model.weights.h5", "external storage"], h5=_h5_external),
    "keras: not a zip": _raw_keras(lambda f: (f / "m.keras").write_text("{}"), ["not a Keras .keras archive"]),
    "keras: legitimate": _keras_case(None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_model_files_are_refused_in_one_line(tmp_path, case):
    """Every promise at once for one hostile file: forward, grad and sheet each refuse it in one line
    naming the file and what is wrong (or, for a legitimate file, succeed), in bounded time, with no
    marker written by unpickled code, no planted secret in any output, no sheet half-written."""
    modules, build, words = CASES[case]
    for m in modules:
        pytest.importorskip(m)
    weights, extra = build(tmp_path)
    problem = write_problem(tmp_path, weights, **extra)
    run_all(tmp_path, problem, words)
    assert not (tmp_path / MARKER).exists()


def _named_directly(weights, words) -> str | None:
    """The model file a case's problem names, when ``grukit diff``/``convert`` may name it themselves: a
    model file named alone (no layout, node, module or layers to choose with), refused -- if it is -- for
    what the file holds, not for a key of the problem."""
    if not isinstance(weights, dict) or set(weights) != {"file"}:
        return None
    if Path(str(weights["file"])).suffix.lower() not in (".onnx", ".pt", ".pth", ".safetensors", ".h5", ".keras"):
        return None
    if words is not None and any("p.yaml" in w or "weights." in w for w in words):
        return None
    return str(weights["file"])


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_model_files_through_diff_and_convert(tmp_path, case):
    """The same files through ``grukit diff`` (a problem naming the file against itself, and the file named
    on the command line) and ``grukit convert`` to .onnx: a hostile file is one line, status 2, nothing
    written, nothing leaked; a legitimate one is the same GRU as itself (status 0) and converts or is
    refused in one line (a convention ONNX lacks)."""
    modules, build, words = CASES[case]
    for m in modules:
        pytest.importorskip(m)
    weights, extra = build(tmp_path)
    problem = write_problem(tmp_path, weights, **extra)
    sources = [problem.name] + [n for n in [_named_directly(weights, words)] if n]
    out = tmp_path / "out.onnx"
    for source in sources:
        for argv in (["diff", source, source, "--json"], ["convert", source, out]):
            o = run(argv, cwd=tmp_path, limit=LIMIT)
            if words is None:
                clean(o)
                assert o.status == 0 or argv[0] == "convert" and o.status == 2 and len(o.err.splitlines()) == 1, o.err
            else:
                refused(o, *words)
                assert not out.exists()
            assert_nothing_leaked(o, tmp_path)
            out.unlink(missing_ok=True)
    assert not (tmp_path / MARKER).exists()


# --- findings, one by one --------------------------------------------------------------------------

@needs("torch", "onnx")
def test_a_refused_convert_leaves_the_output_alone(tmp_path):
    """Writes only the outputs asked for, atomically: a conversion refused (a hostile source, a target
    without an exact form, a folder it cannot write) leaves an existing output byte for byte and no
    temporary file; each refusal is one line."""
    torch_save(tmp_path / "w.pt", torch_tensors())
    (tmp_path / "bad.pt").write_bytes(b"PK\x03\x04 not a zip")
    save_onnx(tmp_path / "before.onnx", onnx_model())  # linear_before_reset=0: no nn.GRU
    (tmp_path / "out.pt").write_bytes(b"old")
    refused(run(["convert", tmp_path / "bad.pt", tmp_path / "out.pt"]), "bad.pt")
    refused(run(["convert", tmp_path / "before.onnx", tmp_path / "out.pt"]), "before.onnx", "reset=before",
            "grukit.GRU(convention=")
    assert (tmp_path / "out.pt").read_bytes() == b"old"
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # root writes anywhere
            refused(run(["convert", tmp_path / "w.pt", locked / "out.onnx"]), "out.onnx", "cannot write")
    finally:
        locked.chmod(0o700)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt", "before.onnx", "locked", "out.pt", "w.pt"]
    assert list(locked.iterdir()) == []


@needs("h5py")
def test_hdf5_external_storage_never_prints_a_foreign_file_as_weights(tmp_path):
    """Reads no file it does not name: a .weights.h5 whose kernel is HDF5 external storage over a
    planted secret was read as weights and printed in the worked sheet; now refused naming the dataset."""
    import h5py

    secret = plant_secret(tmp_path)
    with h5py.File(tmp_path / "w.weights.h5", "w") as h5:
        group = h5.create_group("layers/gru/cell/vars")
        group.create_dataset("0", shape=(D, 3 * H), dtype="u1", external=[(str(secret), 0, D * 3 * H)])
        group.create_dataset("1", data=np.zeros((H, 3 * H)))
        group.create_dataset("2", data=np.zeros((2, 3 * H)))
    problem = write_problem(tmp_path, {"file": "w.weights.h5"})
    o = run(["sheet", problem, "-o", tmp_path / "x.md"], cwd=tmp_path)
    refused(o, "w.weights.h5", "dataset layers/gru/cell/vars/0", "external storage")
    assert not (tmp_path / "x.md").exists()
    assert_nothing_leaked(o, tmp_path)


@needs("onnx")
def test_onnx_external_data_is_never_loaded_even_beside_the_model(tmp_path):
    """Reads no file it does not name: ONNX external data in the model's own folder (which onnx>=1.16
    allows) is refused before onnx loads it, naming the tensor."""
    plant_secret(tmp_path)
    save_onnx(tmp_path / "gru.onnx", onnx_model(tweak=_external_onnx("secret.txt")))
    o = run(["forward", write_problem(tmp_path, {"file": "gru.onnx"}, loss=ONNX_LOSS), "--json"], cwd=tmp_path)
    refused(o, "gru.onnx", "tensor 'W'", "external data")
    assert_nothing_leaked(o, tmp_path)


@needs("onnx")
def test_onnx_clip_of_minus_one_names_the_file_node_and_attribute(tmp_path):
    """One line naming the file and field: clip = -1 was reported without the file's name."""
    save_onnx(tmp_path / "gru.onnx", onnx_model(attrs={"hidden_size": H, "clip": -1.0}))
    o = run(["forward", write_problem(tmp_path, {"file": "gru.onnx"}, loss=ONNX_LOSS), "--json"], cwd=tmp_path)
    line = refused(o, "gru.onnx", "GRU node 'gru'", "attribute 'clip'")
    assert "Traceback" not in line


def run_measured(argv, cwd):
    """The command's outcome and the peak of the memory Python allocated while it ran (run once before,
    so that importing the modules it needs does not count)."""
    run(argv, cwd=cwd)
    tracemalloc.start()
    try:
        return run(argv, cwd=cwd), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_npy_header_declaring_more_than_the_file_holds_allocates_nothing(tmp_path):
    """Bounded memory: an .npy header declaring 2**31 x 2 float64 (32 GiB) in a file of 200 bytes is
    refused before any allocation (measured with tracemalloc)."""
    (tmp_path / "x.npy").write_bytes(npy_bytes(np.zeros((2, 2)), shape=(2 ** 31, 2)))
    problem = write_problem(tmp_path, SYMBOLS, inputs={"file": "x.npy"}, convention="course-notes")
    o, peak = run_measured(["forward", problem, "--json"], tmp_path)
    refused(o, "x.npy", "more than grukit reads")
    assert peak < 32 * 2 ** 20


@needs("h5py")
@pytest.mark.parametrize("suffix", [".npz", ".keras"])
def test_zip_bombs_are_refused_before_decompressing(tmp_path, suffix):
    """Bounded memory: a zip whose member expands a thousandfold (64 MiB from 64 KiB; the reported
    .keras of 3 MB took 6.4 GB) is refused from its declared sizes, reading next to nothing."""
    if suffix == ".npz":
        write_zip(tmp_path / "w.npz", _npz_members(weight_ih_l0=bomb_member()), zipfile.ZIP_DEFLATED)
        problem = write_problem(tmp_path, {"layout": "pytorch", "file": "w.npz"}, lengths=[2])
    else:
        keras_zip(tmp_path / "w.keras", h5=_keras_ratio_bomb(tmp_path))
        problem = write_problem(tmp_path, {"file": "w.keras"})
    assert (tmp_path / f"w{suffix}").stat().st_size < 2 ** 20
    o, peak = run_measured(["forward", problem, "--json"], tmp_path)
    refused(o, f"w{suffix}", "zip bomb")
    assert peak < 32 * 2 ** 20


@needs("torch", "safetensors", "onnx")
@pytest.mark.parametrize("kind", ["safetensors", "onnx"])
def test_a_pt_that_is_another_format_says_what_it_is_and_never_suggests_weights_only_false(tmp_path, kind):
    """Runs no code from a file (and never advises it): a safetensors or ONNX file named .pt got torch's
    advice to use weights_only=False; now its real format is named from its magic bytes."""
    if kind == "safetensors":
        from safetensors.numpy import save_file

        save_file(torch_arrays(), str(tmp_path / "w.pt"))
    else:
        save_onnx(tmp_path / "w.pt", onnx_model())
    o = run(["forward", write_problem(tmp_path, {"file": "w.pt"}), "--json"], cwd=tmp_path)
    line = refused(o, "w.pt", "not a PyTorch file", "safetensors" if kind == "safetensors" else "ONNX")
    assert not any(advice in line for advice in ("False", "trust", "safe_globals", "allowlist")), line


@needs("torch")
def test_a_pt_whose_pickle_would_run_code_is_refused_without_advice_to_unpickle(tmp_path):
    """Runs no code from a file: torch.load(weights_only=True) refuses the pickle; the line names what it
    refused and never repeats torch's advice to retry with weights_only=False; no marker written."""
    _pt_with_plant(tmp_path)
    o = run(["forward", write_problem(tmp_path, {"file": "w.pt"}), "--json"], cwd=tmp_path)
    line = refused(o, "w.pt", "weights_only=True", "Unsupported global")
    assert not any(advice in line for advice in ("False", "trust", "safe_globals", "allowlist")), line
    assert not (tmp_path / MARKER).exists()


@needs("torch")
@pytest.mark.parametrize("layout", ["sparse", "meta"])
def test_sparse_and_meta_tensors_are_named(tmp_path, layout):
    """One line naming the tensor (was a traceback): a sparse or a meta tensor in a state dict."""
    tensors = torch_tensors()
    tensors["weight_hh_l0"] = tensors["weight_hh_l0"].to_sparse() if layout == "sparse" else \
        tensors["weight_hh_l0"].to("meta")
    torch_save(tmp_path / "w.pt", tensors)
    o = run(["forward", write_problem(tmp_path, {"file": "w.pt"}), "--json"], cwd=tmp_path)
    refused(o, "w.pt", "weight_hh_l0", layout)


def test_a_text_npy_is_not_called_pickled_data(tmp_path):
    """One clear line: a text file named .npy was reported as "pickled data"; now "not an .npy file"."""
    (tmp_path / "x.npy").write_text("0.5 -1.0\n1.0 0.5\n")
    problem = write_problem(tmp_path, SYMBOLS, inputs={"file": "x.npy"}, convention="course-notes")
    line = refused(run(["forward", problem, "--json"], cwd=tmp_path), "x.npy", "not an .npy file")
    assert "pickle" not in line


@pytest.mark.parametrize("where", ["inputs", "weights"])
def test_complex_arrays_are_refused_not_cast(tmp_path, where):
    """One clear line, never a silent change: a complex array was cast to real with only a warning."""
    if where == "inputs":
        np.save(tmp_path / "x.npy", np.array(X, complex))
        problem = write_problem(tmp_path, SYMBOLS, inputs={"file": "x.npy"}, convention="course-notes")
        name = "x.npy"
    else:
        np.savez(tmp_path / "w.npz", **{k: v.astype(complex) for k, v in torch_arrays().items()})
        problem = write_problem(tmp_path, {"layout": "pytorch", "file": "w.npz"}, lengths=[2])
        name = "w.npz"
    with _no_warning():
        o = run(["forward", problem, "--json"], cwd=tmp_path)
    refused(o, name, "complex numbers")


class _no_warning:
    """Fails the test if a warning (NumPy's ComplexWarning) is issued inside."""

    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings(record=True)
        self.log = self._catch.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self._catch.__exit__(*exc)
        assert not [w for w in self.log if "omplex" in str(w.message)], [str(w.message) for w in self.log]


def test_a_txt_weights_file_is_not_a_missing_convention(tmp_path):
    """One clear line: weights: {file: w.txt} was reported as "convention: missing"; it must say that
    .txt is not a weights format and list the formats."""
    (tmp_path / "w.txt").write_text("0.1 0.2\n")
    line = refused(run(["forward", write_problem(tmp_path, {"file": "w.txt"}), "--json"], cwd=tmp_path), "w.txt")
    assert "not a weights format" in line and ".onnx" in line and "convention" not in line


# --- files a problem names -------------------------------------------------------------------------

def _outside(folder: Path, write) -> Path:
    """The file a problem must not reach: beside the problem's folder, not in it."""
    write(folder.parent / "w.npz")
    return folder.parent / "w.npz"


NAMES = {
    "an absolute path": (lambda f, w: str(_outside(f, w)), ["absolute path"]),
    "a .. escape": (lambda f, w: (_outside(f, w), "../w.npz")[1], ["leads outside"]),
    "a .. escape through a subfolder": (lambda f, w: ((f / "sub").mkdir(), _outside(f, w), "sub/../../w.npz")[2],
                                        ["leads outside"]),
    "a link out of the folder": (lambda f, w: (os.symlink(_outside(f, w), f / "w.npz"), "w.npz")[1],
                                 ["leads outside"]),
    "a directory": (lambda f, w: ((f / "w.npz").mkdir(), "w.npz")[1], ["not a regular file", "directory"]),
    "a FIFO": (lambda f, w: (os.mkfifo(f / "w.npz"), "w.npz")[1], ["not a regular file", "FIFO"]),
    "a missing file": (lambda f, w: "w.npz", ["no such file"]),
    "a list": (lambda f, w: ["w.npz"], ["expected a file name"]),
    "an empty name": (lambda f, w: "", ["empty file name"]),
    "a file in a subfolder (legitimate)": (lambda f, w: ((f / "sub").mkdir(), w(f / "sub" / "w.npz"), "sub/w.npz")[2],
                                           None),
    "a link inside the folder (legitimate)": (lambda f, w: (w(f / "real.npz"), os.symlink("real.npz", f / "w.npz"),
                                                            "w.npz")[2], None),
}


def _weights_file(path: Path) -> None:
    write_zip(path, _npz_members())


def _inputs_file(path: Path) -> None:
    path.write_bytes(npy_bytes(np.array(X)))


@pytest.mark.parametrize("case", list(NAMES))
@pytest.mark.parametrize("field", ["weights", "inputs"])
def test_a_problem_names_only_regular_files_inside_its_own_folder(tmp_path, case, field):
    """Reads no file it does not name: a file a problem names is a relative path that stays inside the
    problem's folder once links are resolved, and a regular file; anything else is one line naming the
    field."""
    if case == "a FIFO" and not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    folder = tmp_path / "problem"
    folder.mkdir()
    make, words = NAMES[case]
    name = make(folder, _weights_file if field == "weights" else _inputs_file)
    if field == "weights":
        problem = write_problem(folder, {"layout": "pytorch", "file": name}, lengths=[2])
    else:
        problem = write_problem(folder, SYMBOLS, inputs={"file": name}, convention="course-notes")
    o = run(["forward", problem, "--json"], cwd=folder, limit=LIMIT)
    if words is None:
        clean(o)
        assert o.status == 0, o.err
    else:
        refused(o, "p.yaml", f"{field}.file", *words)


def _spoil_global_heap(path: Path) -> None:
    """Shrink the free-space object of the file's HDF5 global heap (where variable-length strings such as
    Keras's layer names live) to a size that is not a multiple of 8: libhdf5 then loops forever."""
    data = bytearray(path.read_bytes())
    at = data.index(b"GCOL") + 16
    while True:
        index, size = struct.unpack_from("<H", data, at)[0], struct.unpack_from("<Q", data, at + 8)[0]
        if index == 0:
            struct.pack_into("<Q", data, at + 8, size - 117)
            break
        at += 16 + (size + 7) // 8 * 8
    path.write_bytes(bytes(data))


@needs("h5py")
@pytest.mark.skipif(not hasattr(os, "fork"), reason="the HDF5 reader runs in-process without fork")
def test_an_hdf5_file_that_hangs_libhdf5_is_refused_in_bounded_time(tmp_path, monkeypatch):
    """Bounded time: a corrupt global heap makes libhdf5 loop forever reading a layer's name (found by
    fuzzing; no signal interrupts it). The HDF5 reading runs in a child killed after H5_TIME_LIMIT."""
    from grukit.derive.files import keras_files

    monkeypatch.setattr(keras_files, "H5_TIME_LIMIT", 2.0)
    keras_h5(tmp_path / "w.weights.h5")
    _spoil_global_heap(tmp_path / "w.weights.h5")
    o = run(["forward", write_problem(tmp_path, {"file": "w.weights.h5"}), "--json"], cwd=tmp_path, limit=20)
    refused(o, "w.weights.h5", "did not finish reading it in 2 s")
    assert o.seconds < 10

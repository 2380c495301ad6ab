"""What every weight-file reader shares: where a cell's parameters sit in its file, the network a
file holds, and the shape checks. The readers: :mod:`grukit.derive.files.model_files` (ONNX, PyTorch) and
:mod:`grukit.derive.files.keras_files` (Keras)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grukit.derive.cell.convention import Convention, Param
from grukit.derive.cell.layouts import Layout
from grukit.derive.errors import GrukitError
from grukit.derive.files.arrays import check_dtype, check_shape, read_npz
from grukit.derive.layers.network import Cell, Network


@dataclass
class CellSource:
    """Where one cell's parameters sit: a layout naming its arrays, and, for arrays that stack the
    directions (ONNX's W[num_directions, ...]), this cell's slot."""

    layout: Layout
    slot: int | None = None
    directions: int = 1


@dataclass
class WeightFile:
    path: Path
    framework: str
    network: Network
    sources: list[CellSource]  # one per cell, in network.cells order
    h0: np.ndarray | None = None  # an initial state the file holds (ONNX initial_h initializer)
    mask_value: float | None = None  # a Keras Masking layer's mask_value
    lengths: np.ndarray | None = None  # an ONNX sequence_lens initializer
    decided: tuple[str, ...] = ()  # problem keys the file decides (direction, merge)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def named_gradients(self, grads: list[dict[Param, np.ndarray]]) -> dict[str, np.ndarray]:
        """Per-cell parameter gradients -> the file's arrays (names and shapes)."""
        out: dict[str, np.ndarray] = {}
        stacked: dict[str, list] = {}
        for (_, cell), src, g in zip(self.network.cells, self.sources, grads):
            packed = src.layout.pack(cell.convention, g, cell.input_size, cell.hidden_size)
            for name, value in packed.items():
                if src.slot is None:
                    out[name] = value
                else:
                    stacked.setdefault(name, [None] * src.directions)[src.slot] = value
        for name, parts in stacked.items():
            out[name] = np.concatenate(parts, axis=0)
        return out


def float_array(value, where: str) -> np.ndarray:
    """Real, finite numbers as float64: complex numbers, booleans, text, Python objects and an array
    of more than :data:`~grukit.derive.files.arrays.MAX_ARRAY_ELEMENTS` numbers are refused, naming the array."""
    arr = np.asarray(value)
    check_dtype(arr.dtype, where)
    check_shape(arr.shape, where)
    with np.errstate(all="ignore"):  # a signalling NaN warns when cast; it is refused below
        arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise GrukitError(f"{where}: holds a value that is not a finite number")
    return arr


def file_cell(conv: Convention, layout: Layout, arrays: dict[str, np.ndarray], inputs: int, hidden: int,
              direction: str, file: Path) -> Cell:
    """One cell's parameters, each array shape-checked against the layout."""
    expected = layout.array_shapes(conv, inputs, hidden)
    for name, shape in expected.items():
        if name not in arrays:
            raise GrukitError(f"{file}: missing array {name!r}")
        if tuple(arrays[name].shape) != tuple(shape):
            raise GrukitError(f"{file}: {name}: expected shape {'x'.join(map(str, shape))}, got "
                              f"{'x'.join(map(str, arrays[name].shape))}")
    params = layout.unpack(conv, {n: arrays[n] for n in expected})
    return Cell(conv, {p: np.asarray(v, dtype=np.float64) for p, v in params.items()}, direction)


def file_kind(file: Path) -> str:
    """What a file is by its first bytes, in words, for an error about a file under the wrong name."""
    try:
        with open(file, "rb") as fh:
            head = fh.read(512)
            size = os.fstat(fh.fileno()).st_size
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if not head:
        return "an empty file"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "a zip archive"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "an HDF5 file (Keras .weights.h5?)"
    if head.startswith(b"\x93NUMPY"):
        return "a NumPy .npy file"
    if len(head) > 8 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") <= size - 8:
        return "a safetensors file"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle (a legacy PyTorch file?)"
    if head[:1] == b"\x08" and len(head) > 1 and 0 < head[1] < 32 and b"\x3a" in head:
        return "an ONNX model (protobuf)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "data of an unknown kind"
    return "a text file" if all(c.isprintable() or c in "\r\n\t" for c in text) else "data of an unknown kind"


def zip_kind(names: list[str]) -> str:
    """What a zip archive holds, in words, from its members' names."""
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return "a PyTorch file (torch.save)"
    if "config.json" in names and "model.weights.h5" in names:
        return "a Keras .keras archive"
    if names and all(n.endswith(".npy") for n in names):
        return "an .npz archive (numpy.savez)"
    return "a zip archive"


def arrays_of_npz(file: Path, where: str) -> dict[str, np.ndarray]:
    return read_npz(file, f"{where}.file")


def check_stack(net: Network, file: Path) -> None:
    for k in range(1, len(net.layers)):
        below, layer = net.layers[k - 1], net.layers[k]
        if layer.input_size != below.output_size:
            raise GrukitError(f"{file}: layer {k} takes inputs of size {layer.input_size}, but layer {k - 1} "
                              f"gives {below.output_size}")

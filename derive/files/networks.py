"""A GRU network from a file named on the command line (``grukit convert IN OUT``, ``grukit diff A B``).

The file is a model file grukit reads (:data:`~grukit.derive.files.model_files.MODEL_SUFFIXES`: an
ONNX model, a PyTorch state dict of an ``nn.GRU`` or ``nn.GRUCell``, a Keras ``.weights.h5`` or
``.keras``), read by the same bounded readers as a problem's weights; or a problem file, whose
network is a layer problem's (its weights file, with ``node:``, ``module:`` or ``layers:`` choosing
among several GRUs) or a single cell's. Every error is the readers' one line naming the file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grukit.derive.cell.convention import Convention
from grukit.derive.cell.functions import ACTIVATIONS
from grukit.derive.errors import GrukitError
from grukit.derive.files.keras_files import KERAS_NAMES
from grukit.derive.files.layer_file import load_any
from grukit.derive.files.model_files import FORMATS, MODEL_SUFFIXES, read_weight_file
from grukit.derive.layers.network import FRAMEWORKS, Cell, Layer, Network
from grukit.derive.layers.problem import LayerProblem

PROBLEM_SUFFIXES = (".yaml", ".yml")


@dataclass
class NetworkFile:
    """A network and the file it came from; ``lengths``: whether the file runs sequences of their own
    lengths or masks (an ONNX ``sequence_lens``, a Keras ``Masking`` layer, a problem's ``lengths`` or
    ``mask``), so that a comparison tries them."""

    path: Path
    network: Network
    lengths: bool = False

    @property
    def framework(self) -> str:
        return self.network.framework


def read_network(path: str | Path) -> NetworkFile:
    path = Path(path)
    if not path.exists():
        raise GrukitError(f"{path}: cannot read: no such file")
    suffix = path.suffix.lower()
    if suffix in PROBLEM_SUFFIXES:
        return _problem_network(path)
    if suffix not in MODEL_SUFFIXES:
        hint = " (an .npz does not say whose arrays it holds: name it in a problem file, weights: {layout: " \
               "pytorch, file: ...})" if suffix == ".npz" else ""
        raise GrukitError(f"{path}: not a model or problem file{hint}; grukit reads {FORMATS} model files and "
                          f"problem files (.yaml)")
    weights = read_weight_file({"file": path.name}, path, None, None, None)
    uses = weights.lengths is not None or weights.mask_value is not None
    return NetworkFile(path, weights.network, uses)


def _problem_network(path: Path) -> NetworkFile:
    problem = load_any(path)
    if isinstance(problem, LayerProblem):
        return NetworkFile(path, problem.network, problem.valid is not None)
    rules = FRAMEWORKS["none"]
    params = {p: np.asarray(v, dtype=object) for p, v in problem.params.items()}
    cell = Cell(problem.convention, params, "forward")
    layer = Layer((cell,), rules.merge, rules.padded_output, rules.reverse_order)
    return NetworkFile(path, Network("none", [layer], rules.final_state, layout=problem.layout))


def _onnx_activations(cells: list[Convention]) -> list[str]:
    return [ACTIVATIONS[a].onnx for c in cells for a in (c.gate_activation, c.candidate_activation)]


FILE_ATTRIBUTES: dict[tuple[str, str], tuple[str, object]] = {
    ("onnx", "reset"): ("linear_before_reset", lambda cells: int(cells[0].reset == "after")),
    ("onnx", "gate_activation"): ("activations", _onnx_activations),
    ("onnx", "candidate_activation"): ("activations", _onnx_activations),
    ("onnx", "clip"): ("clip", lambda cells: None if cells[0].clip is None else float(cells[0].clip)),
    ("keras", "reset"): ("reset_after", lambda cells: cells[0].reset == "after"),
    ("keras", "gate_activation"): ("recurrent_activation", lambda cells: KERAS_NAMES.get(cells[0].gate_activation)),
    ("keras", "candidate_activation"): ("activation", lambda cells: KERAS_NAMES.get(cells[0].candidate_activation)),
}
"""(a file's framework, a convention axis) -> the attribute of that framework's file that sets the axis,
and its value for one layer's cell conventions (ONNX's ``activations`` lists f and g per direction)."""


def file_attribute(framework: str, axis: str, layers: list[list[Convention]]) -> tuple[str, object] | None:
    """The attribute a ``framework`` file sets ``axis`` with, and its value for each layer's cells (one
    value when every layer has the same); None where the framework's files have no such attribute."""
    entry = FILE_ATTRIBUTES.get((framework, axis))
    if entry is None:
        return None
    name, value = entry
    values = [value(cells) for cells in layers]
    return name, values[0] if all(v == values[0] for v in values) else values

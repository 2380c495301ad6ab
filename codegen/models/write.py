"""``grukit convert IN OUT`` for model files: the network IN holds, in the conventions of the
framework OUT's suffix names, written by that framework's own writer, atomically."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from grukit.codegen.models.keras_model import keras_bytes
from grukit.codegen.models.onnx_graph import onnx_bytes
from grukit.codegen.models.state_dict import safetensors_bytes, torch_bytes
from grukit.codegen.output import write_atomic
from grukit.derive.audit.convert import network_as
from grukit.derive.errors import GrukitError
from grukit.derive.layers.network import Network


@dataclass(frozen=True)
class ModelFormat:
    framework: str
    write: Callable[[Network], bytes]
    needs: tuple[str, ...]  # the modules of the framework's writer (the ``oracle`` extra)


MODEL_FORMATS: dict[str, ModelFormat] = {
    ".pt": ModelFormat("pytorch", torch_bytes, ("torch",)),
    ".pth": ModelFormat("pytorch", torch_bytes, ("torch",)),
    ".safetensors": ModelFormat("pytorch", safetensors_bytes, ("safetensors",)),
    ".onnx": ModelFormat("onnx", onnx_bytes, ("onnx",)),
    ".weights.h5": ModelFormat("keras", lambda net: keras_bytes(net, ".weights.h5"), ("keras", "h5py")),
    ".keras": ModelFormat("keras", lambda net: keras_bytes(net, ".keras"), ("keras", "h5py")),
}
"""The model files ``grukit convert`` writes, by suffix."""


def model_format(path: Path) -> str | None:
    """The key of :data:`MODEL_FORMATS` a path's name ends with, or None."""
    name = Path(path).name.lower()
    return next((s for s in sorted(MODEL_FORMATS, key=len, reverse=True) if name.endswith(s)), None)


def write_model(net: Network, source: Path, out: Path) -> Network:
    """Write ``net`` (read from ``source``) as the model file ``out``; the network as written."""
    suffix = model_format(out)
    if suffix is None:
        raise GrukitError(f"{out}: not a model file grukit writes ({', '.join(MODEL_FORMATS)})")
    fmt = MODEL_FORMATS[suffix]
    missing = [m for m in fmt.needs if importlib.util.find_spec(m) is None]
    if missing:
        raise GrukitError(f"{out}: writing {suffix} needs {', '.join(missing)}: install grukit's oracle extra "
                          f"(pip install 'grukit[oracle]')")
    written = network_as(net, fmt.framework, str(source))
    write_atomic(out, fmt.write(written))
    return written

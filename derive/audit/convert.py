"""Weights from one convention (or framework layout) to another, exactly where a map exists.

``grukit convert --from A --to B IN.npz OUT.npz``: IN holds A's weights -- the framework's own
arrays when A is bound to a layout (Keras ``kernel``/``recurrent_kernel``/``bias``, PyTorch
``weight_ih_l0``..., ONNX ``W``/``R``/``B``), else one array per parameter under A's keys. They are
read as exact numbers (every float is a binary fraction), carried over by the map of
:func:`~grukit.derive.audit.reparam.reparameterization` in rational arithmetic, and written in B's form
and IN's float type. Reordering, transposing, splitting and negating are exact in any float type;
a bias fold (b_i + b_r) or a hard-sigmoid rescale is rounded once, to that type, and the notes say
so. Where no map exists the error says why.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from grukit.derive.audit.reparam import NoMap, Reparameterization, reparameterization
from grukit.derive.cell.convention import Convention
from grukit.derive.cell.layouts import LAYOUTS
from grukit.derive.errors import GrukitError
from grukit.derive.files.problem_file import WeightSource, exact_params, layout_source, read_npz, weight_sizes


@dataclass
class Conversion:
    arrays: dict[str, np.ndarray]
    rep: Reparameterization
    sizes: tuple[int, int]
    notes: list[str] = field(default_factory=list)


def read_weights(conv: Convention, path: Path):
    """A convention's exact parameters from an .npz (its layout's arrays, or one per key), and D, H, dtype."""
    if conv.layout is not None:
        source = layout_source({"layout": conv.layout, "file": path.name}, conv, path)
    else:
        arrays = read_npz(path, str(path))
        keys = [conv.key(p) for p in conv.parameters()]
        missing, unknown = [k for k in keys if k not in arrays], sorted(set(arrays) - set(keys))
        if missing or unknown:
            raise GrukitError(f"{path}: {conv.name} weights are the arrays {', '.join(keys)}"
                              + (f"; missing {', '.join(missing)}" if missing else "")
                              + (f"; unknown {', '.join(unknown)}" if unknown else ""))
        source = WeightSource(arrays, f"{path}: ")
    D, H = weight_sizes(source, conv)
    dtypes = {np.asarray(a).dtype for a in source.arrays.values()}
    dtype = dtypes.pop() if len(dtypes) == 1 else np.dtype(float)
    return exact_params(source, conv, D, H), (D, H), dtype


def convert(source: Convention, target: Convention, path: Path) -> Conversion:
    path = Path(path)
    where = f"convert {source.name} -> {target.name}"
    try:
        rep = reparameterization(source, target)
    except NoMap as exc:
        raise GrukitError(f"{where}: no exact mapping: {exc}") from None
    params, (D, H), dtype = read_weights(source, path)
    try:
        mapped = rep.apply(params, D, H)
    except NoMap as exc:
        raise GrukitError(f"{path}: {where}: {exc}") from None
    if target.layout is not None:
        exact = LAYOUTS[target.layout].pack(target, mapped, D, H)
    else:
        exact = {target.key(p): v for p, v in mapped.items()}
    arrays = {name: np.vectorize(float, otypes=[float])(np.asarray(v, dtype=object)).astype(dtype)
              for name, v in exact.items()}
    out = Conversion(arrays, rep, (D, H))
    out.notes += [f"holds in {path.name}, so the map is exact: {c}" for c in rep.conditions]
    if source.layout or target.layout:
        out.notes.append(f"read as {_form(source)}; written as {_form(target)}")
    if any(not _exactly(v, arrays[n]) for n, v in exact.items()):
        out.notes.append(f"rounded once to {np.dtype(dtype).name} (the map adds or scales values)")
    return out


def _form(conv: Convention) -> str:
    if conv.layout is None:
        return f"one array per parameter ({', '.join(conv.key(p) for p in conv.parameters())})"
    layout = LAYOUTS[conv.layout]
    return f"{conv.layout} arrays, gate blocks [{'|'.join(layout.gate_order(conv))}]"


def _exactly(exact: np.ndarray, stored: np.ndarray) -> bool:
    return all(Fraction(float(s)) == Fraction(e) for e, s in zip(np.ravel(exact), np.ravel(stored)))

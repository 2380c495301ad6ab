"""Files that a problem names beside itself, and the array files among them (.npz, .npy).

A problem, claims or convention file may name other files (weights, inputs, a convention); each is
resolved by :func:`referenced_file` relative to the naming file's folder. Arrays are read with
NumPy's own reader and never unpickled; anything else is a one-line error naming the file.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from grukit.derive.errors import GrukitError


def referenced_file(naming_file: Path, name, where: str) -> Path:
    """The file ``name`` as the file ``naming_file`` names it: relative to that file's folder."""
    return Path(naming_file).parent / str(name)


def read_npz(file: Path, where: str) -> dict[str, np.ndarray]:
    """The arrays of an .npz archive (no pickles); anything else is a one-line error."""
    try:
        with open(file, "rb") as fh:
            is_zip = zipfile.is_zipfile(fh)
    except OSError as exc:
        raise GrukitError(f"{where}: cannot read {file} ({exc.strerror or exc})") from None
    if not is_zip:
        raise GrukitError(f"{where}: {file} is not an .npz archive (write one with numpy.savez)")
    try:
        with np.load(file, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise GrukitError(f"{where}: cannot read {file} ({exc})") from None
    for name, value in arrays.items():
        if not isinstance(value, np.ndarray):
            raise GrukitError(f"{file}: {name}: not a NumPy array (the archive member is not .npy data)")
    return arrays


def read_npy(file: Path, where: str) -> np.ndarray:
    """The one array of an .npy file (no pickles); anything else is a one-line error."""
    try:
        arr = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise GrukitError(f"{where}: cannot read {file} as .npy ({exc})") from None
    if not isinstance(arr, np.ndarray):
        raise GrukitError(f"{where}: {file}: expected one array (.npy)")
    return arr

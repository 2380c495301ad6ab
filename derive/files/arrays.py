"""Files that a problem names beside itself, and the array files among them (.npz, .npy).

A problem, claims or convention file may name other files (weights, inputs, a convention); each is
resolved by :func:`referenced_file` relative to the naming file's folder, and must stay inside it:
grukit reads no file that the user did not name or that a problem does not name beside itself.

Arrays are read by grukit's own bounded reader, never unpickled: the ``.npy`` header is parsed
first (NumPy's parser), and a header that declares Python objects, a dtype that is not real
numbers, more numbers than :data:`MAX_ARRAY_ELEMENTS`, or a size that the file does not hold is a
one-line error naming the file and the array, before anything is allocated. Zip archives (.npz,
and the readers of .keras and .pt files) are checked member by member by :func:`open_zip` before a
byte is decompressed: declared sizes, their total, the compression ratio, the number of members.
"""
from __future__ import annotations

import io
import os
import stat
import zipfile
import zlib
from pathlib import Path

import numpy as np

from grukit.derive.errors import GrukitError

MAX_ARRAY_ELEMENTS = 2 ** 26
"""The most numbers one array may hold (67,108,864: 512 MiB as float64), in every format."""
MAX_TOTAL_BYTES = 2 ** 30
"""The most bytes one weights file may unpack to (1 GiB): the sum of a zip archive's declared
uncompressed sizes, or of the arrays read from an HDF5 file."""
MAX_RATIO = 100
"""A zip member that expands more than this many times ..."""
RATIO_FLOOR = 2 ** 24
"""... and to more than 16 MiB is refused as a zip bomb (arrays of real weights compress a few times)."""
MAX_MEMBERS = 10_000
"""The most members a zip archive may have."""
NUMBER_KINDS = "fiu"
"""NumPy dtype kinds grukit reads: real floats, signed and unsigned integers."""


# --- files named by other files ------------------------------------------------------------------

def file_name(naming_file: Path, name, where: str) -> str:
    """``name`` checked as a file name a file may give: text, not empty, not an absolute path."""
    if isinstance(name, bool) or not isinstance(name, (str, int)):
        raise GrukitError(f"{where}: expected a file name, got {type(name).__name__}")
    text = str(name)
    if not text.strip():
        raise GrukitError(f"{where}: an empty file name")
    if "\0" in text:
        raise GrukitError(f"{where}: a file name with a NUL character")
    if os.path.isabs(text):
        raise GrukitError(f"{where}: {text!r} is an absolute path; name a file in the folder of "
                          f"{Path(naming_file).name} (grukit reads only files beside the file that names them)")
    return text


def referenced_file(naming_file: Path, name, where: str) -> Path:
    """The file ``name`` as the file ``naming_file`` names it: a relative path that stays inside that
    file's folder once symbolic links are resolved, naming an existing regular file. Anything else
    (an absolute path, ``..`` leading out, a link out, a directory, a FIFO, a device) is a one-line
    error naming the field ``where``."""
    text = file_name(naming_file, name, where)
    folder = Path(naming_file).parent
    path = folder / text
    try:
        inside = folder.resolve()
        target = path.resolve()
    except (OSError, RuntimeError) as exc:  # a loop of links
        raise GrukitError(f"{where}: {text!r}: cannot resolve ({getattr(exc, 'strerror', None) or exc})") from None
    itself = os.path.normpath(path) == os.path.normpath(naming_file)  # the file the user named, naming itself
    if not itself and target != inside and inside not in target.parents:
        raise GrukitError(f"{where}: {text!r} leads outside {folder} (grukit reads only files beside the file "
                          f"that names them)")
    try:
        mode = os.stat(target).st_mode
    except OSError:
        raise GrukitError(f"{where}: {text}: cannot read {path}: no such file") from None
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else \
            "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "special"
        raise GrukitError(f"{where}: {path}: not a regular file ({kind})")
    return path


def printable(name) -> str:
    """A name read from a file, fit for a one-line message: control characters shown as ``?``, at most
    200 characters."""
    text = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= 200 else text[:197] + "..."


# --- dtypes and sizes ----------------------------------------------------------------------------

def dtype_words(dtype: np.dtype) -> str:
    """What an array of ``dtype`` holds, in words, for an error."""
    kind = {"c": "complex numbers", "b": "booleans", "O": "Python objects (pickled data)", "U": "text",
            "S": "bytes", "V": "records", "M": "dates", "m": "time spans"}.get(dtype.kind, "non-numbers")
    return f"{kind} ({dtype})"


def check_dtype(dtype: np.dtype, where: str) -> None:
    """Only real numbers: no Python objects (grukit never unpickles), complex numbers, booleans, text."""
    if dtype.kind == "O":
        raise GrukitError(f"{where}: holds Python objects (pickled data), which grukit cannot read: it never "
                          f"unpickles (save arrays of numbers)")
    if dtype.kind not in NUMBER_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise GrukitError(f"{where}: holds {dtype_words(dtype)}: grukit reads arrays of real numbers")


def shape_text(shape) -> str:
    return "x".join(map(str, shape)) or "a scalar"


def check_shape(shape, where: str) -> int:
    """The number of elements of ``shape``, refused beyond :data:`MAX_ARRAY_ELEMENTS` before any allocation."""
    count = 1
    for n in shape:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise GrukitError(f"{where}: shape {tuple(shape)!r} has a negative or non-integer dimension")
        count *= int(n)
    if count > MAX_ARRAY_ELEMENTS:
        raise GrukitError(f"{where}: shape {shape_text(shape)} declares {count} numbers, more than grukit reads "
                          f"({MAX_ARRAY_ELEMENTS})")
    return count


def check_values(arr: np.ndarray, where: str) -> np.ndarray:
    """Real, finite numbers, at least one."""
    check_dtype(arr.dtype, where)
    if arr.size == 0:
        raise GrukitError(f"{where}: holds no numbers (shape {shape_text(arr.shape)})")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise GrukitError(f"{where}: holds a value that is not a finite number (NaN or inf)")
    return arr


# --- zip archives --------------------------------------------------------------------------------

def open_zip(file: Path, where: str, what: str = "a zip archive") -> zipfile.ZipFile:
    """``file`` opened as a zip archive whose members' declared sizes are checked first: each and all
    together at most :data:`MAX_TOTAL_BYTES`, none expanding more than :data:`MAX_RATIO` times to more
    than :data:`RATIO_FLOOR`, at most :data:`MAX_MEMBERS` (counted before the directory is parsed),
    none encrypted. The caller closes it."""
    entries = _declared_members(file)
    if entries is not None and entries > MAX_MEMBERS:
        raise GrukitError(f"{where}: {file}: {entries} archive members, more than grukit reads ({MAX_MEMBERS})")
    try:
        z = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, NotImplementedError) as exc:
        raise GrukitError(f"{where}: {file} is not {what} ({exc})") from None
    except OSError as exc:
        raise GrukitError(f"{where}: cannot read {file} ({exc.strerror or exc})") from None
    try:
        infos = z.infolist()
        if len(infos) > MAX_MEMBERS:
            raise GrukitError(f"{where}: {file}: {len(infos)} archive members, more than grukit reads ({MAX_MEMBERS})")
        total = 0
        for info in infos:
            name = info.filename
            if info.flag_bits & 0x1:
                raise GrukitError(f"{where}: {file}: member {name!r} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise GrukitError(f"{where}: {file}: member {name!r} uses zip compression method "
                                  f"{info.compress_type} (grukit reads stored and deflated members)")
            total += info.file_size
            if info.file_size > MAX_TOTAL_BYTES or total > MAX_TOTAL_BYTES:
                raise GrukitError(f"{where}: {file}: member {name!r} declares {info.file_size} bytes uncompressed "
                                  f"({total} in all so far), more than grukit reads ({MAX_TOTAL_BYTES}): refused")
            if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
                raise GrukitError(f"{where}: {file}: member {name!r} expands "
                                  f"{info.file_size // max(info.compress_size, 1)}-fold to {info.file_size} bytes: "
                                  f"refused as a zip bomb")
    except BaseException:
        z.close()
        raise
    return z


def _declared_members(file: Path) -> int | None:
    """The number of members a zip archive's end record declares (its zip64 record's, if it has one);
    None where there is no end record (:mod:`zipfile` then says what is wrong)."""
    try:
        with open(file, "rb") as fh:
            size = fh.seek(0, 2)
            fh.seek(size - min(size, 22 + 65535))
            tail = fh.read()
            at = tail.rfind(b"PK\x05\x06")
            if at < 0 or at + 22 > len(tail):
                return None
            entries = int.from_bytes(tail[at + 10:at + 12], "little")
            locator = tail[at - 20:at] if at >= 20 else b""
            if entries == 0xFFFF and locator[:4] == b"PK\x06\x07":
                fh.seek(int.from_bytes(locator[8:16], "little"))
                record = fh.read(56)
                if record[:4] == b"PK\x06\x06" and len(record) == 56:
                    entries = int.from_bytes(record[32:40], "little")
    except (OSError, ValueError):
        return None
    return entries


def read_member(z: zipfile.ZipFile, info: zipfile.ZipInfo, file: Path, where: str) -> bytes:
    """A member checked by :func:`open_zip`, read with a reader that stops at its declared size."""
    try:
        with z.open(info) as fh:
            data = fh.read(info.file_size + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError, ValueError) as exc:
        raise GrukitError(f"{where}: {file}: cannot read member {info.filename!r} ({exc})") from None
    if len(data) != info.file_size:
        raise GrukitError(f"{where}: {file}: member {info.filename!r} holds {len(data)} bytes, its header says "
                          f"{info.file_size}")
    return data


# --- .npy data -----------------------------------------------------------------------------------

def _npy_array(fh, size: int, where: str, not_npy: str) -> np.ndarray:
    """The array of .npy data in ``fh`` (``size`` bytes in all), header checked before any allocation;
    ``not_npy``: what to say when the data does not start with NumPy's magic bytes."""
    fmt = np.lib.format
    if fh.read(len(fmt.MAGIC_PREFIX)) != fmt.MAGIC_PREFIX:
        raise GrukitError(f"{where}: {not_npy}")
    fh.seek(0)
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fh, max_header_size=10000)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(fh, max_header_size=10000)
        else:
            raise GrukitError(f"{where}: NumPy format version {version[0]}.{version[1]} is not read (1.0 and 2.0 "
                              f"hold arrays of numbers)")
    except GrukitError:
        raise
    except Exception as exc:  # noqa: BLE001 - NumPy's parser raises ValueError, SyntaxError, TokenError, ...
        raise GrukitError(f"{where}: not a valid .npy header ({' '.join(str(exc).split())[:200]})") from None
    check_dtype(dtype, where)
    count = check_shape(shape, where)
    need, have = count * dtype.itemsize, size - fh.tell()
    if need != have:
        raise GrukitError(f"{where}: its header declares shape {shape_text(shape)} ({need} bytes of data); the "
                          f"file holds {have}")
    data = fh.read(need)
    if len(data) != need:
        raise GrukitError(f"{where}: truncated ({len(data)} of {need} bytes of data)")
    arr = np.frombuffer(data, dtype=dtype, count=count)
    arr = arr.reshape(shape[::-1]).transpose() if fortran else arr.reshape(shape)
    return np.array(arr)


def npy_from_bytes(data: bytes, where: str) -> np.ndarray:
    """The array of .npy data held in memory, checked as :func:`read_npy` checks a file."""
    return _npy_array(io.BytesIO(data), len(data), where, "not .npy data")


def read_npz(file: Path, where: str) -> dict[str, np.ndarray]:
    """The arrays of an .npz archive (numbers only, never unpickled); anything else is a one-line error."""
    try:
        with open(file, "rb") as fh:
            is_zip = zipfile.is_zipfile(fh)
    except OSError as exc:
        raise GrukitError(f"{where}: cannot read {file} ({exc.strerror or exc})") from None
    if not is_zip:
        raise GrukitError(f"{where}: {file} is not an .npz archive (write one with numpy.savez)")
    arrays = {}
    with open_zip(file, where, "an .npz archive") as z:
        for info in z.infolist():
            if info.is_dir():
                continue
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            data = read_member(z, info, file, where)
            arrays[name] = _npy_array(io.BytesIO(data), len(data), f"{where}: {file}: {printable(name)}",
                                      "not a NumPy array (the archive member is not .npy data; write the archive "
                                      "with numpy.savez)")
    if not arrays:
        raise GrukitError(f"{where}: {file}: an empty archive")
    return arrays


def read_npy(file: Path, where: str) -> np.ndarray:
    """The one array of an .npy file: real, finite numbers, at least one (never unpickled)."""
    try:
        with open(file, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            arr = _npy_array(fh, size, f"{where}: {file}", "not an .npy file (it does not start with NumPy's "
                             "header; write one with numpy.save)")
    except OSError as exc:
        raise GrukitError(f"{where}: cannot read {file} ({exc.strerror or exc})") from None
    return check_values(arr, f"{where}: {file}")

"""The Numba kernels as a Python API: ``from grukit import kernels``.

    k = kernels.load("pytorch", dtype="float32")   # a preset name or a Convention
    fwd = k.forward(x, h0, weights)                # x (B, T, D), h0 (B, H)
    fwd.h                                          # (B, T, H): h_1 .. h_T
    grads = k.backward(fwd, dh)                    # dh (B, T, H): dL/dh_t from outside the layer

``weights`` is a dict under the convention's own names (``W_z``, ``U_h``, ...), or, for a
convention bound to a framework layout, the framework's arrays (``weight_ih_l0``, ``kernel``, ``W``
...), exactly as problem files and ``grukit grad --json`` name them; the gradients come back under
the same names, plus ``"inputs"`` (B, T, D) and ``"h0"`` (B, H).

A preset's kernels are the committed modules in ``generated/``. Any other convention is rendered
by the same emitter into a cache folder (``$GRUKIT_KERNEL_CACHE``, default ``~/.cache/grukit/kernels``)
and run from there (Numba caches a kernel only when it lives in a real file). The file is named
after the SHA-256 of its source, written atomically, and what runs is the source just rendered,
never the bytes found in the folder (:func:`generated_module`).

Only real arrays are taken: a complex, boolean, string or object array is refused naming the array
(NumPy would drop an imaginary part with a warning). NaN and infinities go through as in PyTorch
(docs/kernels.md).
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import stat
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

from grukit.codegen.kernels.names import DTYPES, module_name
from grukit.codegen.output import write_atomic
from grukit.derive.cell.convention import Convention
from grukit.derive.cell.layouts import LAYOUTS
from grukit.derive.cell.presets import PRESETS
from grukit.derive.errors import GrukitError

__all__ = ["Kernels", "load", "DTYPES", "pinned_threads", "step_blas_threads", "module_name", "refuse_non_real"]


class _BlasThreads:
    """How many threads each OpenBLAS may use while the kernels run.

    Numba's ``np.dot`` (the per-step GEMMs inside the time loops) calls SciPy's OpenBLAS, which
    splits even a step's small GEMM (B x H by H x 3H) over every thread it has: no faster on an idle
    machine (measured at B=32, H=512: 692 us with two threads, 683 us with one) and many times
    slower when another process holds a core (each step then waits for the scheduler: a forward
    pass at H=256 went from 17.7 ms to 159 ms). So SciPy's OpenBLAS is pinned to one thread while
    a kernel runs, and likewise while the batch runs in chunks of rows, each Numba thread running
    its own chunk's GEMMs. The big GEMMs over all T*B rows run in NumPy's
    OpenBLAS: all its threads when each is large enough to pay for them (``BIG_GEMM_MACS``), else
    one. Both are restored after the call; where the libraries cannot be found (not Linux, another
    BLAS) nothing is changed."""

    BIG_GEMM_MACS = 2 ** 25
    SINGLE = 2 ** 18
    """OpenBLAS runs a GEMM of fewer multiply-adds than this on one thread anyway (65536 x its
    GEMM_MULTITHREAD_THRESHOLD, 4): nothing to pin, and the calls to do it are saved."""

    def __init__(self):
        self.step_threads = 1
        self.libs: dict[str, tuple] = {}
        self._found = False

    def _find(self) -> None:
        self._found = True
        try:
            import ctypes

            import scipy.linalg.cython_blas  # noqa: F401  (loads the library Numba calls)

            with open("/proc/self/maps") as fh:
                paths = sorted({line.split()[-1] for line in fh if "openblas" in line.lower() and "/" in line})
        except (ImportError, OSError):
            return
        for path in paths:
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for kind, suffix in (("scipy", ""), ("numpy", "64_")):
                for prefix in ("scipy_openblas", "openblas"):
                    setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                    getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                    if setter is not None and getter is not None and kind not in self.libs:
                        setter.argtypes, getter.restype = [ctypes.c_int], ctypes.c_int
                        self.libs[kind] = (setter, getter)

    def pinned(self, step_macs: int, big_macs: int):
        wanted = {}
        if step_macs >= self.SINGLE or big_macs >= self.SINGLE:  # per-step GEMMs, or a chunk's GEMMs
            wanted["scipy"] = self.step_threads
        if self.SINGLE <= big_macs < self.BIG_GEMM_MACS:
            wanted["numpy"] = 1
        if wanted and not self._found:
            self._find()
        return _Pinned(self, {k: v for k, v in wanted.items() if v and k in self.libs})


class _Pinned:
    def __init__(self, owner: _BlasThreads, wanted: dict[str, int]):
        self.owner, self.wanted, self.saved = owner, wanted, {}

    def __enter__(self):
        for kind, threads in self.wanted.items():
            setter, getter = self.owner.libs[kind]
            current = getter()
            if current != threads:
                self.saved[kind] = current
                setter(threads)
        return self

    def __exit__(self, *exc):
        for kind, threads in self.saved.items():
            self.owner.libs[kind][0](threads)
        return False


_BLAS = _BlasThreads()


def pinned_threads(batch: int, steps: int, inputs: int, hidden: int):
    """A context in which the BLAS threads are set as the kernels set them for a pass of these sizes
    (see :class:`_BlasThreads`): the benchmark times other systems' GEMMs under the same settings."""
    return _BLAS.pinned(batch * hidden * 3 * hidden, steps * batch * 3 * hidden * min(inputs, hidden))


def step_blas_threads(threads: int | None) -> None:
    """Threads for the per-step GEMMs inside the kernels (default 1; ``None`` or 0: leave SciPy's
    OpenBLAS as it is)."""
    _BLAS.step_threads = threads or 0


def cache_folder() -> Path:
    return Path(os.environ.get("GRUKIT_KERNEL_CACHE") or Path.home() / ".cache" / "grukit" / "kernels")


_CACHE_HINT = "set GRUKIT_KERNEL_CACHE to a folder of your own"


def _cache_error(folder: Path, what: str, exc: OSError | None = None) -> GrukitError:
    reason = f" ({exc.strerror or exc})" if exc is not None else ""
    return GrukitError(f"kernel cache {folder}: {what}{reason}; {_CACHE_HINT}")


def _own_folder(folder: Path) -> None:
    """The cache folder, created private (0700) where missing; refused where another user could
    write into it (Numba keeps its compiled code there, as pickles) or it is not a folder."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.stat()
    except OSError as exc:
        raise _cache_error(folder, "cannot create the folder", exc) from None
    if not stat.S_ISDIR(info.st_mode):
        raise _cache_error(folder, "not a folder")
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        raise _cache_error(folder, "owned by another user")
    if info.st_mode & stat.S_IWOTH:
        raise _cache_error(folder, "writable by every user (chmod o-w it)")


def _write_module(folder: Path, path: Path, data: bytes) -> None:
    """``data`` into ``path`` atomically (:func:`~grukit.codegen.output.write_atomic`), readable by
    this user only; a failure names the cache and what to do."""
    try:
        write_atomic(path, data, mode=0o600)
    except GrukitError as exc:
        raise GrukitError(f"kernel cache {folder}: {exc}; {_CACHE_HINT}") from None


def _run_source(name: str, path: Path, source: str):
    """The module ``name`` made by running ``source`` (the text just rendered, not the file's bytes,
    which a filesystem race could have changed), as if imported from ``path``: Numba's cache and
    tracebacks find its functions in that file."""
    spec = importlib.util.spec_from_loader(name, loader=None, origin=str(path))
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(path)
    code = compile(source, str(path), "exec", dont_inherit=True)
    sys.modules[name] = module  # numba's cache locates a function through its module
    try:
        exec(code, module.__dict__)
    except RuntimeError as exc:  # Numba: "cannot cache function ...: no locator available for file ..."
        del sys.modules[name]
        if "cannot cache" in str(exc):
            raise _cache_error(path.parent, "Numba cannot keep its compiled code there") from None
        raise
    except BaseException:
        del sys.modules[name]
        raise
    return module


def rendered_name(source: str) -> str:
    """The module name (and file stem in the cache) of a rendered module's source."""
    return f"grukit_kernel_{hashlib.sha256(source.encode('utf-8')).hexdigest()}"


_RENDERED: dict[str, tuple[str, object]] = {}
"""Module name -> (source, module) of every convention rendered in this process."""


def generated_module(convention: Convention, dtype: str):
    """The module of kernels for a convention: the committed one for a preset, else rendered now.

    A rendered module is named ``grukit_kernel_<SHA-256 of its source>``, so no convention's file
    can take another's name. The file in the cache folder is compared with the source; one with
    the right name and other content (a planted or a truncated file) is replaced atomically, never
    run; and what runs is the source itself (:func:`_run_source`)."""
    if PRESETS.get(convention.name) == convention:
        name = module_name(convention, dtype)
        try:
            return importlib.import_module(f"grukit.generated.{name}")
        except ModuleNotFoundError:
            raise GrukitError(f"kernels: generated/{name}.py is missing (run `grukit codegen --update`)") from None
    from grukit.codegen.kernels.emit import module_source

    source = module_source(convention, dtype)
    data = source.encode("utf-8")
    name = rendered_name(source)
    if name in _RENDERED:
        seen, module = _RENDERED[name]
        if seen != source:  # a SHA-256 collision
            raise GrukitError(f"kernels: two conventions render to modules of one name ({name})")
        return module
    folder = cache_folder()
    _own_folder(folder)
    path = folder / f"{name}.py"
    try:
        current = path.read_bytes() if not path.is_symlink() else None
    except FileNotFoundError:
        current = None
    except OSError as exc:
        raise _cache_error(folder, f"cannot read {path.name}", exc) from None
    if current != data:
        _write_module(folder, path, data)
        try:
            written = path.read_bytes()
        except OSError as exc:
            raise _cache_error(folder, f"cannot read {path.name} back", exc) from None
        if written != data:
            raise _cache_error(folder, f"{path.name} changed while it was written")
    module = _run_source(name, path, source)
    _RENDERED[name] = (source, module)
    return module


REFUSED_KINDS = {"c": "complex", "b": "boolean", "O": "object", "U": "string", "S": "bytes", "V": "structured",
                 "M": "datetime", "m": "timedelta"}
"""NumPy dtype kinds the kernels refuse at their boundary: only real numbers go in."""


def refuse_non_real(name: str, value) -> None:
    """A one-line error naming the array where ``value`` is an array of anything but real numbers
    (NumPy would drop a complex array's imaginary part with a mere warning, or read booleans as 0/1)."""
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    if isinstance(value, np.ndarray) and kind in REFUSED_KINDS:
        raise GrukitError(f"{name}: a {REFUSED_KINDS[kind]} array ({value.dtype}); the kernels take real "
                          f"numbers only (float32 or float64)")


class Kernels:
    """One convention's forward and backward kernels in one dtype."""

    def __init__(self, convention: Convention, dtype: str):
        self.convention = convention
        self.dtype = dtype
        self.module = generated_module(convention, dtype)
        self.names = self.module.NAMES
        self.layout = LAYOUTS[convention.layout] if convention.layout is not None else None
        self.keys = {p: convention.key(p) for p in convention.parameters()}
        """Each parameter's name, looked up once (a training step converts every array both ways)."""

    def __repr__(self) -> str:
        return f"<grukit kernels {self.convention.name} {self.dtype}: {self.module.__name__}>"

    # --- weights ---------------------------------------------------------------------------------
    def _layout_names(self) -> tuple[str, ...]:
        return self.layout.array_names(self.convention) if self.layout is not None else ()

    def convention_weights(self, weights: dict, D: int, H: int) -> tuple[dict, bool]:
        """``weights`` under the convention's own names, and whether they came as framework arrays."""
        if not isinstance(weights, dict):
            raise GrukitError(f"weights: expected a dict of arrays, got {type(weights).__name__}")
        for key, value in weights.items():
            refuse_non_real(f"weights[{key!r}]", value)
        framework = self._layout_names()
        if not framework or not set(weights) <= set(framework) or set(weights) <= set(self.names):
            return weights, False
        missing = [n for n in framework if n not in weights]
        if missing:
            raise GrukitError(f"weights: missing {missing[0]!r} (layout {self.layout.name} needs "
                              f"{', '.join(framework)})")
        shapes = self.layout.array_shapes(self.convention, D, H)
        for name in framework:
            value = weights[name]
            if not isinstance(value, np.ndarray):
                raise GrukitError(f"weights[{name!r}]: expected a numpy array, got {type(value).__name__}")
            if value.shape != shapes[name]:
                raise GrukitError(f"weights[{name!r}]: expected shape {shapes[name]} for D={D}, H={H} "
                                  f"(layout {self.layout.name}), got {value.shape}")
            if value.dtype != self.dtype:
                raise GrukitError(f"weights[{name!r}]: expected dtype {self.dtype}, got {value.dtype}")
        named = self.layout.unpack(self.convention, weights)
        return {self.keys[p]: value for p, value in named.items()}, True

    def framework_arrays(self, grads: dict, D: int, H: int) -> dict:
        """Gradients under the convention's names -> the layout's arrays."""
        return self.layout.pack(self.convention, {p: grads[key] for p, key in self.keys.items()}, D, H,
                                dtype=self.dtype)

    def pack(self, weights: dict, D: int, H: int):
        """The weights packed once for the kernels (pass the result to ``forward`` repeatedly)."""
        named, framework = self.convention_weights(weights, D, H)
        packed = self._call(self.module.pack, named, D, H)
        packed.framework = framework
        return packed

    # --- the passes ------------------------------------------------------------------------------
    @staticmethod
    def _call(fn, *args, sizes=None):
        """``fn(*args)`` with one-line errors; ``sizes`` (B, T, D, H): the BLAS threads pinned for them."""
        try:
            if sizes is None:
                return fn(*args)
            with pinned_threads(*sizes):
                return fn(*args)
        except ValueError as exc:
            if isinstance(exc, GrukitError):
                raise
            raise GrukitError(str(exc)) from None

    def forward(self, x: np.ndarray, h0: np.ndarray, weights, save: bool = True):
        """The forward pass (``save=False``: inference only, nothing kept for backward)."""
        refuse_non_real("x", x)
        refuse_non_real("h0", h0)
        if isinstance(weights, self.module.Packed):  # the module checks x and h0
            sizes = (x.shape[0], x.shape[1], weights.D, weights.H) if getattr(x, "ndim", 0) == 3 else None
            return self._call(self.module.forward, x, h0, weights, save, sizes=sizes)
        sizes = self._call(self.module.check_inputs, x, h0)
        packed = self.pack(weights, sizes[2], sizes[3])
        return self._call(self.module.forward, x, h0, packed, save, sizes=sizes)

    def backward(self, fwd, dh: np.ndarray) -> dict:
        """Every gradient, under the names the weights were given in, plus "inputs" and "h0"."""
        refuse_non_real("dh", dh)
        shape, packed = getattr(dh, "shape", ()), getattr(fwd, "packed", None)
        sizes = (shape[0], shape[1], packed.D, packed.H) if len(shape) == 3 and packed is not None else None
        grads = self._call(self.module.backward, fwd, dh, sizes=sizes)
        if getattr(packed, "framework", False):
            D, H = fwd.packed.D, fwd.packed.H
            extra = {k: grads.pop(k) for k in ("inputs", "h0")}
            grads = self.framework_arrays(grads, D, H) | extra
        return grads


@lru_cache(maxsize=None)
def _load(convention: Convention, dtype: str) -> Kernels:
    return Kernels(convention, dtype)


def load(convention: str | Convention, dtype: str = "float32") -> Kernels:
    """The kernels of a convention (a preset name or a :class:`Convention`) in ``float32`` or ``float64``."""
    if dtype not in DTYPES:
        raise GrukitError(f"dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")
    if isinstance(convention, str):
        if convention not in PRESETS:
            raise GrukitError(f"convention: unknown preset {convention!r} (presets: {', '.join(PRESETS)})")
        convention = PRESETS[convention]
    if not isinstance(convention, Convention):
        raise GrukitError(f"convention: expected a preset name or a Convention, got {type(convention).__name__}")
    return _load(convention, dtype)

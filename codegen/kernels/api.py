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
by the same emitter into a cache folder (``$GRUKIT_KERNEL_CACHE``, default ``~/.cache/grukit``)
and imported from there (Numba caches a kernel only when it lives in a real file).
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

from grukit.codegen.kernels.names import DTYPES, module_name
from grukit.derive.cell.convention import Convention
from grukit.derive.cell.layouts import LAYOUTS
from grukit.derive.cell.presets import PRESETS
from grukit.derive.errors import GrukitError

__all__ = ["Kernels", "load", "DTYPES", "pinned_threads", "step_blas_threads", "module_name"]


class _BlasThreads:
    """How many threads each OpenBLAS may use while the kernels run.

    Numba's ``np.dot`` (the per-step GEMMs inside the time loops) calls SciPy's OpenBLAS, which
    splits even a step's small GEMM (B x H by H x 3H) over every thread it has: no faster on an idle
    machine (measured at B=32, H=512: 692 us with two threads, 683 us with one) and many times
    slower when another process holds a core (each step then waits for the scheduler: a forward
    pass at H=256 went from 17.7 ms to 159 ms). So SciPy's OpenBLAS is pinned to one thread while
    a kernel runs. The big GEMMs over all T*B rows run in NumPy's OpenBLAS: all its threads when
    each is large enough to pay for them (``BIG_GEMM_MACS``), else one. Both are restored after the
    call; where the libraries cannot be found (not Linux, another BLAS) nothing is changed."""

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
        if step_macs >= self.SINGLE:
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


def _import_file(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # numba's cache locates a function through its module
    spec.loader.exec_module(module)
    return module


def generated_module(convention: Convention, dtype: str):
    """The module of kernels for a convention: the committed one for a preset, else rendered now."""
    if PRESETS.get(convention.name) == convention:
        name = module_name(convention, dtype)
        try:
            return importlib.import_module(f"grukit.generated.{name}")
        except ModuleNotFoundError:
            raise GrukitError(f"kernels: generated/{name}.py is missing (run `grukit codegen --update`)") from None
    from grukit.codegen.kernels.emit import module_source

    source = module_source(convention, dtype)
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    name = f"grukit_kernel_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    folder = cache_folder()
    path = folder / f"{name}.py"
    if not path.exists() or path.read_text() != source:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source)
        tmp.replace(path)
    return _import_file(name, path)


class Kernels:
    """One convention's forward and backward kernels in one dtype."""

    def __init__(self, convention: Convention, dtype: str):
        self.convention = convention
        self.dtype = dtype
        self.module = generated_module(convention, dtype)
        self.names = self.module.NAMES
        self.layout = LAYOUTS[convention.layout] if convention.layout is not None else None

    def __repr__(self) -> str:
        return f"<grukit kernels {self.convention.name} {self.dtype}: {self.module.__name__}>"

    # --- weights ---------------------------------------------------------------------------------
    def _layout_names(self) -> tuple[str, ...]:
        return self.layout.array_names(self.convention) if self.layout is not None else ()

    def convention_weights(self, weights: dict, D: int, H: int) -> tuple[dict, bool]:
        """``weights`` under the convention's own names, and whether they came as framework arrays."""
        if not isinstance(weights, dict):
            raise GrukitError(f"weights: expected a dict of arrays, got {type(weights).__name__}")
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
        return {self.convention.key(p): value for p, value in named.items()}, True

    def framework_arrays(self, grads: dict, D: int, H: int) -> dict:
        """Gradients under the convention's names -> the layout's arrays."""
        conv = self.convention
        return self.layout.pack(conv, {p: grads[conv.key(p)] for p in conv.parameters()}, D, H, dtype=self.dtype)

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
        if isinstance(weights, self.module.Packed):  # the module checks x and h0
            sizes = (x.shape[0], x.shape[1], weights.D, weights.H) if getattr(x, "ndim", 0) == 3 else None
            return self._call(self.module.forward, x, h0, weights, save, sizes=sizes)
        sizes = self._call(self.module.check_inputs, x, h0)
        packed = self.pack(weights, sizes[2], sizes[3])
        return self._call(self.module.forward, x, h0, packed, save, sizes=sizes)

    def backward(self, fwd, dh: np.ndarray) -> dict:
        """Every gradient, under the names the weights were given in, plus "inputs" and "h0"."""
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

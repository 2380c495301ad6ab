"""Compile every preset's generated kernels once, in a process of its own, while the tests run.

The suite starts this in the background (tests/conftest.py): the tests that come first (audits,
sheets, files) run on one core, and Numba compiles the kernels (about 14 s a module, cold) on the
other, writing them to the modules' own cache; the kernel tests then load them from there. Nothing
here is checked: a module that fails to compile fails in its own tests. Each module runs one
forward and backward pass on a batch of 8 rows, which compiles both of its paths (one chunk of rows,
and chunks on threads)."""
import numpy as np

from grukit.codegen.kernels import api as kernels
from grukit.derive.cell.presets import PRESETS


def warm(name: str, dtype: str) -> None:
    k = kernels.load(name, dtype)
    rng = np.random.default_rng(0)
    D, H = 3, 5
    weights = {key: rng.standard_normal(k.convention.param_shape(p, D, H)).astype(dtype) for p, key in k.keys.items()}
    x = rng.standard_normal((8, 4, D)).astype(dtype)
    fwd = k.forward(x, np.zeros((8, H), dtype), weights)
    k.backward(fwd, np.ones(fwd.h.shape, dtype))


if __name__ == "__main__":
    for name in PRESETS:
        for dtype in kernels.DTYPES:
            warm(name, dtype)

"""Plain-text output shared by the commands that print states and gradients (forward, grad, their
numba and layer variants): which step values are shown, and how a row of numbers is written."""
from __future__ import annotations

import numpy as np

STEP_KEYS = (("z", "z"), ("r", "r"), ("candidate", "c"), ("h", "h"))
"""(JSON key, quantity) of the values ``forward`` shows for every step."""


def format_row(values, digits: int = 6) -> str:
    """``[ 0.123456, -0.500000]``: a row of numbers with a fixed number of decimals."""
    return "[" + ", ".join(f"{float(v): .{digits}f}" for v in np.ravel(values)) + "]"

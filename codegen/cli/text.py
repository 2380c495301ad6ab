"""Output shared by the commands: which step values are shown, how a row of numbers is written, and
JSON that is JSON (strict: no NaN or Infinity tokens)."""
from __future__ import annotations

import json

import numpy as np

from grukit.derive.errors import GrukitError

STEP_KEYS = (("z", "z"), ("r", "r"), ("candidate", "c"), ("h", "h"))
"""(JSON key, quantity) of the values ``forward`` shows for every step."""


def format_row(values, digits: int = 6) -> str:
    """``[ 0.123456, -0.500000]``: a row of numbers with a fixed number of decimals."""
    return "[" + ", ".join(f"{float(v): .{digits}f}" for v in np.ravel(values)) + "]"


def print_json(data, source) -> None:
    """``data`` as one strict JSON object on stdout. A NaN or an infinity has no JSON spelling (Python
    would write the non-standard ``NaN``): the command fails in one line naming ``source`` instead."""
    try:
        text = json.dumps(data, allow_nan=False)
    except ValueError:
        raise GrukitError(f"{source}: the result holds NaN or infinity, which JSON cannot write "
                          f"(check the inputs and weights for NaN, infinity or overflow)") from None
    print(text)

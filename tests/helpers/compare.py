"""How far a result is from a reference: the largest difference relative to the reference's largest entry."""
from __future__ import annotations

import numpy as np


def rel(got, want) -> float:
    """max |got - want| / max |want| of arrays or tensors (detached), after checking their shapes agree."""
    got, want = (np.asarray(v.detach() if hasattr(v, "detach") else v, float) for v in (got, want))
    assert got.shape == want.shape, (got.shape, want.shape)
    return float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), 1e-30))

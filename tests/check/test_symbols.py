"""The explicit (fully expanded) form makes every symbol with one helper."""
from __future__ import annotations

import numpy as np
import sympy as sp
from helpers.random_problems import random_problem

from grukit.derive.check import explicit

# --- one symbol-array helper -----------------------------------------------------------------

def test_explicit_form_makes_every_symbol_with_one_helper():
    p = random_problem("keras", 2, 3, 1, seed=0)
    loss = explicit.problem_loss(p)
    conv = p.convention
    for q in conv.parameters():
        symbols = loss.params[q]
        assert symbols.shape == conv.param_shape(q, 2, 3)
        first = f"{conv.key(q)}[{','.join('0' * symbols.ndim)}]"  # W_z[0,0], b_iz[0]
        assert symbols.ravel()[0] == sp.Symbol(first, real=True)
    np.testing.assert_array_equal(explicit.symbol_array("x", (2, 1)),
                                  [[sp.Symbol("x[0,0]", real=True)], [sp.Symbol("x[1,0]", real=True)]])

"""The engines are classes behind one registry, and a product's terms are kept unrounded."""
from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np
import pytest

from grukit.derive.numeric import evaluate

# --- engines are classes ---------------------------------------------------------------------

@pytest.mark.parametrize("name, cls", [("exact", evaluate.ExactEngine), ("numpy", evaluate.NumpyEngine),
                                       ("stepwise", evaluate.StepwiseEngine),
                                       ("symbolic", evaluate.SymbolicEngine)])
def test_engine_factory(name, cls):
    eng = evaluate.engine(name)
    assert type(eng) is cls and eng.name == name
    assert eng.decimals == (4 if name == "stepwise" else None)


def test_engine_factory_refuses_unknown_names_and_takes_decimals():
    assert evaluate.engine("stepwise", 2).decimals == 2
    with pytest.raises(ValueError, match="unknown engine 'fast'"):
        evaluate.engine("fast")


M = [[Fraction(1, 3), Fraction(-2, 7)], [Fraction(5, 11), Fraction(1, 10)]]
V = [Fraction(3, 13), Fraction(-1, 9)]


@pytest.mark.parametrize("name", ["exact", "stepwise"])
def test_product_terms_are_unrounded_at_the_working_precision(name):
    eng = evaluate.engine(name, 2)
    terms = eng.product_terms(eng.array(M), eng.array(V))
    assert terms.shape == (2, 2)
    with mpmath.workdps(evaluate.DIGITS):
        for j in range(2):
            for i in range(2):
                want = eng.array(M)[j, i] * eng.array(V)[i]  # of the engine's (possibly rounded) inputs
                assert abs(terms[j, i] - want) < mpmath.mpf(10) ** -(evaluate.DIGITS - 2)
    if name == "stepwise":  # the inputs are rounded to 2 decimals, their products are not
        assert any(round(float(t), 2) != float(t) for t in terms.ravel())
        assert all(round(float(v), 2) == float(v) for v in eng.matvec(eng.array(M), eng.array(V)))


def test_product_terms_in_float64():
    eng = evaluate.engine("numpy")
    terms = eng.product_terms(eng.array(M), eng.array(V))
    assert terms.dtype == float
    np.testing.assert_array_equal(terms, np.array(M, dtype=float) * np.array(V, dtype=float))
    np.testing.assert_allclose(terms.sum(axis=1), eng.matvec(eng.array(M), eng.array(V)), rtol=1e-15)

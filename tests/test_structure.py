"""How the derive layer is put together: one place for each fact.

The loss head is symbolic and the problem reader parses it; the axes of a convention are one
table; a layout's blocks are one table read by unpack, pack and the sheet; engines are classes;
the explicit form makes its symbols with one helper.
"""
from __future__ import annotations

import ast
import typing
from fractions import Fraction
from pathlib import Path

import mpmath
import numpy as np
import pytest
import sympy as sp

from grukit.codegen import docs
from grukit.derive import evaluate, explicit, losses, problem
from grukit.derive.convention import ARRANGEMENT_AXES, AXES, PARAMETER_AXES, Convention, ConventionError, Param
from grukit.derive.layouts import LAYOUTS, named_arrays
from grukit.derive.presets import PRESETS
from random_problems import random_problem

ROOT = Path(__file__).resolve().parents[1]


# --- 1. losses are symbolic; the problem reader parses them ---------------------------------------

def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any level (function bodies included)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            out.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return out


def test_losses_do_not_import_the_problem_reader():
    imported = _imported_modules(ROOT / "derive" / "losses.py")
    assert not any(m.endswith("problem") for m in imported), imported
    assert not hasattr(losses, "parse_loss") and callable(problem.parse_loss)


def test_loss_head_keeps_only_its_data():
    head = losses.LossHead("weighted_sum", (0,), (np.array([1, 2]),))
    assert head.outputs == 2
    assert not hasattr(head, "term") and not hasattr(head, "has_output_layer")
    assert typing.get_type_hints(problem.Problem)["loss"] == typing.Optional[losses.LossHead]


# --- 2. one table of axes -------------------------------------------------------------------------

def test_every_axis_field_is_in_the_tables():
    non_axes = {"name", "description", "source", "notation"}
    fields = [f for f in Convention.__dataclass_fields__ if f not in non_axes]
    assert fields == [*AXES, *ARRANGEMENT_AXES, *PARAMETER_AXES]
    assert list(Convention("c").axes()) == fields
    assert set(problem.CONVENTION_KEYS) >= set(fields)
    assert not hasattr(problem, "CONVENTION_AXES")


@pytest.mark.parametrize("axis", list(AXES))
def test_every_value_of_the_table_is_accepted_and_no_other(axis):
    for value in AXES[axis]:
        assert getattr(Convention("c", **{axis: value}), axis) == value
    with pytest.raises(ConventionError, match=f"^{axis}: unknown value 'nonesuch'"):
        Convention("c", **{axis: "nonesuch"})


def test_validation_the_reader_and_the_docs_read_the_table(monkeypatch, tmp_path):
    """A value added to the table alone is accepted by Convention and by problem files, and documented."""
    monkeypatch.setitem(AXES, "candidate_activation", dict(AXES["candidate_activation"], softsign="a / (1 + |a|)"))
    assert Convention("c", candidate_activation="softsign").candidate_activation == "softsign"
    (tmp_path / "conv.yaml").write_text("preset: course-notes\ncandidate_activation: softsign\n")
    assert problem.convention_file(tmp_path / "conv.yaml").candidate_activation == "softsign"
    assert "| `softsign` | a / (1 + \\|a\\|) |" in docs.render_conventions()


def test_docs_describe_the_arrangement_axes():
    text = docs.render_conventions()
    for axis, meaning in ARRANGEMENT_AXES.items():
        assert f"| `{axis}` |" in text and meaning in text


# --- 3. one layout table --------------------------------------------------------------------------

# Where each block sits for D=2, H=3 (the sheet prints these): (index text, transposed)
EXPECTED_LOCATIONS = {
    "keras": {("input_weight", "z"): ("kernel[:, 0:3]", False),
              ("recurrent_weight", "h"): ("recurrent_kernel[:, 6:9]", False),
              ("input_bias", "r"): ("bias[0, 3:6]", False),
              ("recurrent_bias", "h"): ("bias[1, 6:9]", False)},
    "keras-reset-before": {("input_bias", "h"): ("bias[6:9]", False)},
    "pytorch": {("input_weight", "r"): ("weight_ih_l0[0:3, :]", False),
                ("input_weight", "z"): ("weight_ih_l0[3:6, :]", False),
                ("recurrent_bias", "h"): ("bias_hh_l0[6:9]", False)},
    "onnx": {("input_weight", "z"): ("W[0, 0:3, :]", False),
             ("recurrent_weight", "r"): ("R[0, 3:6, :]", False),
             ("input_bias", "h"): ("B[0, 6:9]", False),
             ("recurrent_bias", "z"): ("B[0, 9:12]", False)},
}


@pytest.mark.parametrize("name", list(EXPECTED_LOCATIONS))
def test_locations_name_the_blocks(name):
    conv = PRESETS[name]
    where = LAYOUTS[conv.layout].locations(conv, 2, 3)
    assert set(where) == set(conv.parameters())
    for (role, gate), expected in EXPECTED_LOCATIONS[name].items():
        assert where[Param(role, gate)] == expected


def test_locations_say_when_a_block_is_stored_transposed():
    """PyTorch's arrays read into a row convention: every weight block is the transpose."""
    conv = PRESETS["pytorch"].with_changes(orientation="row")
    where = LAYOUTS["pytorch"].locations(conv, 2, 3)
    assert all(where[p][1] == (not p.is_bias) for p in conv.parameters())


@pytest.mark.parametrize("layout, name", [("keras", "keras"), ("keras", "keras-reset-before"),
                                          ("pytorch", "pytorch"), ("pytorch", "onnx-lbr1"), ("onnx", "onnx"),
                                          ("keras", "pytorch")])
def test_the_location_text_indexes_the_packed_arrays(layout, name):
    """Evaluating each location's text on pack's arrays gives back the parameter: the sheet's rows,
    pack and unpack read one table."""
    conv, lay = PRESETS[name], LAYOUTS[layout]
    if conv.biases not in lay.biases:
        conv = conv.with_changes(biases="double")
    rng = np.random.default_rng(0)
    params = {p: rng.integers(-9, 10, conv.param_shape(p, 2, 3)) for p in conv.parameters()}
    packed = lay.pack(conv, params, 2, 3)
    for p, (text, transposed) in lay.locations(conv, 2, 3).items():
        block = eval(text, {}, packed)  # noqa: S307 -- our own index text, e.g. kernel[:, 0:3]
        np.testing.assert_array_equal(block.T if transposed else block, params[p])
    unpacked = lay.unpack(conv, packed)
    assert all(np.array_equal(unpacked[p], params[p]) for p in params)


def test_named_arrays_under_the_problems_own_names():
    conv = PRESETS["keras"]
    params = {p: np.full(conv.param_shape(p, 2, 3), i) for i, p in enumerate(conv.parameters())}
    assert set(named_arrays(conv, params, None, 2, 3)) == {conv.key(p) for p in conv.parameters()}
    framework = named_arrays(conv, params, "keras", 2, 3)
    assert {k: v.shape for k, v in framework.items()} == {"kernel": (2, 9), "recurrent_kernel": (3, 9),
                                                          "bias": (2, 9)}


# --- 4. engines are classes ---------------------------------------------------------------------

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


# --- 5. one symbol-array helper -----------------------------------------------------------------

def test_explicit_form_makes_every_symbol_with_one_helper():
    assert "param_matrix" not in vars(explicit)
    assert "param_matrix" not in (ROOT / "derive" / "explicit.py").read_text()
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


# --- 6. the project stands alone ---------------------------------------------------------------

def test_no_file_cites_a_path_outside_the_repository():
    outside = ("/work/" + "shared", "../" + "shared")
    for path in [*ROOT.glob("*.md"), *ROOT.glob("docs/**/*.md"), *ROOT.glob("tests/*.py"),
                 *ROOT.glob("derive/*.py"), *ROOT.glob("codegen/*.py")]:
        text = path.read_text()
        assert not any(o in text for o in outside), path

"""The cell's tables: one place for each fact.

The loss head is symbolic data; the axes of a convention are one table read by the validator, the
YAML reader and the docs; a layout's blocks are one table read by unpack, pack and the sheet.
"""
from __future__ import annotations

import typing

import numpy as np
import pytest

from grukit.codegen import docs
from grukit.derive.cell import losses
from grukit.derive.cell.convention import ARRANGEMENT_AXES, AXES, PARAMETER_AXES, Convention, ConventionError, Param
from grukit.derive.cell.layouts import LAYOUTS, named_arrays
from grukit.derive.cell.presets import PRESETS
from grukit.derive.files.convention_file import CONVENTION_KEYS, convention_file
from grukit.derive.numeric.problem import Problem

# --- 1. the loss head is data -----------------------------------------------------------------------

def test_loss_head_keeps_only_its_data():
    head = losses.LossHead("weighted_sum", (0,), (np.array([1, 2]),))
    assert head.outputs == 2
    assert typing.get_type_hints(Problem)["loss"] == typing.Optional[losses.LossHead]


# --- 2. one table of axes -------------------------------------------------------------------------

def test_every_axis_field_is_in_the_tables():
    non_axes = {"name", "description", "source", "notation"}
    fields = [f for f in Convention.__dataclass_fields__ if f not in non_axes]
    assert fields == [*AXES, *ARRANGEMENT_AXES, *PARAMETER_AXES]
    assert list(Convention("c").axes()) == fields
    assert set(CONVENTION_KEYS) >= set(fields)


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
    assert convention_file(tmp_path / "conv.yaml").candidate_activation == "softsign"
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

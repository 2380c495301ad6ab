"""The convention registry: every preset builds and documents itself; impossible axes are errors;
docs/conventions.md is what the registry renders."""
from __future__ import annotations

import subprocess
import sys

import pytest

from grukit.codegen import docs
from grukit.codegen.cli.main import main
from grukit.codegen.latex import compact_equations
from grukit.derive.cell.convention import Convention, ConventionError, Param
from grukit.derive.cell.equations import cell_equations
from grukit.derive.cell.layouts import LAYOUTS
from grukit.derive.cell.presets import PRESETS
from grukit.derive.errors import GrukitError


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_builds_and_is_documented(name):
    conv = PRESETS[name]
    assert isinstance(conv, Convention) and conv.name == name
    assert conv.description.strip() and conv.source.strip()
    eqs = cell_equations(conv)
    assert eqs.stages[-1].target == "h"
    targets = [s.target for s in eqs.stages]
    assert targets.index("z") < targets.index("h") and targets.index("r") < targets.index("c")
    lhs = [l for l, _ in compact_equations(eqs)]
    assert len(lhs) == 4  # z, r, candidate, new state
    params = conv.parameters()
    assert len(set(map(conv.key, params))) == len(params)  # problem-file names are unique
    for p in params:
        assert all(d > 0 for d in conv.param_shape(p, 2, 3))
    if conv.layout is not None:
        LAYOUTS[conv.layout].check(conv, name)


# The framework facts, from each preset's cited source (torch.nn.GRU documentation, keras GRUCell.call,
# the ONNX GRU operator, the papers) and checked against the real frameworks in test_oracle_forward.py:
# update rule, reset placement, biases, orientation, gate order.
FACTS = {
    "keras": ("z_keeps_old", "after", "double", "row", ("z", "r", "h"), "sigmoid"),
    "keras-reset-before": ("z_keeps_old", "before", "single", "row", ("z", "r", "h"), "sigmoid"),
    "keras2": ("z_keeps_old", "before", "single", "row", ("z", "r", "h"), "hard_sigmoid_keras2"),
    "pytorch": ("z_keeps_old", "after", "double", "column", ("r", "z", "h"), "sigmoid"),
    "onnx": ("z_keeps_old", "before", "double", "column", ("z", "r", "h"), "sigmoid"),
    "onnx-lbr1": ("z_keeps_old", "after", "double", "column", ("z", "r", "h"), "sigmoid"),
    "cho2014": ("z_keeps_old", "before", "none", "column", None, "sigmoid"),
    "chung2014": ("z_admits_new", "before", "none", "column", None, "sigmoid"),
    "course-notes": ("z_admits_new", "before", "single", "column", None, "sigmoid"),
    "homework": ("z_keeps_old", "before", "none", "row", None, "sigmoid"),
    "haiku": ("z_admits_new", "before", "single", "row", None, "sigmoid"),
}


@pytest.mark.parametrize("name", list(FACTS))
def test_preset_facts(name):
    conv = PRESETS[name]
    update, reset, biases, orientation, order, act = FACTS[name]
    assert (conv.update_rule, conv.reset, conv.biases, conv.orientation, conv.gate_activation) == \
        (update, reset, biases, orientation, act)
    if order is not None:
        assert LAYOUTS[conv.layout].order == order
        assert conv.gate_order == order


def test_layout_facts():
    assert (LAYOUTS["keras"].input_weight, LAYOUTS["keras"].recurrent_weight) == ("kernel", "recurrent_kernel")
    assert LAYOUTS["keras"].orientation == "row"
    assert LAYOUTS["pytorch"].biases["double"] == ("bias_ih_l0", "bias_hh_l0")
    assert LAYOUTS["onnx"].bias_shapes("double", 4) == {"B": (1, 24)}
    assert LAYOUTS["keras"].bias_shapes("double", 4) == {"bias": (2, 12)}
    assert LAYOUTS["keras"].bias_shapes("single", 4) == {"bias": (12,)}


def test_homework_gates_are_scalar():
    conv = PRESETS["homework"]
    assert conv.param_shape(Param("input_weight", "z"), 2, 3) == (2, 1)
    assert conv.param_shape(Param("recurrent_weight", "h"), 2, 3) == (3, 3)
    assert conv.key(Param("input_weight", "h")) == "U_h" and conv.key(Param("recurrent_weight", "h")) == "W_h"


@pytest.mark.parametrize("changes, axis", [
    (dict(input_form="concatenated", reset="after"), "reset"),
    (dict(input_form="concatenated", biases="double"), "biases"),
    (dict(gate_width="scalar", layout="keras"), "layout"),
    (dict(update_rule="z_forgets"), "update_rule"),
    (dict(reset="sometimes"), "reset"),
    (dict(biases="triple"), "biases"),
    (dict(gate_activation="swish"), "gate_activation"),  # relu became valid (ONNX activations)
    (dict(candidate_activation="gelu"), "candidate_activation"),
    (dict(orientation="diagonal"), "orientation"),
    (dict(gate_width="matrix"), "gate_width"),
    (dict(input_form="stacked"), "input_form"),
    (dict(gate_order=("z", "r")), "gate_order"),
    (dict(gate_order=("z", "z", "h")), "gate_order"),
    (dict(layout="caffe"), "layout"),
])
def test_impossible_conventions(changes, axis):
    with pytest.raises(GrukitError) as info:
        Convention("bad", **changes)
    assert isinstance(info.value, ConventionError)
    assert str(info.value).startswith(axis)


@pytest.mark.parametrize("layout, changes", [
    ("pytorch", dict(biases="single")),
    ("onnx", dict(biases="single")),
    ("keras", dict(input_form="concatenated")),
])
def test_layout_rejects_conventions_it_cannot_hold(layout, changes):
    conv = Convention("c", **changes)
    with pytest.raises(GrukitError):
        LAYOUTS[layout].check(conv, "where")


# --- docs/conventions.md ---------------------------------------------------------------------

def test_docs_conventions_is_up_to_date():
    on_disk = docs.OUTPUT.read_text() if docs.OUTPUT.exists() else ""
    fresh = docs.render_conventions()
    assert on_disk == fresh, (
        "docs/conventions.md is stale; run `grukit docs`.\n" + docs.diff(on_disk, fresh))


def test_docs_conventions_content():
    text = docs.render_conventions()
    for name, conv in PRESETS.items():
        assert f"\n## {name}\n" in text
        assert conv.source.replace("|", "\\|") in text
        for lhs, rhs in compact_equations(cell_equations(conv)):
            assert f"{lhs} &= {rhs}" in text
    assert "| `W_in` | $W_{in}$ | input weight, candidate | H × D |" in text  # PyTorch names
    assert "`bias` (2 × 3H)" in text  # Keras reset_after=True
    assert "`B` (1 × 6H)" in text  # ONNX
    assert "[r\\|z\\|n]" in text  # pipes escaped inside the table


def test_docs_main_check_and_write(tmp_path):
    out = tmp_path / "conventions.md"
    assert main(["docs", "--check", "--output", str(out)]) == 1  # missing counts as stale
    assert main(["docs", "--output", str(out)]) == 0
    assert out.read_text() == docs.render_conventions()
    assert main(["docs", "--check", "--output", str(out)]) == 0
    out.write_text(out.read_text().replace("Keras", "Kerass", 1))
    assert main(["docs", "--check", "--output", str(out)]) == 1


def test_docs_check_runs_from_the_command_line():
    proc = subprocess.run([sys.executable, "-m", "grukit.codegen.cli", "docs", "--check"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_cell_without_a_reset_gate():
    """``reset: none`` (r = 1): no reset gate, its parameters or stages; the candidate reads h_{t-1} itself."""
    conv = PRESETS["course-notes"].with_changes(name="no-r", reset="none")
    assert conv.gates == ("z", "h") and all(p.gate != "r" for p in conv.parameters())
    eqs = cell_equations(conv)
    assert [s.target for s in eqs.stages] == ["a_z", "z", "a_h", "c", "h"]
    assert [p.operands for p in eqs.stage("a_h").products] == [("x",), ("h_prev",)]
    assert eqs.stage("a_h").biases == (Param("input_bias", "h"),)
    colah = PRESETS["colah"].with_changes(name="colah-no-r", reset="none")
    assert [p.operands for p in cell_equations(colah).stage("a_h").products] == [("h_prev", "x")]
    with pytest.raises(ConventionError, match="no framework stores a GRU without a reset gate"):
        PRESETS["keras"].with_changes(reset="none")

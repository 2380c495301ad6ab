"""grukit compare: equivalences proved with SymPy, checked here with random weights in the plain
NumPy GRU of tests/helpers/numpy_gru.py; counterexamples checked by running ``grukit forward`` on them."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from helpers.numpy_gru import gru_reference

from grukit.codegen.cli.main import main
from grukit.derive.audit.reparam import reparameterization
from grukit.derive.cell.convention import Param
from grukit.derive.cell.presets import PRESETS
from grukit.derive.files.convention_file import convention_from_mapping

KERAS3_HARD = {"preset": "keras-reset-before", "gate_activation": "hard_sigmoid_keras3"}


def compare_json(capsys, a, b):
    code = main(["compare", a, b, "--json"])
    assert code == 0
    return json.loads(capsys.readouterr().out)


def states(conv, params, inputs, h0):
    keyed = {(p.role, p.gate): v for p, v in params.items()}
    return np.array([s["h"] for s in gru_reference(conv.axes(), keyed, inputs, h0)])


def random_params(conv, D, H, seed, scale=0.8):
    rng = np.random.default_rng(seed)
    return {p: scale * rng.standard_normal(conv.param_shape(p, D, H)) for p in conv.parameters()}


def mapped(source, target, params, D, H):
    exact = {p: np.asarray(v, dtype=object) for p, v in params.items()}
    return {p: np.asarray(v, dtype=float) for p, v in reparameterization(source, target).apply(exact, D, H).items()}


@pytest.mark.parametrize("a, b, reparam, layout", [
    ("cho2014", "chung2014", "negate every term of the z pre-activation", ""),
    ("colah", "chung2014", None, "one weight on [h, x] = [U | W]"),
    ("keras", "pytorch", None, "transpose every weight matrix"),
    ("onnx", "keras-reset-before", None, "add each gate's input and recurrent biases into one"),
    ("haiku", "d2l", "negate every term of the z pre-activation", ""),
    ("cho2014", "colah", "negate every term of the z pre-activation", "one weight on [h, x] = [U | W]"),
])
def test_equivalent_pairs(capsys, a, b, reparam, layout):
    data = compare_json(capsys, a, b)
    assert data["equivalent"] is True and data["counterexample"] is None
    assert (data["reparameterization"] is None) == (reparam is None)
    assert reparam is None or reparam in data["reparameterization"]
    assert layout in (data["weights"] or data["reparameterization"] or "")
    assert data["proof"][-1].endswith("simplify: 0")
    # the map, checked with the independent NumPy GRU: the same states
    A, B = PRESETS[a], PRESETS[b]
    D, H = 2, 3
    params = random_params(A, D, H, seed=1)
    rng = np.random.default_rng(2)
    inputs, h0 = rng.uniform(-1, 1, (4, D)), rng.uniform(-0.5, 0.5, H)
    np.testing.assert_allclose(states(B, mapped(A, B, params, D, H), inputs, h0), states(A, params, inputs, h0),
                               rtol=0, atol=1e-12)


def test_cho_and_chung_the_negated_z_is_what_makes_them_equal(capsys):
    """Without the negation the same weights give different states: the reparameterization matters."""
    A, B = PRESETS["cho2014"], PRESETS["chung2014"]
    params = random_params(A, 2, 2, seed=3)
    rng = np.random.default_rng(4)
    inputs, h0 = rng.uniform(-1, 1, (3, 2)), rng.uniform(-0.5, 0.5, 2)
    assert np.max(np.abs(states(B, params, inputs, h0) - states(A, params, inputs, h0))) > 1e-2
    data = compare_json(capsys, "cho2014", "chung2014")
    assert any("gate: sigmoid(-u) = 1 - sigmoid(u) for every real u: proved" in line for line in data["proof"])


def test_keras2_to_keras3_hard_sigmoid_rescale(tmp_path, capsys):
    (tmp_path / "k3.yaml").write_text(yaml.safe_dump(KERAS3_HARD))
    data = compare_json(capsys, "keras2", str(tmp_path / "k3.yaml"))
    assert data["equivalent"] is True and "by 6/5" in data["reparameterization"]
    A, B = PRESETS["keras2"], convention_from_mapping(KERAS3_HARD, "k3", "", "k3")
    params = random_params(A, 2, 2, seed=5, scale=3.0)  # large enough to saturate the gates
    rng = np.random.default_rng(6)
    inputs, h0 = rng.uniform(-2, 2, (4, 2)), rng.uniform(-0.5, 0.5, 2)
    np.testing.assert_allclose(states(B, mapped(A, B, params, 2, 2), inputs, h0), states(A, params, inputs, h0),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("a, b, reason", [
    ("keras", "keras-reset-before", "reset differs"),
    ("pytorch", "onnx", "reset differs"),
    ("course-notes", "chung2014", "only where every bias is 0"),
    ("keras2", "keras-reset-before", "gate_activation differs"),
])
def test_counterexamples_run_to_different_states(tmp_path, capsys, a, b, reason):
    data = compare_json(capsys, a, b)
    assert data["equivalent"] is False and data["reparameterization"] is None and reason in data["relation"]
    example = data["counterexample"]
    assert example["a"]["inputs"] == example["b"]["inputs"] and example["a"]["h0"] == example["b"]["h0"]
    finals = []
    for side in ("a", "b"):
        (tmp_path / f"{side}.yaml").write_text(yaml.safe_dump(example[side]))
        assert main(["forward", str(tmp_path / f"{side}.yaml"), "--json"]) == 0
        finals.append(json.loads(capsys.readouterr().out)["steps"][-1]["h"])
        conv = PRESETS[example[side]["convention"]]
        params = {p: np.array(example[side]["weights"][conv.key(p)], float) for p in conv.parameters()}
        ref = states(conv, params, np.array(example[side]["inputs"]), np.array(example[side]["h0"]))
        np.testing.assert_allclose(finals[-1], ref[-1], rtol=0, atol=1e-12)  # grukit forward is right
    assert np.max(np.abs(np.subtract(*finals))) > 1e-3


def test_write_the_counterexample(tmp_path, capsys):
    assert main(["compare", "keras", "keras-reset-before", "--write", str(tmp_path / "ce")]) == 0
    assert "not equivalent" in capsys.readouterr().out
    assert main(["forward", str(tmp_path / "ce" / "a.yaml")]) == 0
    assert main(["forward", str(tmp_path / "ce" / "b.yaml")]) == 0


def test_unknown_convention_is_a_one_line_error(capsys):
    assert main(["compare", "keras", "nonesuch"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "unknown convention 'nonesuch'" in err


def test_reparameterization_refuses_what_no_map_bridges():
    from grukit.derive.audit.reparam import NoMap

    with pytest.raises(NoMap, match="reset differs"):
        reparameterization(PRESETS["keras"], PRESETS["keras-reset-before"])
    assert reparameterization(PRESETS["pytorch"], PRESETS["keras"]).steps == ["transpose every weight matrix"]
    rep = reparameterization(PRESETS["pytorch"], PRESETS["keras"].with_changes(biases="single"))
    assert "b_hn" in rep.conditions[0]
    assert Param("recurrent_bias", "h") in PRESETS["pytorch"].parameters()


def test_every_pair_of_presets(tmp_path):
    """All 169 ordered pairs: the verdict is symmetric; every map found gives the NumPy GRU's states,
    every counterexample runs (in the NumPy GRU) to different states."""
    from grukit.derive.audit.compare import compare

    verdicts = {}
    rng = np.random.default_rng(7)
    for a in PRESETS:
        for b in PRESETS:
            A, B = PRESETS[a], PRESETS[b]
            result = compare(A, B)
            verdicts[(a, b)] = result.equivalent
            if result.equivalent:
                params = random_params(A, 2, 3, seed=len(verdicts))
                inputs, h0 = rng.uniform(-1, 1, (3, 2)), rng.uniform(-0.5, 0.5, 3)
                np.testing.assert_allclose(states(B, mapped(A, B, params, 2, 3), inputs, h0),
                                           states(A, params, inputs, h0), rtol=0, atol=1e-12)
                continue
            finals = []
            for side, conv in (("a", A), ("b", B)):
                example = result.counterexample[side]
                params = {p: np.array(example["weights"][conv.key(p)], float) for p in conv.parameters()}
                finals.append(states(conv, params, np.array(example["inputs"]), np.array(example["h0"]))[-1])
            assert np.max(np.abs(finals[0] - finals[1])) > 1e-3, (a, b)
    assert all(verdicts[(a, b)] == verdicts[(b, a)] for a, b in verdicts)
    assert sum(verdicts.values()) == 45  # 13 with themselves, 16 pairs both ways

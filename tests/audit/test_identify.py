"""grukit identify: the readings of a problem's weights ranked against observed outputs.

References: the outputs of the plain NumPy GRU (tests/helpers/numpy_gru.py) for a known misreading, and
seed 000's posted weights, whose Keras output (-0.4627954) the oracle tests confirm with real
Keras (tests/frameworks/test_forward_oracle.py) while the question posts 0.9680257.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import EXAMPLES, copy_examples
from helpers.numpy_gru import gru_reference
from helpers.random_problems import problem_yaml, random_problem

from grukit.codegen.cli.main import main
from grukit.derive.cell.presets import PRESETS


def identify_json(capsys, path):
    assert main(["identify", str(path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_seed_000_no_convention_reproduces_the_posted_prediction(capsys):
    start = time.perf_counter()
    data = identify_json(capsys, EXAMPLES / "keras-question-claims.yaml")
    assert time.perf_counter() - start < 20
    assert data["fits"] is False and data["observed"] == {"h[4][0]": 0.9680257}
    best = data["ranking"][0]
    assert 0.03 < best["residual"] < 0.033 and best["axes"]["gate_order"] == ["z", "h", "r"]
    as_given = next(c for c in data["ranking"] if c["convention"] == "keras")
    assert abs(as_given["predicted"]["h[4][0]"] - -0.4627953868) < 1e-9
    assert all(abs(c["predicted"]["h[4][0]"]) <= 1 for c in data["ranking"])


def test_seed_000_plain_output_says_none_fits(capsys):
    assert main(["identify", str(EXAMPLES / "keras-question-claims.yaml"), "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "NO convention fits" in out and "these weights do not produce these outputs" in out


def _observed_problem(tmp_path: Path, key: str) -> Path:
    """A Keras file whose blocks were saved in cuDNN order [r|z|h] (keras-team/keras#8720); the
    outputs are what the weights compute read that way, by the NumPy GRU."""
    rng = np.random.default_rng(21)
    D, H, T = 2, 2, 3
    kernel, recurrent = rng.uniform(-1, 1, (D, 3 * H)).round(1), rng.uniform(-1, 1, (H, 3 * H)).round(1)
    bias = rng.uniform(-0.5, 0.5, (2, 3 * H)).round(1)
    inputs, h0 = rng.uniform(-1, 1, (T, D)).round(1), np.array([0.1, -0.2])
    block = {g: slice(k * H, (k + 1) * H) for k, g in enumerate("rzh")}
    params = {("input_weight", g): kernel[:, block[g]] for g in "zrh"}
    params |= {("recurrent_weight", g): recurrent[:, block[g]] for g in "zrh"}
    params |= {("input_bias", g): bias[0, block[g]] for g in "zrh"}
    params |= {("recurrent_bias", g): bias[1, block[g]] for g in "zrh"}
    hs = np.array([s["h"] for s in gru_reference(PRESETS["keras"].axes(), params, inputs, h0)])
    np.savez(tmp_path / "w.npz", kernel=kernel, recurrent_kernel=recurrent, bias=bias)
    observed = f"{{h: {hs.round(7).tolist()}}}" if key == "h" else f"{{h_last: {hs[-1].round(7).tolist()}}}"
    (tmp_path / "p.yaml").write_text(f"convention: keras\ninputs: {inputs.tolist()}\nh0: {h0.tolist()}\n"
                                     f"weights: {{layout: keras, file: w.npz}}\nobserved: {observed}\n")
    return tmp_path / "p.yaml"


@pytest.mark.parametrize("key", ["h", "h_last"])
def test_identify_finds_the_cudnn_block_order(tmp_path, capsys, key):
    data = identify_json(capsys, _observed_problem(tmp_path, key))
    best = data["ranking"][0]
    assert data["fits"] is True and best["residual"] < 1e-6
    assert best["axes"]["gate_order"] == ["r", "z", "h"] and best["axes"]["update_rule"] == "z_keeps_old"
    assert best["axes"]["reset"] == "after" and data["ranking"][1]["residual"] > 1e-3


@pytest.mark.parametrize("observed, message", [
    ("", "observed: missing"),
    ("observed: {y: [0.1]}\n", "observed: expected {h: 4x1 states} or {h_last: 1 numbers}"),
    ("observed: {h: [0.1, 0.2]}\n", "observed.h: expected 4x1 numbers"),
])
def test_bad_observed_is_a_one_line_error(tmp_path, capsys, observed, message):
    copy_examples(tmp_path, "keras-question.npz")
    text = (EXAMPLES / "keras-question.yaml").read_text()
    (tmp_path / "p.yaml").write_text(text + observed)
    assert main(["identify", str(tmp_path / "p.yaml")]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and message in err


def _keras_reset_before(tmp_path: Path, as_claims: bool) -> Path:
    """A real Keras 3 GRU(reset_after=False): its ``get_weights()`` (bias of 3H entries) saved as the
    layout's arrays, stated as ``convention: keras``, and its own float32 outputs as observed."""
    oracle = pytest.importorskip("helpers.framework_oracle")
    if not oracle.available("keras", "torch"):
        pytest.skip("needs Keras 3 on the torch backend")
    import keras
    D, H, T = 2, 3, 4
    keras.utils.set_random_seed(7)
    layer = keras.layers.GRU(H, reset_after=False, return_sequences=True, bias_initializer="random_uniform")
    layer.build((1, T, D))
    kernel, recurrent, bias = layer.get_weights()
    assert bias.shape == (3 * H,)
    rng = np.random.default_rng(5)
    inputs, h0 = rng.uniform(-1, 1, (T, D)).round(2), rng.uniform(-0.5, 0.5, H).round(2)
    hs = oracle.keras_forward(kernel, recurrent, bias, inputs, h0, reset_after=False)
    np.savez(tmp_path / "w.npz", kernel=kernel, recurrent_kernel=recurrent, bias=bias)
    problem = (f"convention: keras\ninputs: {inputs.tolist()}\nh0: {h0.tolist()}\n"
               f"weights: {{layout: keras, file: w.npz}}\n")
    if as_claims:
        (tmp_path / "p.yaml").write_text(problem)
        claims = "".join(f"  h[{t + 1}]: {[f'{v:.6f}' for v in hs[t]]}\n".replace("'", "") for t in range(T))
        (tmp_path / "c.yaml").write_text(f"problem: p.yaml\nclaims:\n{claims}")
        return tmp_path / "c.yaml"
    (tmp_path / "p.yaml").write_text(problem + f"observed: {{h: {hs.round(6).tolist()}}}\n")
    return tmp_path / "p.yaml"


@pytest.mark.parametrize("as_claims", [False, True], ids=["problem", "claims"])
def test_keras_reset_after_false_arrays_stated_as_keras_identify_reset_before(tmp_path, capsys, as_claims):
    """What the arrays hold (one bias per gate) feeds the search; the stated convention only starts it."""
    path = _keras_reset_before(tmp_path, as_claims)
    data = identify_json(capsys, path)
    best = data["ranking"][0]
    assert data["fits"] is True and best["convention"] == "keras-reset-before", best
    assert best["residual"] < 1e-6 and data["ranking"][1]["residual"] > 1e-4
    assert any(c["convention"].startswith("keras (biases=single") for c in data["ranking"])


def test_forward_refuses_the_mismatch_in_one_line_pointing_to_identify(tmp_path, capsys):
    """Only identify searches: forward, grad and verify compute under the stated convention, so they
    refuse arrays it cannot hold, in one line that says what the arrays hold."""
    claims = _keras_reset_before(tmp_path, as_claims=True)
    path = tmp_path / "p.yaml"
    for command, file in (("forward", path), ("grad", path), ("verify", claims)):
        assert main([command, str(file)]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and "bias: expected shape 2x9, got 9" in err
        assert "biases: single" in err and "grukit identify" in err


def test_a_reset_free_cell_is_identified_among_readings_without_a_reset_gate(tmp_path, capsys):
    """A cell with no reset gate (reset: none) has no reset position and no r blocks to permute: identify
    reads it under the update rules, gate activations and z/h block orders only, and the stated reading
    fits the plain NumPy GRU's states."""
    problem = random_problem("course-notes-reset-free", 2, 3, 3, seed=5)
    conv = problem.convention
    params = {(p.role, p.gate): np.asarray(v, dtype=float) for p, v in problem.params.items()}
    steps = gru_reference(conv.axes(), params, np.asarray(problem.inputs, dtype=float),
                          np.asarray(problem.h0, dtype=float))
    text = problem_yaml(problem) + f"observed: {{h: {np.array([s['h'] for s in steps]).round(9).tolist()}}}\n"
    (tmp_path / "p.yaml").write_text(text)
    data = identify_json(capsys, tmp_path / "p.yaml")
    best = data["ranking"][0]
    assert data["fits"] is True and best["residual"] < 1e-8
    assert best["axes"]["reset"] == "none" and best["axes"]["gate_order"] == ["z", "h"]
    assert all(r["axes"]["reset"] == "none" for r in data["ranking"])

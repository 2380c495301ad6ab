"""Layer problems without frameworks: the problem-file keys, what `forward --json` and `grad --json`
print, errors that name the file and the field, and the shipped example."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from helpers import ROOT

from grukit.codegen.cli.main import main
from grukit.derive.files.layer_file import load_any
from grukit.derive.layers.problem import LayerProblem
from grukit.derive.numeric.problem import Problem

EXAMPLE = ROOT / "docs" / "examples" / "layers" / "pytorch-2x-bidirectional.yaml"
WEIGHTS = {"W_z": [[0.1, 0.2], [0.3, -0.4]], "W_r": [[0.5, -0.1], [0.2, 0.3]], "W_h": [[-0.3, 0.6], [0.4, 0.1]],
           "U_z": [[0.2, 0.1], [-0.2, 0.3]], "U_r": [[0.1, -0.5], [0.4, 0.2]], "U_h": [[0.3, 0.2], [-0.1, 0.5]],
           "b_z": [0.1, -0.1], "b_r": [0.2, 0.0], "b_h": [-0.2, 0.1]}


def run(capsys, *argv):
    capsys.readouterr()
    status = main(list(map(str, argv)))
    out = capsys.readouterr()
    return status, out.out, out.err


def write(tmp_path, name="p.yaml", **data):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_plain_problem_keeps_its_reader_and_gains_outputs_and_h_n(capsys):
    path = ROOT / "docs" / "examples" / "homework.yaml"
    assert isinstance(load_any(path), Problem)
    status, out, _ = run(capsys, "forward", path, "--json")
    data = json.loads(out)
    assert status == 0 and set(data) == {"convention", "steps", "outputs", "h_n"}
    states = [s["h"] for s in data["steps"]]
    assert data["outputs"] == [states] and data["h_n"] == [[states[-1]]]


def test_the_example_runs_and_its_sheet_works_a_chosen_cell(capsys, tmp_path):
    problem = load_any(EXAMPLE)
    assert isinstance(problem, LayerProblem) and len(problem.network.cells) == 4
    status, out, _ = run(capsys, "grad", EXAMPLE, "--json", "--engine", "numpy")
    data = json.loads(out)
    kinds = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    assert status == 0 and set(data["grads"]) == {f"{k}_l{n}{s}" for k in kinds for n in (0, 1)
                                                  for s in ("", "_reverse")}
    assert np.array(data["inputs"]).shape == (2, 3, 2) and np.array(data["h0"]).shape == (4, 2, 3)
    assert np.all(np.array(data["inputs"])[1, 2] == 0)  # a padded step
    status, exact, _ = run(capsys, "grad", EXAMPLE, "--json")
    assert abs(json.loads(exact)["loss"] - data["loss"]) < 1e-14
    status, _, err = run(capsys, "sheet", EXAMPLE, "--cell", "0,reverse", "--sequence", "1", "-o", tmp_path / "s.md")
    assert status == 0, err
    assert "layer 0 (l0), reverse, sequence 1 of 2" in (tmp_path / "s.md").read_text()


def test_weights_under_symbols_with_a_batch_mask_and_direction(tmp_path, capsys):
    """A convention's own symbols, run over a batch with a mask (rules of grukit's own: masked outputs 0),
    reverse; the same problem with framework: keras repeats the previous output instead."""
    x = [[[0.5, -1.0], [1.0, 0.5], [0.0, 0.25]], [[0.25, 0.5], [-0.5, 1.0], [1.0, -1.0]]]
    mask = [[1, 0, 1], [0, 1, 1]]
    base = dict(convention="course-notes", inputs=x, weights=WEIGHTS, mask=mask, direction="reverse")
    status, out, err = run(capsys, "forward", write(tmp_path, **base), "--json")
    assert status == 0, err
    zero = np.array(json.loads(out)["outputs"])
    assert np.all(zero[0, 1] == 0) and np.all(zero[1, 0] == 0)
    status, out, _ = run(capsys, "forward", write(tmp_path, framework="keras", **base), "--json")
    previous = np.array(json.loads(out)["outputs"])  # processing order: reverse, so position 0 is step 3
    assert np.array_equal(previous[0, 1], previous[0, 0]) and np.all(previous[1, 2] == previous[1, 1])
    # one sequence through the reverse cell equals the plain problem on reversed inputs
    status, out, _ = run(capsys, "forward", write(tmp_path, "r.yaml", convention="course-notes", inputs=x[0],
                                                  weights=WEIGHTS, direction="reverse"), "--json")
    rev = np.array(json.loads(out)["outputs"])[0]
    status, out, _ = run(capsys, "forward", write(tmp_path, "f.yaml", convention="course-notes", inputs=x[0][::-1],
                                                  weights=WEIGHTS), "--json")
    assert np.allclose(rev[::-1], [s["h"] for s in json.loads(out)["steps"]], atol=1e-15)


@pytest.mark.parametrize("extra, message", [
    (dict(lengths=[3, 1], mask=[[1, 1, 1], [1, 0, 0]]), "give lengths or mask, not both"),
    (dict(lengths=[3, 4]), "lengths: expected 2 whole numbers from 0 to T = 3"),
    (dict(mask=[[1, 2, 1], [1, 1, 1]]), "mask: expected 0 or 1 at every step"),
    (dict(direction="sideways"), "direction: unknown value 'sideways'"),
    (dict(direction="bidirectional"), "bidirectional needs a weights file holding both directions"),
    (dict(h0=[[0.1, 0.2]]), "h0: expected B x H = 2 x 2 or 1 x 2 x 2"),
    (dict(merge="max"), "merge: unknown value 'max'"),
    (dict(loss={"type": "weighted_sum", "G": [[0.1, 0.2]]}), "loss.G: expected shape 2x3x2"),
    (dict(loss={"type": "final_mse", "target": [0.1, 0.2]}), "loss: expected {type: weighted_sum"),
])
def test_errors_name_the_file_and_the_field(tmp_path, capsys, extra, message):
    x = [[[0.5, -1.0], [1.0, 0.5], [0.0, 0.25]], [[0.25, 0.5], [-0.5, 1.0], [1.0, -1.0]]]
    path = write(tmp_path, convention="course-notes", inputs=x, weights=WEIGHTS, **extra)
    status, _, err = run(capsys, "grad" if "loss" in extra else "forward", path, "--json")
    assert status == 2 and str(path) in err and message in err, err


def test_model_file_errors(tmp_path, capsys):
    x = [[0.5, -1.0], [1.0, 0.5]]
    np.savez(tmp_path / "lstm.npz", weight_ih_l0=np.zeros((8, 2)), weight_hh_l0=np.zeros((8, 2)))
    np.savez(tmp_path / "gru.npz", weight_ih_l0=np.zeros((6, 2)), weight_hh_l0=np.zeros((6, 2)),
             weight_ih_l1=np.zeros((6, 3)), weight_hh_l1=np.zeros((6, 2)))
    cases = [({"layout": "pytorch", "file": "lstm.npz"}, "lstm.npz: not a GRU state dict"),
             ({"layout": "pytorch", "file": "gru.npz"}, "gru.npz: layer 1 takes inputs of size 3, but layer 0 gives 2"),
             ({"file": "model.bin"}, "unsupported file type '.bin'"),
             ({"layout": "onnx", "file": "model.pt"}, "'onnx' does not match"),
             ({"layout": "pytorch", "file": "gru.npz", "node": "x"}, "weights.node: only for onnx files")]
    for weights, message in cases:
        status, _, err = run(capsys, "forward", write(tmp_path, inputs=x, weights=weights, lengths=[2]))
        assert status == 2 and message in err, (message, err)

"""grukit diff A B: a correct torch.onnx.export of nn.GRU computes the same GRU as its state dict; an
export broken on purpose (its ONNX graph edited with onnx.helper) differs, and the diff names the
convention axis that explains it (linear_before_reset flipped, gates permuted, b_hn merged into b_in,
an activation changed, directions swapped) with the fix. The frameworks' own files are the inputs;
grukit's readers and engine do the rest. Skipped without torch and onnx."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from helpers import framework_oracle as fo
from helpers.hostile import refused, run

pytestmark = pytest.mark.skipif(not fo.available("torch", "onnx"), reason="torch or onnx not installed")
D, H = 3, 4


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """nn.GRU (bidirectional, biases well away from 0) as a state dict and as torch.onnx.export writes it."""
    import torch

    folder = tmp_path_factory.mktemp("export")
    torch.manual_seed(0)
    gru = torch.nn.GRU(D, H, bidirectional=True, batch_first=True)
    with torch.no_grad():
        for p in gru.parameters():
            p.uniform_(-0.9, 0.9)
    torch.save(gru.state_dict(), folder / "gru.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(gru, (torch.zeros(1, 2, D),), str(folder / "gru.onnx"), dynamo=False)
    return folder


def diff(a, b, status):
    o = run(["diff", a, b, "--json"])
    assert o.status == status, o.err
    return json.loads(o.out)


def test_a_correct_export_is_the_same_gru(exported):
    data = diff(exported / "gru.pt", exported / "gru.onnx", 0)
    assert data["same"] and data["largest_difference"] <= data["tolerance"] and data["axis"] is None
    o = run(["diff", exported / "gru.pt", exported / "gru.onnx"])
    assert o.status == 0 and "the same GRU" in o.out


def broken(exported, tmp_path, edit, source=None):
    """The export (or ``source``) with its GRU node (and its W, R, B initializers as arrays) edited."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source or exported / "gru.onnx"))
    node = next(n for n in model.graph.node if n.op_type == "GRU")
    inits = {t.name: t for t in model.graph.initializer}
    arrays = {role: numpy_helper.to_array(inits[name]).copy() for role, name in zip("WRB", node.input[1:4])}
    edit(node, arrays)
    for role, name in zip("WRB", node.input[1:4]):
        inits[name].CopyFrom(numpy_helper.from_array(arrays[role], name))
    onnx.save(model, tmp_path / "broken.onnx")
    return tmp_path / "broken.onnx"


def set_attribute(node, name, value):
    from onnx import helper

    kept = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend(kept + [helper.make_attribute(name, value)])


def flip_lbr(node, arrays):
    set_attribute(node, "linear_before_reset", 0)


def permute_gates(node, arrays):  # ONNX's [z|r|h] blocks written as [r|z|h]
    order = np.r_[H:2 * H, 0:H, 2 * H:3 * H]
    arrays["W"], arrays["R"] = arrays["W"][:, order], arrays["R"][:, order]
    arrays["B"] = arrays["B"][:, np.r_[order, 3 * H + order]]


def merge_b_hn(node, arrays):  # Wb_h += Rb_h, Rb_h = 0
    h_in, h_rec = slice(2 * H, 3 * H), slice(5 * H, 6 * H)
    arrays["B"][:, h_in] += arrays["B"][:, h_rec]
    arrays["B"][:, h_rec] = 0


def change_activation(node, arrays):
    set_attribute(node, "activations", ["Sigmoid", "Softsign", "Sigmoid", "Softsign"])


def swap_directions(node, arrays):
    for role in "WRB":
        arrays[role] = arrays[role][::-1].copy()


BROKEN = {"linear_before_reset flipped": (flip_lbr, "reset position (linear_before_reset)", "linear_before_reset=1"),
          "gates permuted": (permute_gates, "gate order", "[r|z|h]"),
          "b_hn merged into b_in": (merge_b_hn, "bias merge", "b_hn"),
          "an activation changed": (change_activation, "candidate activation", "activations="),
          "directions swapped": (swap_directions, "direction", "reverse")}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_export_differs_and_the_diff_names_the_cause(exported, tmp_path, case):
    edit, axis, words = BROKEN[case]
    bad = broken(exported, tmp_path, edit)
    data = diff(exported / "gru.pt", bad, 1)
    assert not data["same"] and data["largest_difference"] > 1e-3 and data["axis"] == axis, data
    assert words in data["explanation"] + data["fix"]
    assert "grukit convert" in data["fix"]
    example = data["counterexample"]
    assert np.shape(example["inputs"])[2] == D and len(example["h0"]) == 2
    assert f"sequence {example['sequence']}" in data["where"]
    o = run(["diff", exported / "gru.pt", bad])
    assert o.status == 1 and f"explained by the {axis}" in o.out and "fix:" in o.out


def test_the_fix_it_prints_makes_them_the_same(exported, tmp_path):
    bad = broken(exported, tmp_path, flip_lbr)
    assert "set linear_before_reset=1 in" in diff(exported / "gru.pt", bad, 1)["fix"]
    (tmp_path / "fixed").mkdir()
    fixed = broken(exported, tmp_path / "fixed", lambda node, arrays: set_attribute(node, "linear_before_reset", 1),
                   source=bad)
    assert diff(exported / "gru.pt", fixed, 0)["same"]
    assert run(["convert", exported / "gru.pt", bad]).status == 0  # the other fix: write B again from A
    assert diff(exported / "gru.pt", bad, 0)["same"]


def test_a_problem_file_against_a_model_file_with_lengths(exported, tmp_path):
    """A layer problem naming the state dict, with lengths, is the same GRU as the ONNX export (the trial
    with lengths runs); a single-cell problem of other weights is a different network."""
    import shutil

    shutil.copy(exported / "gru.pt", tmp_path / "gru.pt")
    (tmp_path / "p.yaml").write_text(json.dumps({"inputs": [[[0.1] * D] * 3] * 2, "lengths": [3, 1],
                                                     "weights": {"file": "gru.pt"}}))
    data = diff(tmp_path / "p.yaml", exported / "gru.onnx", 0)
    assert data["same"]
    (tmp_path / "one.yaml").write_text(json.dumps({"convention": "course-notes", "inputs": [[0.5] * D],
                                                       "weights": {"W_z": [[0.1] * D] * H, "W_r": [[0.2] * D] * H,
                                                                   "W_h": [[0.3] * D] * H, "U_z": [[0.1] * H] * H,
                                                                   "U_r": [[0.1] * H] * H, "U_h": [[0.1] * H] * H,
                                                                   "b_z": [0.0] * H, "b_r": [0.0] * H,
                                                                   "b_h": [0.0] * H}}))
    data = diff(tmp_path / "one.yaml", exported / "gru.onnx", 1)
    assert data["structure"] and "forward" in data["structure"] and "bidirectional" in data["structure"]


def test_bad_input_is_one_line_with_status_2(exported, tmp_path):
    (tmp_path / "w.onnx").write_bytes(b"\x08\x07garbage")
    refused(run(["diff", exported / "gru.pt", tmp_path / "w.onnx"]), "w.onnx")
    refused(run(["diff", exported / "gru.pt", tmp_path / "missing.pt"]), "missing.pt", "no such file")
    refused(run(["diff", exported / "gru.pt", tmp_path / "w.txt"]), "w.txt")


@pytest.mark.parametrize("bidirectional", [False, True], ids=["squeeze", "transpose-reshape"])
def test_a_stacked_export_is_read_as_one_network(tmp_path, bidirectional):
    """torch.onnx.export of a 2-layer nn.GRU: two GRU nodes, joined by Squeeze (one direction) or
    Transpose + Reshape (two): read as one stack, the same GRU as the state dict; a join that is not
    the concatenation of the directions (another perm) is no stack, and the reader asks for a node."""
    import onnx
    import torch
    from onnx import helper

    torch.manual_seed(3)
    gru = torch.nn.GRU(D, H, num_layers=2, bidirectional=bidirectional)
    torch.save(gru.state_dict(), tmp_path / "gru.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(gru, (torch.zeros(2, 1, D),), str(tmp_path / "gru.onnx"), dynamo=False)
    assert diff(tmp_path / "gru.pt", tmp_path / "gru.onnx", 0)["same"]
    model = onnx.load(str(tmp_path / "gru.onnx"))
    for node in model.graph.node:  # nodes without names are told apart all the same
        node.name = ""
    onnx.save(model, tmp_path / "unnamed.onnx")
    assert diff(tmp_path / "gru.pt", tmp_path / "unnamed.onnx", 0)["same"]
    joins = [n for n in model.graph.node if n.op_type in ("Transpose", "Squeeze")
             and any(i.startswith("/GRU_output_0") for i in n.input)]
    assert len(joins) == 1
    if joins[0].op_type == "Transpose":
        del joins[0].attribute[:]
        joins[0].attribute.append(helper.make_attribute("perm", [0, 1, 2, 3]))
    else:
        joins[0].op_type = "Identity"
        del joins[0].input[1:]
    onnx.save(model, tmp_path / "odd.onnx")
    refused(run(["diff", tmp_path / "gru.pt", tmp_path / "odd.onnx"]), "odd.onnx", "2 GRU nodes", "not one stack")


@pytest.mark.parametrize("axis, change", [("update rule", {"update_rule": "z_keeps_old"}),
                                          ("candidate activation", {"candidate_activation": "softsign"}),
                                          ("clip", {"clip": 0.5})])
def test_problem_files_differing_in_one_axis(tmp_path, axis, change):
    """The same weights under a convention changed in one axis: diff names that axis and tells B's
    convention to take A's value."""
    from helpers import ROOT

    text = (ROOT / "docs" / "examples" / "course-notes.yaml").read_text()
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yaml").write_text(text.replace("convention: course-notes",
                                                  "convention: " + json.dumps({"preset": "course-notes", **change})))
    data = diff(tmp_path / "a.yaml", tmp_path / "b.yaml", 1)
    assert data["axis"] == axis and f"{next(iter(change))}: " in data["fix"], data

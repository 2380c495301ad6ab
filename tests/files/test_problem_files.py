"""Problem files: user-defined conventions, framework layout files, and every kind of bad input.

Bad input must end in exit status 2 with exactly one line on stderr that names the file and the
field, no traceback, and nothing on stdout.
"""
from __future__ import annotations

import subprocess
import sys
import zipfile
from fractions import Fraction

import numpy as np
import pytest
from helpers import ROOT
from helpers.numpy_gru import gru_reference

from grukit.codegen.cli.main import main
from grukit.derive.cell.layouts import LAYOUTS
from grukit.derive.cell.presets import PRESETS
from grukit.derive.errors import GrukitError
from grukit.derive.files.problem_file import load_problem
from grukit.derive.numeric.solve import solve

HOMEWORK = (ROOT / "docs" / "examples" / "homework.yaml").read_text()

# A small problem under the course-notes names (column vectors, one bias per gate).
SMALL = """\
convention: {convention}
inputs: [[0.5, -1.0], [0.25, 2.0]]
h0: [0.1, -0.2]
weights:
  W_z: [[0.1, 0.2], [0.3, -0.4]]
  W_r: [[-0.5, 0.6], [0.7, 0.8]]
  W_h: [[0.9, -1.0], [1.1, 0.2]]
  U_z: [[0.3, -0.1], [0.2, 0.4]]
  U_r: [[0.5, 0.6], [-0.7, 0.1]]
  U_h: [[0.2, 0.3], [0.4, -0.5]]
  b_z: [0.1, -0.1]
  b_r: [0.0, 0.2]
  b_h: [-0.3, 0.05]
"""


def small_reference(axes):
    w = {
        ("input_weight", "z"): [[0.1, 0.2], [0.3, -0.4]], ("input_weight", "r"): [[-0.5, 0.6], [0.7, 0.8]],
        ("input_weight", "h"): [[0.9, -1.0], [1.1, 0.2]], ("recurrent_weight", "z"): [[0.3, -0.1], [0.2, 0.4]],
        ("recurrent_weight", "r"): [[0.5, 0.6], [-0.7, 0.1]], ("recurrent_weight", "h"): [[0.2, 0.3], [0.4, -0.5]],
        ("input_bias", "z"): [0.1, -0.1], ("input_bias", "r"): [0.0, 0.2], ("input_bias", "h"): [-0.3, 0.05],
    }
    return gru_reference(axes, w, [[0.5, -1.0], [0.25, 2.0]], [0.1, -0.2])


def final_h(path) -> np.ndarray:
    return np.asarray(solve(load_problem(path), "exact").traces[-1].values["h"], dtype=float)


# --- user-defined conventions ------------------------------------------------------------------

INLINE = "{update_rule: z_keeps_old, reset: after, biases: single, orientation: column}"
FROM_PRESET = "{preset: course-notes, update_rule: z_keeps_old, gate_activation: hard_sigmoid_keras3}"


@pytest.mark.parametrize("spec, axes", [
    ("course-notes", dict(update_rule="z_admits_new", reset="before")),
    (INLINE, dict(update_rule="z_keeps_old", reset="after")),
    (FROM_PRESET, dict(update_rule="z_keeps_old", reset="before", gate_activation="hard_sigmoid_keras3")),
])
def test_user_conventions_inline(tmp_path, spec, axes):
    path = tmp_path / "p.yaml"
    path.write_text(SMALL.format(convention=spec))
    full = dict(gate_activation="sigmoid", orientation="column", input_form="separate") | axes
    np.testing.assert_allclose(final_h(path), small_reference(full)[-1]["h"], rtol=0, atol=1e-14)


def test_user_convention_from_file(tmp_path):
    (tmp_path / "conv.yaml").write_text(
        "name: my-gru\ndescription: mine\npreset: course-notes\nreset: after\nupdate_rule: z_keeps_old\n")
    path = tmp_path / "p.yaml"
    path.write_text(SMALL.format(convention="{file: conv.yaml}"))
    problem = load_problem(path)
    assert problem.convention.name == "my-gru" and problem.convention.description == "mine"
    axes = dict(update_rule="z_keeps_old", reset="after", gate_activation="sigmoid", orientation="column",
                input_form="separate")
    np.testing.assert_allclose(final_h(path), small_reference(axes)[-1]["h"], rtol=0, atol=1e-14)


def test_user_convention_with_own_notation(tmp_path):
    spec = "{preset: course-notes, notation: {input_weight_key: 'V_{g}', gate_letters: {z: u, r: r, h: h}}}"
    text = SMALL.format(convention=spec).replace("W_", "V_").replace("V_z", "V_u").replace(
        "U_z", "U_u").replace("b_z", "b_u")
    (tmp_path / "p.yaml").write_text(text)
    axes = dict(update_rule="z_admits_new", reset="before", gate_activation="sigmoid", orientation="column",
                input_form="separate")
    np.testing.assert_allclose(final_h(tmp_path / "p.yaml"), small_reference(axes)[-1]["h"], rtol=0, atol=1e-14)


@pytest.mark.parametrize("spec, field", [
    ("{input_form: concatenated, reset: after}", "reset"),
    ("{input_form: concatenated, biases: double}", "biases"),
    ("{preset: homework, layout: keras}", "layout"),
    ("{reset: sideways}", "reset"),
    ("{gate_order: [z, z, h]}", "gate_order"),
    ("{layout: caffe}", "layout"),
    ("{preset: nonesuch}", "preset"),
    ("{update_rule: z_keeps_old, colour: red}", "colour"),
])
def test_impossible_conventions_are_errors(tmp_path, spec, field):
    path = tmp_path / "p.yaml"
    path.write_text(SMALL.format(convention=spec))
    with pytest.raises(GrukitError) as info:
        load_problem(path)
    assert str(path) in str(info.value) and field in str(info.value)


# --- framework layouts ---------------------------------------------------------------------------

LAYOUT_CASES = [("keras", "keras"), ("keras", "keras-reset-before"), ("pytorch", "pytorch"),
                ("onnx", "onnx"), ("onnx", "onnx-lbr1")]


def random_arrays(layout, conv, inputs, hidden, rng):
    return {name: rng.standard_normal(shape) for name, shape in
            LAYOUTS[layout].array_shapes(conv, inputs, hidden).items()}


@pytest.mark.parametrize("layout, preset", LAYOUT_CASES)
def test_layout_pack_unpack_round_trip(layout, preset):
    conv, lay, rng = PRESETS[preset], LAYOUTS[layout], np.random.default_rng(3)
    arrays = random_arrays(layout, conv, 2, 3, rng)
    params = lay.unpack(conv, arrays)
    assert set(params) == set(conv.parameters())
    for p, v in params.items():
        assert v.shape == conv.param_shape(p, 2, 3)
    packed = lay.pack(conv, params, 2, 3)
    assert set(packed) == set(arrays)
    for name in arrays:
        np.testing.assert_array_equal(packed[name].astype(float), arrays[name])
    again = lay.unpack(conv, packed)
    for p in params:
        np.testing.assert_array_equal(again[p].astype(float), params[p])


def test_layout_blocks_by_hand():
    """Known entries: Keras columns [z|r|h] and bias rows [input, recurrent]; PyTorch rows [r|z|n];
    ONNX B = [Wb_zrh, Rb_zrh]."""
    D, H = 2, 3
    k = np.arange(D * 3 * H).reshape(D, 3 * H)
    rk = np.arange(H * 3 * H).reshape(H, 3 * H) + 100
    b = np.arange(6 * H).reshape(2, 3 * H) + 1000
    conv = PRESETS["keras"]
    unpacked = LAYOUTS["keras"].unpack(conv, dict(kernel=k, recurrent_kernel=rk, bias=b))
    p = {(q.role, q.gate): v for q, v in unpacked.items()}
    np.testing.assert_array_equal(p[("input_weight", "r")], k[:, H:2 * H])
    np.testing.assert_array_equal(p[("recurrent_weight", "h")], rk[:, 2 * H:])
    np.testing.assert_array_equal(p[("input_bias", "z")], b[0, :H])
    np.testing.assert_array_equal(p[("recurrent_bias", "h")], b[1, 2 * H:])

    w_ih = np.arange(3 * H * D).reshape(3 * H, D)
    conv = PRESETS["pytorch"]
    arrays = dict(weight_ih_l0=w_ih, weight_hh_l0=np.zeros((3 * H, H)), bias_ih_l0=np.arange(3 * H),
                  bias_hh_l0=np.arange(3 * H) + 50)
    p = {(q.role, q.gate): v for q, v in LAYOUTS["pytorch"].unpack(conv, arrays).items()}
    np.testing.assert_array_equal(p[("input_weight", "r")], w_ih[:H])
    np.testing.assert_array_equal(p[("input_weight", "z")], w_ih[H:2 * H])
    np.testing.assert_array_equal(p[("recurrent_bias", "z")], np.arange(H, 2 * H) + 50)

    conv = PRESETS["onnx"]
    B = np.arange(6 * H).reshape(1, 6 * H)
    arrays = dict(W=np.zeros((1, 3 * H, D)), R=np.zeros((1, 3 * H, H)), B=B)
    p = {(q.role, q.gate): v for q, v in LAYOUTS["onnx"].unpack(conv, arrays).items()}
    np.testing.assert_array_equal(p[("input_bias", "r")], B[0, H:2 * H])
    np.testing.assert_array_equal(p[("recurrent_bias", "z")], B[0, 3 * H:4 * H])


@pytest.mark.parametrize("layout, preset", LAYOUT_CASES)
@pytest.mark.parametrize("with_h0", [True, False])
def test_layout_files_load(tmp_path, layout, preset, with_h0):
    """Weights in a framework's .npz load under the preset; H comes from h0 or from the arrays."""
    conv, rng = PRESETS[preset], np.random.default_rng(5)
    arrays = random_arrays(layout, conv, 2, 3, rng)
    np.savez(tmp_path / "w.npz", **arrays)
    h0 = "h0: [0.1, 0.2, 0.3]\n" if with_h0 else ""
    (tmp_path / "p.yaml").write_text(
        f"convention: {preset}\ninputs: [[1, 2], [0.5, -1]]\n{h0}weights: {{layout: {layout}, file: w.npz}}\n")
    problem = load_problem(tmp_path / "p.yaml")
    assert problem.hidden_size == 3 and problem.input_size == 2 and problem.layout == layout
    unpacked = LAYOUTS[layout].unpack(conv, arrays)
    for p, v in problem.params.items():
        assert all(isinstance(e, Fraction) for e in v.ravel())
        np.testing.assert_array_equal(v.astype(float), unpacked[p])


# --- malformed problems ------------------------------------------------------------------------

def _npz(path, **arrays):
    np.savez(path, **arrays)


def _keras_ok(d):
    _npz(d / "w.npz", kernel=np.zeros((1, 3)), recurrent_kernel=np.zeros((1, 3)), bias=np.zeros((2, 3)))


def _zip_of_garbage(d):
    with zipfile.ZipFile(d / "w.npz", "w") as z:
        z.writestr("recurrent_kernel.npy", b"garbage")


KERAS_PROBLEM = "convention: keras\ninputs: [[1], [2]]\nweights: {layout: keras, file: w.npz}\n"

# name -> (problem text, set-up of extra files, words the one error line must contain)
MALFORMED = {
    "wrong shape": (HOMEWORK.replace("U_z: [[0.35], [0.6]]", "U_z: [[0.35], [0.6], [0.1]]"), None,
                    ["U_z", "shape"]),
    "wrong h0 length": (HOMEWORK.replace("h0: [0, 0, 0]", "h0: [0, 0]"), None, ["h0", "shape"]),
    "ragged inputs": (HOMEWORK.replace("- [0.48, 0.98]", "- [0.48]"), None, ["inputs"]),
    "unknown convention": (HOMEWORK.replace("convention: homework", "convention: homewrk"), None,
                           ["convention", "homewrk"]),
    "nan": (HOMEWORK.replace("0.35", ".nan"), None, ["U_z", "finite"]),
    "inf": (HOMEWORK.replace("0.35", "-.inf"), None, ["U_z", "finite"]),
    "text for a number": (HOMEWORK.replace("0.35", "zero point three five"), None, ["U_z", "number"]),
    "text in inputs": (HOMEWORK.replace("[0.23, 0.12]", "[0.23, x]"), None, ["inputs", "number"]),
    "boolean": (HOMEWORK.replace("0.35", "yes"), None, ["U_z", "number"]),
    "unknown key": (HOMEWORK + "colour: red\n", None, ["colour", "unknown key"]),
    "unknown weight": (HOMEWORK + "  V_z: [[1]]\n", None, ["V_z", "unknown weight"]),
    "missing weight": (HOMEWORK.replace("  U_z: [[0.35], [0.6]]\n", ""), None, ["U_z", "missing"]),
    "misspelt inputs": (HOMEWORK.replace("inputs:", "inputz:"), None, ["inputz"]),
    "missing inputs": (HOMEWORK.replace("inputs:\n  - [0.23, 0.12]\n  - [0.48, 0.98]\n", ""), None,
                       ["inputs", "missing"]),
    "bad yaml": (HOMEWORK + "weights: [\n", None, ["YAML", "line"]),
    "not a mapping": ("- just\n- a list\n", None, ["expected a mapping"]),
    "missing convention file": (HOMEWORK.replace("convention: homework", "convention: {file: nope.yaml}"),
                                None, ["nope.yaml", "cannot read"]),
    "bad convention file": (HOMEWORK.replace("convention: homework", "convention: {file: conv.yaml}"),
                            lambda d: (d / "conv.yaml").write_text("preset: homework\nreset: sideways\n"),
                            ["conv.yaml", "reset"]),
    "missing npz": (KERAS_PROBLEM, None, ["w.npz", "file"]),
    "npz is not an archive": (KERAS_PROBLEM, lambda d: (d / "w.npz").write_bytes(b"not a zip"),
                              ["w.npz", "not an .npz archive"]),
    "npz is a single .npy": (KERAS_PROBLEM + "h0: [0]\n", lambda d: np.save(open(d / "w.npz", "wb"), np.zeros(3)),
                             ["w.npz", "not an .npz archive"]),
    "npz member is not .npy": (KERAS_PROBLEM, _zip_of_garbage, ["w.npz", "recurrent_kernel"]),
    "npz holds pickles": (KERAS_PROBLEM, lambda d: _npz(d / "w.npz", kernel=np.array([[1, "a", None]], dtype=object),
                                                        recurrent_kernel=np.zeros((1, 3)), bias=np.zeros((2, 3))),
                          ["w.npz", "cannot read"]),
    "layout file missing": (KERAS_PROBLEM.replace(", file: w.npz", ""), None, ["weights.file", "missing"]),
    "npz is a directory": (KERAS_PROBLEM.replace("file: w.npz", "file: sub"), lambda d: (d / "sub").mkdir(),
                           ["weights.file", "sub"]),
    "npz wrong shape": (KERAS_PROBLEM, lambda d: _npz(d / "w.npz", kernel=np.zeros((1, 6)),
                                                      recurrent_kernel=np.zeros((1, 3)), bias=np.zeros((2, 3))),
                        ["w.npz", "kernel", "shape"]),
    "npz bias of the other kind": (KERAS_PROBLEM, lambda d: _npz(d / "w.npz", kernel=np.zeros((1, 3)),
                                                                 recurrent_kernel=np.zeros((1, 3)), bias=np.zeros(3)),
                                   ["w.npz", "bias", "shape"]),
    "npz missing array": (KERAS_PROBLEM, lambda d: _npz(d / "w.npz", kernel=np.zeros((1, 3)),
                                                        recurrent_kernel=np.zeros((1, 3))), ["w.npz", "bias"]),
    "npz extra array": (KERAS_PROBLEM, lambda d: _npz(d / "w.npz", kernel=np.zeros((1, 3)),
                                                      recurrent_kernel=np.zeros((1, 3)), bias=np.zeros((2, 3)),
                                                      gamma=np.zeros(3)), ["w.npz", "gamma"]),
    "npz nan": (KERAS_PROBLEM, lambda d: _npz(d / "w.npz", kernel=np.full((1, 3), np.nan),
                                              recurrent_kernel=np.zeros((1, 3)), bias=np.zeros((2, 3))),
                ["w.npz", "kernel", "finite"]),
    "npz text array": (KERAS_PROBLEM, lambda d: _npz(d / "w.npz", kernel=np.array([["a", "b", "c"]]),
                                                     recurrent_kernel=np.zeros((1, 3)), bias=np.zeros((2, 3))),
                       ["w.npz", "kernel"]),
    "unknown layout": (KERAS_PROBLEM.replace("layout: keras", "layout: caffe"), _keras_ok, ["layout", "caffe"]),
    "layout cannot hold the convention": (
        KERAS_PROBLEM.replace("convention: keras", "convention: course-notes")
        .replace("layout: keras", "layout: pytorch"),
        lambda d: _npz(d / "w.npz", weight_ih_l0=np.zeros((3, 1)), weight_hh_l0=np.zeros((3, 1)),
                       bias_ih_l0=np.zeros(3), bias_hh_l0=np.zeros(3)),
        ["layout", "biases"]),
}


def run_main(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_problem(tmp_path, capsys, case):
    text, setup, words = MALFORMED[case]
    path = tmp_path / "problem.yaml"
    path.write_text(text)
    if setup:
        setup(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    for command in ("forward", "grad"):
        code, out, err = run_main([command, str(path), "--json"], capsys)
        assert code == 2, (case, command)
        assert out == ""
        lines = err.splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith("grukit: error: ") and "Traceback" not in err
        # The file is named (the problem, or the .npz / convention file it points to).
        assert str(tmp_path) in lines[0], lines[0]
        for word in words:
            assert word in lines[0], (word, lines[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_missing_problem_file(tmp_path, capsys):
    code, out, err = run_main(["forward", str(tmp_path / "absent.yaml")], capsys)
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert "absent.yaml" in err and "cannot read" in err


@pytest.mark.parametrize("case", ["nan", "npz is not an archive"])
def test_malformed_problem_in_a_subprocess(tmp_path, case):
    """The real process: exit status 2, one stderr line, no traceback, no stdout."""
    text, setup, _ = MALFORMED[case]
    (tmp_path / "problem.yaml").write_text(text)
    if setup:
        setup(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "grukit.codegen.cli", "forward", "problem.yaml", "--json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr
    assert "problem.yaml" in proc.stderr or "w.npz" in proc.stderr


def test_bound_gate_order_reads_blocks_saved_in_another_order(tmp_path):
    """A Keras file saved in cuDNN block order [r|z|h] reads right under {preset: keras, gate_order: [r, z, h]}.

    Independent check: the same weights in Keras's own [z|r|h] order under the plain preset.
    """
    rng = np.random.default_rng(7)
    D, H = 2, 3
    kernel, rec = rng.normal(size=(D, 3 * H)), rng.normal(size=(H, 3 * H))
    bias = rng.normal(size=(2, 3 * H))

    def cudnn(a):  # swap the z and r column blocks
        z, r, h = np.split(a, 3, axis=-1)
        return np.concatenate([r, z, h], axis=-1)

    np.savez(tmp_path / "native.npz", kernel=kernel, recurrent_kernel=rec, bias=bias)
    np.savez(tmp_path / "cudnn.npz", kernel=cudnn(kernel), recurrent_kernel=cudnn(rec), bias=cudnn(bias))
    outs = []
    for conv, file in (("keras", "native.npz"), ("{preset: keras, gate_order: [r, z, h]}", "cudnn.npz")):
        path = tmp_path / f"{file}.yaml"
        path.write_text(f"convention: {conv}\ninputs: [[0.5, -1.0], [0.25, 2.0]]\n"
                        f"weights: {{layout: keras, file: {file}}}\n")
        sol = solve(load_problem(path), "numpy")
        outs.append(np.array([tr.values["h"] for tr in sol.traces]))
    np.testing.assert_allclose(outs[1], outs[0], rtol=0, atol=1e-15)


def test_convention_file_errors_name_the_file_and_axis(tmp_path):
    (tmp_path / "conv.yaml").write_text("preset: course-notes\nreset: sideways\n")
    path = tmp_path / "problem.yaml"
    path.write_text(SMALL.format(convention="{file: conv.yaml}"))
    with pytest.raises(GrukitError, match=r"conv\.yaml: reset: unknown value 'sideways'"):
        load_problem(path)

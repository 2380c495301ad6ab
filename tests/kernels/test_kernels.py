"""The generated Numba kernels (generated/, from codegen/kernels/emit.py), imported and run on numbers.

* The committed modules are exactly what the emitter writes (byte for byte, in any process; never
  skipped: generation is checked against the SymPy that the ``test`` extra pins) and import nothing
  but numpy, numba and math; they define only the helpers their code calls and keep PEP 8's blank
  lines and 120-character lines.
* Every preset, float64: forward states and every gradient (BPTT) agree with the numpy engine
  (grukit's direct evaluation of the same stage list) to 1e-12 relative, for random sizes (T up to
  50, B up to 8, D or H = 1 included), and with central finite differences of the kernels' own loss.
* Every preset, float32 (rational tanh/sigmoid): the same comparisons to float32 accuracy.
* Pre-activations of +-1e4 stay finite and agree; the state carried across two calls equals one
  call over the joined sequence (forward and backward); bad input is a one-line error.

Compiling: each convention/dtype compiles once per session (``kernels.load`` is cached) and Numba
caches the machine code in generated/__pycache__ between sessions. Sizes stay small here; the
large sizes run only in ``grukit bench``.
"""
from __future__ import annotations

import ast
import io
import json
import os
import re
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT
from helpers.random_problems import RESET_FREE
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from grukit import kernels
from grukit.codegen.cli.main import main
from grukit.codegen.kernels import emit as kernel_emit
from grukit.derive.cell.equations import cell_equations
from grukit.derive.cell.layouts import LAYOUTS
from grukit.derive.cell.losses import LossHead
from grukit.derive.cell.presets import PRESETS
from grukit.derive.errors import GrukitError
from grukit.derive.numeric.bptt import backward
from grukit.derive.numeric.evaluate import engine, forward

EXAMPLES = ROOT / "docs" / "examples"
NAMES = list(PRESETS)
DTYPES = ("float64", "float32")
TOL = {"float64": 1e-12, "float32": 2e-4}
"""Normwise relative agreement with the numpy engine: max |kernel - engine| / max |engine|."""
SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


# --- helpers ---------------------------------------------------------------------------------------

def case(conv, B, T, D, H, seed, dtype="float64", scale=1.0):
    """Weights under the convention's names, x (B, T, D), h0 (B, H), dh (B, T, H), in ``dtype``."""
    rng = np.random.default_rng(seed)
    w = {conv.key(p): rng.uniform(-1, 1, conv.param_shape(p, D, H)).astype(dtype) for p in conv.parameters()}
    x = (scale * rng.uniform(-1, 1, (B, T, D))).astype(dtype)
    h0 = rng.uniform(-1, 1, (B, H)).astype(dtype)
    dh = rng.uniform(-1, 1, (B, T, H)).astype(dtype)
    return w, x, h0, dh


def reference(conv, w, x, h0, dh):
    """The numpy engine, one batch row at a time: states (B, T, H) and the gradients of sum dh . h."""
    eng = engine("numpy")
    eqs = cell_equations(conv)
    params = {p: np.asarray(w[conv.key(p)], dtype=float) for p in conv.parameters()}
    B, T, _ = x.shape
    states, grads = [], {conv.key(p): 0.0 for p in conv.parameters()}
    d_inputs, d_h0 = [], []
    for b in range(B):
        traces = forward(eqs, params, np.asarray(x[b], float), np.asarray(h0[b], float), eng)
        states.append([tr.values["h"] for tr in traces])
        head = LossHead("weighted_sum", tuple(range(T)), tuple(np.asarray(dh[b], float)))
        g = backward(conv, params, traces, head, eng)
        for p in conv.parameters():
            grads[conv.key(p)] = grads[conv.key(p)] + g.params[p]
        d_inputs.append(g.inputs)
        d_h0.append(g.h0)
    grads["inputs"] = np.array(d_inputs)
    grads["h0"] = np.array(d_h0)
    return np.array(states), grads


def rel(got, want, floor=1e-30) -> float:
    """max |got - want| / max |want| (an absolute difference where every |want| is below ``floor``)."""
    got, want = np.asarray(got, float), np.asarray(want, float)
    assert got.shape == want.shape
    return float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), floor))


def check_against_engine(name, dtype, B, T, D, H, seed, arrays=None, floor=1e-30):
    conv = PRESETS[name]
    k = kernels.load(name, dtype)
    w, x, h0, dh = arrays or case(conv, B, T, D, H, seed, dtype)
    fwd = k.forward(x, h0, w)
    grads = k.backward(fwd, dh)
    states, want = reference(conv, w, x, h0, dh)
    tol = TOL[dtype]
    assert rel(fwd.h, states) < tol
    assert set(grads) == set(want)
    worst = {key: rel(grads[key], want[key], floor) for key in want}
    assert max(worst.values()) < tol, worst
    return fwd, grads


# --- the generated files -----------------------------------------------------------------------------

def _generated_files():
    return sorted(p for p in (ROOT / "generated").glob("gru_*.py"))


def test_every_preset_has_both_modules():
    names = {p.name for p in _generated_files()}
    assert names == {kernel_emit.module_name(c, d) + ".py" for c in PRESETS.values() for d in DTYPES}


@pytest.mark.parametrize("path", _generated_files(), ids=lambda p: p.stem)
def test_generated_modules_import_only_numpy_numba_math(path):
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or ".").split(".")[0])
    assert imported <= {"numpy", "numba", "math", "llvmlite", "operator", "sys"}, imported
    assert path.read_text().startswith("# Generated by grukit.codegen.kernels.emit from codegen/templates/kernel.py.j2")


@pytest.mark.parametrize("path", _generated_files(), ids=lambda p: p.stem)
def test_generated_modules_define_only_the_helpers_they_call(path):
    """``_where``, ``_sigmoid``, ``_tanh`` (and ``_exp_parts``) are defined where the module's own
    code calls them, nowhere else; the header names no SymPy version (the check does not depend on it)."""
    text = path.read_text()
    tree = ast.parse(text)
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    helpers = {"_where", "_sigmoid", "_tanh", "_exp_parts"}
    assert defined & helpers == called & helpers
    assert "SymPy" not in text.split('"""')[0]


@pytest.mark.parametrize("path", _generated_files(), ids=lambda p: p.stem)
def test_generated_modules_keep_pep8_blank_lines_and_line_length(path):
    """Two blank lines before every top-level definition or section comment, never more; one after
    a section comment; no line over 120 characters, no trailing whitespace."""
    lines = path.read_text().split("\n")
    assert lines[-1] == "" and lines[-2] != ""
    for i, line in enumerate(lines):
        assert len(line) <= 120 and line == line.rstrip(), (i + 1, line)
        if line.startswith(("def ", "class ", "@numba")) and not lines[i - 1].startswith("@"):
            start = i - 2 if lines[i - 1] == "" and lines[i - 2].startswith("# ---") else i
            assert lines[start - 3:start] == [lines[start - 3], "", ""] and lines[start - 3] != "", (i + 1, line)
        if line.startswith("# ---"):
            assert lines[i - 3] != "" and lines[i - 2:i] == ["", ""] and lines[i + 1] == "", (i + 1, line)
    blank_runs = re.findall(r"\n\n\n\n+", "\n".join(lines))
    assert not blank_runs, f"{len(blank_runs)} runs of three or more blank lines"


def test_codegen_check_passes():
    """`grukit codegen --all --check`: the committed modules are what the emitter writes now."""
    out = io.StringIO()
    with redirect_stdout(out):
        status = main(["codegen", "--all", "--check"])
    assert status == 0, out.getvalue()[:3000]


def test_regenerating_in_another_process_gives_the_same_bytes(tmp_path):
    """A fresh interpreter with another hash seed (set and dict orders) writes identical files."""
    env = dict(os.environ, PYTHONHASHSEED="12345")
    subprocess.run([sys.executable, "-m", "grukit.codegen.cli", "codegen", "--all", "--output", str(tmp_path)],
                   check=True, env=env, capture_output=True)
    for path in _generated_files():
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name


def test_codegen_check_reports_a_difference_as_a_diff(tmp_path, capsys):
    assert main(["codegen", "--convention", "homework", "--output", str(tmp_path)]) == 0
    assert main(["codegen", "--convention", "homework", "--output", str(tmp_path), "--check"]) == 0
    target = tmp_path / "gru_homework_float64.py"
    target.write_text(target.read_text().replace("v_z*", "v_z *", 1))
    capsys.readouterr()
    assert main(["codegen", "--convention", "homework", "--output", str(tmp_path), "--check"]) == 1
    out = capsys.readouterr()
    assert "--- " in out.out and "+++ " in out.out and "@@" in out.out
    assert "gru_homework_float64.py" in out.out and "codegen --update" in out.err
    assert main(["codegen", "--convention", "homework", "--output", str(tmp_path), "--update"]) == 0
    assert main(["codegen", "--convention", "homework", "--output", str(tmp_path), "--check"]) == 0


def test_the_emitter_derives_nothing():
    """The emitter walks the records; sympy.diff is called by the derivation only."""
    for module in ("emit.py", "lowering.py", "printer.py"):
        assert "diff(" not in (ROOT / "codegen" / "kernels" / module).read_text().replace("difflib", "").replace(
            "unified_diff(", ""), module


# --- float64: the numpy engine, finite differences -----------------------------------------------------

sizes = dict(B=st.integers(1, 8), T=st.integers(1, 50), D=st.integers(1, 5), H=st.integers(1, 5),
             seed=st.integers(0, 2**31))


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=5, **SETTINGS)
@given(**sizes)
@example(B=8, T=50, D=1, H=1, seed=0)
@example(B=1, T=1, D=3, H=1, seed=1)
@example(B=3, T=7, D=1, H=4, seed=2)
def test_float64_kernels_agree_with_the_numpy_engine(name, B, T, D, H, seed):
    check_against_engine(name, "float64", B, T, D, H, seed)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=2, **SETTINGS)
@given(**sizes)
@example(B=4, T=20, D=3, H=5, seed=3)
def test_float32_kernels_agree_with_the_numpy_engine(name, B, T, D, H, seed):
    check_against_engine(name, "float32", B, T, D, H, seed)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_vector_loops_agree_with_the_numpy_engine(name, dtype):
    """Sizes past the vector width (16 float32 or 8 float64 lanes with AVX-512, half with AVX2): H
    a multiple of it, H with a last partial vector and H with several unit blocks, batches of 4-row
    tiles and a remainder; the hypothesis sizes above (H <= 5) run only the scalar remainder loops."""
    for seed, (B, T, D, H) in enumerate([(5, 3, 2, 16), (6, 3, 3, 37), (9, 2, 2, 70)]):
        check_against_engine(name, dtype, B, T, D, H, seed)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["pytorch", "onnx", "keras"])
def test_unit_blocks_in_parallel_give_the_same_numbers(name, dtype, monkeypatch):
    """The unit blocks of a step on Numba's threads or one after the other: every unit is computed
    by the same code either way, so every number is the same, bit for bit."""
    conv = PRESETS[name]
    k = kernels.load(name, dtype)
    w, x, h0, dh = case(conv, 9, 4, 3, 70, seed=5, dtype=dtype)
    results = []
    monkeypatch.setattr(k.module, "_chunks", lambda B, panels: 1)
    for threads in (False, True):
        monkeypatch.setattr(k.module, "_threads", lambda B, H, threads=threads: threads)
        fwd = k.forward(x, h0, w)
        results.append((fwd.h.copy(), k.backward(fwd, dh)))
    (h1, g1), (h2, g2) = results
    assert np.array_equal(h1, h2)
    assert all(np.array_equal(g1[key], g2[key]) for key in g1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["pytorch", "keras-reset-before"])
def test_chunks_of_rows_give_the_same_numbers(name, dtype, monkeypatch):
    """The batch in 1, 2 or 3 chunks of rows, each on its own thread: a row's states are computed by
    the same code either way (bit for bit); the weight gradients are summed chunk by chunk (equal to
    rounding). Each split is also checked against the NumPy engine."""
    conv = PRESETS[name]
    k = kernels.load(name, dtype)
    w, x, h0, dh = case(conv, 6, 5, 3, 37, seed=6, dtype=dtype)
    results = []
    for chunks in (1, 2, 3):
        monkeypatch.setattr(k.module, "_chunks", lambda B, panels, chunks=chunks: chunks)
        fwd = k.forward(x, h0, w)
        assert fwd.states.shape == (6, 6, 37) and fwd.h_last.shape == (6, 37)
        assert np.array_equal(fwd.states[1:].transpose(1, 0, 2), fwd.h)
        results.append((fwd.h.copy(), fwd.value("z").copy(), k.backward(fwd, dh)))
        check_against_engine(name, dtype, 6, 4, 3, 37, seed=chunks)
    (h1, z1, g1), *others = results
    for h, z, g in others:
        assert np.array_equal(h1, h) and np.array_equal(z1, z)
        assert max(rel(g[key], g1[key]) for key in g1) < TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_pass_keeps_its_arrays_while_others_run(dtype):
    """The big arrays of a pass come from an arena that a later call reuses only once no array of it
    is alive: a forward pass (and its gradients) kept by the caller never change under later calls."""
    conv = PRESETS["pytorch"]
    k = kernels.load("pytorch", dtype)
    (w, x1, h0, dh), (_, x2, _, _) = (case(conv, 8, 64, 16, 40, seed, dtype) for seed in (1, 2))
    first = k.forward(x1, h0, w)
    states = first.h.copy()
    grads = k.backward(first, dh)
    kept = {key: value.copy() for key, value in grads.items()}
    for _ in range(3):  # each call's arrays dropped at once, then reused by the next
        k.backward(k.forward(x2, h0, w), dh)
    second = k.forward(x2, h0, w)
    assert np.array_equal(first.h, states) and not np.array_equal(second.h, states)
    assert all(np.array_equal(grads[key], kept[key]) for key in kept)
    del first
    again = k.forward(x1, h0, w)
    assert np.array_equal(again.h, states)
    assert all(np.array_equal(value, kept[key]) for key, value in k.backward(again, dh).items())


@pytest.mark.parametrize("name", NAMES)
def test_float64_gradients_agree_with_central_differences(name):
    conv = PRESETS[name]
    k = kernels.load(name, "float64")
    w, x, h0, dh = case(conv, B=2, T=4, D=3, H=3, seed=11)
    grads = k.backward(k.forward(x, h0, w), dh)

    def loss(w_, x_, h0_):
        return float(np.sum(k.forward(x_, h0_, w_, save=False).h * dh))

    rng = np.random.default_rng(0)
    eps = 1e-6
    arrays = dict(w, inputs=x, h0=h0)
    for key, value in arrays.items():
        for flat in rng.choice(value.size, size=min(4, value.size), replace=False):
            idx = np.unravel_index(flat, value.shape)
            shifted = []
            for sign in (1, -1):
                changed = {n: v.copy() for n, v in arrays.items()}
                changed[key][idx] += sign * eps
                shifted.append(loss({n: changed[n] for n in w}, changed["inputs"], changed["h0"]))
            fd = (shifted[0] - shifted[1]) / (2 * eps)
            assert abs(fd - grads[key][idx]) <= 1e-6 * max(1.0, abs(fd)), (key, idx, fd, grads[key][idx])


# --- numerics at the edges ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_preactivations_of_1e4_stay_finite_and_agree(name, dtype):
    """Inputs of size 1e4 drive every pre-activation to +-1e4 and beyond. Saturated gates pass
    (almost) no gradient: an entry whose true value is ~1e-20 is compared absolutely (floor 1)."""
    conv = PRESETS[name]
    arrays = case(conv, B=2, T=6, D=2, H=3, seed=5, dtype=dtype, scale=1e4)
    arrays[1][0, 0] = 1e4
    arrays[1][1, 0] = -1e4
    fwd, grads = check_against_engine(name, dtype, 2, 6, 2, 3, 5, arrays, floor=1.0)
    assert np.all(np.isfinite(fwd.h)) and all(np.all(np.isfinite(g)) for g in grads.values())
    for q in ("z", "r"):
        assert np.all((fwd.value(q) >= 0) & (fwd.value(q) <= 1))


def _on_grid(f, a):
    import numba

    @numba.njit
    def apply(fn, values, out):
        for i in range(values.shape[0]):
            out[i] = fn(values[i])

    out = np.empty_like(a)
    apply(f, a, out)
    return out


def test_activation_accuracy():
    """float32: |rational tanh/sigmoid - float64 exact| <= 1e-6 over [-1e4, 1e4] (docs/kernels.md states
    the measured bound); float64: a few ulps, relative, far into both tails."""
    m32 = kernels.load("pytorch", "float32").module
    m64 = kernels.load("pytorch", "float64").module
    a = np.concatenate([np.linspace(-20, 20, 200001), np.geomspace(1e-6, 1e4, 2001), -np.geomspace(1e-6, 1e4, 2001),
                        [0.0, -18.0, 18.0, 7.90531110763549805, 1e4, -1e4]])
    exact_tanh = np.tanh(a)
    exact_sigmoid = np.where(a >= 0, 1 / (1 + np.exp(-np.abs(a))), np.exp(-np.abs(a)) / (1 + np.exp(-np.abs(a))))
    a32 = a.astype(np.float32)
    t32 = np.tanh(a32.astype(float))
    s32 = 0.5 + 0.5 * np.tanh(0.5 * a32.astype(float))
    assert np.max(np.abs(_on_grid(m32._tanh, a32) - t32)) < 1e-6
    assert np.max(np.abs(_on_grid(m32._sigmoid, a32) - s32)) < 1e-6
    assert np.max(np.abs(_on_grid(m64._tanh, a) - exact_tanh)) < 4e-16
    tails = np.array([-700.0, -300.0, -40.0, -18.0, 18.0, 40.0])
    want = np.where(tails >= 0, 1 / (1 + np.exp(-tails)), np.exp(tails) / (1 + np.exp(tails)))
    assert np.max(np.abs(_on_grid(m64._sigmoid, tails) / want - 1)) < 4e-16
    assert np.max(np.abs(_on_grid(m64._sigmoid, a) - exact_sigmoid)) < 4e-16


# --- state across calls, inference, the API --------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["pytorch", "homework", "colah", "keras2"])
def test_state_carried_across_two_calls_equals_one_call(name, dtype):
    conv = PRESETS[name]
    k = kernels.load(name, dtype)
    w, x, h0, dh = case(conv, B=3, T=9, D=2, H=4, seed=7, dtype=dtype)
    whole = k.forward(x, h0, w)
    first = k.forward(np.ascontiguousarray(x[:, :4]), h0, w)
    second = k.forward(np.ascontiguousarray(x[:, 4:]), np.ascontiguousarray(first.h_last), w)
    tol = TOL[dtype]
    assert rel(np.concatenate([first.h, second.h], axis=1), whole.h) < tol
    # truncated BPTT, chained: the second chunk's dL/dh0 is added to the first chunk's last dh
    g_whole = k.backward(whole, dh)
    g_second = k.backward(second, np.ascontiguousarray(dh[:, 4:]))
    dh_first = np.ascontiguousarray(dh[:, :4]).copy()
    dh_first[:, -1] += g_second["h0"]
    g_first = k.backward(first, dh_first)
    assert rel(g_first["h0"], g_whole["h0"]) < tol
    assert rel(np.concatenate([g_first["inputs"], g_second["inputs"]], axis=1), g_whole["inputs"]) < tol
    for key in w:
        assert rel(g_first[key] + g_second[key], g_whole[key]) < tol, key


@pytest.mark.parametrize("dtype", DTYPES)
def test_inference_forward_gives_the_same_states(dtype):
    conv = PRESETS["onnx"]
    k = kernels.load("onnx", dtype)
    w, x, h0, dh = case(conv, B=2, T=5, D=3, H=4, seed=3, dtype=dtype)
    train, infer = k.forward(x, h0, w), k.forward(x, h0, w, save=False)
    assert np.array_equal(train.h, infer.h)
    with pytest.raises(GrukitError, match="save=False"):
        k.backward(infer, dh)


def test_weights_packed_once_can_be_reused():
    conv = PRESETS["keras"]
    k = kernels.load("keras", "float32")
    w, x, h0, dh = case(conv, B=2, T=5, D=3, H=4, seed=3, dtype="float32")
    packed = k.pack(w, 3, 4)
    assert np.array_equal(k.forward(x, h0, packed).h, k.forward(x, h0, w).h)
    with pytest.raises(GrukitError, match="packed for D=3, H=4"):
        k.forward(x[:, :, :2].copy(), h0, packed)


@pytest.mark.parametrize("name", [n for n in NAMES if PRESETS[n].layout is not None])
def test_framework_arrays_in_and_out(name):
    """Weights given as the framework's arrays (as problem files and `grad --json` name them) give the
    same states, and the gradients come back in the same arrays, packed as the layout packs them."""
    conv = PRESETS[name]
    layout = LAYOUTS[conv.layout]
    k = kernels.load(name, "float64")
    w, x, h0, dh = case(conv, B=2, T=4, D=3, H=2, seed=9)
    params = {p: w[conv.key(p)] for p in conv.parameters()}
    arrays = {n: np.asarray(v, dtype=float) for n, v in layout.pack(conv, params, 3, 2).items()}
    by_names = k.backward(k.forward(x, h0, w), dh)
    by_arrays = k.backward(k.forward(x, h0, arrays), dh)
    assert set(by_arrays) == set(arrays) | {"inputs", "h0"}
    want = layout.pack(conv, {p: by_names[conv.key(p)] for p in conv.parameters()}, 3, 2)
    for n in arrays:
        assert by_arrays[n].shape == arrays[n].shape and by_arrays[n].dtype == np.float64
        assert np.array_equal(by_arrays[n], np.asarray(want[n], dtype=float)), n
    assert np.array_equal(by_arrays["inputs"], by_names["inputs"])


def test_bad_input_is_a_one_line_error():
    conv = PRESETS["pytorch"]
    k = kernels.load("pytorch", "float32")
    w, x, h0, dh = case(conv, B=2, T=3, D=4, H=5, seed=1, dtype="float32")
    fwd = k.forward(x, h0, w)
    bad = [
        (lambda: k.forward(x.astype(np.float64), h0, w), "x: expected dtype float32, got float64"),
        (lambda: k.forward(x[0], h0, w), "x: expected 3 axes"),
        (lambda: k.forward(np.asfortranarray(x), h0, w), "x: must be C-contiguous"),
        (lambda: k.forward(x, h0[:1], w), "h0: expected 2 rows"),
        (lambda: k.forward(x, h0, {**w, "W_hz": w["W_hz"][:, :2]}), r"weights\['W_hz'\]: expected shape \(5, 5\)"),
        (lambda: k.forward(x, h0, {**w, "W_hz": w["W_hz"].astype(np.float64)}), "W_hz.*dtype float32"),
        (lambda: k.forward(x, h0, {**w, "W_xx": w["W_hz"]}), "unknown name 'W_xx'"),
        (lambda: k.forward(x, h0, {k_: v for k_, v in w.items() if k_ != "b_hn"}), "missing 'b_hn'"),
        (lambda: k.forward(x, h0, {"weight_ih_l0": np.zeros((15, 4), np.float32)}), "missing 'weight_hh_l0'"),
        (lambda: k.backward(fwd, dh[:, :2].copy()), r"dh: expected shape \(2, 3, 5\)"),
        (lambda: k.backward("fwd", dh), "fwd: expected the result of forward"),
        (lambda: kernels.load("gru"), "unknown preset 'gru'"),
        (lambda: kernels.load("pytorch", "float16"), "dtype: expected one of float32, float64"),
    ]
    for call, message in bad:
        with pytest.raises(GrukitError, match=message) as info:
            call()
        assert "\n" not in str(info.value)


def test_a_convention_that_is_no_preset_is_rendered_into_the_cache(tmp_path, monkeypatch):
    """Hard sigmoids, scalar gates with biases, a linear candidate: conventions like the others."""
    monkeypatch.setenv("GRUKIT_KERNEL_CACHE", str(tmp_path))
    custom = PRESETS["homework"].with_changes(name="scalar-hard", biases="double", reset="after",
                                              gate_activation="hard_sigmoid_keras3", candidate_activation="linear")
    k = kernels.load(custom, "float64")
    assert Path(k.module.__file__).parent == tmp_path
    w, x, h0, dh = case(custom, B=3, T=6, D=2, H=3, seed=4)
    fwd = k.forward(x, h0, w)
    grads = k.backward(fwd, dh)
    states, want = reference(custom, w, x, h0, dh)
    assert rel(fwd.h, states) < 1e-12
    assert max(rel(grads[key], want[key]) for key in want) < 1e-12


@pytest.mark.parametrize("name", list(RESET_FREE))
def test_a_convention_without_a_reset_gate_is_rendered_into_the_cache(tmp_path, monkeypatch, name):
    """``reset: none`` (r = 1): the emitter lowers the stages it has, nothing of a reset gate."""
    monkeypatch.setenv("GRUKIT_KERNEL_CACHE", str(tmp_path))
    conv = RESET_FREE[name]
    k = kernels.load(conv, "float64")
    source = Path(k.module.__file__).read_text()
    assert "a_r" not in source and "W_r" not in source
    w, x, h0, dh = case(conv, B=3, T=5, D=2, H=3, seed=6)
    fwd = k.forward(x, h0, w)
    grads = k.backward(fwd, dh)
    states, want = reference(conv, w, x, h0, dh)
    assert rel(fwd.h, states) < 1e-12
    assert set(grads) == set(want) and max(rel(grads[key], want[key]) for key in want) < 1e-12


# --- the command line -----------------------------------------------------------------------------

def _json(argv):
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(argv) == 0
    return json.loads(out.getvalue())


def _flat(value, prefix=""):
    if isinstance(value, dict):
        for key, v in value.items():
            yield from _flat(v, f"{prefix}/{key}")
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        for i, v in enumerate(value):
            yield from _flat(v, f"{prefix}/{i}")
    else:
        yield prefix, value


def _agree(a, b, tol):
    fa, fb = dict(_flat(a)), dict(_flat(b))
    assert fa.keys() == fb.keys()
    for key in fa:
        if isinstance(fa[key], str):
            assert fa[key] == fb[key]
        else:
            assert rel(fa[key], fb[key]) < tol, key


@pytest.mark.parametrize("example", ["homework.yaml", "keras-layout.yaml", "course-notes.yaml", "blog-bptt.yaml"])
def test_cli_numba_engine_prints_what_the_numpy_engine_prints(example):
    path = str(EXAMPLES / example)
    _agree(_json(["forward", path, "--engine", "numba", "--json"]),
           _json(["forward", path, "--engine", "numpy", "--json"]), 1e-12)
    if example != "homework.yaml":
        _agree(_json(["grad", path, "--engine", "numba", "--json"]),
               _json(["grad", path, "--engine", "numpy", "--json"]), 1e-12)


def test_cli_numba_engine_agrees_with_the_exact_engine():
    path = str(EXAMPLES / "course-notes.yaml")
    _agree(_json(["grad", path, "--engine", "numba", "--json"]), _json(["grad", path, "--engine", "exact", "--json"]),
           1e-12)


# --- the benchmark report ---------------------------------------------------------------------------

def test_benchmark_report_is_what_the_bench_writes_from_its_results(tmp_path):
    """docs/benchmarks.md is rendered from docs/benchmarks.json (the run's raw numbers) by the same
    code `grukit bench` ends with: every target row is there, met or not."""
    from grukit.codegen.bench import report as bench_report

    result = json.loads((ROOT / "docs" / "benchmarks.json").read_text())
    text = bench_report.markdown(result, "benchmarks.png")
    assert text == (ROOT / "docs" / "benchmarks.md").read_text()
    assert len(result["targets"]) == len(bench_report.TARGETS)
    for target in result["targets"]:
        assert target["target"] in text
    assert bench_report.evaluate_targets(result) == result["targets"]

"""Worked solution sheets: content, rounding, determinism, output formats, errors and speed.

Every number is checked against a value known independently of the code under test: the values
printed in the seeds (course notes 001, homework 004), a plain NumPy GRU with central finite
differences written out below, or a hand calculation with Python's Decimal.
"""
from __future__ import annotations

import math
import re
import time
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import numpy as np
import pytest
import yaml
from helpers import ROOT
from helpers.random_problems import RESET_FREE, problem_yaml, random_problem

from grukit.codegen import output as output_module
from grukit.codegen.cli.main import main
from grukit.codegen.output import write_atomic
from grukit.codegen.sheets import sheet as sheet_module
from grukit.codegen.sheets.instructor import problem_text
from grukit.codegen.sheets.numbers import format_number
from grukit.codegen.sheets.sheet import build_sheet, builtin_example
from grukit.derive.cell.presets import PRESETS
from grukit.derive.errors import GrukitError
from grukit.derive.files.problem_file import load_problem, problem_from_mapping

EXAMPLES = ROOT / "docs" / "examples"
COURSE = EXAMPLES / "course-notes.yaml"
HOMEWORK = EXAMPLES / "homework.yaml"


# --- an independent reference: seed 001's GRU in plain NumPy ---------------------------------------

def _sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def course_notes_loss(P: dict, x: np.ndarray, h0: np.ndarray):
    """Course-notes GRU (z admits the new state, reset before U_h), softmax cross-entropy head."""
    z = _sig(P["W_z"] @ x + P["U_z"] @ h0 + P["b_z"])
    r = _sig(P["W_r"] @ x + P["U_r"] @ h0 + P["b_r"])
    c = np.tanh(P["W_h"] @ x + P["U_h"] @ (r * h0) + P["b_h"])
    h = (1 - z) * h0 + z * c
    o = P["W_o"] @ h + P["b_o"]
    p = np.exp(o - o.max())
    p /= p.sum()
    return -math.log(p[0]), {"z": z, "r": r, "c": c, "h": h}


def course_notes_reference():
    data = yaml.safe_load(COURSE.read_text())
    P = {k: np.array(v, dtype=float) for k, v in data["weights"].items()}
    P["W_o"] = np.array(data["loss"]["W_o"], dtype=float)
    P["b_o"] = np.array(data["loss"]["b_o"], dtype=float)
    x = np.array(data["inputs"][0], dtype=float)
    h0 = np.array(data["h0"], dtype=float)
    loss, values = course_notes_loss(P, x, h0)
    grads = {}
    eps = 1e-6
    for name in list(P) + ["x", "h0"]:
        base = {"x": x, "h0": h0}.get(name, P.get(name))
        g = np.zeros_like(base)
        for idx in np.ndindex(base.shape):
            up, down = base.copy(), base.copy()
            up[idx] += eps
            down[idx] -= eps

            def at(v):
                PP = dict(P)
                xx, hh = x, h0
                if name == "x":
                    xx = v
                elif name == "h0":
                    hh = v
                else:
                    PP[name] = v
                return course_notes_loss(PP, xx, hh)[0]

            g[idx] = (at(up) - at(down)) / (2 * eps)
        grads[name] = g
    return loss, values, grads


def numbers(tex: str) -> list[float]:
    """The numbers of a LaTeX matrix/vector string, in reading order."""
    return [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", re.sub(r"\\[a-zA-Z]+", " ", tex))]


def results(sheet) -> dict[str, list[float]]:
    return {lhs: numbers(rhs) for lhs, rhs in sheet.model["results"]}


def r4(v: float) -> str:
    d = Decimal(repr(float(v))).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
    return "0.0000" if d == 0 else format(d, "f")


@pytest.fixture(scope="module")
def course():
    return build_sheet(load_problem(COURSE))


@pytest.fixture(scope="module")
def course_tex(course):
    return course.tex()


@pytest.fixture(scope="module")
def homework():
    return build_sheet(load_problem(HOMEWORK))


# --- content --------------------------------------------------------------------------------------

def test_course_notes_h1_and_every_stage_value(course, course_tex):
    # the acceptance value; seed 001 prints h_t = [0.362, -0.017, 0.131] from 3-decimal hand rounding
    # of each sub-term (0.173 + 0.189), one unit off in the last digit
    assert r"h_{1} &= " in course_tex
    assert r"= \begin{bmatrix} 0.3610 \\ -0.0173 \\ 0.1310 \end{bmatrix}" in course_tex
    assert results(course)["h_{1}"] == pytest.approx([0.362, -0.017, 0.131], abs=1.1e-3)
    _, values, _ = course_notes_reference()
    for name in ("z", "r", "c", "h"):
        column = r"\begin{bmatrix} %s \end{bmatrix}" % r" \\ ".join(r4(v) for v in values[name])
        assert column in course_tex, name
    # the seed's entry-by-entry product W_r x_t = [0.2(0.8) + 0.1(0.6), ...] = [0.22, 0.20, -0.18],
    # every number with the sheet's four decimals
    assert r"0.2000\left(0.8000\right) + 0.1000\left(0.6000\right)" in course_tex
    assert r"\begin{bmatrix} 0.2200 \\ 0.2000 \\ -0.1800 \end{bmatrix}" in course_tex
    # the convention's own notation
    for tex in (r"W_{z} x_{1}", r"U_{h} q_{1}", r"\tilde{h}_{1}", r"h_{0}"):
        assert tex in course_tex


def test_course_notes_loss_and_every_gradient_match_finite_differences(course, course_tex):
    loss, _, grads = course_notes_reference()
    got = results(course)
    assert got["L"] == [float(r4(loss))]
    assert got["L"][0] == pytest.approx(0.511, abs=5e-4)  # seed 001: L = 0.511
    names = {"W_z": r"W_{z}", "W_r": r"W_{r}", "W_h": r"W_{h}", "U_z": r"U_{z}", "U_r": r"U_{r}",
             "U_h": r"U_{h}", "b_z": r"b_{z}", "b_r": r"b_{r}", "b_h": r"b_{h}", "W_o": r"W_{o}",
             "b_o": r"b_{o}", "x": r"x_{1}", "h0": r"h_{0}"}
    for key, tex in names.items():
        shown = got[r"\frac{\partial L}{\partial %s}" % tex]
        assert shown == pytest.approx(grads[key].ravel().tolist(), abs=0.5e-4 + 1e-9), key
    # seed 001 prints (hand-rounded, 3 decimals) dL/dW_h[0,0] = -0.096, dL/db_h = [-0.120, 0.130, -0.023]
    assert got[r"\frac{\partial L}{\partial W_{h}}"][0] == pytest.approx(-0.096, abs=5e-4)
    assert got[r"\frac{\partial L}{\partial b_{h}}"] == pytest.approx([-0.120, 0.130, -0.023], abs=1.5e-3)
    # softmax, dL/do, a summary table and one update with the problem's learning rate 0.01
    p1 = math.exp(-loss)  # the softmax probability of the target class, from the NumPy reference
    assert r4(p1) in course_tex and r4(p1 - 1) in course_tex  # seed 001 prints 0.600 and -0.400
    assert "Summary of the gradients" in course_tex
    assert r"\eta = 0.0100" in course_tex
    new_wz = 0.1 - 0.01 * grads["W_z"][0, 0]
    assert r4(new_wz) in course_tex


def test_backward_is_stage_by_stage_formula_then_numbers(course_tex):
    # each adjoint's formula (from the backward records) followed by its numbers
    assert r"\delta a_{z,1} &= \delta z_{1} \odot z_{1} \odot \left(1 - z_{1}\right)" in course_tex
    assert r"\delta h_{0} &= " in course_tex  # all paths into h_0 added up
    assert r"{U_{h}}^{\top} \delta a_{h,1}" in course_tex  # written out entry by entry
    assert r"\left.\delta h_{0}\right|_{q_{1}}" in course_tex


def test_homework_shows_both_steps_in_its_notation(homework):
    tex = homework.tex()
    # seed 004's printed answers (rounded to four decimals)
    printed = {
        "z": ["0.5381", "0.6910"], "r": ["0.5294", "0.5930"],
        "h": [["0.1516", "0.0828", "0.0939"], ["0.4738", "0.5223", "0.3563"]],
        "s": [["0.0700", "0.0383", "0.0434"], ["0.1948", "0.1878", "0.1401"]],
    }
    for t in range(2):
        assert f"= {printed['z'][t]}" in tex and f"= {printed['r'][t]}" in tex
        for key in ("h", "s"):
            assert r"\begin{bmatrix} %s \end{bmatrix}" % " & ".join(printed[key][t]) in tex
    for tex_name in (r"x_{1} U^{z}", r"s_{0} W^{z}", r"s_{1}", r"s_{2}", r"U^{h}", r"W^{h}", r"q_{2} W^{h}"):
        assert tex_name in tex
    # no loss: the forward pass only
    assert "Backward pass" not in tex and "gives no loss" in tex


def _hand(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def homework_by_hand():
    """Seed 004 worked as a person would: every stage rounded to 4 decimals and reused."""
    data = yaml.safe_load(HOMEWORK.read_text())
    D = lambda v: Decimal(str(v))  # noqa: E731
    W = {k: [[D(v) for v in row] for row in m] for k, m in data["weights"].items()}
    s = [D(v) for v in data["h0"]]

    def vecmat(v, M):  # row vector times matrix, exact then rounded
        return [_hand(sum(v[i] * M[i][j] for i in range(len(v)))) for j in range(len(M[0]))]

    def f(fn, v):
        return _hand(D(repr(fn(float(v)))))

    out = []
    for x in data["inputs"]:
        x = [D(v) for v in x]
        a_z = _hand(vecmat(x, W["U_z"])[0] + vecmat(s, W["W_z"])[0])
        z = f(lambda a: 1 / (1 + math.exp(-a)), a_z)
        a_r = _hand(vecmat(x, W["U_r"])[0] + vecmat(s, W["W_r"])[0])
        r = f(lambda a: 1 / (1 + math.exp(-a)), a_r)
        q = [_hand(si * r) for si in s]
        a_h = [_hand(u + w) for u, w in zip(vecmat(x, W["U_h"]), vecmat(q, W["W_h"]))]
        h = [f(math.tanh, a) for a in a_h]
        s = [_hand((1 - z) * hj + z * sj) for hj, sj in zip(h, s)]
        out.append(s)
    return out


def test_stepwise_reproduces_a_hand_calculation_and_marks_departures():
    sheet = build_sheet(load_problem(HOMEWORK), rounding="stepwise")
    by_hand = homework_by_hand()
    got = results(sheet)
    assert got["s_{1}"] == [float(v) for v in by_hand[0]]
    assert got["s_{2}"] == [float(v) for v in by_hand[1]]
    # the hand calculation gives s_1 = [0.0700, 0.0382, 0.0434]; exact rounding gives 0.0383
    assert by_hand[0][1] == Decimal("0.0382")
    tex = sheet.tex()
    assert r"0.0382^{\dagger}" in tex
    assert r"0.0700^{\dagger}" not in tex and r"0.0434^{\dagger}" not in tex
    assert sheet.model["marks"] > 0 and "shown values differ in the last digit" in tex
    # the exact sheet marks nothing
    exact = build_sheet(load_problem(HOMEWORK)).tex()
    assert r"\dagger" not in exact.replace(r"A dagger", "")


def test_stepwise_ties_round_half_up():
    # r_3 = 0.4825 (4 decimals) times h0_3 = 0.3 is 0.14475 exactly: a hand rounds it to 0.1448
    tex = build_sheet(load_problem(COURSE), rounding="stepwise").tex()
    assert r"\begin{bmatrix} 0.3124 \\ -0.1065 \\ 0.1448 \end{bmatrix}" in tex


def test_decimals_option():
    tex = build_sheet(load_problem(COURSE), decimals=2).tex()
    assert r"= \begin{bmatrix} 0.36 \\ -0.02 \\ 0.13 \end{bmatrix}" in tex
    assert format_number(Fraction(-1, 5), 4) == "-0.2000" and format_number(Fraction(1, 3), 4) == "0.3333"
    # given data too has the sheet's decimals (ties away from zero, as a person rounds)
    assert format_number(Fraction(1, 8), 2) == "0.13" and format_number(0, 2) == "0.00"
    with pytest.raises(GrukitError, match="--decimals"):
        build_sheet(load_problem(COURSE), decimals=0)


def test_forward_only_and_questions_only():
    loss, values, _ = course_notes_reference()  # NumPy, independent of grukit
    answers = (r4(values["h"][0]), r4(loss), r4(values["z"][0]))  # seed 001 prints 0.361, 0.511, 0.655
    problem = load_problem(COURSE)
    fwd = build_sheet(problem, forward_only=True).tex()
    assert answers[0] in fwd and answers[1] in fwd  # the forward pass and the loss
    assert "Backward pass" not in fwd and "Summary of the gradients" not in fwd
    questions = build_sheet(problem, questions_only=True).tex()
    assert "Questions" in questions and r"\begin{enumerate}" in questions
    for answer in answers:
        assert answer not in questions
    assert "0.8000" in questions and r"\eta = 0.0100" in questions  # the data and the learning rate


def test_scalar_gates_sum_over_units_and_layouts_name_their_arrays(tmp_path):
    path = tmp_path / "hw.yaml"
    path.write_text(problem_text("homework", "2x3", 2, 5))
    tex = build_sheet(load_problem(path)).tex()
    assert r"\delta z_{2} &= \sum_j \left[" in tex and r"\delta r_{1} &= \sum_j \left[" in tex
    path = tmp_path / "keras.yaml"
    path.write_text(problem_text("keras", "2x3", 1, 5))
    tex = build_sheet(load_problem(path)).tex()
    assert r"\texttt{kernel[:, 0:3]}" in tex and r"\texttt{recurrent\texttt{\char95}kernel[:, 6:9]}" in tex
    assert r"\texttt{bias[1, 3:6]}" in tex  # the recurrent bias of r (Keras reset_after)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_gives_a_sheet(tmp_path, name):
    path = tmp_path / f"{name}.yaml"
    path.write_text(problem_text(name, "2x2", 2, 11))
    sheet = build_sheet(load_problem(path))
    tex, md = sheet.tex(), sheet.markdown()
    assert tex.count(r"\begin{aligned}") == tex.count(r"\end{aligned}")
    assert "\x01" not in tex and "\x01" not in md
    assert "Back-propagation through time: the sums" in tex


@pytest.mark.parametrize("name", sorted(RESET_FREE))
def test_a_cell_without_a_reset_gate_gives_a_sheet_without_one(tmp_path, name):
    path = tmp_path / f"{name}.yaml"
    path.write_text(problem_yaml(random_problem(name, 2, 2, 2, seed=3)))
    sheet = build_sheet(load_problem(path))
    tex, md = sheet.tex(), sheet.markdown()
    assert tex.count(r"\begin{aligned}") == tex.count(r"\end{aligned}")
    assert "Back-propagation through time: the sums" in tex
    assert "r_{" not in tex and "W_{r}" not in tex and "reset gate" not in md.lower().replace("no reset gate", "")


def test_bptt_shows_each_steps_contribution_and_the_sum(tmp_path):
    path = tmp_path / "t3.yaml"
    path.write_text(problem_text("course-notes", "2x2", 3, 2))
    sheet = build_sheet(load_problem(path))
    tex = sheet.tex()
    for t in (1, 2, 3):
        assert r"\left.\frac{\partial L}{\partial W_{z}}\right|_{t=%d}" % t in tex
    assert r"\frac{\partial L}{\partial W_{z}} &= \sum_{t} \delta a_{z,t} {x_{t}}^{\top}" in tex
    assert r"\left.\delta h_{2}\right|_{\text{step } 3}" in tex


# --- formats, determinism, notebooks ---------------------------------------------------------------

def test_same_input_gives_byte_identical_tex(tmp_path):
    a, b = tmp_path / "a.tex", tmp_path / "b.tex"
    assert main(["sheet", str(COURSE), "-o", str(a)]) == 0
    assert main(["sheet", str(COURSE), "-o", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()
    text = a.read_text()
    assert r"\date{}" in text and not re.search(r"20\d\d-\d\d-\d\d|\\today", text)


def test_default_problem_is_the_course_notes_example(tmp_path, monkeypatch):
    assert builtin_example().read_bytes() == COURSE.read_bytes()
    monkeypatch.chdir(tmp_path)
    assert main(["sheet", "-o", "built-in.tex"]) == 0
    assert (tmp_path / "built-in.tex").read_text() == build_sheet(load_problem(COURSE)).tex()


def test_markdown_output_and_notebook_reprs(tmp_path, course):
    out = tmp_path / "sheet.md"
    assert main(["sheet", str(COURSE), "-o", str(out)]) == 0
    md = out.read_text()
    assert md == course.markdown() == course._repr_markdown_()
    assert "$$\n\\begin{aligned}" in md and r"\gkfit" not in md and r"\documentclass" not in md
    assert r"\begin{bmatrix} 0.3610 \\ -0.0173 \\ 0.1310 \end{bmatrix}" in md
    assert "\n\n$$\n\n" not in md  # no empty math blocks
    latex = course._repr_latex_()
    assert latex.startswith("$$") and latex.rstrip().endswith("$$") and "0.3610" in latex


def test_user_text_is_escaped(tmp_path):
    data = yaml.safe_load(COURSE.read_text())
    data["title"] = "50% of $x_1$ & #1 {a} ~ ^"
    data["description"] = "Watch out: \\input{secret} *bold*"
    problem = problem_from_mapping(data, tmp_path / "odd name_%.yaml")
    sheet = build_sheet(problem)
    tex, md = sheet.tex(), sheet.markdown()
    assert r"50\% of \$x\texttt{\char95}1\$ \& \#1 \{a\} \texttt{\char126} \texttt{\char94}" in tex
    assert r"\textbackslash{}input\{secret\}" in tex and r"\input{secret}" not in tex
    assert r"odd name\texttt{\char95}\%.yaml" in tex
    assert "# 50% of \\$x\\_1\\$ \\& \\#1 \\{a\\} \\~ ^\n" in md
    assert r"\*bold\*" in md


# --- errors and atomic writes ------------------------------------------------------------------------

def test_bad_input_is_one_line_naming_file_and_field(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(COURSE.read_text().replace("W_h: [[0.3, -0.1]", "W_h: [[0.3, oops]"))
    out = tmp_path / "x.tex"
    assert main(["sheet", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.yaml" in err and "W_h" in err
    assert not out.exists()
    assert main(["sheet", str(COURSE), "-o", str(tmp_path / "x.docx")]) == 2
    assert "-o" in capsys.readouterr().err
    assert main(["sheet", str(tmp_path / "missing.yaml"), "-o", str(out)]) == 2
    assert "missing.yaml" in capsys.readouterr().err
    assert main(["sheet", str(COURSE), "--decimals", "40", "-o", str(out)]) == 2
    assert "--decimals" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [bad]


def test_pdf_without_tex_names_the_missing_program(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(output_module.shutil, "which", lambda name: None)
    out = tmp_path / "sheet.pdf"
    assert main(["sheet", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "pdflatex" in err and "latexmk" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    target = tmp_path / "sheet.tex"
    target.write_text("old")

    def broken(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(output_module.os, "replace", broken)
    with pytest.raises(GrukitError, match="sheet.tex: cannot write"):
        write_atomic(target, b"new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["sheet.tex"]

    def failing_compile(tex, out, timeout=300):
        raise GrukitError(f"{out}: pdflatex failed: boom")

    monkeypatch.setattr(sheet_module, "compile_pdf", failing_compile)
    with pytest.raises(GrukitError, match="boom"):
        build_sheet(load_problem(COURSE)).write(tmp_path / "new.pdf")
    assert [p.name for p in tmp_path.iterdir()] == ["sheet.tex"]


# --- speed ---------------------------------------------------------------------------------------------

def test_sheet_build_times(tmp_path):
    from grukit.derive.cell.equations import cell_equations
    from grukit.derive.cell.records import backward_records

    cell_equations.cache_clear()  # time the derivation too, not only the numbers and the printing
    backward_records.cache_clear()
    start = time.perf_counter()
    build_sheet(load_problem(COURSE)).tex()
    course_s = time.perf_counter() - start
    path = tmp_path / "t3.yaml"
    path.write_text(problem_text("keras", "2x3", 3, 1))
    start = time.perf_counter()
    build_sheet(load_problem(path)).tex()
    t3_s = time.perf_counter() - start
    assert course_s < 3.0, f"course-notes sheet took {course_s:.2f} s"
    assert t3_s < 10.0, f"T=3 sheet took {t3_s:.2f} s"

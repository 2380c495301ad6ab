"""Sheets a teacher hands out unedited: escaping, the sources' term order, arithmetic as a person
writes it, the data block, the loss in math, derived conventions, and long problems.

Each item is checked against something outside the code under test: pdflatex and pdftotext (what
the reader sees), the seed documents' equations transcribed below, the text of the committed
gallery sheets, and a full sheet of the same problem.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import time
import unicodedata
from pathlib import Path

import pytest
import sympy as sp
import yaml
from helpers import ROOT

from grukit.codegen.latex import compact_equations, stage_equations
from grukit.codegen.render import MD_INLINE_SPECIAL, TEX_MATH_CHARACTERS, TEX_TEXT_ESCAPES, escape_md, escape_tex
from grukit.codegen.sheets import numbers as sheet_numbers
from grukit.codegen.sheets.instructor import problem_text
from grukit.codegen.sheets.sheet import build_sheet, parse_steps
from grukit.derive.cell.convention import TERM_ORDERS
from grukit.derive.cell.equations import cell_equations, unit
from grukit.derive.cell.presets import PRESETS
from grukit.derive.cell.records import SumRecord, backward_records
from grukit.derive.errors import GrukitError
from grukit.derive.files.problem_file import load_problem, problem_from_mapping

EXAMPLES = ROOT / "docs" / "examples"
SHEETS = ROOT / "docs" / "sheets"
PRINTABLE = "".join(chr(c) for c in range(33, 127))

needs_tex = pytest.mark.skipif(shutil.which("pdflatex") is None or shutil.which("pdftotext") is None,
                               reason="needs pdflatex and pdftotext")


def pdf_text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout


def problem_with(tmp_path: Path, preset: str, steps: int, **changes) -> object:
    """An instructor-mode problem of ``preset`` (D = H = 2) over ``steps`` steps, with ``changes``."""
    data = yaml.safe_load(problem_text(preset, "2x2", min(steps, 8), 3))
    while len(data["inputs"]) < steps:  # longer than instructor mode writes: repeat the inputs
        data["inputs"].append(list(data["inputs"][len(data["inputs"]) % 8]))
    data.update(changes)
    return problem_from_mapping(data, tmp_path / f"{preset}.yaml")


def statement(sheet) -> list[tuple[str, str]]:
    return [tuple(seg) for seg in sheet.model["statement"]]


# --- 1. escaping ----------------------------------------------------------------------------------

@needs_tex
def test_every_character_prints_as_itself_through_pdflatex_and_pdftotext(tmp_path):
    """One line per printable ASCII character, the dash- and quote-forming runs and the symbols set as
    math, escaped, compiled and read back."""
    samples = list(PRINTABLE) + ["--", "---", "!`", "?`", "''", "``", ",,", "<<", ">>"] + list(TEX_MATH_CHARACTERS)
    samples += ["é", "ü", "—", "–", "“", "”", "’"]  # what pdflatex's utf8 input sets in text fonts
    assert set(TEX_TEXT_ESCAPES) <= set(PRINTABLE)
    body = "\n".join(r"\noindent[%s]\par" % escape_tex(f"{k:02d}{s}{k:02d}") for k, s in enumerate(samples))
    (tmp_path / "t.tex").write_text("\\documentclass{article}\n\\usepackage{amssymb}\n\\begin{document}\n"
                                   + body + "\n\\end{document}\n")
    run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"], cwd=tmp_path,
                         capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stdout[-2000:]
    assert "mktexpk" not in run.stdout  # no bitmap font made at run time
    text = unicodedata.normalize("NFC", pdf_text(tmp_path / "t.pdf"))  # é may come back as e + accent
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for k, s in enumerate(samples):
        assert f"[{k:02d}{s}{k:02d}]" in lines, (s, [line for line in lines if line.startswith(f"[{k:02d}")])


@needs_tex
def test_pytorch_sheet_and_an_odd_title_compile_and_read_back_as_written(tmp_path):
    title = "a < b > c | d & $x$ % # ~ ^ \\ {}"
    problem = problem_with(tmp_path, "pytorch", 1, title=title, description="PyTorch packs [r|z|n] -- in that order")
    out = build_sheet(problem).write(tmp_path / "sheet.pdf")
    text = pdf_text(out)
    assert title in text
    assert "PyTorch packs [r|z|n] -- in that order" in text
    assert "blocks [r|z|n]" in text  # the preset's description
    for wrong in ("¡", "¿", "—", "“", "”"):  # what OT1 makes of < > | and of " (the template's own
        assert wrong not in text             # prose may use a typographic apostrophe)


def test_markdown_escapes_what_markdown_reads():
    assert escape_md("a < b > c | d & $x$ % # ~ ^ \\ {} [r|z|n] *x* _y_ `z`") == (
        r"a \< b \> c \| d \& \$x\$ % \# \~ ^ \\ \{\} \[r\|z\|n\] \*x\* \_y\_ \`z\`")
    for ch in MD_INLINE_SPECIAL:
        assert escape_md(f"a{ch}b") == f"a\\{ch}b"
    # what starts a line: a list item, an ordered item, a quote, a setext underline
    assert escape_md("- item") == r"\- item" and escape_md("+ item") == r"\+ item"
    assert escape_md("12. item") == r"12\. item" and escape_md("3) item") == r"3\) item"
    assert escape_md("= x") == r"\= x" and escape_md("> q") == r"\> q"
    assert escape_md("well-known 1.5 (a)") == "well-known 1.5 (a)"  # ordinary text stays readable


# --- 2. the sources' own term order -----------------------------------------------------------------

SOURCE_EQUATIONS = {
    # seed 001 (course notes): r_t = sigma(W_r x_t + U_r h_{t-1} + b_r),
    # h~_t = tanh(W_h x_t + U_h (r_t ⊙ h_{t-1}) + b_h), h_t = (1 - z_t) ⊙ h_{t-1} + z_t ⊙ h~_t
    "course-notes": [
        r"\tanh{\left(W_{h} x_{t} + U_{h} \left(r_{t} \odot h_{t-1}\right) + b_{h} \right)}",
        r"\left(1 - z_{t}\right) \odot h_{t-1} + z_{t} \odot \tilde{h}_{t}",
    ],
    # seed 004 (homework): h = tanh(x_t U^h + (s_(t-1) ∘ r) W^h), s_t = (1 - z) ∘ h + z ∘ s_(t-1)
    "homework": [
        r"\tanh{\left(x_{t} U^{h} + \left(s_{t-1} \odot r_{t}\right) W^{h} \right)}",
        r"\left(1 - z_{t}\right) \odot h_{t} + z_{t} \odot s_{t-1}",
    ],
    # Keras (seed 000's layer): hh = tanh(x_h + r * recurrent_h), h = z * h_tm1 + (1 - z) * hh
    "keras": [
        r"\tanh{\left(x_{t} W_{h} + b_{ih} + r_{t} \odot \left(h_{t-1} U_{h} + b_{rh}\right) \right)}",
        r"z_{t} \odot h_{t-1} + \left(1 - z_{t}\right) \odot \tilde{h}_{t}",
    ],
    # torch.nn.GRU: n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_(t-1) + b_hn)), h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_(t-1)
    "pytorch": [
        r"\tanh{\left(W_{in} x_{t} + b_{in} + r_{t} \odot \left(W_{hn} h_{t-1} + b_{hn}\right) \right)}",
        r"\left(1 - z_{t}\right) \odot n_{t} + z_{t} \odot h_{t-1}",
    ],
}


@pytest.mark.parametrize("name", sorted(SOURCE_EQUATIONS))
def test_equations_are_printed_in_the_sources_term_order(name):
    rhs = [r for _, r in compact_equations(cell_equations(PRESETS[name]))]
    assert rhs[2:] == SOURCE_EQUATIONS[name]


@pytest.mark.parametrize("sheet, name", [("course-notes", "course-notes"), ("homework", "homework"),
                                         ("keras-question", "keras"), ("keras-question-hand", "keras")])
def test_gallery_sheets_show_the_sources_term_order(sheet, name):
    tex = (SHEETS / f"{sheet}.tex").read_text()
    for rhs in SOURCE_EQUATIONS[name]:
        assert rhs in tex
    # the stage list and the worked steps keep the order too
    stages = dict(stage_equations(cell_equations(PRESETS[name]), 1))
    state = r"h_{1}" if name != "homework" else r"s_{1}"
    assert f"{state} &= {stages[state]}" in tex
    assert r"h_{0} \odot z_{1}" not in tex and r"\tilde{h}_{1} \odot z_{1}" not in tex


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_term_order_changes_what_is_printed_only(name):
    """The derivation reads SymPy's canonical expression whatever order the source writes."""
    conv = PRESETS[name]

    def derivation(c):  # the records, paths named by where they come back through (not how they read)
        return [(r.name, tuple((p.via, p.record) for p in r.paths)) if isinstance(r, SumRecord) else r
                for r in backward_records(c).records]

    records = derivation(conv)
    for update_terms in TERM_ORDERS["update_terms"]:
        for reset_product in TERM_ORDERS["reset_product"]:
            other = conv.with_changes(notation=conv.notation.__class__(
                **{**conv.notation.__dict__, "update_terms": update_terms, "reset_product": reset_product}))
            eqs = cell_equations(other)
            for stage, base in zip(eqs.stages, cell_equations(conv).stages):
                assert sp.srepr(getattr(stage, "expr", None)) == sp.srepr(getattr(base, "expr", None))
            assert derivation(other) == records
    z, h_prev, c = unit("z"), unit("h_prev"), unit("c")
    keep = z if conv.update_rule == "z_keeps_old" else 1 - z
    assert cell_equations(conv).stage("h").expr == keep * h_prev + (1 - keep) * c


# --- 3. arithmetic as a person writes it ----------------------------------------------------------------

NUMBER = r"-?\d+\.\d+(?:\^\{\\dagger\})?"
NEGATIVE = r"-\d+\.\d+(?:\^\{\\dagger\})?"
A_NEGATIVE_TERM = re.compile(  # a binary + or - followed by a negative number that is a whole term
    r"(?<=[\w})\]] )[+-] (?:%s|\\left\(%s\\right\))(?=\s*(?:[+=-]|\\\\|\\end|\\right|&|$))"
    % (NEGATIVE, NEGATIVE), re.M)
MATRIX = re.compile(r"\\begin\{bmatrix\}(.*?)\\end\{bmatrix\}")
ONE_ENTRY_MATRIX = re.compile(r"\\begin\{bmatrix\} [^&\\]* \\end\{bmatrix\}")


def gallery_files():
    return sorted(SHEETS.glob("*.tex")) + sorted(SHEETS.glob("*.md"))


@pytest.mark.parametrize("path", gallery_files(), ids=lambda p: p.name)
def test_gallery_sheets_write_arithmetic_as_a_person_does(path):
    text = path.read_text()
    assert not A_NEGATIVE_TERM.findall(text), A_NEGATIVE_TERM.findall(text)[:5]
    assert "+ -" not in text
    numbers = re.findall(NUMBER + r"(?![\d.]|\\linewidth|pt|em)", text)  # not the template's lengths
    decimals = {len(m.split(".")[1].split("^")[0]) for m in numbers}
    assert decimals == {4}, decimals  # every number with the sheet's four decimals
    for matrix in MATRIX.findall(text):  # no bare "0" among a matrix's numbers
        for number in re.findall(r"(?<![\w.{^])\d+(?:\.\d+)?(?![\w.}])", matrix):
            assert re.fullmatch(r"\d+\.\d{4}", number), (number, matrix)


def test_every_number_goes_through_one_format_with_the_sheets_decimals(monkeypatch):
    shown = []
    original = sheet_numbers.format_number

    def spy(value, decimals):
        shown.append((original(value, decimals), decimals))
        return shown[-1][0]

    monkeypatch.setattr(sheet_numbers, "format_number", spy)
    for name, decimals in (("course-notes", 2), ("keras-question", 4), ("homework", 3)):
        build_sheet(load_problem(EXAMPLES / f"{name}.yaml"), decimals=decimals)
    assert shown
    for text, decimals in shown:
        assert re.fullmatch(r"-?\d+\.\d{%d}" % decimals, text), text


def test_sums_fold_the_sign_of_a_negative_term():
    tex = (SHEETS / "keras-question.tex").read_text()
    assert "a_{z,2} &= -1.8191 - 0.0076 + 0.0000 + 0.0000 = -1.8267" in tex
    assert r"-0.0440 + 0.7393 \cdot 0.0000 = -0.0440" in tex  # a_h = a_hx + r a_hh, no "+ (-0.0440)"
    assert "+ -" not in tex and r"+ \left(-" not in tex


def test_a_one_number_state_is_written_with_scalars():
    for sheet in ("keras-question", "keras-question-hand"):
        tex = (SHEETS / f"{sheet}.tex").read_text()
        assert not ONE_ENTRY_MATRIX.search(tex), ONE_ENTRY_MATRIX.search(tex)
        assert r"\times" not in tex
    tex = (SHEETS / "keras-question.tex").read_text()
    assert r"x_{1} W_{z} &= 1.0000\left(-0.9095\right) = -0.9095" in tex
    assert r"W_{z} &= -0.9095 & \qquad U_{z} &= 0.2417" in tex


# --- 4. the data block ----------------------------------------------------------------------------------

def test_data_block_gives_each_kind_of_data_its_own_lines():
    sheet = build_sheet(load_problem(EXAMPLES / "course-notes.yaml"))
    groups = {"".join(s for _, s in g["label"]): [[d["name"] for d in line] for line in g["lines"]]
              for g in sheet.model["data"]}
    assert groups == {
        "Inputs:": [["x_{1}"]], "Initial state:": [["h_{0}"]],
        "Update gate weights:": [["W_{z}", "U_{z}"]], "Reset gate weights:": [["W_{r}", "U_{r}"]],
        "Candidate weights:": [["W_{h}", "U_{h}"]], "Biases:": [["b_{z}", "b_{r}", "b_{h}"]],
        "Output layer:": [["W_{o}", "b_{o}"]], "Targets:": [["y_{1}"]], "Learning rate:": [[r"\eta"]],
    }
    tex = sheet.tex()
    data = tex[tex.index(r"\subsection*{Data}"):tex.index(r"\section{Forward pass}")]
    assert data.count(r"\begin{aligned}") == len(groups)
    for label in groups:
        assert label in data


# --- 5. the loss in math ----------------------------------------------------------------------------------

@pytest.mark.parametrize("path, formula", [
    ("course-notes.yaml", r"L = -\sum_{k} y_{1,k} \log \operatorname{softmax}\left(W_{o} h_{1} + b_{o}\right)_{k}"),
    ("blog-bptt.yaml", r"L = \sum_{t=1}^{2} \tfrac{1}{2} \left\lVert h_{t} - y_{t} \right\rVert^{2}"),
    ("keras-layout.yaml", r"L = \sum_{t=1}^{3} G_{t} \cdot h_{t}"),
])
def test_loss_descriptions_are_typeset_as_math(path, formula):
    sheet = build_sheet(load_problem(EXAMPLES / path))
    segs = statement(sheet)
    assert ("math", formula) in segs
    prose = " ".join(s for kind, s in segs if kind == "text")
    for ascii_math in ("W_o", "h_T", "h_t", "|", "^2", "sum over", "1/2"):
        assert ascii_math not in prose
    assert f"${formula}$" in sheet.tex() and f"${formula}$" in sheet.markdown()


def test_final_mse_description_is_math(tmp_path):
    problem = problem_with(tmp_path, "course-notes", 2, loss={"type": "final_mse", "target": [0.5, -0.5]})
    assert ("math", r"L = \tfrac{1}{2} \left\lVert h_{2} - y_{2} \right\rVert^{2}") in statement(build_sheet(problem))


@pytest.mark.parametrize("kind, half", [("final_squared_error", ""), ("final_half_squared_error", r"\tfrac{1}{2} ")])
def test_a_last_step_squared_error_through_the_output_layer_is_math(tmp_path, kind, half):
    loss = {"type": kind, "W_o": [[0.4, -0.2], [-0.1, 0.5]], "b_o": [0.1, -0.1], "target": [0.5, -0.5]}
    problem = problem_with(tmp_path, "course-notes", 2, loss=loss)
    formula = rf"L = {half}\left\lVert W_{{o}} h_{{2}} + b_{{o}} - y_{{2}} \right\rVert^{{2}}"
    assert ("math", formula) in statement(build_sheet(problem))


# --- 6. a convention derived from a preset -------------------------------------------------------------

def test_a_convention_from_a_preset_describes_what_it_changed(tmp_path):
    problem = problem_with(tmp_path, "keras", 1, convention={"preset": "keras", "update_rule": "z_admits_new"})
    sheet = build_sheet(problem)
    description = sheet.model["convention"]["description"]
    assert description.startswith("The keras preset with update_rule = z_admits_new")
    assert PRESETS["keras"].description not in description
    assert r"h_{t} &= \left(1 - z_{t}\right) \odot h_{t-1} + z_{t} \odot \tilde{h}_{t}" in sheet.tex()
    same = problem_with(tmp_path, "keras", 1, convention={"preset": "keras", "update_rule": "z_keeps_old"})
    assert build_sheet(same).model["convention"]["description"] == PRESETS["keras"].description


# --- 7. long problems --------------------------------------------------------------------------------------

def test_steps_spec_is_parsed_and_checked():
    assert parse_steps("1-3,last", 10) == (0, 1, 2, 9)
    assert parse_steps("2, 5-last", 6) == (1, 4, 5)
    assert parse_steps("all", 3) == (0, 1, 2) and parse_steps(None, 10) == tuple(range(10))
    assert parse_steps(None, 11) == (0, 1, 2, 10)
    for bad in ("0", "12", "3-1", "x", "1-"):
        with pytest.raises(GrukitError, match="--steps"):
            parse_steps(bad, 11)


def test_a_long_problem_works_the_chosen_steps_says_so_and_sums_every_step(tmp_path):
    problem = problem_with(tmp_path, "course-notes", 14)
    full = build_sheet(problem, steps="all")
    part = build_sheet(problem)  # 14 steps: 1 to 3 and 14 by default
    tex = part.tex()
    assert "It works time steps 1 to 3 and 14 in full (of 14)" in " ".join(s for _, s in statement(part))
    assert r"\subsection{Time steps 4 to 13}" in tex and r"\subsection{Time step 14}" in tex
    assert r"\subsection{Time step 5}" not in tex
    assert r"\cdots" in tex  # the BPTT sums leave out the steps not worked
    assert part.model["results"] == full.model["results"]  # every state and every gradient
    def summary(sheet):
        return [p for p in sheet.model["parts"] if p.title == "Summary of the gradients"][0].sections[0].blocks[0].rows

    dots = [[["math", r"\vdots"]]] * 4
    full_rows = summary(full)
    # every parameter's gradient; the inputs' of the worked steps, dots for the others (x_4 ... x_13)
    assert summary(part) == full_rows[:-12] + [dots] + full_rows[-2:]
    table = [p for p in part.model["parts"] if p.title == "Forward pass"][0].sections[-1].blocks[-1]
    assert [row[0] for row in table.rows] == [[["text", str(t)]] for t in (1, 2, 3)] + [
        [["text", "4 to 13"]], [["text", "14"]]]  # the worked steps' values, dots for the others
    assert len(tex) < len(full.tex()) / 2
    assert build_sheet(problem, steps="2").tex().count(r"\subsection{Time step 2}") == 2  # forward, backward


def test_long_work_reports_progress_on_stderr(tmp_path, capsys):
    problem = problem_with(tmp_path, "course-notes", 12)
    build_sheet(problem, steps="last").write(tmp_path / "a.tex")
    assert capsys.readouterr().err == ""  # short work: quiet
    build_sheet(problem, steps="last", progress=True).write(tmp_path / "b.tex")
    err = capsys.readouterr().err
    assert "solving 12 steps" in err and "writing the sheet (steps 12 in full)" in err and "rendering b.tex" in err
    assert (tmp_path / "a.tex").read_bytes() == (tmp_path / "b.tex").read_bytes()


def test_a_long_sheet_is_small_and_quick(tmp_path):
    problem = problem_with(tmp_path, "course-notes", 400)
    start = time.perf_counter()
    tex = build_sheet(problem, progress=False).tex()
    seconds = time.perf_counter() - start
    assert len(tex.encode()) < 400_000, len(tex.encode())
    assert seconds < 30, seconds

"""Instructor mode: `grukit problem` writes random problems with short decimals, each with a question
and a solution sheet; the same settings give the same bytes."""
from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import yaml

from grukit.codegen.cli.main import main
from grukit.codegen.sheets.instructor import parse_dims, problem_text, write_variants
from grukit.derive.cell.presets import PRESETS
from grukit.derive.errors import GrukitError
from grukit.derive.files.problem_file import load_problem


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_same_seed_same_bytes_and_k_variants(tmp_path):
    argv = ["problem", "--convention", "course-notes", "--dims", "2x3", "--steps", "2", "--seed", "7",
            "--variants", "3"]
    assert main(argv + ["-o", str(tmp_path / "a")]) == 0
    assert main(argv + ["-o", str(tmp_path / "b")]) == 0
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a == b
    assert sorted(a) == sorted(f"course-notes-seed7-v{k}{suffix}" for k in (1, 2, 3)
                               for suffix in (".yaml", "-questions.tex", "-solution.tex"))
    problems = [a[f"course-notes-seed7-v{k}.yaml"] for k in (1, 2, 3)]
    assert len(set(problems)) == 3  # the variants differ
    # variant 1 does not depend on how many variants were asked for, but on the seed
    assert main(["problem", "--convention", "course-notes", "--dims", "2x3", "--steps", "2", "--seed", "7",
                 "-o", str(tmp_path / "c")]) == 0
    assert (tmp_path / "c" / "course-notes-seed7-v1.yaml").read_bytes() == problems[0]
    assert problem_text("course-notes", "2x3", 2, 8) != problems[0].decode()


@pytest.mark.parametrize("name", ["course-notes", "homework", "keras", "pytorch", "colah"])
def test_problems_have_one_decimal_numbers_and_the_asked_sizes(tmp_path, name):
    text = problem_text(name, "3x2", 3, 4)
    path = tmp_path / "p.yaml"
    path.write_text(text)
    data = yaml.safe_load(text)
    body = text.split("weights:", 1)[1].split("target:", 1)[0]
    for number in re.findall(r"-?\d+(?:\.\d+)?", body.replace("W_o", "").replace("b_o", "")):
        assert re.fullmatch(r"-?\d\.\d", number), number
    assert len(data["inputs"]) == 3 and all(len(x) == 3 for x in data["inputs"]) and len(data["h0"]) == 2
    problem = load_problem(path)
    assert (problem.steps, problem.input_size, problem.hidden_size) == (3, 3, 2)
    assert problem.loss.kind == "softmax_cross_entropy" and problem.learning_rate == Fraction(1, 10)


def _sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def test_solution_sheet_values_match_an_independent_forward_and_questions_hold_no_answers(tmp_path):
    """A course-notes-convention problem over 3 steps, recomputed with plain NumPy."""
    written = write_variants("course-notes", "2x2", 3, 21, out_dir=tmp_path)
    data = yaml.safe_load((tmp_path / "course-notes-seed21-v1.yaml").read_text())
    P = {k: np.array(v, dtype=float) for k, v in data["weights"].items()}
    h = np.array(data["h0"], dtype=float)
    states = []
    for x in np.array(data["inputs"], dtype=float):
        z = _sig(P["W_z"] @ x + P["U_z"] @ h + P["b_z"])
        r = _sig(P["W_r"] @ x + P["U_r"] @ h + P["b_r"])
        c = np.tanh(P["W_h"] @ x + P["U_h"] @ (r * h) + P["b_h"])
        h = (1 - z) * h + z * c
        states.append(h)
    o = np.array(data["loss"]["W_o"], dtype=float) @ h + np.array(data["loss"]["b_o"], dtype=float)
    loss = math.log(np.exp(o).sum()) - o[data["loss"]["target"]]

    def r4(v):
        d = Decimal(repr(float(v))).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
        return "0.0000" if d == 0 else format(d, "f")

    solution = (tmp_path / "course-notes-seed21-v1-solution.tex").read_text()
    questions = (tmp_path / "course-notes-seed21-v1-questions.tex").read_text()
    for t, state in enumerate(states, start=1):
        column = r"\begin{bmatrix} %s \end{bmatrix}" % r" \\ ".join(r4(v) for v in state)
        assert column in solution, t
        assert column not in questions
    assert f"= {r4(loss)}" in solution and r4(loss) not in questions
    assert "Back-propagation through time" in solution
    # The questions give the problem's own data (whatever the decimals shown) and ask for the update.
    assert r"\begin{enumerate}" in questions
    rate = re.search(r"Apply one gradient-descent update with learning rate \$\\eta = ([-0-9.]+)\$\.", questions)
    assert rate and Decimal(rate.group(1)) == Decimal("0.1")
    for key in ("W_z", "U_h"):
        shown = re.search(r"%s_\{%s\} &= \\begin\{bmatrix\} (.*?) \\end\{bmatrix\}" % (key[0], key[2]), questions)
        rows = [[Decimal(v) for v in row.split(" & ")] for row in shown.group(1).split(r" \\ ")]
        assert rows == [[Decimal(str(v)) for v in row] for row in data["weights"][key]], key
    assert len(written) == 3


def test_markdown_format_and_every_preset(tmp_path):
    for name in PRESETS:
        write_variants(name, "2x2", 1, 3, out_dir=tmp_path, fmt="md")
    for name in PRESETS:
        md = (tmp_path / f"{name}-seed3-v1-solution.md").read_text()
        assert "$$" in md and "Summary of the gradients" in md


def test_bad_settings_are_one_line_errors(tmp_path, capsys):
    assert main(["problem", "--convention", "nope", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--convention" in err and "nope" in err and len(err.strip().splitlines()) == 1
    assert main(["problem", "--convention", "keras", "--dims", "2by3", "-o", str(tmp_path)]) == 2
    assert "--dims" in capsys.readouterr().err
    assert main(["problem", "--convention", "keras", "--steps", "0", "-o", str(tmp_path)]) == 2
    assert "--steps" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    assert parse_dims("4x3") == (4, 3)
    with pytest.raises(GrukitError, match="--dims"):
        parse_dims("0x3")

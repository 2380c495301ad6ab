"""Input and command line: exponent numbers, errors blamed on the right field, user conventions
wherever a preset name goes, what ``grad --check`` says, and a light start-up."""
from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from importlib.metadata import version

import numpy as np
import pytest
import yaml
from helpers import ROOT, copy_examples

from grukit.codegen.cli import parser as cli
from grukit.codegen.cli.main import main
from grukit.codegen.latex import compact_equations
from grukit.derive.cell.equations import cell_equations
from grukit.derive.cell.presets import PRESETS
from grukit.derive.files.problem_file import load_problem
from grukit.derive.numeric.evaluate import ENGINES

EXAMPLES = ROOT / "docs" / "examples"
COURSE_NOTES = (EXAMPLES / "course-notes.yaml").read_text()


def grukit(*args, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grukit.codegen.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def one_error(code: int, out: str, err: str) -> str:
    """The one stderr line of a refused input (exit 2, nothing on stdout, no traceback)."""
    assert code == 2 and out == "", (code, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("grukit: error: ") and "Traceback" not in err, err
    return lines[0]


def run(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# --- 8. numbers in exponent form ------------------------------------------------------------------

def test_exponent_numbers_are_read_exactly(tmp_path):
    text = COURSE_NOTES.replace("- [0.8, 0.6]", "- [1e6, 1.5e-3]\n  - [-2E+2, 2.5e1]").replace(
        "learning_rate: 0.01", "learning_rate: 1E-2")
    (tmp_path / "p.yaml").write_text(text)
    problem = load_problem(tmp_path / "p.yaml")
    assert problem.inputs.tolist() == [[Fraction(10 ** 6), Fraction(3, 2000)], [Fraction(-200), Fraction(25)]]
    assert all(type(v) is Fraction for v in problem.inputs.ravel())
    assert problem.learning_rate == Fraction(1, 100)


def test_exponent_resolver_is_only_on_grukits_loader():
    assert yaml.safe_load("a: 1e6")["a"] == "1e6"  # PyYAML's own loaders keep YAML 1.1's rule
    assert yaml.safe_load("a: name1e6")["a"] == "name1e6"


def test_text_that_only_looks_numeric_stays_an_error(tmp_path, capsys):
    (tmp_path / "p.yaml").write_text(COURSE_NOTES.replace("[0.8, 0.6]", "[0.8, 1e]"))
    line = one_error(*run(["forward", tmp_path / "p.yaml"], capsys))
    assert "inputs" in line and "'1e'" in line


# --- 9. an input of the wrong width is blamed on the inputs ------------------------------------------

@pytest.mark.parametrize("command", ["forward", "grad"])
def test_wrong_input_width_is_an_inputs_error(tmp_path, capsys, command):
    (tmp_path / "p.yaml").write_text(COURSE_NOTES.replace("- [0.8, 0.6]", "- [0.8, 0.6, 0.1]"))
    line = one_error(*run([command, tmp_path / "p.yaml"], capsys))
    assert line == f"grukit: error: {tmp_path / 'p.yaml'}: inputs: rows have 3 values, the weights expect D = 2"


def test_wrong_input_width_with_a_layout_file(tmp_path, capsys):
    text = (EXAMPLES / "keras-layout.yaml").read_text().replace("- [0.5, -0.2]", "- [0.5, -0.2, 0.9]")
    text = text.replace("- [0.1, 0.7]", "- [0.1, 0.7, 0.0]").replace("- [-0.6, 0.3]", "- [-0.6, 0.3, 1]")
    copy_examples(tmp_path, "keras-layout.npz")
    (tmp_path / "p.yaml").write_text(text)
    line = one_error(*run(["forward", tmp_path / "p.yaml"], capsys))
    assert line.endswith("p.yaml: inputs: rows have 3 values, the weights expect D = 2")


def test_concatenated_weights_give_d_too(tmp_path, capsys):
    """Colah's weights act on [h, x]: D is their width less H."""
    conv = PRESETS["colah"]
    weights = {conv.key(p): np.full(conv.param_shape(p, 2, 3), 0.1).tolist() for p in conv.parameters()}
    data = {"convention": "colah", "inputs": [[0.1, 0.2, 0.3]], "h0": [0, 0, 0], "weights": weights}
    (tmp_path / "p.yaml").write_text(json.dumps(data))
    line = one_error(*run(["forward", tmp_path / "p.yaml"], capsys))
    assert line.endswith("inputs: rows have 3 values, the weights expect D = 2")


# --- 10. an .npz with the wrong arrays ----------------------------------------------------------

def test_npz_names_every_missing_and_unknown_array(tmp_path, capsys):
    np.savez(tmp_path / "w.npz", kernel=np.zeros((1, 3)), gamma=np.zeros(3), beta=np.zeros(3))
    path = tmp_path / "p.yaml"
    path.write_text("convention: keras\ninputs: [[1], [2]]\nweights: {layout: keras, file: w.npz}\n")
    line = one_error(*run(["grad", path], capsys))
    assert line == (f"grukit: error: {path}: weights.file: {tmp_path / 'w.npz'}: missing arrays 'recurrent_kernel', "
                    f"'bias'; unknown arrays 'beta', 'gamma' (layout keras holds kernel, recurrent_kernel, bias)")


def test_npz_with_one_missing_array(tmp_path, capsys):
    np.savez(tmp_path / "w.npz", weight_ih_l0=np.zeros((3, 1)), weight_hh_l0=np.zeros((3, 1)),
             bias_ih_l0=np.zeros(3))
    path = tmp_path / "p.yaml"
    path.write_text("convention: pytorch\ninputs: [[1]]\nweights: {layout: pytorch, file: w.npz}\n")
    line = one_error(*run(["forward", path], capsys))
    assert f"{path}: weights.file: " in line and "missing array 'bias_hh_l0' (layout pytorch holds" in line


# --- 11. user conventions wherever a preset name goes ----------------------------------------------

MY_GRU = "name: my-gru\ndescription: mine, from Keras\npreset: keras\nreset: before\nbiases: single\n"
MY_GRU_CONVENTION = PRESETS["keras"].with_changes(name="my-gru", description="mine, from Keras", reset="before",
                                                  biases="single")


def test_conventions_shows_a_convention_file(tmp_path, capsys):
    (tmp_path / "my.yaml").write_text(MY_GRU)
    code, out, _ = run(["conventions", tmp_path / "my.yaml"], capsys)
    assert code == 0 and out.startswith("my-gru: mine, from Keras\n")
    assert "  reset                 before\n" in out and "  layout                keras\n" in out
    code, latex, _ = run(["conventions", tmp_path / "my.yaml", "--latex"], capsys)
    assert code == 0 and latex.startswith("%% my-gru: mine, from Keras\n")
    for lhs, rhs in compact_equations(cell_equations(MY_GRU_CONVENTION)):
        assert f"{lhs} &= {rhs}" in latex


@pytest.mark.parametrize("text, field", [("preset: keras\nreset: sideways\n", "reset"),
                                         ("preset: kerass\n", "preset"),
                                         ("colour: red\n", "colour"),
                                         ("notation: {update_terms: sideways}\n", "notation.update_terms"),
                                         ("- not a mapping\n", "expected a mapping")])
def test_bad_convention_files_are_one_line_errors(tmp_path, capsys, text, field):
    (tmp_path / "bad.yaml").write_text(text)
    for argv in (["conventions", tmp_path / "bad.yaml"],
                 ["problem", "--convention", tmp_path / "bad.yaml", "-o", tmp_path / "out"]):
        line = one_error(*run(argv, capsys))
        assert str(tmp_path / "bad.yaml") in line and field in line
    assert not (tmp_path / "out").exists()


def test_missing_convention_file_and_unknown_name(tmp_path, capsys):
    line = one_error(*run(["conventions", tmp_path / "absent.yaml"], capsys))
    assert "absent.yaml: cannot read" in line
    line = one_error(*run(["problem", "--convention", "kerass", "-o", tmp_path], capsys))
    assert "--convention: unknown convention 'kerass'" in line and "convention file ending in .yaml" in line


def test_problem_command_takes_a_convention_file(tmp_path, capsys):
    (tmp_path / "my.yaml").write_text(MY_GRU)
    code, out, _ = run(["problem", "--convention", tmp_path / "my.yaml", "--dims", "2x2", "--steps", "2",
                        "--seed", "3", "--format", "md", "-o", tmp_path / "out"], capsys)
    assert code == 0, out
    path = tmp_path / "out" / "my-gru-seed3-v1.yaml"
    assert (tmp_path / "out" / "my-gru-seed3-v1-solution.md").exists()
    assert load_problem(path).convention == MY_GRU_CONVENTION  # stands alone: the convention is copied in
    assert path.read_text().startswith(f"# Generated by: grukit problem --convention {tmp_path / 'my.yaml'} ")


def test_problem_file_names_a_convention_file(tmp_path):
    (tmp_path / "my.yaml").write_text("preset: course-notes\nupdate_rule: z_keeps_old\n")
    (tmp_path / "p.yaml").write_text(COURSE_NOTES.replace("convention: course-notes", "convention: my.yaml"))
    conv = load_problem(tmp_path / "p.yaml").convention
    assert (conv.name, conv.update_rule, conv.reset) == ("course-notes-custom", "z_keeps_old", "before")


# --- 12. grad --check says what its difference means ---------------------------------------------

def test_check_with_the_exact_engine(capsys):
    code, out, _ = run(["grad", EXAMPLES / "course-notes.yaml", "--check"], capsys)
    assert code == 0
    line = out.splitlines()[-1]
    assert line.startswith("check: agrees with the derivative of the fully expanded loss to the working "
                           "precision (60 digits): max difference ")
    assert line.endswith("tolerance 1e-50)")
    difference = float(line.split("max difference ")[1].split()[0])
    assert difference < 1e-50


def test_check_with_numpy_and_json(capsys):
    code, out, _ = run(["grad", EXAMPLES / "course-notes.yaml", "--check", "--engine", "numpy"], capsys)
    assert code == 0
    assert out.splitlines()[-1].startswith(
        "check: agrees with the derivative of the fully expanded loss to float64 rounding: max difference ")
    code, out, _ = run(["grad", EXAMPLES / "course-notes.yaml", "--check", "--engine", "numpy", "--json"], capsys)
    check = json.loads(out)["check"]
    assert code == 0 and check["agrees"] is True and check["tolerance"] == 1e-12
    assert 0 < check["max_difference"] == max(check["by_name"].values()) < 1e-14
    assert check["relative_difference"] <= check["tolerance"]
    assert set(check["by_name"]) == {"W_z", "W_r", "W_h", "U_z", "U_r", "U_h", "b_z", "b_r", "b_h", "W_o", "b_o",
                                     "inputs", "h0"}


def test_check_says_clearly_when_it_does_not_agree(capsys, monkeypatch):
    from grukit.derive.check import explicit

    real = explicit.differences
    monkeypatch.setattr(explicit, "differences", lambda *a: real(*a) | {"U_h": 0.25})
    code, out, _ = run(["grad", EXAMPLES / "course-notes.yaml", "--check"], capsys)
    assert code == 1
    line = out.splitlines()[-1]
    assert line.startswith("check: DOES NOT AGREE with the derivative of the fully expanded loss: max difference 0.25")
    assert "largest in dL/dU_h" in line
    code, out, _ = run(["grad", EXAMPLES / "course-notes.yaml", "--check", "--json"], capsys)
    assert code == 1 and json.loads(out)["check"]["agrees"] is False


# --- 13. start-up ------------------------------------------------------------------------------------

HEAVY = ("sympy", "mpmath", "numba", "jinja2", "torch", "keras", "yaml")


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["conventions"]])
def test_light_commands_import_nothing_heavy(argv):
    code = ("import sys, contextlib, io\n"
            "from grukit.codegen.cli.main import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n"
            f"        main({argv!r})\n"
            "    except SystemExit:\n"
            "        pass\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_version_is_the_packages():
    proc = grukit("--version")
    assert proc.returncode == 0 and proc.stdout == f"grukit {version('grukit')}\n"


def test_the_parsers_light_copy_agrees_with_the_library():
    """The parser spells out the engines so that it needs no SymPy; they must match the library's."""
    assert cli.ENGINE_CHOICES == ENGINES

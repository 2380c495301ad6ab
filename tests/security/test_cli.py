"""The command line's one error path (docs/security.md, "One line, never a traceback"): whatever
goes wrong ends in one ``grukit: error:`` line and a status that says what kind of failure it was;
JSON output is strict JSON; counts are whole numbers; Ctrl-C leaves no traceback and no output."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from helpers import EXAMPLES
from helpers.hostile import clean, refused, run, run_process

from grukit.codegen.cli import cell

LONG_STEPS = 400


def _long_problem(folder):
    """A single-cell problem of LONG_STEPS steps whose full sheet takes several seconds."""
    rows = [[round(((7 * t) % 19 - 9) / 10, 1), round(((5 * t) % 13 - 6) / 10, 1)] for t in range(LONG_STEPS)]
    w3x2 = "[[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]"
    w3x3 = "[[0.1, 0.2, 0.3], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3]]"
    path = folder / "long.yaml"
    path.write_text(f"convention: course-notes\ninputs: {rows}\n"
                    f"weights: {{W_z: {w3x2}, W_r: {w3x2}, W_h: {w3x2}, U_z: {w3x3}, U_r: {w3x3}, U_h: {w3x3}, "
                    f"b_z: [0, 0, 0], b_r: [0, 0, 0], b_h: [0, 0, 0]}}\n"
                    f"loss: {{type: weighted_sum, G: {[[1, 1, 1]] * LONG_STEPS}}}\n")
    return path


def test_ctrl_c_ends_in_one_line_with_status_130_and_leaves_the_output_alone(tmp_path):
    """Ctrl-C (SIGINT to the process group) while a long sheet is being written: status 130, one line,
    no traceback, and the output that was there before is byte-identical (no half-written file)."""
    problem = _long_problem(tmp_path)
    out = tmp_path / "sheet.md"
    out.write_bytes(b"the previous sheet\n")
    o = run_process(["sheet", problem, "-o", out, "--steps", "all"], cwd=tmp_path, limit=60, interrupt_after=2.5)
    assert o.status == 130, o
    clean(o)
    errors = [line for line in o.err.splitlines() if line.startswith("grukit: error")]
    assert errors == ["grukit: error: interrupted"], o.err
    assert out.read_bytes() == b"the previous sheet\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_json_output_is_strict_json(tmp_path):
    """A NaN that reaches a result (here a layer problem's loss weights read from an .npy) is never
    written as the non-JSON token NaN: the command fails in one line naming the problem."""
    np.save(tmp_path / "g.npy", np.full((1, 2, 3), np.nan))
    source = (EXAMPLES / "course-notes.yaml").read_text()
    weights = source[source.index("weights:"):source.index("loss:")]
    (tmp_path / "p.yaml").write_text(f"convention: course-notes\ninputs: [[[0.5, -0.1], [0.2, 0.3]]]\n{weights}"
                                     "loss: {type: weighted_sum, G: {file: g.npy}}\n")
    o = run(["grad", tmp_path / "p.yaml", "--json"], cwd=tmp_path)
    refused(o, "p.yaml")
    assert "NaN" not in o.out


def test_every_json_output_parses_strictly():
    for argv in (["forward", EXAMPLES / "homework.yaml", "--json"], ["grad", EXAMPLES / "course-notes.yaml", "--json"],
                 ["grad", EXAMPLES / "course-notes.yaml", "--json", "--engine", "numba"]):
        o = run(argv)
        assert o.status == 0, o.err
        json.loads(o.out, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))


@pytest.mark.parametrize("argv", [["identify", "--top", "-5"], ["identify", "--top", "0"], ["identify", "--top", "x"],
                                  ["sheet", "--sequence", "-1"]])
def test_counts_and_indices_are_whole_numbers_in_range(argv):
    """``identify --top -5`` was accepted; a count or an index out of range is a usage error now."""
    path = EXAMPLES / ("keras-question-claims.yaml" if argv[0] == "identify" else "course-notes.yaml")
    o = run([argv[0], path, *argv[1:]])
    assert o.status == 2 and "expected a whole number" in o.err and "Traceback" not in o.err


def test_bench_says_what_is_missing_before_it_starts(tmp_path):
    """Without PyTorch, ``grukit bench`` used to time the kernels and then fail with a traceback."""
    (tmp_path / "torch.py").write_text("raise ImportError('no torch in this test')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    o = run_process(["bench", "--quick", "--no-plot"], cwd=tmp_path, env=env, limit=60)
    refused(o, "bench", "PyTorch", "pip install")
    assert o.seconds < 30


def test_an_os_error_no_reader_caught_still_names_its_file(tmp_path):
    o = run(["grad", tmp_path])  # a directory where a file is expected
    refused(o, str(tmp_path))


def test_a_bug_is_one_line_with_its_own_status(monkeypatch):
    """An exception grukit did not expect is a bug: one line asking for a report, status 70; the
    traceback is there for whoever sets GRUKIT_TRACEBACK."""
    def broken(args):
        raise RuntimeError("something\nspanning lines")

    monkeypatch.setattr(cell, "cmd_grad", broken)
    o = run(["grad", EXAMPLES / "course-notes.yaml"])
    assert o.status == 70 and o.err.count("\n") == 1 and "internal error (RuntimeError: something spanning lines)" \
        in o.err
    monkeypatch.setenv("GRUKIT_TRACEBACK", "1")
    with pytest.raises(RuntimeError):
        run(["grad", EXAMPLES / "course-notes.yaml"])


def test_a_files_strings_reach_the_terminal_as_text(tmp_path):
    """A convention name with a terminal escape sequence and a bidi override prints as plain text."""
    (tmp_path / "evil.yaml").write_text('preset: keras\nname: "evil\\e[31mRED\\u202eA"\n')
    o = run(["conventions", tmp_path / "evil.yaml"])
    clean(o)
    assert o.status == 0 and o.out.startswith("evil[31mREDA: ") and "\x1b" not in o.out and "\u202e" not in o.out


def test_two_parameters_may_not_share_a_name(tmp_path):
    """Two roles named alike would overwrite each other in files, sheets and kernels."""
    (tmp_path / "c.yaml").write_text("preset: pytorch\nnotation: {recurrent_bias_key: 'b_i{g}'}\n")
    refused(run(["conventions", tmp_path / "c.yaml"]), "c.yaml", "b_iz")


@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_float_overflow_is_one_line_not_nan(tmp_path, engine):
    """Finite inputs can overflow float64 (a softmax of logits near 1e4): the float engines refuse the
    result in one line and print no NumPy warnings; the exact engine computes it."""
    text = (EXAMPLES / "course-notes.yaml").read_text()
    text = text.replace("b_o: [0.1, -0.1]", "b_o: [9000, -9000]")
    (tmp_path / "p.yaml").write_text(text)
    refused(run(["grad", tmp_path / "p.yaml", "--engine", engine, "--json"]), "p.yaml", "overflowed", "--engine exact")
    assert run(["grad", tmp_path / "p.yaml", "--engine", "exact", "--json"]).status == 0


def test_float_overflow_in_a_layer_problem_is_one_line(tmp_path):
    """The same for a layer problem: with a linear candidate, h0 and U_h near 1e100 give states near
    1e200, whose squared error is not finite in float64."""
    source = (EXAMPLES / "course-notes.yaml").read_text()
    weights = source[source.index("weights:"):source.index("loss:")]
    weights = weights.replace("U_h: [[0.2, 0.3, -0.1], [-0.2, 0.1, 0.4], [0.3, -0.2, 0.1]]",
                              "U_h: [[1e100, 1e100, 1e100], [1e100, 1e100, 1e100], [1e100, 1e100, 1e100]]")
    (tmp_path / "p.yaml").write_text("convention: {preset: course-notes, candidate_activation: linear}\n"
                                     "inputs: [[[0.5, -0.1], [0.2, 0.3]]]\nh0: [[1e100, 1e100, 1e100]]\n"
                                     f"{weights}loss: {{type: squared_error, targets: [[[0, 0, 0], [0, 0, 0]]]}}\n")
    refused(run(["grad", tmp_path / "p.yaml", "--engine", "numpy"]), "p.yaml", "overflowed")

"""grukit verify: the walk of named numbers, verdicts, the course notes (seed 001), formula claims.

References: the numbers the course notes print (seed 001, transcribed in
docs/examples/course-notes-claims.yaml), ``solve`` (itself checked against the expanded
derivative, finite differences and the frameworks), and hand calculations rounded at every step.
"""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
from helpers import ROOT, copy_examples
from helpers.random_problems import random_problem

from grukit.codegen.cli.main import main
from grukit.derive.audit.audit import audit
from grukit.derive.audit.claims import load_claims
from grukit.derive.audit.replay import Walk
from grukit.derive.cell.layouts import named_arrays
from grukit.derive.cell.presets import PRESETS
from grukit.derive.numeric.evaluate import StepwiseEngine, engine, round_half_up
from grukit.derive.numeric.solve import solve

EXAMPLES = ROOT / "docs" / "examples"


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def claims_text(problem_yaml: str, claims: dict) -> str:
    return problem_yaml + "claims:\n" + "".join(f"  {name}: {value}\n" for name, value in claims.items())


def printed(values, decimals: int) -> str:
    arr = np.asarray(values, dtype=object)
    if arr.ndim == 0:
        return str(round_half_up(arr[()], decimals))
    return "[" + ", ".join(printed(v, decimals) for v in arr) + "]"


# --- the walk gives solve's numbers -----------------------------------------------------------

@pytest.mark.parametrize("name", list(PRESETS))
def test_walk_gives_solves_numbers(name):
    p = random_problem(name, 2, 3, 2, seed=3)
    w = Walk(p, engine("exact"))
    sol = solve(p, "exact", gradients=True)
    for t, tr in enumerate(sol.traces, start=1):
        for q, node in (("z", "z"), ("r", "r"), ("c", "candidate"), ("h", "h")):
            np.testing.assert_array_equal(np.asarray(w.value(f"{node}[{t}]"), float), np.asarray(tr.values[q], float))
        np.testing.assert_allclose(np.asarray(w.value(f"dL/dx[{t}]"), float),
                                   np.asarray(sol.gradient.inputs[t - 1], float), rtol=0, atol=1e-40)
    for key, value in named_arrays(p.convention, sol.gradient.params, None, 2, 3).items():
        np.testing.assert_allclose(np.asarray(w.value("dL/d" + key), float), np.asarray(value, float),
                                   rtol=0, atol=1e-40)
    np.testing.assert_allclose(np.asarray(w.value("dL/dh[0]"), float), np.asarray(sol.gradient.h0, float), atol=1e-40)
    assert abs(float(w.value("loss")[0]) - float(sol.gradient.loss)) < 1e-40


# --- grukit's own numbers verify ----------------------------------------------------------------

def _problem_yaml(p) -> str:
    conv = p.convention
    lines = [f"problem:\n  convention: {conv.name}\n  inputs: {np.asarray(p.inputs, float).tolist()}\n"
             f"  h0: {np.asarray(p.h0, float).tolist()}\n  weights:\n"]
    lines += [f"    {conv.key(q)}: {np.asarray(v, float).tolist()}\n" for q, v in p.params.items()]
    lines.append(f"  loss: {{type: weighted_sum, G: {np.asarray(p.loss.targets, float).tolist()}}}\n")
    return "".join(lines)


@pytest.mark.parametrize("name", list(PRESETS))
def test_grukits_own_numbers_at_4_decimals_verify(tmp_path, capsys, name):
    """Every name of the problem, claimed as grukit prints it (4 decimals) -> exit 0, every claim ok."""
    p = random_problem(name, 2, 2, 2, seed=5)
    w = Walk(p, engine("exact"))
    claims = {n: printed(w.values[n], 4) for n in w.info}
    (tmp_path / "c.yaml").write_text(claims_text(_problem_yaml(p), claims))
    code, out, err = run(["verify", tmp_path / "c.yaml", "--json"], capsys)
    data = json.loads(out)
    assert code == 0, err
    assert {c["verdict"] for c in data["claims"]} == {"ok"} and len(data["claims"]) == len(claims)


@pytest.mark.parametrize("name", ["course-notes", "keras", "homework", "colah"])
def test_a_hand_calculation_rounding_every_step_is_never_wrong(tmp_path, name):
    """Every intermediate rounded to 3 decimals and reused (the stepwise engine): rounding or ok."""
    p = random_problem(name, 2, 3, 3, seed=7)
    hand = Walk(p, StepwiseEngine(3))
    claims = {n: printed(hand.values[n], 3) for n in hand.info}
    (tmp_path / "c.yaml").write_text(claims_text(_problem_yaml(p), claims))
    report = audit(load_claims(tmp_path / "c.yaml"), diagnose=False)
    assert {r.verdict for r in report.results} <= {"ok", "rounding"}
    assert any(r.verdict == "rounding" for r in report.results)


def test_drift_bound_tells_drift_from_error(tmp_path):
    """Off by 0.0007 after many rounded stages: drift; off by 0.027: wrong (the issue's example)."""
    p = random_problem("course-notes", 2, 3, 3, seed=11)
    exact = float(Walk(p, engine("exact")).value("h[1]")[0])
    verdicts = {}
    for off in (0.0007, 0.027):
        (tmp_path / "c.yaml").write_text(claims_text(_problem_yaml(p), {"h[1][0]": f"{exact + off:.3f}"}))
        verdicts[off] = audit(load_claims(tmp_path / "c.yaml"), diagnose=False).results[0].verdict
    assert verdicts == {0.0007: "rounding", 0.027: "wrong"}


# --- the course notes (seed 001) -------------------------------------------------------------------

NOTES_ERROR = "dropped paths in dL/dh[t-1]: through the reset product r ⊙ h and through U_z (update gate)"


@pytest.mark.parametrize("file", ["course-notes-claims.yaml", "course-notes-results-claims.yaml"])
def test_course_notes_the_one_error_and_no_false_alarm(capsys, file):
    code, out, _ = run(["verify", EXAMPLES / file, "--json"], capsys)
    data = json.loads(out)
    assert code == 1 and data["wrong"] == 1
    wrong = data["claims"][0]
    assert wrong["name"] == "dL/dh[0]" and wrong["verdict"] == "wrong"
    assert wrong["diagnosis"][0] == NOTES_ERROR
    assert all(c["verdict"] in ("ok", "rounding") for c in data["claims"][1:])


def test_course_notes_claims_are_the_notes_numbers():
    """The transcription keeps the notes' printed precision (0.0008 has four decimals, 0.400 three)."""
    cf = load_claims(EXAMPLES / "course-notes-claims.yaml")
    by_name = {c.name: c for c in cf.claims}
    assert by_name["U_r^T dL/da_r[1]"].text == "[-0.001, -0.0008, 0.0003]"
    assert by_name["U_r^T dL/da_r[1]"].decimals.tolist() == [3, 4, 4]
    assert by_name["dL/db_o"].text == "[-0.400, 0.400]" and by_name["dL/db_o"].node == "dL/do[1]"
    assert len(cf.claims) == 41


def test_course_notes_text_report_lists_the_wrong_claim_first(capsys):
    code, out, _ = run(["verify", EXAMPLES / "course-notes-claims.yaml"], capsys)
    lines = out.splitlines()
    assert code == 1 and "1 wrong" in lines[0]
    assert lines[2] == "WRONG  dL/dh[0]" and f"diagnosis: {NOTES_ERROR}" in out


# --- formula claims --------------------------------------------------------------------------------

def test_formula_claims(tmp_path):
    copy_examples(tmp_path, "course-notes.yaml")
    (tmp_path / "f.yaml").write_text(
        "problem: course-notes.yaml\nclaims:\n"
        '  dL/dW_z: "delta_z x^T"\n'
        '  dL/dh[t-1]: "dL/dh * (1 - z) + U_r^T delta_r"\n'
        '  dL/dz[t]: "dL/dh * (h_prev - c)"\n'
        '  dL/da_h[t]: "dL/dc ⊙ (1 - c^2)"\n'
        '  z[t]: "sigmoid(W_z x + U_z h[t-1] + b_z)"\n')
    report = {r.claim.name: r for r in audit(load_claims(tmp_path / "f.yaml")).results}
    assert report["dL/dW_z"].verdict == "ok" and report["dL/da_h[t]"].verdict == "ok"
    assert report["z[t]"].verdict == "ok"
    notes = report["dL/dh[t-1]"]
    assert notes.verdict == "wrong"
    assert notes.formula.missing == ["through the reset product r ⊙ h", "through U_z (update gate)"]
    assert report["dL/dz[t]"].verdict == "wrong" and report["dL/dz[t]"].formula.difference != "0"


# --- bad input ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, field", [
    ("problem: course-notes.yaml\nclaims:\n  nonesuch[1]: 0.5\n", "claims.nonesuch[1]: unknown name"),
    ("problem: course-notes.yaml\nclaims:\n  z[1]: [0.1, 0.2]\n", "claims.z[1]: expected 3 numbers"),
    ("problem: course-notes.yaml\nclaims:\n  dL/dW_z: [[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]]\n",
     "claims.dL/dW_z: expected 3x2"),
    ("problem: course-notes.yaml\nclaims:\n  h[1][7]: 0.5\n", "claims.h[1][7]: index [7] outside h[1]"),
    ("problem: course-notes.yaml\nclaims:\n  z[1]: [0.1, yes, 0.2]\n", "claims.z[1]: expected numbers"),
    ("problem: nowhere.yaml\nclaims:\n  z[1]: 0.5\n", "nowhere.yaml: cannot read"),
    ("problem: course-notes.yaml\nclaim:\n  z[1]: 0.5\n", "a mapping with 'problem' and 'claims'"),
    ("problem: course-notes.yaml\nnotes: x\nclaims:\n  z[1]: 0.5\n", "notes: unknown key"),
    ("problem: course-notes.yaml\nclaims:\n  z[1]: [0.1, 0.2\n", "not valid YAML"),
    ("problem: course-notes.yaml\nclaims:\n  dL/dW_z: \"delta_q x^T\"\n", "claims.dL/dW_z: unknown gate"),
])
def test_bad_claims_files_are_one_line_errors(tmp_path, capsys, text, field):
    (tmp_path / "course-notes.yaml").write_text((EXAMPLES / "course-notes.yaml").read_text())
    (tmp_path / "c.yaml").write_text(text)
    code, out, err = run(["verify", tmp_path / "c.yaml"], capsys)
    assert code == 2 and out == "" and len(err.splitlines()) == 1, err
    assert field in err and "Traceback" not in err


def test_numbers_are_read_as_printed(tmp_path):
    """0.010 has three decimals, "0.5000" (a string) four, 1e-3 three; a bare number fits a 1-element value."""
    copy_examples(tmp_path, "course-notes.yaml")
    (tmp_path / "c.yaml").write_text("problem: course-notes.yaml\nclaims:\n"
                                     "  h[1][0]: 0.010\n  h[1][1]: \"0.5000\"\n  h[1][2]: 1e-3\n  loss: 0.5107\n")
    claims = {c.name: c for c in load_claims(tmp_path / "c.yaml").claims}
    assert [int(claims[n].decimals) for n in ("h[1][0]", "h[1][1]", "h[1][2]")] == [3, 4, 3]
    assert claims["loss"].node == "loss" and claims["h[1][2]"].index == (2,)


def test_names_lists_every_name_with_its_shape(capsys):
    code, out, _ = run(["names", EXAMPLES / "homework.yaml", "--json"], capsys)
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0
    assert rows["z[1]"]["shape"] == [1] and rows["h[2]"]["shape"] == [3] and "s[2]" in rows["h[2]"]["spellings"]
    assert rows["x[1] U_h"]["shape"] == [3]


def test_verify_a_three_step_file_is_quick(tmp_path):
    """Every name of a 3-step problem claimed, some wrong (diagnosis runs): under 5 s."""
    p = random_problem("keras", 2, 3, 3, seed=13)
    w = Walk(p, engine("exact"))
    claims = {n: printed(w.values[n], 4) for n in w.info}
    claims["h[2]"] = printed(np.asarray(w.values["h[2]"], dtype=object) + 1, 4)
    claims["dL/dh[1]"] = printed(-np.asarray(w.values["dL/dh[1]"], dtype=object), 4)
    (tmp_path / "c.yaml").write_text(claims_text(_problem_yaml(p), claims))
    start = time.perf_counter()
    report = audit(load_claims(tmp_path / "c.yaml"))
    assert time.perf_counter() - start < 5
    assert report.wrong >= 2


def test_claims_under_the_frameworks_own_array_names(tmp_path, capsys):
    """A problem whose weights came as Keras arrays: its gradients are claimed as dL/dkernel, ...,
    the numbers `grukit grad` prints under those names."""
    assert main(["grad", str(EXAMPLES / "keras-layout.yaml"), "--json"]) == 0
    grads = json.loads(capsys.readouterr().out)["grads"]
    assert set(grads) == {"kernel", "recurrent_kernel", "bias"}
    claims = {f"dL/d{name}": "[" + ", ".join("[" + ", ".join(f"{v:.6f}" for v in row) + "]" for row in value) + "]"
              for name, value in grads.items()}
    claims["dL/dkernel[1][4]"] = f"{grads['kernel'][1][4]:.6f}"
    copy_examples(tmp_path, "keras-layout.yaml", "keras-layout.npz")
    (tmp_path / "c.yaml").write_text(claims_text("problem: keras-layout.yaml\n", claims))
    assert {r.verdict for r in audit(load_claims(tmp_path / "c.yaml")).results} == {"ok"}

"""``grukit verify FOLDER``: a class's submissions graded at once, one table as JSON, CSV and Markdown.

The submissions are written from independent NumPy hand calculations (tests/helpers/audit_mistakes.py
through the planted examples of tests/helpers/audit_examples.py): correct ones at several decimals,
and each known mistake, whose wrong claims and diagnosis the planted example states. Hostile rows
(broken YAML, a link, a FIFO, a file that never ends, one that eats memory) must each stay in their
own row.
"""
from __future__ import annotations

import csv
import io
import json
import os
import time
from dataclasses import replace
from pathlib import Path

from helpers.audit_examples import PLANTED, render

from grukit.codegen.cli.main import main
from grukit.codegen.grading import processes as grading
from grukit.derive.audit.verify import VERDICTS

D2L = PLANTED[0]  # the dropped path in d2l's dL/dh[t-1]; one problem for a whole class


def _split(text: str) -> tuple[str, str]:
    """A rendered claims file as (its problem as a problem file, the claims without a problem)."""
    head, _, claims = text.partition("claims:\n")
    problem = head.partition("problem:\n")[2]
    return "\n".join(line[2:] for line in problem.splitlines()) + "\n", "claims:\n" + claims


def _class_of_one_problem(folder: Path, copies: int = 1) -> tuple[Path, dict]:
    """Submissions without a problem of their own, for D2L's problem; file name -> expected row."""
    folder.mkdir()
    problem_text, _ = _split(render(D2L))
    (folder.parent / "problem.yaml").write_text(problem_text)
    expected = {}
    for k in range(copies):
        for decimals in (4, 3, 2):
            _, claims = _split(render(replace(D2L, mistake="", decimals=decimals)))
            expected[f"{k:03d}-right-{decimals}.yaml"] = (claims, 0, set(), "")
        _, claims = _split(render(D2L))
        expected[f"{k:03d}-dropped-path.yaml"] = (claims, 1, D2L.wrong, D2L.diagnosis)
        _, claims = _split(render(replace(D2L, mistake="")))
        off = claims.replace("h[1]: [0.1940,", "h[1]: [0.4940,")
        assert off != claims
        expected[f"{k:03d}-h1-off.yaml"] = (off, 1, {"h[1]"}, "")
    for name, (text, *_) in expected.items():
        (folder / name).write_text(text)
    return folder.parent / "problem.yaml", {n: tuple(rest) for n, (_, *rest) in expected.items()}


def _grade(capsys, folder: Path, *options) -> tuple[int, dict, str]:
    out = folder.parent / "out" / "grades"
    code = main(["verify", str(folder), "-o", str(out), "--json", *options])
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert json.loads(out.with_suffix(".json").read_text()) == data
    return code, data, captured.err


def _check_rows(data: dict, expected: dict) -> None:
    rows = {r["file"]: r for r in data["files"]}
    assert set(rows) == set(expected)
    for name, (status, wrong, phrase) in expected.items():
        r = rows[name]
        assert r["status"] == status and r["error"] is None, (name, r)
        assert {w["name"] for w in r["wrong"]} == wrong, (name, r)
        assert r["counts"]["wrong"] == len(wrong) and sum(r["counts"].values()) == r["claims"], (name, r)
        if status == 0:
            assert r["counts"]["propagated"] == 0, (name, r)
        assert all(any(phrase in d for d in w["diagnosis"]) for w in r["wrong"]), (name, r)


def test_a_class_against_one_problem_gives_the_expected_table(tmp_path, capsys):
    problem, expected = _class_of_one_problem(tmp_path / "class")
    code, data, err = _grade(capsys, tmp_path / "class", "--problem", str(problem))
    assert code == 1 and data["problem"] == str(problem)
    _check_rows(data, expected)
    assert data["summary"] == {"files": 5, "right": 3, "with_wrong_claims": 2, "not_graded": 0}
    assert "grukit: graded 5 files" in err


def test_each_submission_naming_its_own_problem(tmp_path, capsys):
    """Every planted example, wrong and made right, each with its problem inline; a problem file
    beside them is no submission."""
    folder = tmp_path / "class"
    folder.mkdir()
    expected = {}
    for p in PLANTED:
        stem = p.file.removesuffix("-claims.yaml")
        (folder / f"{stem}-wrong.yaml").write_text(render(p))
        expected[f"{stem}-wrong.yaml"] = (1, p.wrong, p.diagnosis)
        (folder / f"{stem}-right.yaml").write_text(render(replace(p, mistake="")))
        expected[f"{stem}-right.yaml"] = (0, set(), "")
    (folder / "problem.yaml").write_text(_split(render(D2L))[0])
    code, data, _ = _grade(capsys, folder)
    assert code == 1 and data["problem"] is None
    _check_rows(data, expected)
    assert data["skipped"] == [{"file": "problem.yaml", "why": "a problem file (inputs, no claims)"}]


def test_csv_and_markdown_say_what_the_json_says(tmp_path, capsys):
    problem, expected = _class_of_one_problem(tmp_path / "class")
    (tmp_path / "class" / "=cmd|' x'!A1.yaml").write_text("claims:\n  h[1]: [0.1940, -0.2651]\n")
    _, data, _ = _grade(capsys, tmp_path / "class", "--problem", str(problem))
    rows = list(csv.reader(io.StringIO((tmp_path / "out" / "grades.csv").read_text())))
    assert rows[0] == ["file", "status", "claims", *VERDICTS, "wrong claims", "error"]
    by_file = {r[0]: r for r in rows[1:]}
    assert by_file["'=cmd|' x'!A1.yaml"][1] == "0"  # a spreadsheet never reads a file name as a formula
    for r in data["files"]:
        row = by_file[r["file"].replace("=", "'=", 1) if r["file"].startswith("=") else r["file"]]
        counts = [str(r["counts"][v]) for v in VERDICTS]
        assert row[1:3 + len(VERDICTS)] == [str(r["status"]), str(r["claims"]), *counts]
        assert [line.split(" = ")[0] for line in row[-2].splitlines()] == [w["name"] for w in r["wrong"]]
    md = (tmp_path / "out" / "grades.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("| `")]
    assert len(table) == len(data["files"])
    assert "`=cmd\\|' x'!A1.yaml`" in md and D2L.diagnosis.replace("_", "\\_").replace("[", "\\[").replace(
        "]", "\\]") in md


def test_a_hostile_submission_affects_only_its_own_row(tmp_path, capsys, monkeypatch):
    """A file that never finishes, one that eats memory, broken YAML, a link out of the folder, a FIFO
    and a problem named outside the folder: each its row's one-line error; the others graded."""
    folder = tmp_path / "class"
    folder.mkdir()
    good = render(D2L)
    for name in ("a-good.yaml", "slow.yaml", "hog.yaml", "z-good.yaml"):
        (folder / name).write_text(good)
    (folder / "broken.yaml").write_text("claims: [1\n")
    (folder / "outside.yaml").write_text("problem: ../problem.yaml\nclaims:\n  h[1]: [0.1940, -0.2651]\n")
    (tmp_path / "problem.yaml").write_text(_split(good)[0])
    (folder / "link.yaml").symlink_to(tmp_path / "problem.yaml")
    os.mkfifo(folder / "fifo.yaml")
    real = grading.graded

    def hostile(path, problem):  # in the forked child, as a submission that hangs or grows would
        if path.name == "slow.yaml":
            time.sleep(60)
        if path.name == "hog.yaml":
            hoard = [bytearray(2 ** 20) for _ in range(4096)]
            return {"status": 0, "held": len(hoard)}
        return real(path, problem)

    monkeypatch.setattr(grading, "graded", hostile)
    start = time.monotonic()
    code, data, _ = _grade(capsys, folder, "--timeout", "3", "--memory", "256", "--jobs", "2")
    assert time.monotonic() - start < 30
    rows = {r["file"]: r for r in data["files"]}
    assert code == 2 and data["summary"]["not_graded"] == 6
    for name in ("a-good.yaml", "z-good.yaml"):
        assert rows[name]["status"] == 1 and {w["name"] for w in rows[name]["wrong"]} == D2L.wrong
    errors = {name: rows[name]["error"] for name in rows if rows[name]["status"] == 2}
    assert "not graded within the time limit (3 s)" in errors["slow.yaml"]
    assert "memory limit (256 MiB)" in errors["hog.yaml"]
    assert "not valid YAML" in errors["broken.yaml"]
    assert "leads outside" in errors["outside.yaml"]
    assert "symbolic link" in errors["link.yaml"] and "not a regular file" in errors["fifo.yaml"]
    assert all(len(e.splitlines()) == 1 and e.startswith(str(folder / name)) for name, e in errors.items())


def test_a_failed_run_leaves_the_old_table_alone(tmp_path, capsys):
    problem, _ = _class_of_one_problem(tmp_path / "class")
    out = tmp_path / "out" / "grades"
    assert main(["verify", str(tmp_path / "class"), "-o", str(out), "--problem", str(problem)]) == 1
    before = {p.name: p.read_bytes() for p in out.parent.iterdir()}
    assert sorted(before) == ["grades.csv", "grades.json", "grades.md"]
    capsys.readouterr()
    problem.write_text("convention: d2l\ninputs: [[1, 2]]\n")
    assert main(["verify", str(tmp_path / "class"), "-o", str(out), "--problem", str(problem)]) == 2
    assert len(capsys.readouterr().err.splitlines()) == 1
    assert {p.name: p.read_bytes() for p in out.parent.iterdir()} == before
    assert main(["verify", str(tmp_path / "class" / "000-right-4.yaml"), "--problem", str(problem)]) == 2
    assert "--problem: grades a folder" in capsys.readouterr().err


def test_the_same_class_gives_the_same_bytes(tmp_path, capsys):
    problem, _ = _class_of_one_problem(tmp_path / "class")
    tables = []
    for jobs in ("1", "2"):
        out = tmp_path / jobs / "grades"
        main(["verify", str(tmp_path / "class"), "-o", str(out), "--problem", str(problem), "--jobs", jobs])
        tables.append({s: out.with_suffix(s).read_bytes() for s in (".csv", ".md", ".json")})
    capsys.readouterr()
    assert tables[0] == tables[1]


def test_the_progress_line_counts_files_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    show = grading.terminal_progress(stream)
    show(1, 2)
    show(2, 2)
    assert stream.getvalue() == "\rgrukit: graded 1/2 files\rgrukit: graded 2/2 files\n"
    assert grading.terminal_progress(io.StringIO()) is None

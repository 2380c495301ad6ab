"""The table of ``grukit verify FOLDER``: one row per submission -- counts by verdict, each wrong claim
with what explains it, an exit status -- as JSON, CSV and Markdown, all three from the same data.

A submission's text (its file name, its claims' names and printed numbers) reaches the Markdown only
escaped (:func:`grukit.codegen.render.escape_md`), and a CSV cell never starts with what a spreadsheet
reads as a formula (``= + - @``, a tab or a carriage return: the cell gets a leading ``'``).
"""
from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
from pathlib import Path

from grukit.codegen.cli.grading import SUFFIXES, Limits, grade_all, submissions, terminal_progress
from grukit.codegen.cli.text import print_json
from grukit.codegen.output import write_atomic
from grukit.codegen.render import plain_text, render
from grukit.derive.audit.audit import sample_problem, warm_up
from grukit.derive.audit.verify import VERDICTS
from grukit.derive.cell.presets import PRESETS
from grukit.derive.errors import GrukitError
from grukit.derive.files.problem_file import load_problem

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What a spreadsheet reads as the start of a formula in a CSV cell (OWASP's "CSV injection")."""


def table(folder: Path, problem: Path | None, files: list[Path], rows: list[dict]) -> dict:
    """The rows by file name (``grukit verify FOLDER --json``); problem files among them are listed apart."""
    graded, skipped = [], []
    for path, row in zip(files, rows):
        if "skipped" in row:
            skipped.append({"file": path.name, "why": row["skipped"]})
            continue
        graded.append({"file": path.name, "status": row["status"], "claims": row.get("claims"),
                       "counts": row.get("counts"), "wrong": row.get("wrong", []), "error": row.get("error")})
    summary = {"files": len(graded), "right": sum(r["status"] == 0 for r in graded),
               "with_wrong_claims": sum(r["status"] == 1 for r in graded),
               "not_graded": sum(r["status"] not in (0, 1) for r in graded)}
    return {"folder": str(folder), "problem": None if problem is None else str(problem), "files": graded,
            "skipped": skipped, "summary": summary}


def _cell(text) -> str:
    """A text cell: one line of printed characters, never read as a formula."""
    body = plain_text(text)
    return "'" + body if body.startswith(FORMULA_STARTS) else body


def wrong_text(row: dict) -> str:
    """Each wrong claim of a row and what explains it, one per line."""
    return "\n".join(f"{w['name']} = {w['printed']}: {'; '.join(w['diagnosis'])}" for w in row["wrong"])


def csv_text(data: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["file", "status", "claims", *VERDICTS, "wrong claims", "error"])
    for r in data["files"]:
        counts = r["counts"] or {}
        lines = wrong_text(r).split("\n")
        writer.writerow([_cell(r["file"]), r["status"], "" if r["claims"] is None else r["claims"],
                         *(counts.get(v, "") for v in VERDICTS), "\n".join(_cell(line) for line in lines),
                         _cell(r["error"] or "")])
    return out.getvalue()


def markdown_text(data: dict) -> str:
    return render("grades.md.j2", verdicts=VERDICTS, **data)


def _warming():
    """After each row of a class whose files name their own problems: the built-in convention it used,
    derived here once (on a problem of grukit's own, never a submitted one), so that the processes
    forked for later files start with it."""
    seen = set()

    def learn(row: dict) -> None:
        name = row.get("convention")
        if name in PRESETS and name not in seen:
            seen.add(name)
            warm_up(sample_problem(PRESETS[name]))

    return learn


def cmd_grade(args) -> int:
    """``grukit verify FOLDER``: every claims file graded (:mod:`grukit.codegen.cli.grading`), the table
    written as OUTPUT.csv, OUTPUT.md and OUTPUT.json (atomically); exit status the worst row's."""
    folder = Path(args.claims)
    stem = Path(args.output or "grades")
    outputs = {suffix: stem.with_name(stem.name + suffix) for suffix in (".csv", ".md", ".json")}
    problem = load_problem(args.problem) if args.problem else None
    if problem is not None:
        warm_up(problem)  # once here, not in every forked child
    skip = {p.resolve() for p in [*outputs.values(), *([Path(args.problem)] if args.problem else [])]}
    files = [f for f in submissions(folder) if f.resolve() not in skip]
    if not files:
        raise GrukitError(f"{folder}: a folder with no claims files ({', '.join(SUFFIXES)}) to grade")
    limits = Limits(args.jobs or len(os.sched_getaffinity(0)), float(args.timeout), args.memory)
    start = time.monotonic()
    rows = grade_all(files, problem, limits, terminal_progress(), None if problem is not None else _warming())
    data = table(folder, None if problem is None else Path(args.problem), files, rows)
    write_atomic(outputs[".json"], (json.dumps(data, indent=1, allow_nan=False) + "\n").encode())
    write_atomic(outputs[".csv"], csv_text(data).encode())
    write_atomic(outputs[".md"], markdown_text(data).encode())
    s = data["summary"]
    print(f"grukit: graded {s['files']} files in {time.monotonic() - start:.1f} s ({limits.jobs} processes)",
          file=sys.stderr)
    if args.json:
        print_json(data, folder)
    else:
        print(f"{folder}: {s['files']} files: {s['right']} without a wrong claim, {s['with_wrong_claims']} with a "
              f"wrong claim, {s['not_graded']} not graded; wrote {', '.join(map(str, outputs.values()))}")
    return max((r["status"] for r in data["files"]), default=0)

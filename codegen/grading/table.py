"""The table of ``grukit verify FOLDER``: one row per submission -- counts by verdict, each wrong claim
with what explains it, an exit status -- as JSON, CSV and Markdown, all three from the same data.

A submission's text (its file name, its claims' names and printed numbers) reaches the Markdown only
escaped (:func:`grukit.codegen.render.escape_md`), and a CSV cell never starts with what a spreadsheet
reads as a formula (``= + - @``, a tab or a carriage return: the cell gets a leading ``'``).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from grukit.codegen.render import plain_text, render
from grukit.derive.audit.verify import VERDICTS

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

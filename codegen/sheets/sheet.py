"""Worked solution sheets: a pure-data *sheet model* built from one solved problem.

:func:`build_sheet` solves a problem with the exact engine (and, for ``rounding="stepwise"``, with
the hand-calculation engine too), keeping every value a sheet shows (``solve(..., detail=True)``),
and writes the model from the stage list, the backward records and those numbers:

* :mod:`~grukit.codegen.sheets.forward` -- statement, data and forward pass;
* :mod:`~grukit.codegen.sheets.loss` -- the loss and the step back into the state;
* :mod:`~grukit.codegen.sheets.backward` -- the backward records of every step;
* :mod:`~grukit.codegen.sheets.summary` -- BPTT sums, summary, update, results, questions.

A long problem is worked in full at some of its steps (:func:`parse_steps`, ``--steps``); the others
are named where they are left out, and every sum and total includes them.

All layout lives in the templates ``templates/sheet.tex.j2`` (LaTeX, compiled to PDF) and
``templates/sheet.md.j2`` (Markdown with ``$$`` math for GitHub and Jupyter). Numbers are tokens
while the model is written (:mod:`~grukit.codegen.sheets.numbers`); nothing here names a convention.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path

import mpmath

from grukit.codegen.output import compile_pdf, write_atomic
from grukit.codegen.render import render
from grukit.codegen.sheets.backward import backward_part
from grukit.codegen.sheets.forward import forward_part, header
from grukit.codegen.sheets.loss import loss_part, output_backward_part
from grukit.codegen.sheets.numbers import substitute
from grukit.codegen.sheets.options import DEFAULT_DECIMALS, FORMATS, ROUNDINGS
from grukit.codegen.sheets.summary import bptt_part, questions_part, results, summary_part, update_part
from grukit.codegen.sheets.writer import Progress, SheetWriter, steps_text
from grukit.derive.errors import GrukitError
from grukit.derive.files.problem_file import load_problem
from grukit.derive.numeric.evaluate import DIGITS
from grukit.derive.numeric.problem import Problem
from grukit.derive.numeric.solve import solve

FULL_STEPS = 10
"""A problem with at most this many time steps is worked in full unless ``steps`` says otherwise."""
DEFAULT_STEPS = "1-3,last"
"""The steps worked in full on a longer problem (``--steps``); the sums and the summary cover every step."""
PROGRESS_STEPS = 50
"""From this many time steps on, building a sheet reports its progress on stderr."""
BUILTIN_EXAMPLE = "course-notes.yaml"
"""The problem of ``grukit sheet`` without a PROBLEM: the course notes' worked example (seed 001),
shipped with the templates (a copy of ``docs/examples/course-notes.yaml``; a test keeps them equal)."""


USER_TEXT = ("title", "description", "problem_file", "convention")
"""The model's entries that hold the user's text (escaped by the templates); everything else is the
sheet's own prose and math."""
_MATRIX = re.compile(r"\\begin\{bmatrix\}(.*?)\\end\{bmatrix\}", re.S)


def matrix_columns(model: dict) -> int:
    """The most columns of any matrix the sheet sets (amsmath's ``MaxMatrixCols`` must be at least
    this; its default is 10), read from the model's math, never from the user's text."""
    widest = 0

    def walk(tree) -> None:
        nonlocal widest
        if isinstance(tree, str):
            for body in _MATRIX.findall(tree):
                widest = max([widest] + [row.count("&") + 1 for row in body.split("\\\\")])
        elif is_dataclass(tree):
            for f in fields(tree):
                walk(getattr(tree, f.name))
        elif isinstance(tree, dict):
            for value in tree.values():
                walk(value)
        elif isinstance(tree, (list, tuple)):
            for value in tree:
                walk(value)

    walk({k: v for k, v in model.items() if k not in USER_TEXT})
    return widest


def write_model(w: SheetWriter) -> dict:
    """The whole sheet model, part by part."""
    model = header(w)
    model["parts"] = []
    model["results"] = []
    if w.questions:
        model["parts"].append(questions_part(w))
        return model
    model["results"] = results(w)
    model["parts"].append(forward_part(w))
    if w.head is not None:
        model["parts"].append(loss_part(w))
    if w.head is not None and not w.forward_only:
        model["parts"] += [output_backward_part(w), backward_part(w)]
        if w.T > 1:
            model["parts"].append(bptt_part(w))
        model["parts"] += [summary_part(w), update_part(w)]
    return model


@dataclass
class Sheet:
    """A built sheet: the model (plain data) and its renderings.

    In a notebook the sheet displays itself (``_repr_markdown_``); ``_repr_latex_`` gives the
    results as one LaTeX display.
    """

    model: dict
    progress: Progress | None = field(default=None, repr=False, compare=False)

    def tex(self) -> str:
        return render("sheet.tex.j2", **self.model)

    def markdown(self) -> str:
        return render("sheet.md.j2", **self.model)

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def _repr_latex_(self) -> str:
        return render("sheet_repr.tex.j2", **self.model)

    def write(self, out: str | Path) -> Path:
        """Write the sheet as .tex, .md or .pdf (by the suffix), atomically."""
        out = Path(out)
        suffix = output_suffix(out)
        if self.progress:
            self.progress(f"rendering {out.name}" + (" and compiling it with pdflatex" if suffix == ".pdf" else ""),
                          force=True)
        if suffix == ".tex":
            write_atomic(out, self.tex().encode())
        elif suffix == ".md":
            write_atomic(out, self.markdown().encode())
        else:
            write_atomic(out, compile_pdf(self.tex(), out))
        return out


def output_suffix(out: Path) -> str:
    """The sheet format named by ``out``'s suffix, or the one-line error."""
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise GrukitError(f"{out}: -o: unknown output type {out.suffix or '(none)'!r} (choose .tex, .pdf or .md)")
    return suffix


def parse_steps(spec: str | None, T: int) -> tuple[int, ...]:
    """The time steps (0-based, sorted) that ``--steps`` names: comma-separated step numbers
    (1-based), ranges ``A-B``, ``last`` (also as a range end: ``5-last``) and ``all``. Without a
    spec, every step of a problem of at most :data:`FULL_STEPS` steps, else :data:`DEFAULT_STEPS`."""
    if spec is None:
        spec = "all" if T <= FULL_STEPS else DEFAULT_STEPS

    def number(word: str) -> int:
        word = word.strip().lower()
        if word == "last":
            return T
        if not word.isdigit():
            raise GrukitError(f"--steps: expected step numbers, ranges A-B, 'last' or 'all', got {spec!r}")
        n = int(word)
        if not 1 <= n <= T:
            raise GrukitError(f"--steps: step {n} outside 1..{T} (the problem has {T} step{'s' if T > 1 else ''})")
        return n

    chosen: set[int] = set()
    for item in str(spec).split(","):
        if item.strip().lower() == "all":
            chosen.update(range(1, T + 1))
            continue
        first, sep, last = item.partition("-")
        a, b = number(first), (number(last) if sep else number(first))
        if a > b:
            raise GrukitError(f"--steps: range {item.strip()!r} runs backwards")
        chosen.update(range(a, b + 1))
    return tuple(sorted(t - 1 for t in chosen))


def build_sheet(problem: Problem, decimals: int = DEFAULT_DECIMALS, rounding: str = "exact",
                forward_only: bool = False, questions_only: bool = False, steps: str | None = None,
                progress: bool | None = None) -> Sheet:
    """Solve ``problem`` and build its sheet model.

    ``steps`` chooses the time steps worked in full (:func:`parse_steps`); the loss, the sums over
    time, the summary of the gradients and the update always cover every step. ``progress`` reports
    the work on stderr (by default for problems of :data:`PROGRESS_STEPS` steps or more)."""
    if rounding not in ROUNDINGS:
        raise GrukitError(f"--rounding: unknown value {rounding!r} (choose exact or stepwise)")
    if not isinstance(decimals, int) or not 1 <= decimals <= 12:
        raise GrukitError(f"--decimals: expected a whole number from 1 to 12, got {decimals!r}")
    worked = parse_steps(steps, problem.steps)
    if progress is None:
        progress = problem.steps >= PROGRESS_STEPS
    report = Progress(sys.stderr) if progress else None
    gradients = problem.loss is not None and not questions_only
    if report and not questions_only:
        report(f"solving {problem.steps} steps exactly" + (" with gradients" if gradients else ""), force=True)
    exact = None if questions_only else solve(problem, "exact", gradients=gradients, detail=True)
    if rounding == "stepwise" and not questions_only:
        if report:
            report("solving again with stepwise rounding", force=True)
        shown_sol = solve(problem, "stepwise", gradients=gradients, decimals=decimals, detail=True)
    else:
        shown_sol = exact
    if report:
        report(f"writing the sheet (steps {steps_text(worked)} in full)", force=True)
    writer = SheetWriter(problem, shown_sol, decimals, forward_only, questions_only, rounding, worked, report)
    model = write_model(writer)
    exact_values = None
    if shown_sol is not exact:
        reference = SheetWriter(problem, exact, decimals, forward_only, questions_only, rounding, worked)
        write_model(reference)
        exact_values = reference.num.values
        assert len(exact_values) == len(writer.num.values)
    if report:
        report(f"formatting {len(writer.num.values)} numbers", force=True)
    counter = [0]
    with mpmath.workdps(DIGITS):  # round_half_up reads the values at the working precision
        model = substitute(model, writer.num.values, exact_values, decimals, counter)
    model["marks"] = counter[0]
    model["matrix_columns"] = matrix_columns(model)
    return Sheet(model, report)


def builtin_example() -> Path:
    """The packaged copy of the course-notes problem."""
    return Path(__file__).resolve().parents[1] / "templates" / BUILTIN_EXAMPLE


def load_or_builtin(path: str | None) -> Problem:
    return load_problem(path if path is not None else builtin_example())

"""Every docs/examples/ problem compiles to a PDF sheet, with and without --forward-only, and the
PDF's text (pdftotext) holds the key values.

The key values are known independently of the sheet code: the course-notes h_1 of the acceptance
criteria and seed 001's loss, the homework's printed four-decimal answers (seed 004), and for any
other example the last state and its loss from the NumPy float64 engine (a different number system
from the exact engine the sheet prints). Skipped when latexmk/pdflatex or pdftotext is missing.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT

from grukit.codegen.sheets.gallery import example_problems
from grukit.derive.files.problem_file import load_problem
from grukit.derive.numeric.solve import solve

EXAMPLES = example_problems(ROOT / "docs" / "examples")

pytestmark = pytest.mark.skipif(
    shutil.which("pdflatex") is None or shutil.which("pdftotext") is None,
    reason="needs pdflatex (and latexmk if present) and pdftotext")

KNOWN = {
    # acceptance: h_1 = [0.3610, -0.0173, 0.1310]; seed 001: L = 0.511 (0.5107 to four decimals)
    "course-notes": {"forward": ["0.3610", "-0.0173", "0.1310", "0.5107"],
                     "backward": ["Summary of the gradients", "-0.0968", "0.1433", "0.0135"]},
    # seed 004's printed answers for t1 and t2
    "homework": {"forward": ["0.5381", "0.5294", "0.1516", "0.0828", "0.0939", "0.0700", "0.0383", "0.0434",
                             "0.6910", "0.5930", "0.4738", "0.5223", "0.3563", "0.1948", "0.1878", "0.1401"],
                 "backward": []},
}


def _r4(v) -> str:
    d = Decimal(repr(float(v))).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
    return "0.0000" if d == 0 else format(d, "f")


def key_values(path: Path, forward_only: bool) -> list[str]:
    known = KNOWN.get(path.stem)
    if known is not None:
        return known["forward"] + ([] if forward_only else known["backward"])
    problem = load_problem(path)
    sol = solve(problem, "numpy", gradients=problem.loss is not None)
    values = [_r4(v) for v in np.ravel(sol.traces[-1].values["h"])]
    if problem.loss is not None:
        values.append(_r4(sol.gradient.loss))
    return values


def _compile(args):
    """`grukit sheet` in its own process (two run side by side: the TeX runs dominate)."""
    path, forward_only, out = args
    argv = [sys.executable, "-m", "grukit.codegen.cli", "sheet", str(path), "-o", str(out)]
    run = subprocess.run(argv + (["--forward-only"] if forward_only else []), capture_output=True, text=True)
    text = subprocess.run(["pdftotext", "-layout", str(out), "-"], capture_output=True, text=True,
                          check=True).stdout if run.returncode == 0 else run.stderr
    return run.returncode, text.replace("\u2212", "-")


@pytest.fixture(scope="module")
def pdf_texts(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pdf")
    jobs = [(p, fo, tmp / f"{p.stem}{'-forward' if fo else ''}.pdf") for p in EXAMPLES for fo in (False, True)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(_compile, jobs))
    return {(job[0].stem, job[1]): res for job, res in zip(jobs, results)}


@pytest.mark.parametrize("forward_only", [False, True], ids=["full", "forward-only"])
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_pdf_holds_key_values(pdf_texts, path, forward_only):
    rc, text = pdf_texts[(path.stem, forward_only)]
    assert rc == 0, text
    assert "Forward pass" in text
    for value in key_values(path, forward_only):
        assert value in text, f"{value} missing from the PDF text of {path.name}"
    problem = load_problem(path)
    if forward_only or problem.loss is None:
        assert "Backward pass" not in text
    else:
        assert "Backward pass through the GRU" in text and "gradient-descent update" in text

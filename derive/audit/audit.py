"""An audit of a claims file: every claim's verdict, then what explains each wrong one.

:mod:`grukit.derive.audit.verify` gives the verdicts, :mod:`grukit.derive.audit.diagnose` the diagnoses; this
is the one entry point ``grukit verify`` and the tests call. :func:`graded` is one submission of a
class as one row of ``grukit verify DIR``'s table, as plain data.
"""
from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np

from grukit.derive.audit.claims import Claim, ClaimsFile, Printed, load_claims, load_literal_file
from grukit.derive.audit.diagnose import diagnose_wrong
from grukit.derive.audit.names import NameTable
from grukit.derive.audit.replay import Walk
from grukit.derive.audit.verify import VERDICTS, Audit, as_data, verdicts
from grukit.derive.cell.convention import Convention
from grukit.derive.cell.losses import LossHead
from grukit.derive.errors import GrukitError
from grukit.derive.numeric.evaluate import engine
from grukit.derive.numeric.problem import Problem

NOT_EXPLAINED = "no known mistake reproduces it"
"""What a wrong claim's row says when no mistake of the catalogue reproduces it."""


def audit(cf: ClaimsFile, diagnose: bool = True) -> Audit:
    """Every claim's verdict and, with ``diagnose``, the known mistakes that reproduce each wrong one."""
    report = verdicts(cf)
    if diagnose:
        diagnose_wrong(report)
    return report


def graded(path: Path, problem: Problem | None = None) -> dict:
    """One submission as a row: its claims counted by verdict, each wrong claim with what explains it,
    and the exit status ``grukit verify FILE`` gives it (1 when a claim is wrong, else 0). ``problem``:
    the problem every submission of the class is about (else the file's own). A problem file among
    the submissions (a mapping with ``inputs`` and no ``claims``: the one they name) is ``skipped``;
    anything else that is no claims file raises the claims reader's one-line error."""
    try:
        cf = load_claims(path, problem)
    except GrukitError:
        data = load_literal_file(path)
        if isinstance(data, dict) and "claims" not in data and "inputs" in data:
            return {"skipped": "a problem file (inputs, no claims)"}
        raise
    data = as_data(audit(cf))
    wrong = []
    for c in data["claims"]:
        if c["verdict"] == "wrong":
            why = c["diagnosis"] or ([f"lacks the paths: {'; '.join(c['missing_paths'])}"]
                                     if c.get("missing_paths") else [NOT_EXPLAINED])
            wrong.append({"name": c["name"], "printed": c["printed"], "diagnosis": why})
    return {"status": 1 if data["wrong"] else 0, "problem": data["problem"], "convention": data["convention"],
            "claims": len(data["claims"]),
            "counts": {v: sum(c["verdict"] == v for c in data["claims"]) for v in VERDICTS},
            "wrong": wrong}


def warm_up(problem: Problem) -> None:
    """Derive once what grading claims on ``problem`` derives -- its convention's equations, records and
    evaluated stages, and those of every mistake the diagnosis tries -- by auditing two wrong claims of
    grukit's own making (the last state, and dL/dh[0] when there is a loss). Processes forked
    afterwards start with all of it (a class graded against one problem: each file then takes a
    fraction of a cold start's time)."""
    walk = Walk(problem, engine("exact"))
    table = NameTable(walk)
    names = [f"h[{problem.steps}]"] + (["dL/dh[0]"] if problem.loss is not None else [])
    claims = []
    for name in names:
        node, index = table.resolve(name, "warm-up")
        value = np.asarray(walk.values[node], dtype=object)[index]
        off = [f"{float(v) + 0.5:.4f}" for v in np.ravel(value)]
        numbers = np.array([Printed(t, Decimal(t)) for t in off], dtype=object).reshape(np.shape(value))
        claims.append(Claim(name, node, index, name, numbers))
    audit(ClaimsFile(problem.path, problem, table, claims, exact=walk))


def sample_problem(conv: Convention, size: int = 2, steps: int = 2) -> Problem:
    """A small problem of ``conv`` (D = H = ``size``; numbers k/10 of alternating sign; a weighted sum of
    the states as its loss): what :func:`warm_up` derives a convention on, no file needed."""

    def numbers(*shape: int) -> np.ndarray:
        flat = [Fraction((-1) ** k * (k % 5 + 1), 10) for k in range(int(np.prod(shape)))]
        return np.array(flat, dtype=object).reshape(shape)

    params = {p: numbers(*conv.param_shape(p, size, size)) for p in conv.parameters()}
    loss = LossHead("weighted_sum", tuple(range(steps)), tuple(numbers(size) for _ in range(steps)))
    return Problem(Path(f"{conv.name}-sample"), conv, numbers(steps, size), numbers(size), params, loss=loss)

"""Verdicts on a claims file: is each printed number right, rounding, propagated, or wrong?

For every claimed number (element by element; a claim takes its worst element's verdict):

* ``ok`` -- the exact value rounded to the printed decimals is the printed number;
* ``propagated`` -- it follows from its claimed inputs (the walk fed the claimed numbers,
  :class:`~grukit.derive.audit.replay.Walk` ``given``, each within half a unit of its last printed
  digit, as a calculation that carried more digits than it printed may have), and one of those is
  ``wrong`` (or itself propagated): the explanation that reproduces the number comes first;
* ``rounding`` -- it follows from its claimed inputs, all of them right; or it is within what a hand
  calculation rounding to the printed decimals can reach from its inputs as they may be: each
  claimed input anywhere between its printed number (within half a unit) and its exact value (a
  wrong or propagated one at its exact value: the right number, misprinted), the
  unclaimed numbers between computed with the rounding drift of
  :class:`~grukit.derive.audit.drift.DriftEngine` (per stage, from the claimed inputs of that stage,
  not accumulated from the problem's data over the whole derivation);
* ``wrong`` -- neither: the step does not follow from its own inputs nor from the exact ones.

A claim's inputs are the nearest claimed numbers it is computed from (unclaimed numbers between
are computed, with the rounding drift, from theirs). Formula claims are checked by
:mod:`grukit.derive.audit.formula`; :mod:`grukit.derive.audit` adds the diagnosis of wrong claims.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import mpmath
import numpy as np

from grukit.derive.audit.claims import Claim, ClaimsFile
from grukit.derive.audit.drift import Drift, DriftEngine, exact_mpf
from grukit.derive.audit.formula import check_formula
from grukit.derive.audit.replay import Walk
from grukit.derive.numeric.evaluate import DIGITS, round_half_up

VERDICTS = ("ok", "rounding", "propagated", "wrong")
"""From best to worst; a claim's verdict is its worst element's."""


@dataclass
class Bounds:
    """Per element: the drift interval from the exact inputs, and the interval from the claimed ones."""

    drift: list[tuple[mpmath.mpf, mpmath.mpf]]  # from the claimed inputs anywhere between printed and exact
    from_claims: list[tuple[mpmath.mpf, mpmath.mpf]]  # from the claimed inputs as printed
    half_units: list[Decimal]


@dataclass
class Result:
    claim: Claim
    verdict: str
    exact: np.ndarray | None = None
    bounds: Bounds | None = None
    inputs: tuple[str, ...] = ()  # the nearest claimed numbers it is computed from
    diagnosis: list[str] = field(default_factory=list)
    also: list[str] = field(default_factory=list)  # mistakes that fit only within rounding, further off
    formula: object = None  # a formula claim's FormulaCheck


@dataclass
class Audit:
    file: ClaimsFile
    results: list[Result]
    walks: dict = field(repr=False, default_factory=dict)

    @property
    def wrong(self) -> int:
        return sum(r.verdict == "wrong" for r in self.results)


def given_numbers(claims: list[Claim]) -> dict[str, list]:
    """Every claimed element, as :class:`Walk` takes them: node -> [(index, value)]."""
    given: dict[str, list] = {}
    for c in claims:
        if c.numbers is not None:
            for sub in np.ndindex(c.numbers.shape):
                given.setdefault(c.node, []).append((c.index + sub, c.numbers[sub].value))
    return given


def claimed_intervals(cf: ClaimsFile, claims: list[Claim], to_exact: bool,
                      bad: frozenset[str] = frozenset()) -> dict[str, list]:
    """Every claimed element as the interval a calculation may have carried it in: the printed number
    within half a unit of its last digit, widened to reach the exact value when ``to_exact``; a
    ``bad`` node (wrong or propagated) at its exact value within half a unit instead, the value a
    calculation that only misprinted it carried on with."""
    given: dict[str, list] = {}
    with mpmath.workdps(DIGITS):
        for c in claims:
            exact = np.asarray(cf.exact.values[c.node], dtype=object)
            for sub in np.ndindex(c.numbers.shape):
                printed, index = c.numbers[sub], c.index + sub
                half = exact_mpf(Decimal(5).scaleb(-printed.decimals - 1))
                value = exact_mpf(exact[index]) if c.node in bad else exact_mpf(printed.value)
                lo, hi = value - half, value + half
                if to_exact:
                    value = exact_mpf(exact[index])
                    lo, hi = min(lo, value), max(hi, value)
                given.setdefault(c.node, []).append((index, Drift((lo + hi) / 2, (hi - lo) / 2)))
    return given


def claimed_inputs(walk: Walk, claimed: set[str]) -> dict[str, tuple[str, ...]]:
    """Each node's nearest claimed ancestors (through unclaimed nodes)."""
    front: dict[str, tuple[str, ...]] = {}
    for name, info in walk.info.items():
        found: list[str] = []
        for i in info.inputs:
            for f in ((i,) if i in claimed else front.get(i, ())):
                if f not in found:
                    found.append(f)
        front[name] = tuple(found)
    return front


def precisions(cf: ClaimsFile) -> set[int]:
    if cf.decimals is not None:
        return {cf.decimals}
    return {int(d) for c in cf.claims if c.numbers is not None for d in c.decimals.ravel()}


def verdicts(cf: ClaimsFile) -> Audit:
    """Every claim's verdict (:mod:`grukit.derive.audit` adds what explains each wrong one).

    The rounding allowance of a claim reads its claimed inputs between printed and exact, but a
    wrong (or propagated) input at its exact value only: a number that is neither reproduced from
    the wrong input nor right from the right one is wrong. Which inputs are wrong is known only once
    their own verdicts are, so the verdicts are taken again with the wrong ones so set until they
    no longer change (each pass settles at least one more generation of descendants)."""
    numeric = [c for c in cf.claims if c.numbers is not None]
    printed = claimed_intervals(cf, numeric, False)
    fed = {d: Walk(cf.problem, DriftEngine(d), printed) for d in precisions(cf)}
    front = claimed_inputs(cf.exact, set(printed))
    bad: frozenset[str] = frozenset()
    for _ in range(len(numeric) + 1):
        between = claimed_intervals(cf, numeric, True, bad)
        walks = {d: (Walk(cf.problem, DriftEngine(d), between), walk) for d, walk in fed.items()}
        results, status = _in_order(cf, numeric, walks, front)
        now = frozenset(n for n, v in status.items() if v in ("wrong", "propagated"))
        if now == bad:
            break
        bad = now
    out = [results[k] for k in range(len(numeric))]
    out += [Result(c, "", formula=check_formula(cf, c)) for c in cf.claims if c.formula is not None]
    for r in out:
        if r.formula is not None:
            r.verdict = "ok" if r.formula.equivalent else "wrong"
    return Audit(cf, out, walks)


def _in_order(cf: ClaimsFile, numeric: list[Claim], walks: dict, front: dict) -> tuple[dict[int, Result], dict]:
    """Each numeric claim's result, taken in evaluation order so that its inputs' verdicts are known."""
    order = {name: k for k, name in enumerate(cf.exact.info)}
    status: dict[str, str] = {}
    results: dict[int, Result] = {}
    for k, c in sorted(enumerate(numeric), key=lambda kc: order[kc[1].node]):
        inputs = front[c.node]
        bad = any(status.get(i) in ("wrong", "propagated") for i in inputs)
        result = _numeric(cf, c, walks, bad)
        result.inputs = inputs
        results[k] = result
        status[c.node] = max(status.get(c.node, "ok"), result.verdict, key=VERDICTS.index)
    return results, status


def _numeric(cf: ClaimsFile, c: Claim, walks: dict, bad_inputs: bool) -> Result:
    exact = np.asarray(cf.exact.values[c.node], dtype=object)[c.index]
    verdicts, drift, fed, halves = [], [], [], []
    for sub in np.ndindex(c.numbers.shape):
        printed = c.numbers[sub]
        d = cf.decimals if cf.decimals is not None else printed.decimals
        half = Decimal(5).scaleb(-printed.decimals - 1)
        walk_drift, walk_fed = walks[d]
        b = np.asarray(walk_drift.computed[c.node], dtype=object)[c.index + sub].ends
        a = np.asarray(walk_fed.computed[c.node], dtype=object)[c.index + sub].ends
        drift.append(b)
        fed.append(a)
        halves.append(half)
        value = np.asarray(cf.exact.values[c.node], dtype=object)[c.index + sub]
        if round_half_up(value, printed.decimals) == printed.value:
            verdicts.append("ok")
        elif within(printed.value, a, half):
            verdicts.append("propagated" if bad_inputs else "rounding")
        elif within(printed.value, b, half):
            verdicts.append("rounding")
        else:
            verdicts.append("wrong")
    verdict = max(verdicts, key=VERDICTS.index)
    return Result(c, verdict, np.asarray(exact, dtype=object), Bounds(drift, fed, halves))


def within(number: Decimal, bounds, half: Decimal) -> bool:
    with mpmath.workdps(DIGITS):
        x, h = mpmath.mpf(str(number)), mpmath.mpf(str(half))
        return bounds[0] - h <= x <= bounds[1] + h


def radius(bounds, half: Decimal) -> float:
    """Half the width of an interval, plus the printed number's own half unit."""
    return float((bounds[1] - bounds[0]) / 2) + float(half)



def _floats(values) -> object:
    return np.asarray(values, dtype=float).tolist()


def as_data(report: Audit) -> dict:
    """The audit as plain data (``grukit verify --json``), wrong claims first."""
    claims = []
    named = {}  # node -> the name the file claims it under
    for r in report.results:
        named.setdefault(r.claim.node, r.claim.name)
    for r in sorted(report.results, key=lambda r: -VERDICTS.index(r.verdict)):
        c = r.claim
        bare = c.numbers is not None and c.numbers.size == 1 and not c.text.startswith("[")
        row = {"name": c.name, "printed": c.text,
               "claimed": c.formula if c.formula is not None else _floats(c.values),
               "verdict": r.verdict, "diagnosis": r.diagnosis, "also": r.also,
               "inputs": [named.get(i, i) for i in r.inputs]}
        if r.formula is not None:
            row |= {"exact": r.formula.derived, "interval": None, "difference": r.formula.difference,
                    "missing_paths": r.formula.missing}
        else:
            shape = c.numbers.shape
            pairs = [[float(lo), float(hi)] for lo, hi in r.bounds.drift]
            fed = [[float(lo), float(hi)] for lo, hi in r.bounds.from_claims]
            if bare:
                shape = ()
            row |= {"exact": _floats(np.reshape(r.exact, shape)), "interval": np.reshape(pairs, (*shape, 2)).tolist(),
                    "from_claimed_inputs": np.reshape(fed, (*shape, 2)).tolist(),
                    "decimals": np.reshape(c.decimals, shape).tolist(), "claimed": _floats(np.reshape(c.values, shape))}
        claims.append(row)
    problem = report.file.problem.path
    return {"file": str(report.file.path),
            "problem": "its inline problem" if problem == report.file.path else str(problem),
            "convention": report.file.problem.convention.name, "claims": claims, "wrong": report.wrong}

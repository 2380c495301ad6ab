"""What explains a wrong number: a catalogue of known mistakes, each tried on the derivation.

Every entry is a :class:`~grukit.derive.audit.replay.Mutation` -- the mistake written as a change to the
data the walk reads, never as a hand-written formula:

* a dropped gradient path: a :class:`~grukit.derive.cell.records.SumRecord` without some of its paths
  (named by the paths' own names, "through U_z (update gate)");
* the other update rule, the other reset placement: the equations of the convention so changed;
* a transposed matrix: a square weight used transposed, forward; or ``M`` where ``M^T`` belongs in
  the backward products;
* swapped gate blocks: the gates' weights and biases read in another order;
* a missing activation derivative: the local derivative of a gate's or the candidate's
  activation record set to 1;
* a sign error: a local derivative negated, or the whole number's sign;
* the state of the wrong step reused: step t reading h[t-2], or h0 at every step.

A mistake explains a claim when walking it reproduces the claimed number within the claim's
rounding bound, from the exact inputs or from the claimed ones. A gate or candidate whose claimed
pre-activation is right but whose value does not follow from it is a mis-evaluated activation.
"""
from __future__ import annotations

from dataclasses import replace
from itertools import combinations, permutations

import numpy as np
import sympy as sp

from grukit.derive.audit.replay import Mutation, Walk, quantity_name
from grukit.derive.audit.verify import Audit, Result, given_numbers, radius
from grukit.derive.cell.convention import AXES, ConventionError, Param
from grukit.derive.cell.records import (
    AdjointPath,
    BackwardRecords,
    LocalRecord,
    SumRecord,
    TransposedRecord,
    backward_records,
)
from grukit.derive.numeric.evaluate import engine

ACTIVATION_STAGES = {"z": "a_z", "r": "a_r", "c": "a_h"}
CLOSE, SLACK = 1.5, 0.05
"""Among the mistakes that explain the most wrong claims of the file, those whose score is within
CLOSE times the best one's plus SLACK are named; the others that fit within rounding are ``also``."""


def generic(q: str) -> str:
    """A quantity's name at a generic step: ``z[t]``, ``h[t-1]``, ``candidate[t]``."""
    return quantity_name(q, 1).replace("[0]", "[t-1]").replace("[1]", "[t]")


def _rebuilt(rec: BackwardRecords, changes: dict) -> BackwardRecords:
    """The records with some replaced (old -> new), the paths that name them following."""
    def new(r):
        r = changes.get(r, r)
        if isinstance(r, SumRecord):
            paths = tuple(AdjointPath(p.via, p.name, changes.get(p.record, p.record)) for p in r.paths)
            return SumRecord(r.name, paths)
        return r
    return BackwardRecords(rec.equations, tuple(new(r) for r in rec.records))


def _flipped(values: dict, value: str) -> str:
    return next(v for v in values if v != value)


def catalogue(problem) -> list[Mutation]:
    """Every known mistake that applies to the problem's convention and sizes."""
    conv = problem.convention
    rec = backward_records(conv)
    out = []
    for r in rec.records:
        if isinstance(r, SumRecord) and len(r.paths) > 1:
            for k in range(1, len(r.paths)):
                for dropped in combinations(r.paths, k):
                    kept = SumRecord(r.name, tuple(p for p in r.paths if p not in dropped))
                    names = " and ".join(p.name for p in dropped)
                    out.append(Mutation(f"dropped path{'s' if k > 1 else ''} in dL/d{generic(r.name)}: {names}",
                                        records=_rebuilt(rec, {r: kept})))
    for axis in ("update_rule", "reset"):
        other = _flipped(AXES[axis], getattr(conv, axis))
        try:
            changed = conv.with_changes(**{axis: other})
        except ConventionError:  # a combination that cannot exist (Colah's [h, x] with reset after)
            continue
        label = {"update_rule": "the other update rule", "reset": "the other reset placement"}[axis]
        out.append(Mutation(f"{label}: {AXES[axis][other]}", convention=changed))
    out += _weight_mistakes(problem, rec)
    for r in rec.records:
        if isinstance(r, LocalRecord) and ACTIVATION_STAGES.get(r.target) == r.operand:
            out.append(Mutation(f"missing activation derivative: dL/d{generic(r.operand)} taken as "
                                f"dL/d{generic(r.target)}, without the factor {r.local}",
                                records=_rebuilt(rec, {r: replace(r, local=sp.S.One)})))
        if isinstance(r, LocalRecord) and r.local != 0:
            out.append(Mutation(f"sign error in the local derivative d{r.target}/d{r.operand} = {r.local}",
                                records=_rebuilt(rec, {r: replace(r, local=-r.local)})))
    if problem.steps >= 2:
        out.append(Mutation("the state of the wrong step reused: step t reads h[t-2] for h[t-1]", state_lag=2))
        out.append(Mutation("the state never carried: every step reads h[0]", state_lag=None))
    return out


def _weight_mistakes(problem, rec: BackwardRecords) -> list[Mutation]:
    conv, params = problem.convention, problem.params
    out = []
    for p in conv.parameters():
        value = np.asarray(params[p], dtype=object)
        if value.ndim == 2 and value.shape[0] == value.shape[1] and value.shape[0] > 1:
            key = conv.key(p)
            out.append(Mutation(f"transposed matrix: {key} used as {key}^T", params={p: value.T.copy()}))
            if any(isinstance(r, TransposedRecord) and r.param == p for r in rec.records):
                out.append(Mutation(f"transposed matrix: the backward pass multiplies by {key} where {key}^T belongs",
                                    transposed_backward=p))
    gates = conv.gates
    for order in permutations(gates):
        if order == gates:
            continue
        swapped = {}
        for p in conv.parameters():
            source = Param(p.role, order[gates.index(p.gate)])
            if np.shape(params[source]) != np.shape(params[p]):
                break
            swapped[p] = params[source]
        else:
            moved = ", ".join(f"{g} reads the blocks of {o}" for g, o in zip(gates, order) if g != o)
            out.append(Mutation(f"swapped gate blocks: {moved}", params=swapped))
    return out


def diagnose_wrong(report: Audit) -> None:
    """Fill in ``diagnosis`` for every wrong numeric claim of the audit."""
    wrong = [r for r in report.results if r.verdict == "wrong" and r.claim.numbers is not None]
    if not wrong:
        return
    cf = report.file
    given = given_numbers([r.claim for r in report.results if r.claim.numbers is not None])
    eng = engine("numpy")
    status = {r.claim.node: r.verdict for r in report.results}
    for r in wrong:
        r.diagnosis += _local_findings(report, r, status)
    scores: dict[int, list[tuple[float, str]]] = {id(r): [] for r in wrong}
    for m in catalogue(cf.problem):
        try:
            from_exact, from_claims = Walk(cf.problem, eng, mutation=m), Walk(cf.problem, eng, given, mutation=m)
        except (ValueError, KeyError, IndexError):  # a mistake this problem's shapes cannot make
            continue
        for r in wrong:
            score = _score(r, from_claims if r.inputs else from_exact, bool(r.inputs))
            if score is not None and score <= 1:
                scores[id(r)].append((score, m.text))
    explains = {}  # a mistake that reproduces several wrong claims explains them together
    for r in wrong:
        for _, text in scores[id(r)]:
            explains[text] = explains.get(text, 0) + 1
    for r in wrong:
        found = scores[id(r)]
        most = max((explains[text] for _, text in found), default=0)
        joint = sorted((score, text) for score, text in found if explains[text] == most)
        best = [text for score, text in joint if score <= CLOSE * joint[0][0] + SLACK] if joint else []
        r.diagnosis += best
        r.also = [text for _, text in sorted(found) if text not in best]
        if not r.diagnosis:
            r.diagnosis.append("no mistake in grukit's catalogue reproduces this number (dropped paths, update "
                               "rule, reset placement, transposed or swapped weights, missing derivative, sign, "
                               "activation value, wrong step's state)")


def _values(walk: Walk, name: str, index, computed: bool):
    name = walk.name(name)
    if name not in walk.info:
        return None
    source = walk.computed if computed else walk.values
    return np.asarray(source[name], dtype=float)[index]


def _score(r: Result, walk: Walk, from_claims: bool) -> float | None:
    """How far the mistake's number is from the claimed one, in units of the claim's rounding bound
    (computed from the claimed inputs where the claim has any, else from the exact ones): 1 is the
    edge of what rounding explains."""
    got = _values(walk, r.claim.node, r.claim.index, from_claims)
    if got is None:
        return None
    bounds = r.bounds.from_claims if from_claims else r.bounds.drift
    tol = np.array([radius(b, h) for b, h in zip(bounds, r.bounds.half_units)])
    claimed = np.asarray(r.claim.values, dtype=float).ravel()
    return float(np.max(np.abs(claimed - np.ravel(got)) / tol))


def _local_findings(report: Audit, r: Result, status: dict) -> list[str]:
    """What the claim's own step shows: its sign flipped, or an activation of a right input printed wrong."""
    out = []
    claimed = np.asarray(r.claim.values, dtype=float).ravel()
    exact = np.asarray(r.exact, dtype=float).ravel()
    tol = np.array([radius(b, h) for b, h in zip(r.bounds.drift, r.bounds.half_units)])
    if np.any(exact != 0) and np.all(np.abs(claimed + exact) <= tol):
        out.append("sign error: the claim is minus the true value")
    info = report.file.exact.info[r.claim.node]
    if info.activation and len(info.inputs) == 1:
        source = info.inputs[0]
        if status.get(source) in ("ok", "rounding"):
            follows = [(float(lo) + float(hi)) / 2 for lo, hi in r.bounds.from_claims]
            shown = ", ".join(f"{v:.{max(r.claim.decimals.ravel())}f}" for v in follows)
            out.append(f"mis-evaluated activation: {info.activation} of the claimed {source} is [{shown}], "
                       f"not the printed {r.claim.text}")
    return out

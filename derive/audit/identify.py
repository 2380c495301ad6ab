"""Which convention produced these outputs? Every reading of the weights, ranked by residual.

Input: a problem file with ``observed: {h: T x H states h_1..h_T}`` or ``observed: {h_last: H}``,
or a claims file (its claims on gates, candidates and states). The weights are read, as given,
under every combination of the axes a reader can get wrong:

* update rule (z keeps the old state / admits the new one) and reset placement (before / after);
* gate activation: the logistic, Keras 2's and Keras 3's hard sigmoids;
* packed gate order: the six assignments of the three blocks to z, r and the candidate;
* transposition: the square (recurrent) weights read transposed;
* biases, when there are two rows: as given, the rows swapped, the recurrent row left out.

The file's stated convention is where the search starts, not a bound on it: weights its bias axis
cannot hold but another can (a Keras ``bias`` of 3H entries stated as ``convention: keras``, what a
``reset_after=False`` layer's ``get_weights()`` returns) are read under the axis they hold
(:func:`~grukit.derive.files.problem_file.weights_convention`). A reading that is a built-in convention
is named by it (``keras-reset-before``); any other by the stated convention and what it changes.

Each reading runs forward (float64, :class:`~grukit.derive.audit.replay.Walk`) and is scored by its
largest difference from the observed numbers. A reading fits when that is within the numbers'
printed precision plus 1e-6 (a float32 framework's own rounding); the result says plainly when
none does. Readings that compute the same numbers are listed once, with their count.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from itertools import permutations, product
from pathlib import Path

import numpy as np

from grukit.derive.audit.claims import Printed, claims_problem, load_claims, load_literal_file
from grukit.derive.audit.replay import Walk
from grukit.derive.cell.convention import Convention, ConventionError, Param
from grukit.derive.cell.presets import PRESETS
from grukit.derive.errors import GrukitError
from grukit.derive.files.problem_file import load_problem
from grukit.derive.files.yaml_values import object_array
from grukit.derive.numeric.evaluate import engine
from grukit.derive.numeric.problem import Problem

GATE_ACTIVATIONS = ("sigmoid", "hard_sigmoid_keras2", "hard_sigmoid_keras3")
FLOAT32_SLACK = 1e-6
FORWARD = ("h", "z", "r", "candidate")


@dataclass
class Observation:
    """Observed numbers: node name -> (index, printed value)."""

    problem: Problem
    numbers: list[tuple[str, tuple, Printed]]
    source: Path


@dataclass
class Candidate:
    convention: str
    axes: dict
    residual: float
    predicted: dict[str, float]
    same: int = 1  # readings that compute the same numbers
    changes: int = 0  # axes and ways of reading the arrays it changes from the stated convention


@dataclass
class Identification:
    observation: Observation
    ranking: list[Candidate]
    tolerance: float
    ignored: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return bool(self.ranking) and self.ranking[0].residual <= self.tolerance


def observation(path: str | Path) -> tuple[Observation, list[str]]:
    """The observed numbers of a problem file (``observed``) or a claims file (forward claims)."""
    path = Path(path)
    data = load_literal_file(path)
    if isinstance(data, dict) and "claims" in data:
        spec = data.get("problem")  # anything else: the claims reader says what is wrong with it
        cf = load_claims(path, problem=claims_problem(spec, path, fit_weights=True)
                         if isinstance(spec, (str, dict)) else None)
        numbers, ignored = [], []
        for c in cf.claims:
            if c.numbers is None or c.node.split("[")[0] not in FORWARD:
                ignored.append(c.name)
                continue
            numbers += [(c.node, c.index + sub, c.numbers[sub]) for sub in np.ndindex(c.numbers.shape)]
        if not numbers:
            raise GrukitError(f"{path}: claims: no claim on h, z, r or candidate to identify a convention by")
        return Observation(cf.problem, numbers, path), ignored
    problem = load_problem(path, fit_weights=True)
    if problem.observed is None:
        raise GrukitError(f"{path}: observed: missing ({{h: T x H states}} or {{h_last: H numbers}})")
    return Observation(problem, _observed(data.get("observed"), problem, path), path), []


def _observed(spec, problem: Problem, path: Path) -> list:
    where = f"{path}: observed"
    T, H = problem.steps, problem.hidden_size
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in ("h", "h_last"):
        raise GrukitError(f"{where}: expected {{h: {T}x{H} states}} or {{h_last: {H} numbers}}")
    key, value = next(iter(spec.items()))
    arr = object_array(value, f"{where}.{key}")
    shape = (T, H) if key == "h" else (H,)
    if arr.size != int(np.prod(shape)) or not all(isinstance(v, Printed) for v in arr.ravel()):
        raise GrukitError(f"{where}.{key}: expected {'x'.join(map(str, shape))} numbers")
    arr = arr.reshape(shape)
    if key == "h_last":
        return [(f"h[{T}]", (j,), arr[j]) for j in range(H)]
    return [(f"h[{t + 1}]", (j,), arr[t, j]) for t in range(T) for j in range(H)]


def readings(problem: Problem):
    """(label, axes, changes, convention, params) for every reading of the problem's weights."""
    conv, params = problem.convention, problem.params
    stated = problem.stated_convention or conv
    square = [p for p in conv.parameters()
              if np.ndim(params[p]) == 2 and np.shape(params[p])[0] == np.shape(params[p])[1] > 1]
    bias_readings = ["as given"] + (["rows swapped", "recurrent row left out"] if conv.biases == "double" else [])
    gates = conv.gates
    resets = ("before", "after") if conv.reset != "none" else ("none",)  # no reset gate: no position to read
    for update, reset, act in product(("z_keeps_old", "z_admits_new"), resets, GATE_ACTIVATIONS):
        try:
            variant = conv.with_changes(update_rule=update, reset=reset, gate_activation=act)
        except ConventionError:
            continue
        for order, transposed, bias in product(permutations(gates), (False, True) if square else (False,),
                                               bias_readings):
            if any(np.shape(params[Param(p.role, order[gates.index(p.gate)])]) != np.shape(params[p])
                   for p in conv.parameters()):
                continue  # scalar gates: the candidate's blocks cannot be read as a gate's
            changed = _read(params, conv, order, square if transposed else [], bias)
            axes = {"update_rule": update, "reset": reset, "gate_activation": act, "gate_order": list(order),
                    "transposed": transposed, "biases": bias}
            reads = _reading_parts(order, gates, transposed, bias)
            label = _label(stated, variant, reads)
            yield label, axes, len(_axis_changes(stated, variant)) + len(reads), variant, changed


def _read(params: dict, conv, order, square: list, bias: str) -> dict:
    """The parameters with gate g taking the blocks of gate order[g], square ones transposed, biases re-read."""
    out = {p: params[Param(p.role, order[conv.gates.index(p.gate)])] for p in conv.parameters()}
    out = {p: (v.T if p in square else v) for p, v in out.items()}
    if bias == "rows swapped":
        out = {p: out[Param({"input_bias": "recurrent_bias", "recurrent_bias": "input_bias"}.get(p.role, p.role),
                            p.gate)] for p in out}
    elif bias == "recurrent row left out":
        out = {p: (v * 0 if p.role == "recurrent_bias" else v) for p, v in out.items()}
    return out


def _axis_changes(stated: Convention, variant: Convention) -> list[str]:
    """``axis=value`` for each axis the variant changes from the stated convention."""
    return [f"{axis}={value}" for axis, value in variant.axes().items() if stated.axes()[axis] != value]


def _reading_parts(order, gates: tuple[str, ...], transposed: bool, bias: str) -> list[str]:
    """How a reading takes the arrays, where it differs from as given."""
    parts = []
    if tuple(order) != gates:
        parts.append(", ".join(gates) + " read from the blocks of " + ", ".join(order))
    if transposed:
        parts.append("square weights transposed")
    if bias != "as given":
        parts.append(f"biases {bias}")
    return parts


def _label(stated: Convention, variant: Convention, reads: list[str]) -> str:
    """The built-in convention the variant is (the stated one first), else the stated one and what
    the variant changes; then how the reading takes the arrays."""
    named = [c.name for c in (stated, *PRESETS.values()) if c.axes() == variant.axes()]
    parts = reads if named else _axis_changes(stated, variant) + reads
    return (named[0] if named else stated.name) + (" (" + "; ".join(parts) + ")" if parts else "")


def identify(path: str | Path) -> Identification:
    obs, ignored = observation(path)
    problem = replace(obs.problem, loss=None)
    eng = engine("numpy")
    found: dict[tuple, Candidate] = {}
    for label, axes, changes, conv, params in readings(problem):
        try:
            walk = Walk(replace(problem, convention=conv, params=params), eng)
        except (ValueError, KeyError, IndexError, np.linalg.LinAlgError):
            continue
        predicted = {f"{n}{''.join(f'[{i}]' for i in idx)}": float(np.asarray(walk.value(n))[idx])
                     for n, idx, _ in obs.numbers}
        residual = max(abs(predicted[k] - float(p.value)) for k, (_, _, p) in zip(predicted, obs.numbers))
        key = tuple(round(v, 12) for v in predicted.values())
        candidate = Candidate(label, axes, residual, predicted, changes=changes)
        if key in found:  # the same numbers: keep the reading closest to the problem's own
            candidate.same = found[key].same + 1
            if changes >= found[key].changes:
                candidate = replace(found[key], same=candidate.same)
        found[key] = candidate
    ranking = sorted(found.values(), key=lambda c: c.residual)
    half = max(Decimal(5).scaleb(-p.decimals - 1) for _, _, p in obs.numbers)
    return Identification(obs, ranking, float(half) + FLOAT32_SLACK, ignored)


def as_data(result: Identification) -> dict:
    return {"ranking": [{"convention": c.convention, "axes": c.axes, "residual": c.residual,
                         "predicted": c.predicted, "same_numbers": c.same} for c in result.ranking],
            "fits": result.fits, "tolerance": result.tolerance,
            "observed": {f"{n}{''.join(f'[{i}]' for i in idx)}": float(p.value)
                         for n, idx, p in result.observation.numbers},
            "ignored": result.ignored}

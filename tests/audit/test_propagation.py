"""A number that follows from a wrong claimed input is `propagated`, never `rounding`; a correct hand
calculation, however it rounds, is never `wrong` or `propagated`.

The mistaken derivations are independent NumPy hand calculations (tests/helpers/audit_mistakes.py)
of four-step BPTT problems that keep only the direct path of dL/dh[t-1] (the issue's example),
printed at 3 and 4 decimals, in conventions of both orientations and both update rules. The correct
ones are grukit's walk on an engine that writes every intermediate down rounded, each time by a
rounding chosen at random (half up, half down, truncated), as different hand calculations do.
"""
from __future__ import annotations

import random
import re
from decimal import ROUND_DOWN, ROUND_HALF_DOWN, ROUND_HALF_UP, Decimal

import numpy as np
import pytest
from helpers.audit_mistakes import run, weight_gradient
from helpers.random_problems import random_problem

from grukit.derive.audit.audit import audit
from grukit.derive.audit.claims import load_claims
from grukit.derive.audit.replay import Walk
from grukit.derive.numeric.evaluate import StepwiseEngine, round_half_up, to_mpf

CONVENTIONS = ["course-notes", "d2l", "cho2014", "haiku"]
STEPS = 4
ROLES = {"input_weight": "W_", "recurrent_weight": "U_", "input_bias": "b_", "recurrent_bias": "br_"}


def _text(values, decimals: int) -> str:
    arr = np.asarray(values, dtype=object)
    if arr.ndim == 0:
        return str(Decimal(repr(float(arr[()]))).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP))
    return "[" + ", ".join(_text(v, decimals) for v in arr) + "]"


def problem_yaml(p) -> str:
    conv = p.convention
    weights = "".join(f"    {conv.key(q)}: {np.asarray(v, float).tolist()}\n" for q, v in p.params.items())
    return (f"problem:\n  convention: {conv.name}\n  inputs: {np.asarray(p.inputs, float).tolist()}\n"
            f"  h0: {np.asarray(p.h0, float).tolist()}\n  weights:\n{weights}"
            f"  loss: {{type: weighted_sum, G: {np.asarray(p.loss.targets, float).tolist()}}}\n")


def write(path, p, claims: dict[str, str]) -> None:
    path.write_text(problem_yaml(p) + "claims:\n" + "".join(f"  {k}: {v}\n" for k, v in claims.items()))


BACKWARD = {"dL/dz": "d_z", "dL/da_z": "d_a_z", "dL/dcandidate": "d_c", "dL/da_h": "d_a_h", "dL/dq": "d_q",
            "dL/dr": "d_r", "dL/da_r": "d_a_r"}


def mistaken_claims(p, decimals: int) -> dict[str, str]:
    """The hand calculation that keeps only the direct path of dL/dh[t-1], every number it prints."""
    conv = p.convention
    w = {ROLES[q.role] + q.gate: np.asarray(v, float) for q, v in p.params.items()}
    axes = {"orientation": conv.orientation, "update_rule": conv.update_rule, "reset": conv.reset}
    steps = run(axes, w, np.asarray(p.inputs, float), np.asarray(p.h0, float),
                np.asarray(p.loss.targets, float), "direct-path-only")
    claims = {}
    for t, s in enumerate(steps, start=1):
        claims[f"h[{t}]"] = s["h"]
        claims[f"dL/dh[{t}]"] = s["d_h"]
        claims |= {f"{name}[{t}]": s[key] for name, key in BACKWARD.items()}
    claims["dL/dh[0]"] = steps[0]["d_h_prev"]
    for g in "zr":
        for role in ("input_weight", "recurrent_weight"):
            key = conv.key(next(q for q in conv.parameters() if (q.role, q.gate) == (role, g)))
            claims[f"dL/d{key}"] = weight_gradient(steps, ROLES[role] + g, conv.orientation == "row")
    return {k: _text(v, decimals) for k, v in claims.items()}


def downstream_of_the_first_wrong(name: str) -> bool:
    """Every backward number of steps 1..3, dL/dh[0] and the weight gradients: all computed from dL/dh[3]."""
    if "[" not in name:
        return True
    step = int(name[name.index("[") + 1])
    return name.startswith("dL/d") and step < STEPS


FEW = re.compile(r"dL/dh\[|dL/da_z\[|dL/d[WU]_?\w*z$")
"""The issue's claims: the state gradients, the update gate's pre-activation gradients, its weights'."""


@pytest.mark.parametrize("claimed", ["every number", "the issue's few"])
@pytest.mark.parametrize("decimals", [3, 4])
@pytest.mark.parametrize("name", CONVENTIONS)
def test_what_follows_from_a_dropped_path_is_propagated_never_rounding(tmp_path, name, decimals, claimed):
    p = random_problem(name, 2, 3, STEPS, seed=23)
    claims = mistaken_claims(p, decimals)
    if claimed != "every number":
        claims = {k: v for k, v in claims.items() if FEW.match(k)}
    write(tmp_path / "c.yaml", p, claims)
    verdicts = {r.claim.name: r.verdict for r in audit(load_claims(tmp_path / "c.yaml"), diagnose=False).results}
    assert verdicts[f"dL/dh[{STEPS - 1}]"] == "wrong"
    later = {n: v for n, v in verdicts.items() if downstream_of_the_first_wrong(n)}
    for n, v in later.items():
        if n.startswith("dL/dh["):
            assert v in ("wrong", "propagated"), (n, v)  # a state gradient drops its paths again
        else:
            assert v in ("propagated", "ok"), (n, v)
    assert sum(v == "propagated" for v in later.values()) >= len(later) // 2
    assert all(v in ("ok", "rounding") for n, v in verdicts.items() if n not in later), verdicts


_MODES = (ROUND_HALF_UP, ROUND_HALF_DOWN, ROUND_DOWN)


class RandomRounding(StepwiseEngine):
    """Every intermediate written down at ``decimals``, each by a rounding drawn from ``rng``."""

    def __init__(self, decimals: int, rng: random.Random):
        super().__init__(decimals)
        self.rng = rng

    def settle(self, values):
        unit = Decimal(1).scaleb(-self.decimals)

        def written(v):  # read at 40 significant digits first, as round_half_up does (0.01 is not 0.0099...)
            return round_half_up(v, 40).quantize(unit, rounding=self.rng.choice(_MODES))
        return to_mpf(np.vectorize(lambda v: written(v), otypes=[object])(values))


@pytest.mark.parametrize("decimals", [3, 4])
@pytest.mark.parametrize("name", CONVENTIONS)
def test_a_correct_hand_calculation_rounded_any_way_is_never_wrong_or_propagated(tmp_path, name, decimals):
    p = random_problem(name, 2, 3, STEPS, seed=23)
    for seed in range(6):
        hand = Walk(p, RandomRounding(decimals, random.Random(seed)))
        claims = {n: _text(hand.values[n], decimals) for n in hand.info}
        write(tmp_path / "c.yaml", p, claims)
        report = audit(load_claims(tmp_path / "c.yaml"), diagnose=False)
        bad = {r.claim.name: r.verdict for r in report.results if r.verdict not in ("ok", "rounding")}
        assert not bad, (seed, bad)

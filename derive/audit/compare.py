"""Do two conventions compute the same function? Proved with SymPy, or refuted by an example.

:func:`compare` looks for a weight map each way (:mod:`grukit.derive.audit.reparam`). When both exist
without conditions the conventions are equivalent: the map is applied to symbolic weights
(D = H = 2, every weight its own symbol), one step of each cell is written out, and the difference
of the new states is simplified to zero by SymPy -- the proof, shown with each pre-activation
abbreviated. A map that only rearranges weights (transpose, stack or split, biases folded) makes
them equivalent as they are; one that changes values (negating z, rescaling a hard sigmoid) is a
reparameterization, stated. Otherwise they are not equivalent: random weights for the first,
carried to the second by the closest rearrangement, run to different states -- two problems in the
problem-file format that ``grukit forward`` runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from fractions import Fraction

import numpy as np
import sympy as sp

from grukit.derive.audit.reparam import NoMap, Reparameterization, assemble, blocks, reparameterization
from grukit.derive.cell.convention import ARRANGEMENT_AXES, AXES, PARAMETER_AXES, Convention, Notation
from grukit.derive.cell.equations import Affine, cell_equations
from grukit.derive.cell.functions import gate_activation
from grukit.derive.cell.presets import PRESETS
from grukit.derive.check.explicit import symbol_array
from grukit.derive.numeric.evaluate import SymbolicEngine, engine, forward

SIZES = (2, 2)  # D, H of the proof: two units, so that reset placements and weight layouts show
STEPS = 3


@dataclass
class Comparison:
    a: Convention
    b: Convention
    equivalent: bool
    relation: str  # one sentence
    reparameterization: str | None = None  # the map from a's weights to b's, when it changes values
    weights: str = ""  # how a's weights are laid out as b's (rearrangements)
    proof: list[str] = field(default_factory=list)
    counterexample: dict | None = None  # {"a": problem mapping, "b": problem mapping}
    states: tuple | None = None  # the last states each counterexample runs to


def compare(a: Convention, b: Convention) -> Comparison:
    try:
        there = reparameterization(a, b)
        back = reparameterization(b, a)
    except NoMap as exc:
        return _refuted(a, b, str(exc))
    if there.conditions or back.conditions:
        narrow, wide, rep = (a, b, back) if back.conditions else (b, a, there)
        return _refuted(a, b, f"{narrow.name} is {wide.name} only where {'; '.join(rep.conditions)}",
                        from_b=wide is b)
    values = bool(there.factors)
    relation = (f"equivalent under a reparameterization: {there.text()}" if values else
                "equivalent as they are" + (f", up to the weight layout ({there.text()})" if there.steps else ""))
    return Comparison(a, b, True, relation, there.text() if values else None,
                      "" if values else there.text(), proof(there))


def proof(rep: Reparameterization) -> list[str]:
    """One step of both cells on symbolic weights (``b``'s mapped from ``a``'s), proved equal stage by
    stage: each pre-activation of ``b`` is its factor times ``a``'s (expanded, every unit); each
    gate of ``b`` is ``a``'s gate, or 1 minus it, by an identity of the activations proved on one
    symbol; with the gates so named, the new states' difference simplifies to 0."""
    a, b = rep.source, rep.target
    D, H = SIZES
    eng = SymbolicEngine()
    params_a = {p: symbol_array(a.key(p), a.param_shape(p, D, H)) for p in a.parameters()}
    x, h = symbol_array("x", (1, D)), symbol_array("h_prev", (H,))
    ta = forward(cell_equations(a), params_a, x, h, eng)[0].values
    tb = forward(cell_equations(b), rep.apply(params_a, D, H), x, h, eng)[0].values
    flip = a.update_rule != b.update_rule
    lines = [f"one step, D = {D}, H = {H}, every weight a symbol; {b.name}'s weights are {a.name}'s mapped "
             f"({rep.text()}):"]
    subs_a, subs_b = {}, {}
    for stage in cell_equations(a).stages:
        q = stage.target
        if isinstance(stage, Affine):
            f = rep.factors.get(q[2:], Fraction(1)) if q in ("a_z", "a_r") else Fraction(1)
            ok = all(sp.expand(vb.xreplace(subs_b) - sp.Rational(f.numerator, f.denominator) * va.xreplace(subs_a)) == 0
                     for va, vb in zip(ta[q], tb[q]))
            lines.append(f"  {q} ({b.name}) = {f} * {q} ({a.name}) at every unit: {'expands to 0' if ok else 'FAILS'}")
        elif q in ("z", "r"):
            f = rep.factors.get(q, Fraction(1))
            negate = flip and q == "z"
            ok, text = gate_identity(a, b, f, negate)
            lines.append(f"  {text}")
            for j, (va, vb) in enumerate(zip(ta[q], tb[q])):
                g = sp.Symbol(f"{q}[{j}]", real=True)
                subs_a[va], subs_b[vb] = g, (1 - g if negate else g)
        else:
            continue
        if not ok:
            raise AssertionError(f"compare: the map {rep.text()} does not prove {a.name} = {b.name}")
    state_a, state_b = cell_equations(a).stage("h").written, cell_equations(b).stage("h").written
    lines.append(f"  state: {b.name} h = {state_b}" + (f" with z = 1 - z_{a.name}" if flip else "")
                 + f"; {a.name} h = {state_a}")
    for j in range(H):
        parts = (tb["h"][j].xreplace(subs_b), ta["h"][j].xreplace(subs_a))
        diff = parts[0] - parts[1]
        simplified = sp.simplify(diff.rewrite(sp.exp))
        lines.append(f"  h_t[{j}] ({b.name}) - h_t[{j}] ({a.name}) = ({_short(parts[0])}) - ({_short(parts[1])})"
                     f"  ->  simplify: {simplified}")
        if simplified != 0:
            raise AssertionError(f"compare: the map {rep.text()} does not prove {a.name} = {b.name}")
    return lines


def _short(expr) -> str:
    text = str(expr)
    return text if len(text) <= 300 else text[:297] + "..."


def gate_identity(a: Convention, b: Convention, f: Fraction, negate: bool) -> tuple[bool, str]:
    """g_b(f u) = g_a(u) (or 1 - g_a(u)) for every real u, proved piece by piece."""
    u = sp.Symbol("u", real=True)
    ga = gate_activation(a.gate_activation, u, a.gate_activation_alpha, a.gate_activation_beta, a.clip)
    gb = gate_activation(b.gate_activation, sp.Rational(f.numerator, f.denominator) * u,
                         b.gate_activation_alpha, b.gate_activation_beta, b.clip)
    rhs = 1 - ga if negate else ga
    ok = piecewise_zero(gb - rhs, u)
    arg = {Fraction(1): "u", Fraction(-1): "-u"}.get(f, f"{f} u")
    shown = f"1 - {a.gate_activation}(u)" if negate else f"{a.gate_activation}(u)"
    return ok, f"gate: {b.gate_activation}({arg}) = {shown} for every real u: {'proved' if ok else 'NOT proved'}"


def piecewise_zero(expr, u: sp.Symbol) -> bool:
    """``expr`` is 0 for every real ``u``: simplified directly, or, with ``Piecewise`` in it, at every
    breakpoint and on every interval between (where each Piecewise is one branch)."""
    pieces = list(expr.atoms(sp.Piecewise))
    if not pieces:
        return sp.simplify(expr.rewrite(sp.exp)) == 0
    points = sorted({sol for pw in pieces for _, cond in pw.args for rel in cond.atoms(sp.core.relational.Relational)
                     for sol in sp.solve(rel.lhs - rel.rhs, u)})
    probes = [points[0] - 1, *points, *[(p + q) / 2 for p, q in zip(points, points[1:])], points[-1] + 1] \
        if points else [sp.S.Zero]
    for m in probes:
        branch = {pw: next(e for e, c in pw.args if c.subs(u, m) == sp.true) for pw in pieces}
        if m in points:
            if sp.simplify(expr.subs(u, m)) != 0:
                return False
        elif sp.simplify(expr.xreplace(branch).rewrite(sp.exp)) != 0:
            return False
    return True


def _refuted(a: Convention, b: Convention, reason: str, from_b: bool = False) -> Comparison:
    """Not equivalent: random weights for one side (``b`` when it is the wider family), laid out
    for the other as closely as the axes allow."""
    D, H = SIZES
    first, second = (b, a) if from_b else (a, b)
    for seed in range(20):
        problem_1 = _random_problem(first, seed)
        try:
            params_2 = assemble(second, blocks(first, problem_1["params"], D, H), D, H, strict=False)
        except NoMap:  # no reset gate to lay out as the other's
            params_2 = {}
        if not params_2 or any(np.shape(v) != second.param_shape(p, D, H) for p, v in params_2.items()):
            params_2 = _random_problem(second, seed + 100)["params"]  # no common layout (scalar gates)
        problem_2 = dict(problem_1, params=params_2)
        problem_a, problem_b = (problem_2, problem_1) if from_b else (problem_1, problem_2)
        hs = [_states(c, p) for c, p in ((a, problem_a), (b, problem_b))]
        if np.max(np.abs(np.asarray(hs[0][-1], dtype=float) - np.asarray(hs[1][-1], dtype=float))) > 1e-3:
            example = {"a": problem_mapping(a, problem_a), "b": problem_mapping(b, problem_b)}
            return Comparison(a, b, False, f"not equivalent: {reason}", counterexample=example,
                              states=tuple(np.asarray(h[-1], dtype=float).tolist() for h in hs))
    raise AssertionError(f"compare: no counterexample found for {a.name} and {b.name}")


def _random_problem(conv: Convention, seed: int) -> dict:
    D, H = SIZES
    rng = np.random.default_rng(seed)

    def numbers(shape):
        return np.array([Fraction(int(v), 10) for v in rng.integers(-9, 10, int(np.prod(shape)))],
                        dtype=object).reshape(shape)

    return {"inputs": numbers((STEPS, D)), "h0": numbers((H,)),
            "params": {p: numbers(conv.param_shape(p, D, H)) for p in conv.parameters()}}


def _states(conv: Convention, problem: dict) -> list:
    eng = engine("exact")
    traces = forward(cell_equations(conv), {p: eng.array(v) for p, v in problem["params"].items()},
                     eng.array(problem["inputs"]), eng.array(problem["h0"]), eng)
    return [t.values["h"] for t in traces]


def problem_mapping(conv: Convention, problem: dict) -> dict:
    """A problem in the problem-file format, weights inline under the convention's keys."""
    return {"convention": convention_spec(conv), "inputs": _plain(problem["inputs"]), "h0": _plain(problem["h0"]),
            "weights": {conv.key(p): _plain(v) for p, v in problem["params"].items()}}


def convention_spec(conv: Convention):
    """A preset's name, or the convention as a mapping of its axes (and notation) for a problem file."""
    if PRESETS.get(conv.name) == conv:
        return conv.name
    out = {"name": conv.name}
    for axis in (*AXES, *ARRANGEMENT_AXES, *PARAMETER_AXES):
        value = getattr(conv, axis)
        if value is not None:
            out[axis] = list(value) if isinstance(value, tuple) else \
                (float(value) if isinstance(value, Fraction) else value)
    default = Notation()
    notation = {f.name: getattr(conv.notation, f.name) for f in fields(Notation)
                if f.name != "overrides" and getattr(conv.notation, f.name) != getattr(default, f.name)}
    if "gate_letters" in notation:
        notation["gate_letters"] = dict(notation["gate_letters"])
    if notation:
        out["notation"] = notation
    return out


def _plain(values):
    return np.vectorize(float, otypes=[float])(np.asarray(values, dtype=object)).tolist()

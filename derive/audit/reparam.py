"""Weight maps between conventions that compute the same function.

Two conventions compute the same cell when one's weights can be rewritten into the other's. The
maps that exist, each exact in rational arithmetic:

* orientation -- transpose every weight (``x W`` = ``(W^T x)^T``);
* one weight on ``[h, x]`` or ``[x, h]`` -- the recurrent and input weights side by side, in that
  order (split back the other way);
* update rule -- negate every term of the z pre-activation (weights and biases): the gate
  activations here satisfy g(-a) = 1 - g(a), so "z keeps the old state" becomes "z admits the new";
* Keras 2's hard sigmoid clip(0.2a + 1/2) is Keras 3's clip(a'/6 + 1/2) at a' = 1.2a: scale the z and
  r blocks by 6/5;
* biases -- one per gate is an input bias with a zero recurrent one; two per gate fold into one
  (b_i + b_r) except the candidate's recurrent bias under reset-after, which sits inside r * (...)
  and folds away only when it is 0; dropping biases needs them all 0.

No map exists between the reset placements, candidate activations, gate widths or activation
parameters: :func:`reparameterization` says why. :mod:`grukit.derive.audit.compare` proves a map with
SymPy; :mod:`grukit.derive.audit.convert` applies it to weight files.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from grukit.derive.cell.convention import PARAMETER_AXES, Convention, Param
from grukit.derive.errors import GrukitError

FUNCTION_AXES = ("reset", "candidate_activation", "gate_width", *PARAMETER_AXES)
"""Axes no weight map bridges: conventions that differ in one compute different functions."""
RESCALES = {("hard_sigmoid_keras2", "hard_sigmoid_keras3"): Fraction(6, 5),
            ("hard_sigmoid_keras3", "hard_sigmoid_keras2"): Fraction(5, 6)}
"""Gate activations that are one another at a scaled argument: g_to(s a) = g_from(a)."""
SYMMETRIC = ("sigmoid", "hard_sigmoid_keras2", "hard_sigmoid_keras3")
"""Gate activations with g(-a) = 1 - g(a) (compare proves the map it allows)."""


class NoMap(GrukitError):
    """No exact weight map exists (the message says why)."""


@dataclass
class Reparameterization:
    """How ``source``'s weights become ``target``'s: the steps in words, the factor each gate's
    pre-activation terms are multiplied by, and the conditions on the values it needs."""

    source: Convention
    target: Convention
    steps: list[str] = field(default_factory=list)
    factors: dict[str, Fraction] = field(default_factory=dict)
    conditions: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "; ".join(self.steps) if self.steps else "none (the same weights)"

    def apply(self, params: dict[Param, np.ndarray], inputs: int, hidden: int) -> dict[Param, np.ndarray]:
        """The target's parameters; a condition that fails on these values is an error saying so."""
        parts = blocks(self.source, params, inputs, hidden)
        for gate, f in self.factors.items():
            parts[gate] = {k: v * f for k, v in parts[gate].items()}
        return assemble(self.target, parts, inputs, hidden)


def reparameterization(source: Convention, target: Convention) -> Reparameterization:
    """The map from ``source``'s weights to ``target``'s, or :class:`NoMap` saying why none exists."""
    for axis in FUNCTION_AXES:
        a, b = getattr(source, axis), getattr(target, axis)
        if a != b:
            raise NoMap(f"{axis} differs ({a} vs {b}): the two compute different functions, no weight map "
                        f"converts one into the other")
    rep = Reparameterization(source, target)
    ga, gb = source.gate_activation, target.gate_activation
    if ga != gb:
        if (ga, gb) not in RESCALES:
            raise NoMap(f"gate_activation differs ({ga} vs {gb}): no rescaling turns one into the other")
        s = RESCALES[(ga, gb)]
        rep.factors = {"z": s, "r": s}
        rep.steps.append(f"multiply the z and r blocks (weights and biases) by {s} ({gb}(a {s}) = {ga}(a))")
    if source.update_rule != target.update_rule:
        if gb not in SYMMETRIC:
            raise NoMap(f"update_rule differs and {gb}(-a) is not 1 - {gb}(a): z cannot be negated")
        rep.factors["z"] = -rep.factors.get("z", Fraction(1))
        rep.steps.append("negate every term of the z pre-activation (its weights and biases): "
                         "1 - g(a) = g(-a) turns 'z keeps the old state' into 'z admits the new one'")
    if source.orientation != target.orientation:
        rep.steps.append("transpose every weight matrix")
    if source.input_form != target.input_form:
        rep.steps.append(f"{_stack_text(source)} -> {_stack_text(target)}")
    _bias_steps(rep)
    return rep


def _stack_text(conv: Convention) -> str:
    return {"separate": "separate input and recurrent weights", "concatenated": "one weight on [h, x] = [U | W]",
            "concatenated_xh": "one weight on [x, h] = [W | U]"}[conv.input_form]


def _bias_steps(rep: Reparameterization) -> None:
    a, b = rep.source.biases, rep.target.biases
    if a == b:
        return
    if b == "none":
        rep.steps.append("drop the biases")
        rep.conditions.append("every bias is 0")
    elif a == "none":
        rep.steps.append(f"zero biases ({b})")
    elif b == "double":
        rep.steps.append("one bias per gate becomes the input bias; the recurrent biases are 0")
    else:
        rep.steps.append("add each gate's input and recurrent biases into one")
        if rep.source.reset == "after":
            rep.conditions.append("the candidate's recurrent bias (PyTorch's b_hn) is 0: under reset-after it "
                                  "sits inside r * (U h + b_hn) and cannot join the input bias")


def _column(conv: Convention, w: np.ndarray) -> np.ndarray:
    return np.asarray(w, dtype=object) if conv.orientation == "column" else np.asarray(w, dtype=object).T


def blocks(conv: Convention, params: dict[Param, np.ndarray], D: int, H: int) -> dict[str, dict]:
    """Per gate, in column form: W (H x D), U (H x H), input and recurrent biases (zeros if absent)."""
    out = {}
    for g in conv.gates:
        W = _column(conv, params[Param("input_weight", g)])
        if conv.concatenated:
            h_first = conv.input_form == "concatenated"
            U, W = (W[:, :H], W[:, H:]) if h_first else (W[:, D:], W[:, :D])
        else:
            U = _column(conv, params[Param("recurrent_weight", g)])
        rows = W.shape[0]
        zero = np.array([Fraction(0)] * rows, dtype=object)
        b_i = np.asarray(params.get(Param("input_bias", g), zero), dtype=object)
        b_r = np.asarray(params.get(Param("recurrent_bias", g), zero), dtype=object)
        out[g] = {"W": W, "U": U, "b_i": b_i, "b_r": b_r}
    return out


def assemble(conv: Convention, parts: dict[str, dict], D: int, H: int, strict: bool = True) -> dict[Param, np.ndarray]:
    """A convention's parameters from per-gate column blocks. ``strict``: a bias the target cannot
    hold is an error (:class:`NoMap`); otherwise it is folded in or dropped (the closest layout)."""
    out = {}
    for g in conv.gates:
        if g not in parts:
            raise NoMap(f"{conv.name} has a reset gate and these weights have none")
        b = parts[g]
        if conv.concatenated:
            stacked = (b["U"], b["W"]) if conv.input_form == "concatenated" else (b["W"], b["U"])
            out[Param("input_weight", g)] = _oriented(conv, np.concatenate(stacked, axis=1))
        else:
            out[Param("input_weight", g)] = _oriented(conv, b["W"])
            out[Param("recurrent_weight", g)] = _oriented(conv, b["U"])
        if conv.biases == "double":
            out[Param("input_bias", g)], out[Param("recurrent_bias", g)] = b["b_i"], b["b_r"]
        elif conv.biases == "single":
            if strict and conv.reset == "after" and g == "h" and any(v != 0 for v in b["b_r"]):
                raise NoMap("the candidate's recurrent bias (PyTorch's b_hn) is not 0; under reset-after it sits "
                            "inside r * (U h + b_hn), and the target has no place for it")
            out[Param("input_bias", g)] = b["b_i"] + b["b_r"]
        elif strict and any(v != 0 for v in (*b["b_i"], *b["b_r"])):
            raise NoMap(f"the target {conv.name} has no biases and these weights have non-zero ones")
    return {p: out[p] for p in conv.parameters()}


def _oriented(conv: Convention, w: np.ndarray) -> np.ndarray:
    return w if conv.orientation == "column" else w.T

"""Hand calculations with known mistakes, in plain NumPy, independent of grukit.

The claims files in docs/examples/*-claims.yaml that plant a mistake were written from these
functions (rounded to the decimals the file prints); tests/audit/test_examples.py recomputes them
and checks that the file says what it claims and that ``grukit verify`` names the mistake. The
equations follow the public sources as tests/helpers/numpy_gru.py does; the backward pass is written out by
hand, one step at a time, with every mistake a switch.
"""
from __future__ import annotations

import numpy as np

from helpers.numpy_gru import GATE_ACTS


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def run(axes: dict, w: dict, inputs, h0, G=None, mistake: str = "") -> list[dict]:
    """Every named number of a hand calculation, one dict per step, with ``mistake`` made:
    "update-rule", "reset-placement", "transposed-U_r", "swapped-z-r", "never-carried",
    "tanh-misread" (step 1's tanh printed 0.03 too high) (forward);
    "drop-U_z-path", "direct-path-only" (dL/dh[t-1] kept only directly through the state update),
    "missing-sigma-z", "sign-dz" (backward of the loss sum_t G_t . h_t; the backward
    pass is written for reset-before cells). Weights: W_g, U_g, b_g (input bias), br_g (recurrent)."""
    row = axes["orientation"] == "row"
    act = GATE_ACTS[axes.get("gate_activation", "sigmoid")]
    keeps = axes["update_rule"] == "z_keeps_old"
    after = axes["reset"] == "after"
    if mistake == "update-rule":
        keeps = not keeps
    if mistake == "reset-placement":
        after = not after

    def mul(m, v):
        return v @ np.asarray(m, float) if row else np.asarray(m, float) @ v

    def mulT(m, v):  # the transposed product of the backward pass
        return v @ np.asarray(m, float).T if row else np.asarray(m, float).T @ v

    gate = {"z": "z", "r": "r", "h": "h"}
    if mistake == "swapped-z-r":
        gate = {"z": "r", "r": "z", "h": "h"}
    W = {g: np.asarray(w["W_" + gate[g]], float) for g in "zrh"}
    U = {g: np.asarray(w["U_" + gate[g]], float) for g in "zrh"}
    if mistake == "transposed-U_r":
        U["r"] = U["r"].T
    b_i = {g: np.asarray(w.get("b_" + gate[g], 0.0), float) for g in "zrh"}
    b_r = {g: np.asarray(w.get("br_" + gate[g], 0.0), float) for g in "zrh"}
    states = [np.asarray(h0, float)]
    out = []
    for t, x in enumerate(np.asarray(inputs, float), start=1):
        h = states[0] if mistake == "never-carried" else states[-1]
        s = {"x": x, "h_prev": h}
        s["a_z"] = mul(W["z"], x) + mul(U["z"], h) + b_i["z"] + b_r["z"]
        s["a_r"] = mul(W["r"], x) + mul(U["r"], h) + b_i["r"] + b_r["r"]
        s["z"], s["r"] = act(s["a_z"]), act(s["a_r"])
        if after:
            s["a_h"] = mul(W["h"], x) + b_i["h"] + s["r"] * (mul(U["h"], h) + b_r["h"])
        else:
            s["q"] = s["r"] * h
            s["a_h"] = mul(W["h"], x) + mul(U["h"], s["q"]) + b_i["h"] + b_r["h"]
        s["c"] = np.tanh(s["a_h"]) + (0.03 if mistake == "tanh-misread" and t == 1 else 0.0)
        s["h"] = s["z"] * h + (1 - s["z"]) * s["c"] if keeps else (1 - s["z"]) * h + s["z"] * s["c"]
        states.append(s["h"])
        out.append(s)
    if G is not None:
        _backward(out, G, W, U, keeps, mistake, mulT)
    return out


def _backward(out, G, W, U, keeps, mistake, mulT) -> None:
    carry = 0.0
    for t in range(len(out), 0, -1):
        s = out[t - 1]
        z, r, c, h = s["z"], s["r"], s["c"], s["h_prev"]
        s["d_h"] = np.asarray(G[t - 1], float) + carry
        d = s["d_h"]
        s["d_c"] = d * ((1 - z) if keeps else z)
        s["d_z"] = d * ((h - c) if keeps else (c - h))
        if mistake == "sign-dz":
            s["d_z"] = -s["d_z"]
        direct = d * (z if keeps else 1 - z)
        s["d_a_h"] = s["d_c"] * (1 - c ** 2)
        s["d_q"] = mulT(U["h"], s["d_a_h"])
        s["d_r"] = s["d_q"] * h
        s["d_a_r"] = s["d_r"] * r * (1 - r)
        s["d_a_z"] = s["d_z"] if mistake == "missing-sigma-z" else s["d_z"] * z * (1 - z)
        parts = [direct, s["d_q"] * r, mulT(U["r"], s["d_a_r"]), mulT(U["z"], s["d_a_z"])]
        if mistake == "drop-U_z-path":
            parts = parts[:3]
        if mistake == "direct-path-only":
            parts = parts[:1]
        s["d_h_prev"] = sum(parts)
        carry = s["d_h_prev"]


def weight_gradient(out, name: str, row: bool) -> np.ndarray:
    """The sum over steps of a gate weight's gradient, W (on x) or U (on h_prev), in the orientation."""
    total = 0.0
    for s in out:
        operand = s["x"] if name.startswith("W") else s["h_prev"]
        delta = s["d_a_" + name[-1]]
        total = total + (np.outer(operand, delta) if row else np.outer(delta, operand))
    return total

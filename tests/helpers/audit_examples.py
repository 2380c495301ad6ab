"""The claims files that plant one known mistake each: their problems, their mistakes, their claims.

Each :class:`Planted` is the data of one docs/examples/*-claims.yaml file. :func:`render` writes
the file from an independent NumPy hand calculation that makes the mistake
(tests/helpers/audit_mistakes.py); tests/audit/test_examples.py checks that the committed files are what
:func:`render` gives and that ``grukit verify`` names each mistake.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import numpy as np

from helpers.audit_mistakes import run, weight_gradient


@dataclass
class Planted:
    file: str
    title: str
    convention: object  # a preset name or an inline convention mapping
    axes: dict
    weights: dict  # the convention's own keys -> nested lists
    numpy_weights: dict  # W_g, U_g, b_g, br_g for audit_mistakes.run
    inputs: list
    h0: list
    mistake: str
    claims: list  # (name, step, key) or (name, step, key, index)
    decimals: int
    wrong: set  # the claims grukit must call wrong
    propagated: set  # ... and propagated (the rest: ok or rounding; a small propagated error may be rounding)
    diagnosis: str  # a phrase the wrong claims' diagnosis must contain
    G: list | None = None
    loss: dict | None = None
    head: object = None  # a function of the run's steps -> extra claims {name: value}
    note: str = ""


def _fmt(v: float, decimals: int) -> str:
    return str(Decimal(repr(float(v))).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP))


def _text(values, decimals: int) -> str:
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 0:
        return _fmt(arr, decimals)
    return "[" + ", ".join(_text(v, decimals) for v in arr) + "]"


def values(p: Planted) -> dict[str, np.ndarray]:
    """The planted numbers: claim name -> the mistaken hand calculation's value (unrounded)."""
    steps = run(p.axes, p.numpy_weights, p.inputs, p.h0, p.G, p.mistake)
    out = {}
    for name, t, key, *index in p.claims:
        if key.startswith("grad:"):
            value = weight_gradient(steps, key[5:], p.axes["orientation"] == "row")
        else:
            value = steps[t - 1][key]
        out[name] = np.asarray(value)[tuple(index)] if index else np.asarray(value)
    if p.head is not None:
        out |= p.head(steps)
    return out


def render(p: Planted) -> str:
    lines = [f"# {p.note}" if p.note else "",
             "# Written by tests/helpers/audit_examples.py from a NumPy hand calculation that makes "
             f"this mistake: {p.mistake}.", f"title: {p.title}", "problem:"]
    conv = p.convention if isinstance(p.convention, str) else \
        "{" + ", ".join(f"{k}: {v}" for k, v in p.convention.items()) + "}"
    lines.append(f"  convention: {conv}")
    lines.append(f"  inputs: {p.inputs}")
    lines.append(f"  h0: {p.h0}")
    lines.append("  weights:")
    lines += [f"    {k}: {v}" for k, v in p.weights.items()]
    if p.G is not None:
        lines.append(f"  loss: {{type: weighted_sum, G: {p.G}}}")
    if p.loss is not None:
        lines.append("  loss: {" + ", ".join(f"{k}: {v}" for k, v in p.loss.items()) + "}")
    lines.append("claims:")
    for name, value in values(p).items():
        lines.append(f"  {name}: {_text(value, p.decimals)}")
    return "\n".join(line for line in lines if line != "") + "\n"


def _split(matrix, first: int):
    """A concatenated weight's two blocks (columns [:first], [first:])."""
    m = np.asarray(matrix, dtype=float)
    return m[:, :first], m[:, first:]


def _softmax_head(W_o, b_o, targets):
    def head(steps):
        total = 0.0
        for s, y in zip(steps, targets):
            o = np.asarray(W_o, float) @ s["h"] + np.asarray(b_o, float)
            p = np.exp(o) / np.exp(o).sum()
            total += -np.log(p[y])
        return {"loss": total}
    return head


COLUMN_KEEP = dict(orientation="column", update_rule="z_keeps_old", reset="before")
ROW_KEEP = dict(orientation="row", update_rule="z_keeps_old", reset="before")

_D2L = dict(W_xz=[[0.3, -0.2], [0.1, 0.4]], W_hz=[[0.5, 0.2], [-0.3, 0.6]], b_z=[0.1, -0.1],
            W_xr=[[-0.4, 0.2], [0.3, 0.1]], W_hr=[[0.2, -0.5], [0.4, 0.3]], b_r=[0.0, 0.2],
            W_xh=[[0.6, -0.1], [0.2, 0.5]], W_hh=[[-0.3, 0.4], [0.7, 0.2]], b_h=[0.1, 0.0])
_HAIKU = dict(w_iz=[[0.4, 0.1], [-0.3, 0.2]], w_hz=[[0.2, -0.4], [0.5, 0.1]], b_z=[0.0, 0.1],
              w_ir=[[0.1, 0.5], [0.2, -0.2]], w_hr=[[-0.1, 0.3], [0.6, 0.2]], b_r=[0.2, -0.1],
              w_ia=[[0.7, -0.3], [0.1, 0.4]], w_ha=[[0.3, 0.2], [-0.5, 0.4]], b_a=[-0.1, 0.2])
_KERAS = dict(W_z=[[0.2, -0.4], [0.5, 0.1]], W_r=[[0.3, 0.6], [-0.2, 0.4]], W_h=[[0.8, -0.5], [0.4, 0.9]],
              U_z=[[0.1, 0.3], [-0.2, 0.4]], U_r=[[0.5, -0.1], [0.2, 0.3]], U_h=[[0.9, -0.6], [0.7, 0.8]],
              b_iz=[0.1, 0.0], b_ir=[0.2, -0.1], b_ih=[0.0, 0.3], b_rz=[-0.1, 0.2], b_rr=[0.1, 0.1],
              b_rh=[0.8, -0.9])
_ONNX = dict(W_z=[[0.2, 0.1], [-0.3, 0.4], [0.5, -0.2]], W_r=[[0.4, -0.1], [0.2, 0.3], [-0.5, 0.6]],
             W_h=[[0.3, 0.2], [-0.1, 0.5], [0.4, -0.4]],
             R_z=[[0.1, -0.2, 0.3], [0.4, 0.2, -0.1], [-0.3, 0.5, 0.2]],
             R_r=[[0.6, -0.5, 0.1], [0.9, 0.2, -0.7], [-0.8, 0.4, 0.3]],
             R_h=[[0.2, 0.3, -0.4], [-0.1, 0.5, 0.2], [0.3, -0.2, 0.1]],
             Wb_z=[0.1, 0.0, -0.1], Wb_r=[0.0, 0.2, 0.1], Wb_h=[0.1, -0.1, 0.0],
             Rb_z=[0.0, 0.1, 0.0], Rb_r=[0.1, 0.0, -0.2], Rb_h=[0.0, 0.0, 0.1])
_TORCH = dict(W_iz=[[0.6, -0.2], [0.1, 0.5]], W_ir=[[-0.4, 0.3], [0.2, -0.6]], W_in=[[0.5, 0.4], [-0.3, 0.2]],
              W_hz=[[0.2, 0.1], [-0.4, 0.3]], W_hr=[[0.3, -0.5], [0.1, 0.4]], W_hn=[[0.4, 0.2], [0.3, -0.1]],
              b_iz=[0.5, -0.3], b_ir=[-0.6, 0.4], b_in=[0.1, 0.0], b_hz=[0.2, 0.1], b_hr=[0.1, -0.2],
              b_hn=[0.0, 0.3])
_COLAH = dict(W_z=[[0.3, -0.2, 0.5, 0.1], [0.2, 0.4, -0.3, 0.6]], W_r=[[0.1, 0.3, -0.2, 0.4], [0.5, -0.1, 0.2, 0.3]],
              W=[[0.4, 0.2, 0.1, -0.3], [-0.2, 0.5, 0.3, 0.2]])
_CHO = dict(W_z=[[0.4, -0.1], [0.2, 0.3]], U_z=[[0.3, 0.2], [-0.1, 0.5]], W_r=[[0.1, 0.2], [-0.3, 0.4]],
            U_r=[[0.2, -0.4], [0.3, 0.1]], W=[[0.5, 0.3], [-0.2, 0.6]], U=[[0.4, -0.3], [0.2, 0.1]])
_XH = dict(W_z=[[0.2, -0.1, 0.3, 0.1], [0.4, 0.2, -0.2, 0.3]], W_r=[[-0.3, 0.2, 0.1, 0.4], [0.1, 0.5, 0.3, -0.2]],
           W_h=[[0.5, -0.4, 0.2, 0.3], [0.3, 0.6, -0.1, 0.2]], b_z=[0.1, 0.0], b_r=[0.0, -0.1], b_h=[0.2, -0.2])
_HW = dict(U_z=[[0.35], [0.6]], U_r=[[0.45], [0.12]], U_h=[[0.56, 0.1, 0.3], [0.2, 0.5, 0.21]],
           W_z=[[0.12], [0.67], [0.34]], W_r=[[0.21], [0.22], [0.45]],
           W_h=[[0.54, 0.1, 0.2], [0.2, 0.66, 0.3], [0.9, 0.87, 0.3]])
_W_O, _B_O = [[0.5, -0.3], [-0.2, 0.4]], [0.1, -0.1]


def _gates(w: dict, names: dict) -> dict:
    """audit_mistakes' weight names (W_g, U_g, b_g, br_g) from a convention's own keys."""
    return {ours: w[theirs] for ours, theirs in names.items() if theirs in w}


PLANTED = [
    Planted("d2l-dropped-path-claims.yaml", "A dropped gradient path (d2l, row vectors, two steps)", "d2l",
            dict(ROW_KEEP), _D2L,
            _gates(_D2L, {"W_z": "W_xz", "U_z": "W_hz", "b_z": "b_z", "W_r": "W_xr", "U_r": "W_hr", "b_r": "b_r",
                          "W_h": "W_xh", "U_h": "W_hh", "b_h": "b_h"}),
            [[0.5, -0.4], [0.3, 0.8]], [0.2, -0.3], "drop-U_z-path",
            [("h[1]", 1, "h"), ("h[2]", 2, "h"), ("dL/dh[1]", 1, "d_h"), ("dL/dh[0]", 1, "d_h_prev"),
             ("dL/dW_hz", 0, "grad:U_z")], 4, {"dL/dh[1]", "dL/dh[0]"}, set(),
            "dropped path in dL/dh[t-1]: through W_hz (update gate)", G=[[1.0, -0.5], [0.5, 1.0]],
            note="The gradient into the previous state leaves out the path through the update gate."),
    Planted("haiku-update-rule-claims.yaml", "The other update rule (Haiku, z admits the new state)", "haiku",
            dict(orientation="row", update_rule="z_admits_new", reset="before"), _HAIKU,
            _gates(_HAIKU, {"W_z": "w_iz", "U_z": "w_hz", "b_z": "b_z", "W_r": "w_ir", "U_r": "w_hr", "b_r": "b_r",
                            "W_h": "w_ia", "U_h": "w_ha", "b_h": "b_a"}),
            [[0.6, -0.2], [-0.3, 0.9]], [0.4, -0.5], "update-rule",
            [("z[1]", 1, "z"), ("candidate[1]", 1, "c"), ("h[1]", 1, "h"), ("z[2]", 2, "z"), ("h[2]", 2, "h")],
            4, {"h[1]", "h[2]"}, {"z[2]"}, "the other update rule",
            note="h = z h_prev + (1 - z) candidate, where Haiku's z admits the new state."),
    Planted("keras-reset-placement-claims.yaml", "The other reset placement (Keras, reset after)", "keras",
            dict(orientation="row", update_rule="z_keeps_old", reset="after"), _KERAS,
            _gates(_KERAS, {"W_z": "W_z", "W_r": "W_r", "W_h": "W_h", "U_z": "U_z", "U_r": "U_r", "U_h": "U_h",
                            "b_z": "b_iz", "b_r": "b_ir", "b_h": "b_ih", "br_z": "b_rz", "br_r": "b_rr",
                            "br_h": "b_rh"}),
            [[0.7, -0.6]], [0.5, -0.8], "reset-placement",
            [("r[1]", 1, "r"), ("candidate[1]", 1, "c"), ("h[1]", 1, "h")], 4, {"candidate[1]"}, {"h[1]"},
            "the other reset placement",
            note="The candidate computed as tanh(x W_h + (r * h) U_h + b), Keras's reset_after=False."),
    Planted("onnx-transposed-claims.yaml", "A transposed matrix (ONNX, column vectors)", "onnx", dict(COLUMN_KEEP),
            _ONNX,
            _gates(_ONNX, {"W_z": "W_z", "W_r": "W_r", "W_h": "W_h", "U_z": "R_z", "U_r": "R_r", "U_h": "R_h",
                           "b_z": "Wb_z", "b_r": "Wb_r", "b_h": "Wb_h", "br_z": "Rb_z", "br_r": "Rb_r",
                           "br_h": "Rb_h"}),
            [[0.8, -0.5]], [0.6, -0.4, 0.7], "transposed-U_r",
            [("a_z[1]", 1, "a_z"), ("a_r[1]", 1, "a_r"), ("r[1]", 1, "r"), ("h[1]", 1, "h")], 3, {"a_r[1]"},
            {"r[1]", "h[1]"}, "transposed matrix: R_r used as R_r^T",
            note="R_r h read as R_r^T h."),
    Planted("pytorch-swapped-gates-claims.yaml", "Swapped gate blocks (PyTorch's [r|z|n] read as [z|r|n])", "pytorch",
            dict(orientation="column", update_rule="z_keeps_old", reset="after"), _TORCH,
            _gates(_TORCH, {"W_z": "W_iz", "W_r": "W_ir", "W_h": "W_in", "U_z": "W_hz", "U_r": "W_hr",
                            "U_h": "W_hn", "b_z": "b_iz", "b_r": "b_ir", "b_h": "b_in", "br_z": "b_hz",
                            "br_r": "b_hr", "br_h": "b_hn"}),
            [[0.9, -0.7]], [0.3, -0.6], "swapped-z-r",
            [("z[1]", 1, "z"), ("r[1]", 1, "r"), ("n[1]", 1, "c"), ("h[1]", 1, "h")], 4, {"z[1]", "r[1]"},
            {"n[1]", "h[1]"}, "swapped gate blocks",
            note="The first two row blocks of PyTorch's weights are r and z, not z and r."),
    Planted("colah-missing-derivative-claims.yaml", "A missing activation derivative (Colah, weights on [h, x])",
            "colah", dict(orientation="column", update_rule="z_admits_new", reset="before"), _COLAH,
            {"W_z": _split(_COLAH["W_z"], 2)[1], "U_z": _split(_COLAH["W_z"], 2)[0],
             "W_r": _split(_COLAH["W_r"], 2)[1], "U_r": _split(_COLAH["W_r"], 2)[0],
             "W_h": _split(_COLAH["W"], 2)[1], "U_h": _split(_COLAH["W"], 2)[0]},
            [[0.6, -0.9]], [0.5, 0.3], "missing-sigma-z",
            [("z[1]", 1, "z"), ("h[1]", 1, "h"), ("dL/dz[1]", 1, "d_z"), ("dL/da_z[1]", 1, "d_a_z")], 4,
            {"dL/da_z[1]"}, set(), "missing activation derivative",
            G=[[1.0, -1.0]], note="dL/da_z taken as dL/dz, without the factor z (1 - z)."),
    Planted("cho2014-sign-error-claims.yaml", "A sign error (Cho et al. 2014)", "cho2014", dict(COLUMN_KEEP), _CHO,
            _gates(_CHO, {"W_z": "W_z", "U_z": "U_z", "W_r": "W_r", "U_r": "U_r", "W_h": "W", "U_h": "U"}),
            [[0.7, 0.2]], [-0.4, 0.6], "sign-dz",
            [("h[1]", 1, "h"), ("dL/dz[1]", 1, "d_z"), ("dL/da_z[1]", 1, "d_a_z"), ("dL/dU_z", 0, "grad:U_z")], 4,
            {"dL/dz[1]"}, {"dL/da_z[1]", "dL/dU_z"}, "sign error",
            G=[[0.5, 1.0]], note="dL/dz = dL/dh (candidate - h_prev), where z keeps the old state."),
    Planted("xh-activation-claims.yaml", "A mis-evaluated tanh (weights on [x, h], per-step cross-entropy)",
            {"preset": "course-notes", "input_form": "concatenated_xh", "name": "course-notes-xh"},
            dict(orientation="column", update_rule="z_admits_new", reset="before"), _XH,
            {"W_z": _split(_XH["W_z"], 2)[0], "U_z": _split(_XH["W_z"], 2)[1], "b_z": _XH["b_z"],
             "W_r": _split(_XH["W_r"], 2)[0], "U_r": _split(_XH["W_r"], 2)[1], "b_r": _XH["b_r"],
             "W_h": _split(_XH["W_h"], 2)[0], "U_h": _split(_XH["W_h"], 2)[1], "b_h": _XH["b_h"]},
            [[0.4, -0.3], [0.9, 0.5]], [0.1, -0.2], "tanh-misread",
            [("a_h[1]", 1, "a_h"), ("candidate[1]", 1, "c"), ("h[1]", 1, "h"), ("h[2]", 2, "h")], 3,
            {"candidate[1]"}, {"h[1]", "h[2]"}, "mis-evaluated activation",
            loss={"type": "softmax_cross_entropy", "W_o": _W_O, "b_o": _B_O, "targets": [1, 0]},
            head=_softmax_head(_W_O, _B_O, [1, 0]), note="tanh(a_h[1]) printed 0.03 too high; the rest follows."),
    Planted("homework-wrong-step-claims.yaml", "The state of the wrong step (homework, scalar gates)", "homework",
            dict(ROW_KEEP), _HW,
            {"W_z": _HW["U_z"], "U_z": _HW["W_z"], "W_r": _HW["U_r"], "U_r": _HW["W_r"], "W_h": _HW["U_h"],
             "U_h": _HW["W_h"]},
            [[0.23, 0.12], [0.48, 0.98]], [0, 0, 0], "never-carried",
            [("z[1]", 1, "z"), ("h[1]", 1, "h"), ("z[2]", 2, "z"), ("r[2]", 2, "r"), ("s[2]", 2, "h")], 4,
            {"z[2]", "r[2]", "s[2]"}, set(), "state",
            note="Step 2 computed from s_0 instead of s_1."),
]

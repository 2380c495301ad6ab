"""A plain-NumPy GRU written for the tests, independently of grukit's stage list and evaluators.

It reads nothing from grukit but the convention's axes (plain strings) and the parameter arrays
keyed by ``(role, gate)``; every equation is written out here by hand from the public sources:
Cho et al. 2014 (arXiv:1406.1078, eqs. 5-8), Chung et al. 2014 (arXiv:1412.3555, eqs. 5-8), the
``torch.nn.GRU`` documentation, Keras's ``keras/src/layers/rnn/gru.py`` (``GRUCell.call``) and the
ONNX GRU operator specification (``onnx/defs/rnn/defs.cc``):

* update rule ``z_keeps_old``: ``h = z*h_prev + (1-z)*c``; ``z_admits_new``: ``h = (1-z)*h_prev + z*c``;
* reset ``before``: ``c = act(W_h x + U_h (r*h_prev) + b_ih + b_hh)``;
  ``after``: ``c = act(W_h x + b_ih + r*(U_h h_prev + b_hh))``; ``none`` (no reset gate, r = 1):
  ``c = act(W_h x + U_h h_prev + b_ih + b_hh)``;
* ``concatenated`` input form (Colah): one weight per gate on ``[h_prev; x]`` (``[r*h_prev; x]`` for c);
* ``row`` orientation: ``x @ W`` (W is in x out); ``column``: ``W @ x``;
* gate activations: logistic, Keras 2's ``clip(0.2a + 0.5, 0, 1)``, Keras 3's ``relu6(a + 3)/6``.
"""
from __future__ import annotations

import numpy as np

GATE_ACTS = {
    "sigmoid": lambda a: 1.0 / (1.0 + np.exp(-a)),
    "hard_sigmoid_keras2": lambda a: np.clip(0.2 * a + 0.5, 0.0, 1.0),
    "hard_sigmoid_keras3": lambda a: np.minimum(np.maximum(a + 3.0, 0.0), 6.0) / 6.0,
}
CAND_ACTS = {"tanh": np.tanh, "linear": lambda a: a}


def gru_reference(axes: dict, params: dict, inputs, h0) -> list[dict[str, np.ndarray]]:
    """Per step ``{"z", "r", "candidate", "h"}``. ``params[(role, gate)]`` in the convention's orientation."""
    sig = GATE_ACTS[axes["gate_activation"]]
    act = CAND_ACTS[axes.get("candidate_activation", "tanh")]
    row = axes["orientation"] == "row"

    def mul(w, v):
        w = np.asarray(w, dtype=float)
        return v @ w if row else w @ v

    def bias(role, gate):
        return np.asarray(params.get((role, gate), 0.0), dtype=float)

    def pre(gate, state, x):
        """Weights times operands plus both biases (gates z and r)."""
        if axes["input_form"] == "concatenated":
            out = mul(params[("input_weight", gate)], np.concatenate([state, x]))
        else:
            out = mul(params[("input_weight", gate)], x) + mul(params[("recurrent_weight", gate)], state)
        return out + bias("input_bias", gate) + bias("recurrent_bias", gate)

    h = np.asarray(h0, dtype=float)
    steps = []
    for x in np.asarray(inputs, dtype=float):
        z = sig(pre("z", h, x))
        r = sig(pre("r", h, x)) if axes["reset"] != "none" else np.ones_like(h)
        if axes["reset"] == "none":
            a = pre("h", h, x)
        elif axes["reset"] == "before":
            a = pre("h", r * h, x)
        else:
            a = (mul(params[("input_weight", "h")], x) + bias("input_bias", "h")
                 + r * (mul(params[("recurrent_weight", "h")], h) + bias("recurrent_bias", "h")))
        c = act(a)
        if axes["update_rule"] == "z_keeps_old":
            h_new = z * h + (1.0 - z) * c
        else:
            h_new = (1.0 - z) * h + z * c
        steps.append({"z": z, "r": r, "candidate": c, "h": h_new})
        h = h_new
    return steps

"""Random layer networks: cells of any convention, and two bidirectional layers whose cells use clip
and the ONNX activations (every composition rule at once); and the measure two engines' numbers are
compared by. Shared by the layer tests and the kernel network tests."""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from grukit.derive.cell.presets import PRESETS
from grukit.derive.layers.network import Cell, Layer, Network


def random_cell(rng, conv, D, H, direction="forward", scale=0.7):
    params = {p: scale * rng.standard_normal(conv.param_shape(p, D, H)) for p in conv.parameters()}
    return Cell(conv, params, direction)


def composed_network(rng, framework, merge, padded, order, final):
    """Two bidirectional layers whose cells use clip and the ONNX activations."""
    base = PRESETS["onnx-lbr1"]
    convs = [
        base.with_changes(name="a", gate_activation="hard_sigmoid", gate_activation_alpha=Fraction(1, 3),
                          gate_activation_beta=Fraction(1, 2), candidate_activation="leaky_relu",
                          candidate_activation_alpha=Fraction(1, 10), clip=Fraction(9, 10)),
        base.with_changes(name="b", candidate_activation="elu", candidate_activation_alpha=Fraction(3, 2)),
        PRESETS["onnx"].with_changes(name="c", gate_activation="softsign", candidate_activation="scaled_tanh",
                                     candidate_activation_alpha=Fraction(6, 5),
                                     candidate_activation_beta=Fraction(4, 5),
                                     clip=Fraction(6, 5)),
        PRESETS["keras"].with_changes(name="d", candidate_activation="softplus", gate_activation="sigmoid"),
    ]
    D, H = 2, 3
    width = H if merge in ("sum", "mul", "ave") else 2 * H
    layers = [Layer((random_cell(rng, convs[0], D, H), random_cell(rng, convs[1], D, H, "reverse")),
                    merge, padded, order),
              Layer((random_cell(rng, convs[2], width, H), random_cell(rng, convs[3], width, H, "reverse")),
                    merge, padded, order)]
    return Network(framework, layers, final)


def close(ours, theirs, tol: float, what: str = "") -> None:
    """``ours`` within ``tol`` of ``theirs``, relative to the largest entry of ``theirs`` (same shape)."""
    ours, theirs = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape}, expected {theirs.shape}"
    scale = np.max(np.abs(theirs), initial=0.0)
    worst = np.max(np.abs(ours - theirs), initial=0.0)
    assert worst <= tol * scale, f"{what} differs by {worst:.3g} (largest entry {scale:.3g})"

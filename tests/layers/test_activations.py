"""The activations of ONNX's GRU (and clip) as SymPy: values, and the derivative grukit takes at every
kink, against PyTorch autograd of the same function (the ``oracle`` extra; skipped without torch).

Kinks, as grukit takes them (each the PyTorch function's own autograd):

| function | kink | grukit's derivative there | PyTorch reference |
|---|---|---|---|
| relu | a = 0 | 0 | torch.relu |
| leaky_relu | a = 0 | alpha | F.leaky_relu |
| thresholded_relu | a = alpha | 0 | F.threshold(a, alpha, 0) |
| elu | a = 0 | alpha | F.elu |
| hard_sigmoid (any alpha, beta) | alpha a + beta = 0 or 1 | 0 | F.hardtanh(alpha a + beta, 0, 1); F.hardsigmoid |
| clip (the ONNX attribute) | a = +-clip | the inner slope | torch.clamp (a closed range) |
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
from helpers import framework_oracle as fo

from grukit.derive.cell.convention import ACTIVATION_PARAMETERS, AXES
from grukit.derive.cell.functions import ACTIVATIONS, activation
from grukit.derive.numeric.evaluate import NumpyEngine

needs_torch = pytest.mark.skipif(not fo.available("torch"), reason="torch not installed")
a = sp.Symbol("a", real=True)
ALPHA, BETA = Fraction(3, 10), Fraction(7, 10)


def values(expr, points):
    eng = NumpyEngine()
    return eng.apply(expr, {"a": np.asarray(points, float)}) if expr.free_symbols else np.full(len(points), float(expr))


def params(kind):
    takes = ACTIVATION_PARAMETERS.get(kind, (False, False))
    return (ALPHA if takes[0] else None), (BETA if takes[1] else None)


def torch_function(kind, torch):
    F = torch.nn.functional
    al, be = float(ALPHA), float(BETA)
    return {
        "sigmoid": torch.sigmoid, "tanh": torch.tanh, "linear": lambda x: x,
        "hard_sigmoid_keras2": lambda x: F.hardtanh(0.2 * x + 0.5, 0.0, 1.0),
        "hard_sigmoid_keras3": F.hardsigmoid,
        "relu": torch.relu, "affine": lambda x: al * x + be, "leaky_relu": lambda x: F.leaky_relu(x, al),
        "thresholded_relu": lambda x: F.threshold(x, al, 0.0), "scaled_tanh": lambda x: al * torch.tanh(be * x),
        "hard_sigmoid": lambda x: F.hardtanh(al * x + be, 0.0, 1.0), "elu": lambda x: F.elu(x, al),
        "softsign": F.softsign, "softplus": F.softplus,
    }[kind]


def kinks(kind):
    return {"relu": [0.0], "leaky_relu": [0.0], "elu": [0.0], "thresholded_relu": [float(ALPHA)],
            "hard_sigmoid": [-float(BETA / ALPHA), float((1 - BETA) / ALPHA)],
            "hard_sigmoid_keras2": [-2.5, 2.5], "hard_sigmoid_keras3": [-3.0, 3.0]}.get(kind, [0.0])


def test_the_axes_table_and_the_functions_agree():
    assert set(AXES["gate_activation"]) | set(AXES["candidate_activation"]) == set(ACTIVATIONS)
    onnx = {act.onnx for act in ACTIVATIONS.values() if act.onnx}
    assert onnx == {"Relu", "Tanh", "Sigmoid", "Affine", "LeakyRelu", "ThresholdedRelu", "ScaledTanh",
                    "HardSigmoid", "Elu", "Softsign", "Softplus"}


@needs_torch
@pytest.mark.parametrize("kind", list(ACTIVATIONS))
def test_values_and_derivatives_equal_torch_autograd_kinks_included(kind):
    import torch

    points = sorted({-4.0, -1.3, -0.2, 0.45, 1.1, 3.7, *kinks(kind)})
    expr = activation(kind, a, *params(kind))
    x = torch.tensor(points, dtype=torch.float64, requires_grad=True)
    y = torch_function(kind, torch)(x)
    (grad,) = torch.autograd.grad(y.sum(), x)
    np.testing.assert_allclose(values(expr, points), y.detach().numpy(), atol=1e-15)
    np.testing.assert_allclose(values(sp.diff(expr, a), points), grad.numpy(), atol=1e-15, err_msg=kind)


@needs_torch
@pytest.mark.parametrize("kind", ["sigmoid", "tanh", "leaky_relu", "scaled_tanh"])
def test_clip_passes_the_inner_slope_at_the_bound_like_torch_clamp(kind):
    import torch

    c = Fraction(5, 4)
    points = [-3.0, -1.25, -0.5, 0.0, 1.0, 1.25, 2.0]
    expr = activation(kind, a, *params(kind), clip=c)
    x = torch.tensor(points, dtype=torch.float64, requires_grad=True)
    y = torch_function(kind, torch)(torch.clamp(x, -float(c), float(c)))
    (grad,) = torch.autograd.grad(y.sum(), x)
    np.testing.assert_allclose(values(expr, points), y.detach().numpy(), atol=1e-15)
    d = values(sp.diff(expr, a), points)
    np.testing.assert_allclose(d, grad.numpy(), atol=1e-15)
    assert d[0] == 0 and d[-1] == 0 and d[1] != 0  # 0 outside [-c, c], the inner slope at -c


def test_derivatives_equal_finite_differences_away_from_kinks():
    points = np.array([-2.3, -0.7, 0.35, 1.6])
    for kind in ACTIVATIONS:
        expr = activation(kind, a, *params(kind), clip=Fraction(2))
        h = 1e-6
        fd = (values(expr, points + h) - values(expr, points - h)) / (2 * h)
        np.testing.assert_allclose(values(sp.diff(expr, a), points), fd, atol=1e-8, err_msg=kind)


@pytest.mark.parametrize("kind", [k for k in ACTIVATIONS if not k.startswith("hard_sigmoid_")])
def test_every_activation_with_clip_agrees_with_the_fully_expanded_derivative(tmp_path, capsys, kind):
    """`grukit grad --check`: the per-unit derivation against sympy's derivative of the whole loss, each
    activation as the gates' and as the candidate's, every pre-activation clipped."""
    from grukit.codegen.cli.main import main

    gate = kind if kind != "linear" else "affine"  # gates need an activation of theirs
    extra = "".join(f", {which}_activation_{name}: {float(v)}" for which, k in (("gate", gate), ("candidate", kind))
                    for name, v in zip(("alpha", "beta"), params(k)) if v is not None)
    (tmp_path / "p.yaml").write_text(
        f"convention: {{preset: onnx-lbr1, gate_activation: {gate}, candidate_activation: {kind}, clip: 0.9{extra}}}\n"
        "inputs: [[0.5, -1.5], [1.25, 0.25], [-0.75, 0.5]]\nh0: [0.2, -0.4]\n"
        "weights: {W_z: [[0.6, -0.3], [0.2, 0.5]], W_r: [[-0.4, 0.7], [0.3, 0.1]], W_h: [[0.9, -0.2], [0.4, 0.8]],"
        " R_z: [[0.1, 0.3], [-0.5, 0.2]], R_r: [[0.2, -0.6], [0.4, 0.3]], R_h: [[-0.3, 0.5], [0.7, -0.1]],"
        " Wb_z: [0.1, -0.2], Wb_r: [0.3, 0.1], Wb_h: [-0.1, 0.2],"
        " Rb_z: [0.05, 0.1], Rb_r: [-0.1, 0.2], Rb_h: [0.2, -0.3]}\n"
        "loss: {type: squared_error, targets: [[0.1, 0.2], [0.3, -0.1], [0.0, 0.4]]}\n")
    capsys.readouterr()
    assert main(["grad", str(tmp_path / "p.yaml"), "--check"]) == 0
    assert "check: agrees" in capsys.readouterr().out

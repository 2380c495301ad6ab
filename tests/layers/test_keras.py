"""Whole Keras GRU layers against Keras 3 on torch: masks (a masked step in the middle, masked steps
first), Bidirectional with every merge_mode, go_backwards, stacked layers from .weights.h5 and .keras
files (Masking, reset_after=False, hard_sigmoid), forward (float32, 1e-5) and gradients (Keras's
torch autograd in float64). Skipped without keras (torch backend)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import framework_oracle as fo

from grukit.codegen.cli.main import main

pytestmark = [pytest.mark.skipif(not fo.available("keras", "torch"), reason="keras (torch backend) not installed"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]  # Keras's own, on NumPy 2
TOL = 1e-5
B, T, D, H = 3, 5, 3, 4
MASK = np.array([[1, 1, 0, 1, 1],   # a masked step in the middle
                 [1, 1, 1, 0, 0],   # the end masked
                 [0, 0, 1, 1, 1]])  # the start masked


def run_cli(capsys, *argv) -> dict:
    capsys.readouterr()
    status = main(list(map(str, argv)))
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return json.loads(captured.out)


def write(tmp_path: Path, name: str = "p.yaml", **data) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({k: v for k, v in data.items() if v is not None}))
    return path


def fill(model, seed):
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(rng.uniform(-0.8, 0.8, w.shape).astype(w.dtype))


def inputs(seed, dtype=np.float32):
    return np.random.default_rng(seed).uniform(-1, 1, (B, T, D)).astype(dtype)


def call(layer, x, mask=None, **kw):
    import torch

    with torch.no_grad():
        out = layer(torch.tensor(x), mask=None if mask is None else torch.tensor(mask.astype(bool)), **kw)
    return [o.numpy() for o in out] if isinstance(out, (list, tuple)) else out.numpy()


def test_acceptance_bidirectional_sum_over_a_masked_step_from_weights_h5(tmp_path, capsys):
    """Bidirectional(GRU(4, return_sequences=True), merge_mode="sum") over masked inputs (a masked
    step in the middle), saved as .weights.h5: grukit equals Keras to 1e-5."""
    import keras

    inp = keras.Input((T, D))
    bi = keras.layers.Bidirectional(keras.layers.GRU(H, return_sequences=True), merge_mode="sum")
    model = keras.Model(inp, bi(inp))
    fill(model, 0)
    model.save_weights(tmp_path / "m.weights.h5")
    x = inputs(1)
    ref = call(bi, x, MASK)
    problem = write(tmp_path, inputs=x.astype(float).tolist(), mask=MASK.tolist(), merge="sum",
                    weights={"layout": "keras", "file": "m.weights.h5"})
    out = run_cli(capsys, "forward", problem, "--json", "--engine", "numpy")
    diff = np.max(np.abs(np.array(out["outputs"]) - ref))
    assert diff < TOL, diff
    assert np.all(np.array(out["outputs"])[0, 2] == 0)  # Bidirectional: a masked step's output is 0


def _keras_grads(layer, x, mask, G, variables):
    """Gradients of sum(G * layer(x, mask)) by torch autograd through Keras (float64)."""
    import torch

    X = torch.tensor(x, requires_grad=True)
    with fo._keras_true_float64(True), torch.enable_grad():
        y = layer(X, mask=torch.tensor(mask.astype(bool)))
        loss = (y * torch.tensor(G)).sum()
        grads = torch.autograd.grad(loss, [X] + [v.value for v in variables.values()])
    return loss.item(), grads[0].numpy(), {k: g.numpy() for k, g in zip(variables, grads[1:])}


@pytest.mark.parametrize("merge", ["sum", "concat", "mul", "ave", None])
def test_bidirectional_merges_forward_and_gradients(tmp_path, capsys, merge):
    import keras

    inp = keras.Input((T, D), dtype="float64")
    bi = keras.layers.Bidirectional(keras.layers.GRU(H, return_sequences=True, dtype="float64"),
                                    merge_mode=merge, dtype="float64")
    model = keras.Model(inp, bi(inp))
    fill(model, 2)
    model.save_weights(tmp_path / "m.weights.h5")
    x = inputs(3, np.float64)
    with fo._keras_true_float64(True):
        ref = call(bi, x, MASK)
    ref = np.stack(ref) if merge is None else ref
    G = np.random.default_rng(4).uniform(-1, 1, ref.shape)
    problem = write(tmp_path, inputs=x.tolist(), mask=MASK.tolist(), merge="none" if merge is None else merge,
                    weights={"layout": "keras", "file": "m.weights.h5"}, loss={"type": "weighted_sum", "G": G.tolist()})
    out = run_cli(capsys, "forward", problem, "--json", "--engine", "numpy")
    assert np.max(np.abs(np.array(out["outputs"]) - ref)) < 1e-12
    grad = run_cli(capsys, "grad", problem, "--json", "--engine", "numpy")
    cells = {"forward_layer": bi.forward_layer.cell, "backward_layer": bi.backward_layer.cell}
    variables = {f"layers/bidirectional/{side}/cell/vars/{i}": v for side, cell in cells.items()
                 for i, v in enumerate((cell.kernel, cell.recurrent_kernel, cell.bias))}
    if merge is None:
        import torch

        class Stacked:
            def __call__(self, X, mask):
                return torch.stack(bi(X, mask=mask))
        loss, d_x, d_w = _keras_grads(Stacked(), x, MASK, G, variables)
    else:
        loss, d_x, d_w = _keras_grads(bi, x, MASK, G, variables)
    assert sorted(grad["grads"]) == sorted(variables)
    assert abs(grad["loss"] - loss) < 1e-10
    worst = max(np.max(np.abs(np.array(grad["grads"][k]) - d_w[k])) for k in variables)
    worst = max(worst, np.max(np.abs(np.array(grad["inputs"]) - d_x)))
    assert worst < 1e-10, worst


@pytest.mark.parametrize("go_backwards", [False, True])
def test_a_plain_gru_repeats_the_previous_output_at_masked_steps(tmp_path, capsys, go_backwards):
    """zero_output_for_mask=False: a masked step repeats the previous output (zeros before the first);
    go_backwards returns the outputs in processing order. The state is carried over masked steps."""
    import keras

    inp = keras.Input((T, D), dtype="float64")
    gru = keras.layers.GRU(H, return_sequences=True, return_state=True, go_backwards=go_backwards, dtype="float64")
    model = keras.Model(inp, gru(inp)[0])
    fill(model, 5)
    model.save_weights(tmp_path / "g.weights.h5")
    x = inputs(6, np.float64)
    h0 = np.random.default_rng(7).uniform(-0.5, 0.5, (B, H))
    import torch

    with fo._keras_true_float64(True):
        y, state = call(gru, x, MASK, initial_state=[torch.tensor(h0)])
    problem = write(tmp_path, inputs=x.tolist(), mask=MASK.tolist(), h0=h0.tolist(),
                    direction="reverse" if go_backwards else None, weights={"layout": "keras", "file": "g.weights.h5"})
    out = run_cli(capsys, "forward", problem, "--json", "--engine", "numpy")
    assert np.max(np.abs(np.array(out["outputs"]) - y)) < 1e-12
    assert np.max(np.abs(np.array(out["h_n"])[0] - state)) < 1e-12
    if not go_backwards:
        assert np.all(y[2, :2] == 0) and np.array_equal(y[0, 2], y[0, 1])  # zeros first, then repeats


def test_a_keras_file_stack_with_masking_reverse_and_reset_before(tmp_path, capsys):
    """A .keras model: Masking, Bidirectional(concat), GRU(reset_after=False, go_backwards=True,
    recurrent_activation="hard_sigmoid"), Dense head. The file decides the order, the merge, the
    directions, the activations and the mask (inputs equal to mask_value); gradients equal Keras's."""
    import keras

    inp = keras.Input((T, D), dtype="float64")
    m = keras.layers.Masking(0.0, dtype="float64")(inp)
    y1 = keras.layers.Bidirectional(keras.layers.GRU(H, return_sequences=True, dtype="float64"), dtype="float64")(m)
    gru2 = keras.layers.GRU(2, return_sequences=True, reset_after=False, go_backwards=True,
                            recurrent_activation="hard_sigmoid", dtype="float64")
    y2 = gru2(y1)
    model = keras.Model(inp, keras.layers.Dense(1, dtype="float64")(y2))
    fill(model, 8)
    model.save(tmp_path / "stack.keras")
    x = inputs(9, np.float64)
    x[MASK == 0] = 0.0  # what Masking(0.0) masks
    G = np.random.default_rng(10).uniform(-1, 1, (B, T, 2))
    problem = write(tmp_path, inputs=x.tolist(), weights={"layout": "keras", "file": "stack.keras"},
                    loss={"type": "weighted_sum", "G": G.tolist()})
    sub = keras.Model(inp, y2)
    variables = {}
    for i, layer in enumerate(sub.layers):
        cells = {"forward_layer": layer.forward_layer.cell, "backward_layer": layer.backward_layer.cell} \
            if isinstance(layer, keras.layers.Bidirectional) else {"": getattr(layer, "cell", None)}
        for side, cell in cells.items():
            if cell is not None:
                path = "layers/" + ("bidirectional/" + side if side else "gru")
                for j, v in enumerate((cell.kernel, cell.recurrent_kernel, cell.bias)):
                    variables[f"{path}/cell/vars/{j}"] = v
    import torch

    X = torch.tensor(x, requires_grad=True)
    with fo._keras_true_float64(True), torch.enable_grad():
        y = sub(X)
        loss = (y * torch.tensor(G)).sum()
        grads = torch.autograd.grad(loss, [X] + [v.value for v in variables.values()])
    out = run_cli(capsys, "forward", problem, "--json", "--engine", "numpy")
    net = out["network"]
    assert [d["direction"] for d in net] == ["bidirectional", "reverse"] and net[0]["merge"] == "concat"
    assert "hard_sigmoid_keras3" in out["convention"][2] or out["convention"][2].startswith("keras-reset-before")
    assert np.max(np.abs(np.array(out["outputs"]) - y.detach().numpy())) < 1e-12
    grad = run_cli(capsys, "grad", problem, "--json", "--engine", "numpy")
    assert abs(grad["loss"] - loss.item()) < 1e-10
    worst = max(np.max(np.abs(np.array(grad["grads"][k]) - g.numpy())) for k, g in zip(variables, grads[1:]))
    # Keras's own gradients through this stack (reset_after=False, go_backwards, hard_sigmoid, masks) are off
    # by up to a few 1e-9 (grukit's numpy and exact engines agree to 1e-16, and central differences of the
    # forward pass side with them): 1e-8 here, against 1e-10 for the Bidirectional alone
    assert worst < 1e-8, worst
    assert np.max(np.abs(np.array(grad["inputs"]) - grads[0].numpy())) < 1e-8


def test_errors_name_the_file(tmp_path, capsys):
    import keras

    inp = keras.Input((T, D))
    model = keras.Model(inp, keras.layers.GRU(2)(keras.layers.GRU(H, return_sequences=True)(inp)))
    model.save_weights(tmp_path / "two.weights.h5")
    lstm = keras.Model(inp, keras.layers.LSTM(2)(inp))
    lstm.save_weights(tmp_path / "lstm.weights.h5")
    x = inputs(11).astype(float).tolist()
    assert main(["forward", str(write(tmp_path, inputs=x, weights={"file": "two.weights.h5"}))]) == 2
    assert "two.weights.h5 holds 2 GRU layers" in capsys.readouterr().err
    chosen = write(tmp_path, inputs=x, weights={"file": "two.weights.h5", "layers": ["gru", "gru_1"]})
    out = run_cli(capsys, "forward", chosen, "--json", "--engine", "numpy")
    assert np.array(out["outputs"]).shape == (B, T, 2)
    assert main(["forward", str(write(tmp_path, inputs=x, weights={"file": "lstm.weights.h5"}))]) == 2
    assert "lstm.weights.h5: " in (err := capsys.readouterr().err) and "(an LSTM)" in err

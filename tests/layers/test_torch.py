"""Whole PyTorch GRU layers against torch (float64 autograd): state dicts (.pt with
weights_only=True, .safetensors, .npz), stacked bidirectional layers, packed sequences, h_n in
PyTorch's order and every gradient under the state dict's own names. Skipped without torch."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import framework_oracle as fo

from grukit.codegen.cli.main import main

pytestmark = pytest.mark.skipif(not fo.available("torch"), reason="torch not installed")
TOL = 1e-10


def run_cli(capsys, *argv) -> dict:
    capsys.readouterr()
    assert main(list(map(str, argv))) == 0
    return json.loads(capsys.readouterr().out)


def write(tmp_path: Path, name: str = "p.yaml", **data) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def torch_reference(gru, x, h0, lengths, G, G_h):
    """outputs (padded, B x T x ...), h_n and the gradients of sum(G * y) + sum(G_h * h_n) by autograd."""
    import torch

    X = torch.tensor(x, requires_grad=True)
    H0 = torch.tensor(h0, requires_grad=True)
    T = x.shape[1]
    if lengths is None:
        y, hn = gru(X, H0)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(X, torch.tensor(lengths), batch_first=True,
                                                         enforce_sorted=False)
        y, hn = gru(packed, H0)
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=T)
    loss = (y * torch.tensor(G)).sum() + (hn * torch.tensor(G_h)).sum()
    names = [n for n, _ in gru.named_parameters()]
    grads = torch.autograd.grad(loss, [X, H0] + [p for _, p in gru.named_parameters()])
    out = {"y": y.detach().numpy(), "h_n": hn.detach().numpy(), "loss": loss.item(),
           "inputs": grads[0].numpy(), "h0": grads[1].numpy()}
    out.update({n: g.numpy() for n, g in zip(names, grads[2:])})
    return out, names


def acceptance_case(tmp_path, seed=0):
    import torch

    torch.manual_seed(seed)
    gru = torch.nn.GRU(3, 5, num_layers=2, bidirectional=True, batch_first=True, dtype=torch.float64)
    torch.save(gru.state_dict(), tmp_path / "gru.pt")
    rng = np.random.default_rng(seed)
    B, T = 3, 6
    lengths = [6, 4, 1]
    x, h0 = rng.uniform(-1, 1, (B, T, 3)), rng.uniform(-0.5, 0.5, (4, B, 5))
    G, G_h = rng.uniform(-1, 1, (B, T, 10)), rng.uniform(-1, 1, (4, B, 5))
    return gru, x, h0, lengths, G, G_h


def test_acceptance_two_layer_bidirectional_state_dict_with_packed_sequences(tmp_path, capsys):
    """nn.GRU(3, 5, num_layers=2, bidirectional=True, batch_first=True), torch.save(state_dict), lengths
    6, 4, 1: grukit forward and grad equal PyTorch float64 to 1e-10 -- outputs, h_n, every gradient."""
    gru, x, h0, lengths, G, G_h = acceptance_case(tmp_path)
    problem = write(tmp_path, inputs=x.tolist(), h0=h0.tolist(), lengths=lengths,
                    weights={"layout": "pytorch", "file": "gru.pt"},
                    loss={"type": "weighted_sum", "G": G.tolist(), "G_h_n": G_h.tolist()})
    ref, names = torch_reference(gru, x, h0, lengths, G, G_h)
    for engine in ("numpy", "exact"):
        fwd = run_cli(capsys, "forward", problem, "--json", "--engine", engine)
        assert np.max(np.abs(np.array(fwd["outputs"]) - ref["y"])) < TOL
        assert np.max(np.abs(np.array(fwd["h_n"]) - ref["h_n"])) < TOL
        assert "steps" not in fwd and [d["direction"] for d in fwd["network"]] == ["bidirectional"] * 2
        grad = run_cli(capsys, "grad", problem, "--json", "--engine", engine)
        assert sorted(grad["grads"]) == sorted(names) and len(names) == 16
        assert abs(grad["loss"] - ref["loss"]) < TOL
        worst = max(np.max(np.abs(np.array(grad["grads"][n]) - ref[n])) for n in names)
        worst = max(worst, np.max(np.abs(np.array(grad["inputs"]) - ref["inputs"])),
                    np.max(np.abs(np.array(grad["h0"]) - ref["h0"])))
        assert worst < TOL, (engine, worst)
    # padded steps: outputs 0, the padded inputs get no gradient
    assert np.all(np.array(fwd["outputs"])[2, 1:] == 0) and np.all(np.array(grad["inputs"])[1, 4:] == 0)


def test_safetensors_npz_and_pt_are_the_same_weights(tmp_path, capsys):
    from safetensors.torch import save_file

    gru, x, h0, lengths, G, G_h = acceptance_case(tmp_path, seed=1)
    save_file(gru.state_dict(), tmp_path / "gru.safetensors")
    np.savez(tmp_path / "gru.npz", **{k: v.numpy() for k, v in gru.state_dict().items()})
    ref, _ = torch_reference(gru, x, h0, None, G, G_h)
    for name, layout in (("gru.safetensors", "pytorch"), ("gru.npz", "pytorch"), ("gru.pt", None)):
        weights = {"file": name} | ({"layout": layout} if layout else {})
        out = run_cli(capsys, "forward", write(tmp_path, inputs=x.tolist(), h0=h0.tolist(), weights=weights),
                      "--json", "--engine", "numpy")
        assert np.max(np.abs(np.array(out["outputs"]) - ref["y"])) < TOL, name


def test_a_module_among_others_and_a_sub_stack(tmp_path, capsys):
    import torch

    torch.manual_seed(2)
    model = torch.nn.ModuleDict({"encoder": torch.nn.GRU(2, 3, num_layers=3, dtype=torch.float64),
                                 "decoder": torch.nn.GRU(3, 3, dtype=torch.float64),
                                 "head": torch.nn.Linear(3, 1, dtype=torch.float64)})
    torch.save(model.state_dict(), tmp_path / "model.pth")
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (2, 4, 3))
    assert main(["forward", str(write(tmp_path, inputs=x.tolist(), weights={"file": "model.pth"})), "--json"]) == 2
    assert "several recurrent modules ('decoder.', 'encoder.')" in capsys.readouterr().err
    # layers 1 and 2 of the encoder, alone: inputs of size 3
    out = run_cli(capsys, "forward", write(tmp_path, inputs=x.tolist(),
                                           weights={"file": "model.pth", "module": "encoder", "layers": [1, 2]}),
                  "--json", "--engine", "numpy")
    sub = torch.nn.GRU(3, 3, num_layers=2, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        for name, p in sub.named_parameters():
            k = int(name[-1])
            p.copy_(model["encoder"].state_dict()[name[:-1] + str(k + 1)])
        y, hn = sub(torch.tensor(x))
    assert np.max(np.abs(np.array(out["outputs"]) - y.numpy())) < TOL
    assert np.max(np.abs(np.array(out["h_n"]) - hn.numpy())) < TOL


def test_unpacked_batch_and_one_sequence(tmp_path, capsys):
    import torch

    torch.manual_seed(3)
    gru = torch.nn.GRU(2, 3, batch_first=True, dtype=torch.float64)
    torch.save(gru.state_dict(), tmp_path / "one.pt")
    rng = np.random.default_rng(3)
    x, h0 = rng.uniform(-1, 1, (4, 5, 2)), rng.uniform(-0.5, 0.5, (4, 3))
    G = rng.uniform(-1, 1, (4, 5, 3))
    problem = write(tmp_path, inputs=x.tolist(), h0=h0.tolist(), weights={"layout": "pytorch", "file": "one.pt"},
                    loss={"type": "weighted_sum", "G": G.tolist()})
    ref, names = torch_reference(gru, x, h0[None], None, G, np.zeros((1, 4, 3)))
    grad = run_cli(capsys, "grad", problem, "--json", "--engine", "numpy")
    assert np.array(grad["h0"]).shape == (4, 3)  # shaped as given: B x H
    assert np.max(np.abs(np.array(grad["h0"]) - ref["h0"][0])) < TOL
    assert max(np.max(np.abs(np.array(grad["grads"][n]) - ref[n])) for n in names) < TOL
    # one sequence (T x D), one forward layer: "steps" as for a single-cell problem, plus outputs and h_n
    single = write(tmp_path, "s.yaml", inputs=x[0].tolist(), h0=h0[0].tolist(), weights={"file": "one.pt"})
    out = run_cli(capsys, "forward", single, "--json")
    assert len(out["steps"]) == 5 and set(out["steps"][0]) == {"z", "r", "candidate", "h"}
    assert np.max(np.abs(np.array(out["outputs"]) - ref["y"][:1])) < TOL
    assert np.array(out["h_n"]).shape == (1, 1, 3)


def test_errors_name_the_file(tmp_path, capsys):
    import torch

    torch.save(torch.nn.LSTM(2, 3).state_dict(), tmp_path / "lstm.pt")
    torch.save(torch.nn.GRU(2, 3), tmp_path / "module.pt")  # the module, not its state dict
    torch.save(torch.nn.GRU(2, 3, dtype=torch.float64).state_dict(), tmp_path / "gru.pt")
    x = [[[0.1, 0.2], [0.3, 0.4]], [[0.5, 0.6], [0.7, 0.8]]]
    cases = [
        (dict(weights={"file": "lstm.pt"}),
         "lstm.pt: not a GRU state dict: weight_hh_l0 has 12 rows for hidden size 3 (an LSTM"),
        (dict(weights={"file": "module.pt"}), "module.pt: cannot read with torch.load(weights_only=True)"),
        (dict(weights={"file": "gru.pt"}, lengths=[2, 0]), "lengths: pytorch has no sequence of length 0"),
        (dict(weights={"file": "gru.pt"}, mask=[[1, 0], [1, 1]]), None),  # a suffix mask is lengths
        (dict(weights={"file": "gru.pt"}, mask=[[0, 1], [1, 1]]), "mask: pytorch masks only the end of a sequence"),
        (dict(weights={"file": "gru.pt"}, direction="bidirectional"), "gru.pt holds a forward GRU"),
        (dict(weights={"file": "nothere.pt"}), "nothere.pt: no such file"),
        (dict(weights={"file": "gru.txt"}), "unsupported file type '.txt'"),
    ]
    for extra, message in cases:
        path = write(tmp_path, inputs=x, **extra)
        status = main(["forward", str(path), "--json"])
        err = capsys.readouterr().err
        if message is None:
            assert status == 0, err
        else:
            assert status == 2 and message in err, (message, err)


def test_a_sheet_works_one_chosen_cell(tmp_path, capsys):
    _, x, h0, lengths, G, G_h = acceptance_case(tmp_path)
    problem = write(tmp_path, inputs=x.tolist(), h0=h0.tolist(), lengths=lengths,
                    weights={"layout": "pytorch", "file": "gru.pt"}, loss={"type": "weighted_sum", "G": G.tolist()})
    assert main(["sheet", str(problem), "-o", str(tmp_path / "s.md")]) == 2
    assert "--cell: missing: the network has 4 cells; choose one of 0,forward, 0,reverse, 1,forward, 1,reverse" \
        in capsys.readouterr().err
    assert main(["sheet", str(problem), "--cell", "1,reverse", "--sequence", "1", "-o", str(tmp_path / "s.md")]) == 0
    text = (tmp_path / "s.md").read_text()
    assert "layer 1 (l1), reverse, sequence 1 of 3" in text and "input positions 4, 3, 2, 1" in text

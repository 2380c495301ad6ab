"""grukit's GRU and GRUCell against torch.nn.GRU and nn.GRUCell (the oracle: PyTorch's own modules and
autograd), loaded with the same state dict: outputs, h_n and every gradient, in both dtypes, 1-2
layers, both directions, batch_first both ways, packed sequences, the ``lengths=`` keyword,
unbatched inputs; and the module's own promises (names, initialisation, bias=False, no_grad,
torch.compile, one-line errors)."""
from __future__ import annotations

import itertools

import pytest
from helpers.compare import rel

torch = pytest.importorskip("torch")

from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

from grukit import GRU, GRUCell  # noqa: E402
from grukit.codegen.pytorch import ops  # noqa: E402
from grukit.derive.cell.presets import PRESETS  # noqa: E402
from grukit.derive.errors import GrukitError  # noqa: E402

TOL = {torch.float32: 1e-6, torch.float64: 1e-12}


def pair(dtype, **options):
    """nn.GRU and grukit's GRU holding the same weights (nn.GRU's state dict, loaded unchanged)."""
    ref = torch.nn.GRU(3, 4, dtype=dtype, **options)
    with torch.no_grad():  # biases as large as the weights, so a misplaced bias shows
        for p in ref.parameters():
            p.uniform_(-1, 1)
    ours = GRU(3, 4, dtype=dtype, **options)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def results(module, x, h0, unpack=lambda y: y, leaf=None):
    """(output, h_n, and the gradients of sum(G * output) + sum(G_n * h_n) for x (or ``leaf``, the
    tensor a packed x was made from), h0 and every parameter), G and G_n fixed pseudo-random weights."""
    y, h_n = module(x, h0)
    y = unpack(y)
    gen = torch.Generator().manual_seed(7)
    G = torch.rand(y.shape, generator=gen, dtype=y.dtype) * 2 - 1
    G_n = torch.rand(h_n.shape, generator=gen, dtype=y.dtype) * 2 - 1
    loss = (y * G).sum() + (h_n * G_n).sum()
    leaves = [x if leaf is None else leaf, h0, *module.parameters()]
    return [y.detach(), h_n.detach(), *torch.autograd.grad(loss, leaves)]


def inputs(dtype, shape, layers_directions, batch):
    gen = torch.Generator().manual_seed(3)
    x = (torch.rand(shape, generator=gen, dtype=dtype) * 2 - 1).requires_grad_()
    h0 = (torch.rand((layers_directions, batch, 4), generator=gen, dtype=dtype) * 2 - 1).requires_grad_()
    return x, h0


@pytest.mark.parametrize("dtype, layers, bidirectional, batch_first",
                         list(itertools.product([torch.float32, torch.float64], [1, 2], [False, True],
                                                [False, True])))
def test_equals_nn_gru(dtype, layers, bidirectional, batch_first):
    ref, ours = pair(dtype, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first)
    B, T = 3, 5
    x, h0 = inputs(dtype, (B, T, 3) if batch_first else (T, B, 3), layers * (2 if bidirectional else 1), B)
    want, got = results(ref, x, h0), results(ours, x, h0)
    assert got[0].is_contiguous()
    for k, (g, w) in enumerate(zip(got, want)):
        assert rel(g, w) < TOL[dtype], k


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_packed_sequences_equal_nn_gru(dtype, enforce_sorted):
    ref, ours = pair(dtype, num_layers=2, bidirectional=True)
    lengths = torch.tensor([5, 3, 3, 1]) if enforce_sorted else torch.tensor([3, 5, 1, 3])
    x, h0 = inputs(dtype, (5, 4, 3), 4, 4)
    outs = []
    for module in (ref, ours):
        packed = pack_padded_sequence(x, lengths, enforce_sorted=enforce_sorted)
        y, h_n = module(packed, h0)
        assert torch.equal(y.batch_sizes, packed.batch_sizes)
        for a, b in ((y.sorted_indices, packed.sorted_indices), (y.unsorted_indices, packed.unsorted_indices)):
            assert (a is None and b is None) or torch.equal(a, b)
        outs.append(results(module, packed, h0, unpack=lambda y: y.data, leaf=x))
    for k, (g, w) in enumerate(zip(outs[1], outs[0])):
        assert rel(g, w) < TOL[dtype], k


@pytest.mark.parametrize("batch_first", [False, True])
def test_lengths_keyword_is_a_packed_sequence_padded_back(batch_first):
    ref, ours = pair(torch.float64, bidirectional=True, batch_first=batch_first)
    lengths = torch.tensor([2, 5, 4])
    x, h0 = inputs(torch.float64, (3, 5, 3) if batch_first else (5, 3, 3), 2, 3)
    y, h_n = ours(x, h0, lengths=lengths)
    packed, want_h = ref(pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False), h0)
    want, _ = pad_packed_sequence(packed, batch_first=batch_first, total_length=5)
    assert rel(y, want) < 1e-12 and rel(h_n, want_h) < 1e-12


def test_a_sequence_of_length_zero_keeps_h0_and_outputs_zeros():
    ours = GRU(3, 4, bidirectional=True, dtype=torch.float64)
    x, h0 = inputs(torch.float64, (2, 4, 3), 2, 2)
    y, h_n = ours(x.transpose(0, 1), h0, lengths=[0, 4])
    assert torch.equal(y[:, 0], torch.zeros_like(y[:, 0]))
    assert torch.equal(h_n[:, 0], h0[:, 0].detach())


def test_unbatched_input():
    ref, ours = pair(torch.float64, num_layers=2, bidirectional=True)
    x, h0 = inputs(torch.float64, (5, 3), 4, 1)
    h0 = h0[:, 0].detach().requires_grad_()
    for g, w in zip(results(ours, x, h0), results(ref, x, h0)):
        assert rel(g, w) < 1e-12


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gru_cell_equals_nn_gru_cell(dtype):
    ref = torch.nn.GRUCell(3, 4, dtype=dtype)
    ours = GRUCell(3, 4, dtype=dtype)
    assert list(ours.state_dict()) == list(ref.state_dict()) == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    ours.load_state_dict(ref.state_dict())
    x, h0 = inputs(dtype, (2, 3), 1, 2)
    h0 = h0[0].detach().requires_grad_()
    for unbatched in (False, True):
        xs, hs = (x[0], h0[0]) if unbatched else (x, h0)
        got, want = ours(xs, hs), ref(xs, hs)
        assert rel(got, want) < TOL[dtype]
        for g, w in zip(torch.autograd.grad(got.sum(), [x, h0, *ours.parameters()]),
                        torch.autograd.grad(want.sum(), [x, h0, *ref.parameters()])):
            assert rel(g, w) < TOL[dtype]
    assert rel(ours(x), ref(x)) < TOL[dtype]


def test_parameter_names_follow_the_framework_or_the_convention():
    assert list(GRU(3, 4, num_layers=2, bidirectional=True).state_dict()) == list(
        torch.nn.GRU(3, 4, num_layers=2, bidirectional=True).state_dict())
    shapes = {n: tuple(p.shape) for n, p in GRU(3, 4, bidirectional=True, convention="keras").named_parameters()}
    assert shapes == {"kernel_l0": (3, 12), "recurrent_kernel_l0": (4, 12), "bias_l0": (2, 12),
                      "kernel_l0_reverse": (3, 12), "recurrent_kernel_l0_reverse": (4, 12),
                      "bias_l0_reverse": (2, 12)}
    assert [n for n, _ in GRU(3, 4, convention="onnx").named_parameters()] == ["W_l0", "R_l0", "B_l0"]
    assert [n for n, _ in GRU(3, 4, convention="course-notes").named_parameters()][:2] == ["W_z_l0", "W_r_l0"]
    assert [n for n, _ in GRUCell(3, 4, convention="keras").named_parameters()] == [
        "kernel", "recurrent_kernel", "bias"]


def test_initialisation_and_bias_false_as_nn_gru():
    torch.manual_seed(0)
    module = GRU(3, 16, num_layers=2, convention="keras-reset-before")
    values = torch.cat([p.detach().reshape(-1) for p in module.parameters()])
    assert values.abs().max() <= 0.25 and values.abs().max() > 0.24 and values.std() > 0.1
    ref, ours = torch.nn.GRU(3, 4, bias=False), GRU(3, 4, bias=False)
    assert list(ours.state_dict()) == list(ref.state_dict()) == ["weight_ih_l0", "weight_hh_l0"]
    ours.load_state_dict(ref.state_dict())
    x = torch.rand(5, 2, 3)
    assert rel(ours(x)[0], ref(x)[0]) < 1e-6
    assert torch.equal(ours.bias_ih_l0, torch.zeros(12)) and "bias_ih_l0" in dict(ours.named_buffers())
    with pytest.raises(GrukitError, match="input_size"):
        GRU(3, 4)(torch.rand(5, 2, 4))


def test_no_grad_inference_keeps_nothing_and_equals_training_forward(monkeypatch):
    ours = GRU(3, 4, num_layers=2, bidirectional=True, dtype=torch.float64)
    x = torch.rand(5, 2, 3, dtype=torch.float64)
    kept = len(ops._PASSES)
    with torch.no_grad():
        y, h_n = ours(x)
    assert len(ops._PASSES) == kept and not y.requires_grad
    y2, h2 = ours(x)
    assert torch.equal(y, y2.detach()) and torch.equal(h_n, h2.detach())


def test_backward_reuses_the_saved_pass_and_recomputing_gives_the_same(monkeypatch):
    """The saved pass is found (the forward kernel runs once per training step); where it is not
    (dropped here on purpose), backward runs the forward again and gives the same gradients."""
    ours = GRU(3, 4, num_layers=2, dtype=torch.float64)
    x = torch.rand(5, 2, 3, dtype=torch.float64, requires_grad=True)
    calls = []
    original = ops._saved
    monkeypatch.setattr(ops, "_saved", lambda h: calls.append(original(h)) or calls[-1])
    first = torch.autograd.grad(ours(x)[0].sum(), [x, *ours.parameters()])
    assert len(calls) == 2 and all(c is not None for c in calls)
    monkeypatch.setattr(ops, "_saved", lambda h: None)
    again = torch.autograd.grad(ours(x)[0].sum(), [x, *ours.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_saved_pass_is_freed_with_the_graph():
    ours = GRU(3, 4, dtype=torch.float64)
    kept = len(ops._PASSES)
    out = ours(torch.rand(5, 2, 3, dtype=torch.float64))  # outputs and h_n: their graph keeps the pass
    assert len(ops._PASSES) == kept + 1
    del out
    assert len(ops._PASSES) == kept


def test_inside_a_compiled_model():
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = GRU(3, 4, num_layers=2, bidirectional=True, batch_first=True, convention="keras")
            self.head = torch.nn.Linear(8, 1)

        def forward(self, x):
            y, _ = self.gru(x)
            return self.head(torch.tanh(y[:, -1]))

    torch.manual_seed(0)
    model = Model()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    x = torch.rand(2, 5, 3)
    want = model(x)
    got = compiled(x)
    assert rel(got, want) < 1e-6
    g_want = torch.autograd.grad(want.sum(), list(model.parameters()))
    g_got = torch.autograd.grad(got.sum(), list(model.parameters()))
    assert all(rel(a, b) < 1e-6 for a, b in zip(g_got, g_want))
    with torch.no_grad():
        assert rel(compiled(x), want) < 1e-6


def test_any_convention_value_runs_and_survives_copies(tmp_path, monkeypatch):
    """A Convention that is no preset: the operator carries it under a key of its own, and a copy or an
    unpickled module (as in another process) registers it again."""
    import copy
    import pickle

    monkeypatch.setenv("GRUKIT_KERNEL_CACHE", str(tmp_path))
    conv = PRESETS["keras-reset-before"].with_changes(name="keras-relu", candidate_activation="relu")
    module = GRU(3, 4, convention=conv, dtype=torch.float64)
    assert ops.register(conv) not in (ops.register(PRESETS["keras-reset-before"]), "keras-relu")
    x = torch.rand(2, 5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: module(x)[0], (x,))
    want = module(x)[0]
    blob = pickle.dumps(module)
    for copier in (lambda: copy.deepcopy(module), lambda: pickle.loads(blob)):
        ops._CONVENTIONS.clear()  # as in a fresh process
        assert torch.equal(copier()(x)[0], want)
    with pytest.raises(GrukitError, match="unknown preset"):
        GRU(3, 4, convention="no-such-convention")

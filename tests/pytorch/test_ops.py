"""The operator ``grukit::gru_sequence`` for every preset: ``torch.library.opcheck`` (schema, autograd
registration, the fake implementation, AOT dispatch) and ``torch.autograd.gradcheck`` in float64
(finite differences of the operator itself, through h and h_T)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from grukit.codegen.pytorch import ops  # noqa: E402
from grukit.codegen.pytorch.arrays import cell_arrays  # noqa: E402
from grukit.derive.cell.presets import PRESETS  # noqa: E402

B, T, D, H = 2, 3, 2, 3


def arguments(name: str, dtype=torch.float64):
    gen = torch.Generator().manual_seed(sum(map(ord, name)))
    conv = PRESETS[name]

    def draw(shape):
        return (torch.rand(shape, generator=gen, dtype=dtype) * 2 - 1).requires_grad_()

    weights = [draw(shape) for shape in cell_arrays(conv, D, H).values()]
    return draw((B, T, D)), draw((B, H)), weights, ops.register(conv)


@pytest.mark.parametrize("name", list(PRESETS))
def test_opcheck(name):
    x, h0, weights, key = arguments(name)
    torch.library.opcheck(torch.ops.grukit.gru_sequence.default, (x, h0, weights, key, True))


@pytest.mark.parametrize("name", list(PRESETS))
def test_gradcheck(name):
    x, h0, weights, key = arguments(name)

    def run(x, h0, *weights):
        return torch.ops.grukit.gru_sequence(x, h0, list(weights), key, True)

    assert torch.autograd.gradcheck(run, (x, h0, *weights))


def test_float32_and_inference_agree_with_float64():
    x, h0, weights, key = arguments("pytorch")
    h, h_last = torch.ops.grukit.gru_sequence(x, h0, weights, key, True)
    assert torch.equal(h_last, h[:, -1])
    lowered = [t.detach().float() for t in (x, h0, *weights)]
    h32, _ = torch.ops.grukit.gru_sequence(lowered[0], lowered[1], lowered[2:], key, False)
    assert h32.dtype == torch.float32
    assert float((h32.double() - h.detach()).abs().max()) < 1e-6


def test_wrong_dtype_and_unknown_convention_are_one_line():
    x, h0, weights, key = arguments("pytorch")
    with pytest.raises(ValueError, match="float32 or float64"):
        torch.ops.grukit.gru_sequence(x.half(), h0.half(), [w.half() for w in weights], key, False)
    with pytest.raises(ValueError, match="unknown convention"):
        torch.ops.grukit.gru_sequence(x, h0, weights, "nothing@0", False)

"""``grukit::gru_sequence``: one cell over a batch of sequences as one opaque PyTorch operator.

    h, h_last = torch.ops.grukit.gru_sequence(x, h0, weights, convention, save)
    # x (B, T, D), h0 (B, H), weights: the cell's arrays in the kernels' order (arrays.cell_arrays)
    # h (B, T, H): h_1 .. h_T, batch-major like x; h_last (B, H): h_T

The forward runs ``k.forward`` and the backward ``k.backward`` of the generated kernels
(``grukit.kernels``), through ``torch.library.custom_op`` with a fake implementation (shapes only,
for ``torch.compile`` and meta tensors) and ``register_autograd``. The weights are packed once per
call and the arrays cross between torch and NumPy without copies (``Tensor.numpy``,
``torch.from_numpy``).

**What backward needs.** A training forward (``save=True``) keeps the kernels' saved values in their
``Forward`` object. The ``h`` tensor returned lives in an array that holds that object (an
``ndarray`` subclass carrying it, which ``torch.from_numpy`` keeps alive), so the saved pass lives
exactly as long as autograd (or anyone) keeps ``h``, and backward finds it again by the address of
``h`` (:data:`_PASSES`, a weak table). Where it is not found (a forward run with ``save=False``, or
a compiler that copied ``h``), backward runs the forward again: the same numbers, at the cost of
one forward. Everything is batch-major, as the kernels take it, so a layer's outputs are the next
layer's inputs without a copy; the gradient of h_T is added to the seed at the last step.

**Conventions.** The operator takes the convention as a string: a preset's name, or the key under
which :func:`register` put another :class:`Convention` (its name and a digest of its fields), so a
compiled graph and a ``torch.library.opcheck`` see a plain string argument.
"""
from __future__ import annotations

import hashlib
import weakref

import numpy as np
import torch

from grukit.codegen.kernels import api as kernels
from grukit.codegen.pytorch.arrays import cell_arrays
from grukit.derive.cell.convention import Convention
from grukit.derive.cell.presets import PRESETS
from grukit.derive.errors import GrukitError

__all__ = ["gru_sequence", "gru_sequence_backward", "register", "DTYPES"]

DTYPES = {torch.float32: "float32", torch.float64: "float64"}

_CONVENTIONS: dict[str, Convention] = {}
"""Operator key -> convention, for every convention that is no preset (filled by :func:`register`)."""


def register(convention: Convention) -> str:
    """The string the operator takes for ``convention``: a preset's name, else its name and a digest of
    its fields (two conventions of one name but different axes get different keys)."""
    if PRESETS.get(convention.name) == convention:
        return convention.name
    key = f"{convention.name}@{hashlib.sha256(repr(convention).encode('utf-8')).hexdigest()[:20]}"
    _CONVENTIONS[key] = convention
    return key


_LOADED: dict[tuple[str, torch.dtype], tuple] = {}


def _kernels(key: str, dtype: torch.dtype):
    """(kernels, array names) of an operator key in a torch dtype."""
    found = _LOADED.get((key, dtype))
    if found is None:
        if dtype not in DTYPES:
            raise GrukitError(f"grukit GRU: expected float32 or float64 tensors, got {dtype}")
        convention = PRESETS[key] if key in PRESETS else _CONVENTIONS.get(key)
        if convention is None:
            raise GrukitError(f"grukit GRU: unknown convention {key!r} (build the module in this process, "
                              f"or pass a preset's name)")
        k = kernels.load(convention, DTYPES[dtype])
        found = _LOADED[(key, dtype)] = (k, tuple(cell_arrays(convention, 1, 1)))
    return found


def _numpy(t: torch.Tensor, copy: bool = False) -> np.ndarray:
    """A C-contiguous array of ``t`` (the same memory where ``t`` is contiguous and ``copy`` is not asked).
    Copies are NumPy's, on the calling thread: PyTorch's own copy of a small tensor can wait for a
    second intra-op thread on a busy machine."""
    if t.device.type != "cpu":
        raise GrukitError(f"grukit GRU: the kernels run on the CPU; got a tensor on {t.device} (move the module "
                          f"and its inputs with .cpu())")
    return np.array(t.detach().numpy(), order="C", copy=True) if copy else np.ascontiguousarray(t.detach().numpy())


def _packed(k, names, x: torch.Tensor, h0: torch.Tensor, weights):
    if len(weights) != len(names):
        raise GrukitError(f"grukit GRU: expected {len(names)} weight tensors ({', '.join(names)}), got {len(weights)}")
    return k.pack({n: _numpy(w) for n, w in zip(names, weights)}, x.shape[2], h0.shape[1])


class _SavedPass(np.ndarray):
    """The outputs h (B, T, H) as an array that also holds the kernels' ``Forward`` (attribute ``forward``)."""


_PASSES: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
"""Address of a training forward's outputs h -> the :class:`_SavedPass` over them (gone with them)."""


def _outputs(fwd, save: bool) -> tuple[torch.Tensor, torch.Tensor]:
    h = np.ascontiguousarray(fwd.h)  # (B, T, H): a copy, time-major states -> batch-major outputs
    if save:
        h = h.view(_SavedPass)
        h.forward = fwd
        _PASSES[h.ctypes.data] = h
    return torch.from_numpy(h), torch.from_numpy(np.ascontiguousarray(fwd.h_last))


def _saved(h: torch.Tensor):
    view = _PASSES.get(h.data_ptr())
    if view is None or view.shape != tuple(h.shape) or view.dtype != np.dtype(DTYPES[h.dtype]):
        return None
    return view.forward


@torch.library.custom_op("grukit::gru_sequence", mutates_args=())
def gru_sequence(x: torch.Tensor, h0: torch.Tensor, weights: list[torch.Tensor], convention: str,
                 save: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(h (B, T, H): h_1 .. h_T, h_T (B, H)) of one cell over x (B, T, D) from h0 (B, H); ``save``:
    keep what backward needs."""
    k, names = _kernels(convention, x.dtype)
    return _outputs(k.forward(_numpy(x), _numpy(h0), _packed(k, names, x, h0, weights), save=save), save)


@gru_sequence.register_fake
def _gru_sequence_fake(x, h0, weights, convention, save):
    return x.new_empty((x.shape[0], x.shape[1], h0.shape[1])), torch.empty_like(h0)


@torch.library.custom_op("grukit::gru_sequence_backward", mutates_args=())
def gru_sequence_backward(h: torch.Tensor, dh: torch.Tensor, dh_last: torch.Tensor, x: torch.Tensor,
                          h0: torch.Tensor, weights: list[torch.Tensor], convention: str
                          ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """(dx, dh0, dweights) given dL/dh (B, T, H) and dL/dh_T (B, H), by the kernels' backward."""
    k, names = _kernels(convention, x.dtype)
    fwd = _saved(h)
    if fwd is None:
        fwd = k.forward(_numpy(x), _numpy(h0), _packed(k, names, x, h0, weights), save=True)
    last = _numpy(dh_last)
    if last.any():  # h_T is used apart from the outputs: its gradient joins the last step's
        seed = _numpy(dh, copy=True)
        seed[:, -1] += last
    else:  # the kernels only read the seed: dh itself, without a copy
        seed = _numpy(dh)
    grads = k.backward(fwd, seed)
    return (torch.from_numpy(grads["inputs"]), torch.from_numpy(grads["h0"]),
            [torch.from_numpy(grads[n]) for n in names])


@gru_sequence_backward.register_fake
def _gru_sequence_backward_fake(h, dh, dh_last, x, h0, weights, convention):
    return torch.empty_like(x), torch.empty_like(h0), [torch.empty_like(w) for w in weights]


def _setup_context(ctx, inputs, output):
    x, h0, weights, convention, _ = inputs
    ctx.convention = convention
    ctx.save_for_backward(x, h0, output[0], *weights)


def _backward(ctx, dh, dh_last):
    x, h0, h, *weights = ctx.saved_tensors
    dx, dh0, dweights = torch.ops.grukit.gru_sequence_backward(h, dh, dh_last, x, h0, weights, ctx.convention)
    return dx, dh0, list(dweights), None, None


gru_sequence.register_autograd(_backward, setup_context=_setup_context)

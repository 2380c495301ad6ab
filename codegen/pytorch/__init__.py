"""PyTorch modules on the generated kernels: ``from grukit import GRU, GRUCell``.

One sequence of one cell (a layer, one direction) is one opaque operator, ``grukit::gru_sequence``
(``torch.library.custom_op`` with a fake implementation and ``register_autograd``), whose forward
and backward are the kernels' ``forward`` and ``backward``; layers, directions, reversal, lengths
and packed sequences are composed around it in ordinary torch operations, so autograd, optimizers,
``torch.compile`` and ``DistributedDataParallel`` see a plain module (docs/pytorch.md).

May import: derive/, codegen's shared printing, codegen.kernels (its public API only); torch."""

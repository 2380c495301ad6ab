"""Numba kernels: the stage list and backward records lowered to loops and GEMMs, printed and
rendered into generated/, and the Python API that loads them (``from grukit import kernels``), which
is also the ``numba`` engine.

May import: derive/, and codegen's shared printing (render, output, latex, docs)."""

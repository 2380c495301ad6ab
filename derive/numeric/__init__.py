"""Numeric evaluation of the one derivation: the engines (exact, numpy, stepwise, symbolic, and any
registered one such as the generated kernels), a problem value, forward traces, BPTT and solve().

May import: derive.errors, derive.cell."""

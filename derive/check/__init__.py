"""The independent check: the fully expanded loss of a problem and its derivative by sympy.diff,
built without the backward records, to compare them against.

May import: derive.errors, derive.cell, derive.numeric."""

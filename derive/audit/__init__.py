"""Audits of other people's numbers and equations: claims files verified and diagnosed, conventions
identified from numbers, compared for equivalence, and weights (one cell's, or whole networks into a
framework's conventions) converted between them.

May import: every other folder of derive/."""

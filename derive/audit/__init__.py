"""Audits of other people's numbers and equations: claims files verified and diagnosed, conventions
identified from numbers, compared for equivalence, and weights converted between them.

May import: every other folder of derive/."""

"""Audits of other people's numbers and equations: claims files verified and diagnosed, conventions
identified from numbers, compared for equivalence, weights and whole networks converted between them, and two model files
diffed (the convention axis that tells them apart).

May import: every other folder of derive/."""

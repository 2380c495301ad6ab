"""Whole framework layers: networks of cells over layers and directions, batches, lengths and masks
(the data, and running them forward and back), and one cell of a network as a plain problem.

May import: derive.errors, derive.cell, derive.numeric."""

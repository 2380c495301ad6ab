"""Whole framework layers: networks of cells over layers and directions, batches, lengths and masks
(the data, and running them forward and back), one cell of a network as a plain problem, and two
networks compared (where they differ, the convention axis that explains it).

May import: derive.errors, derive.cell, derive.numeric."""

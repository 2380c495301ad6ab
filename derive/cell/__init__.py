"""The cell and its derivation: conventions as data, the presets, the stage list (cell equations),
the backward records, loss heads and framework layouts -- SymPy only, no numbers.

May import: derive.errors."""

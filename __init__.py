"""grukit: GRU conventions as data; one SymPy derivation, many emitters."""

__version__ = "0.1.0"

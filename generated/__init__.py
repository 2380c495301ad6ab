"""Emitted kernels: committed, never edited by hand, reproducible byte for byte."""

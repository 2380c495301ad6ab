"""Worked solution sheets (LaTeX, PDF, Markdown): the sheet model built from a solution's numbers
and the backward records, its writer, the gallery and the instructor's exam variants.

May import: derive/, and codegen's shared printing (render, output, latex, docs)."""

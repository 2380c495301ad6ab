"""Grading a class: a folder of claims files verified in parallel, each in its own bounded process
(``processes``), and the one table of their verdicts as JSON, CSV and Markdown (``table``).

May import: derive/*, codegen's shared printing (render, output). Imported by codegen/cli only.
"""

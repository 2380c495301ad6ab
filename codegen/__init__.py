"""Emitters (LaTeX, Markdown, Numba) rendered through Jinja templates, and the command line."""

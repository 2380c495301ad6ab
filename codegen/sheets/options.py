"""The sheet's command-line options and their defaults, in a module that imports nothing heavy:
registering the commands (every ``grukit`` start, ``--help`` included) reads them without SymPy."""

DEFAULT_OUTPUT = "sheet.pdf"
DEFAULT_DECIMALS = 4
ROUNDINGS = ("exact", "stepwise")
FORMATS = (".tex", ".pdf", ".md")
PROBLEM_FORMATS = ("tex", "md", "pdf")
"""The sheet formats of instructor mode (`grukit problem --format`)."""

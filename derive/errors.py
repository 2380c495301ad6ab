"""The one error type users see: the CLI prints its message on one line and exits non-zero."""


class GrukitError(ValueError):
    """Bad input. The message names the file and the field."""

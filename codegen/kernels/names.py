"""The names of the generated kernel modules: one per convention and dtype. Read by the emitter,
the printer and the loader alike, so it imports nothing of theirs."""
from __future__ import annotations

import keyword

from grukit.derive.cell.convention import Convention
from grukit.derive.errors import GrukitError

DTYPES = ("float32", "float64")


def is_identifier(name) -> bool:
    """An ASCII Python identifier that is not a keyword (Python folds non-ASCII identifiers by NFKC,
    so two different names could be one variable)."""
    return isinstance(name, str) and name.isascii() and name.isidentifier() and not keyword.iskeyword(name)


def identifier(name: str, what: str) -> str:
    """``name``, which the kernels use as (part of) a variable name; a one-line error unless it is
    one (:func:`is_identifier`). Every such name comes from the stage list, never from a file: this
    keeps it so."""
    if not is_identifier(name):
        raise GrukitError(f"kernels: {what} {name!r} cannot name a variable (expected ASCII letters, digits "
                          f"and _, not starting with a digit, not a keyword)")
    return name


def module_name(convention: Convention, dtype: str) -> str:
    """``gru_<convention>_<dtype>``: the name of a convention's generated module (an identifier)."""
    if dtype not in DTYPES:
        raise GrukitError(f"dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")
    stem = "".join(ch if ch.isascii() and ch.isalnum() else "_" for ch in convention.name.lower())
    name = f"gru_{stem}_{dtype}"
    if not is_identifier(name):
        raise GrukitError(f"cannot name a module after convention {convention.name!r}")
    return name

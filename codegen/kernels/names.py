"""The names of the generated kernel modules: one per convention and dtype. Read by the emitter,
the printer and the loader alike, so it imports nothing of theirs."""
from __future__ import annotations

import keyword

from grukit.derive.cell.convention import Convention
from grukit.derive.errors import GrukitError

DTYPES = ("float32", "float64")


def module_name(convention: Convention, dtype: str) -> str:
    """``gru_<convention>_<dtype>``: the name of a convention's generated module (an identifier)."""
    stem = "".join(ch if ch.isalnum() else "_" for ch in convention.name.lower())
    name = f"gru_{stem}_{dtype}"
    if not name.isidentifier() or keyword.iskeyword(name):
        raise GrukitError(f"cannot name a module after convention {convention.name!r}")
    return name

"""YAML read safely and exactly, and the numbers and arrays in it, every error naming the file and field.

The loader is PyYAML's safe loader with decimals read as exact :class:`~fractions.Fraction` values
(0.1 is 1/10, 1e-3 is 1/1000); :func:`to_number`, :func:`to_array` and :func:`matrix_rows` check a
value's type and shape where it is read.
"""
from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path

import numpy as np
import yaml

from grukit.derive.errors import GrukitError


class ExactLoader(yaml.SafeLoader):
    """SafeLoader that reads decimal numbers, exponent forms included, as exact fractions (0.1 is
    1/10, 1.5e-3 is 3/2000). The resolver below is added to this class only, not to PyYAML's own."""


def _exact_float(loader, node):
    text = loader.construct_scalar(node).replace("_", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        return float(yaml.SafeLoader.construct_yaml_float(loader, node))  # .inf / .nan
    if not value.is_finite():
        return float(value)
    return Fraction(value)


ExactLoader.add_constructor("tag:yaml.org,2002:float", _exact_float)
# YAML 1.1 (PyYAML) reads a number in exponent form as a float only with a dot and a signed
# exponent (1.0e+6); 1e6, 1.5e3 and -2E+2 would be strings. This loader reads them all as numbers.
ExactLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def load_yaml(path: Path) -> object:
    try:
        text = path.read_text()
    except OSError as exc:
        raise GrukitError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_yaml(text, ExactLoader, str(path))


def parse_yaml(text: str, loader: type, where: str) -> object:
    """``text`` read safely with ``loader`` (a SafeLoader subclass); bad YAML is a one-line error."""
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark else ""
        raise GrukitError(f"{where}: not valid YAML{line}: {getattr(exc, 'problem', exc)}") from None


# --- numbers ------------------------------------------------------------------------------------

def to_number(value, where: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, Fraction, float, np.integer, np.floating)):
        raise GrukitError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise GrukitError(f"{where}: {value} is not a finite number")
        return Fraction(float(value))
    return Fraction(value)


def to_array(value, shape: tuple[int, ...], where: str) -> np.ndarray:
    """A nested list (or array) of numbers with exactly ``shape``; vectors may be written as columns."""
    arr = np.array(value, dtype=object) if not isinstance(value, np.ndarray) else value.astype(object)
    if arr.dtype == object and arr.ndim and any(isinstance(v, (list, tuple)) for v in arr.ravel()):
        raise GrukitError(f"{where}: rows of unequal length")
    if len(shape) == 1 and arr.ndim == 2 and 1 in arr.shape and arr.size == shape[0]:
        arr = arr.reshape(-1)
    if arr.shape != shape:
        got = "x".join(map(str, arr.shape)) or "a scalar"
        raise GrukitError(f"{where}: expected shape {'x'.join(map(str, shape))}, got {got}")
    flat = [to_number(v, where) for v in arr.ravel()]
    return np.array(flat, dtype=object).reshape(shape)


def matrix_rows(value, where: str) -> np.ndarray:
    """A matrix of unknown shape (inputs): a list of equal-length lists of numbers."""
    if not isinstance(value, list) or not value:
        raise GrukitError(f"{where}: expected a non-empty list of rows")
    rows = [v if isinstance(v, list) else [v] for v in value]
    width = len(rows[0])
    if width == 0 or any(len(r) != width for r in rows):
        raise GrukitError(f"{where}: rows of unequal length")
    return to_array(rows, (len(rows), width), where)

"""Claims files: the numbers a worked example prints, read as printed.

A claims file names a problem (a problem file relative to it, or one inline) and the numbers a
worked example gives for it::

    problem: course-notes.yaml
    claims:
      z[1]: [0.655, 0.478, 0.582]
      dL/dh[0]: [-0.070, 0.145, -0.017]
      dL/dW_z: "delta_z x^T"          # a formula (see derive/audit/formula.py)

Numbers are read as written: ``0.010`` has three decimals (a hand calculation rounded there), so
the reader keeps each number's text (:class:`Printed`); a value may also be a string. The names
are those of ``grukit names PROBLEM`` (:mod:`grukit.derive.audit.names`). Every mistake in the file is a
one-line error naming the file and the field.

A claims file may be hostile (docs/security.md): it is read by the same bounded loader as problem
files (:mod:`grukit.derive.files.yaml_values`: no tags, anchors, aliases or duplicate keys, bounded
nesting, size and numbers), names its problem only beside itself
(:func:`~grukit.derive.files.arrays.referenced_file`), makes at most :data:`MAX_CLAIMS` claims, each
number printed with at most :data:`MAX_DECIMALS` decimals; formulas are bounded in
:mod:`grukit.derive.audit.formula`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path

import numpy as np

from grukit.derive.audit.names import NameTable
from grukit.derive.audit.replay import Walk
from grukit.derive.errors import GrukitError
from grukit.derive.files.arrays import referenced_file
from grukit.derive.files.json_values import load_json
from grukit.derive.files.problem_file import load_problem, problem_from_mapping
from grukit.derive.files.yaml_values import ExactLoader, NumberOutOfRange, object_array, parse_yaml, read_text, shown
from grukit.derive.numeric.evaluate import engine
from grukit.derive.numeric.problem import Problem

CLAIMS_KEYS = ("title", "description", "problem", "decimals", "claims")
MAX_CLAIMS = 2000
"""The most claims one file may make."""
MAX_DECIMALS = 24
"""The most decimals a claimed number may be printed with (a float64 printed in full, such as
1.2584154263246953e-8, has 24): grukit rounds its own numbers to a claim's decimals to compare."""


@dataclass(frozen=True)
class Printed:
    """A number as written: its text and exact decimal value; its decimals are its precision."""

    text: str
    value: Decimal

    @property
    def decimals(self) -> int:
        return max(-self.value.as_tuple().exponent, 0)


class LiteralLoader(ExactLoader):
    """The exact loader (exponent forms included), numbers kept as :class:`Printed`."""


def _printed(loader, node):
    """A number as printed; the loader has already checked its range. Forms that are not decimals
    (.inf, .nan, 0x1F, 1:30) are read as YAML reads them, and refused where a claim is read."""
    text = loader.construct_scalar(node).replace("_", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        if node.tag.endswith(":int"):
            return loader.construct_yaml_int(node)
        return loader.construct_yaml_float(node)
    if not value.is_finite():
        return float("nan") if value.is_nan() else float(value)
    return Printed(text, value)


LiteralLoader.add_constructor("tag:yaml.org,2002:float", _printed)
LiteralLoader.add_constructor("tag:yaml.org,2002:int", _printed)


def load_literal(text: str, where: str) -> object:
    return parse_yaml(text, LiteralLoader, where)


def load_literal_file(path: str | Path) -> object:
    """A YAML file read as printed (:class:`LiteralLoader`), or a ``.json`` file read as printed by the
    bounded JSON reader; a file grukit cannot read is a one-line error."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        return load_json(path, lambda text: Printed(text, Decimal(text)))
    return load_literal(read_text(path), str(path))


def exact(data):
    """Printed numbers as the exact numbers a problem file holds (as :class:`ExactLoader` reads them)."""
    if isinstance(data, Printed):
        return int(data.value) if data.value == data.value.to_integral_value() and "." not in data.text \
            and "e" not in data.text.lower() else Fraction(data.value)
    if isinstance(data, dict):
        return {k: exact(v) for k, v in data.items()}
    if isinstance(data, list):
        return [exact(v) for v in data]
    return data


@dataclass
class Claim:
    """One claim: a name, where its number lives, and the number(s) or formula as written."""

    name: str
    node: str
    index: tuple[int, ...]
    text: str
    numbers: np.ndarray | None = None  # Printed, in the shape of the named value
    formula: str | None = None

    @property
    def decimals(self) -> np.ndarray:
        return np.vectorize(lambda p: p.decimals, otypes=[int])(self.numbers)

    @property
    def values(self) -> np.ndarray:
        return np.vectorize(lambda p: p.value, otypes=[object])(self.numbers)


@dataclass
class ClaimsFile:
    path: Path
    problem: Problem
    table: NameTable
    claims: list[Claim]
    decimals: int | None = None  # the precision a hand calculation rounded to, when the file says
    title: str = ""
    exact: Walk = field(repr=False, default=None)


def load_claims(path: str | Path, problem: Problem | None = None) -> ClaimsFile:
    """The claims file at ``path``; ``problem``, when given, is the problem its claims are about (a
    class's submissions graded against one problem; identify's, read from what the arrays hold): the
    file's own ``problem``, if any, is then not read."""
    path = Path(path)
    data = load_literal_file(path)
    if not isinstance(data, dict) or "claims" not in data or ("problem" not in data and problem is None):
        raise GrukitError(f"{path}: expected a claims file: a mapping with 'problem' and 'claims'")
    unknown = [k for k in data if k not in CLAIMS_KEYS]
    if unknown:
        raise GrukitError(f"{path}: {unknown[0]}: unknown key (allowed: {', '.join(CLAIMS_KEYS)})")
    problem = claims_problem(data["problem"], path) if problem is None else problem
    decimals = data.get("decimals")
    if decimals is not None and not (isinstance(decimals, Printed) and decimals.decimals == 0
                                     and 0 <= decimals.value <= 20):
        raise GrukitError(f"{path}: decimals: expected a whole number of decimals, 0 to 20")
    walk = Walk(problem, engine("exact"))
    table = NameTable(walk)
    if not isinstance(data["claims"], dict) or not data["claims"]:
        raise GrukitError(f"{path}: claims: expected a mapping NAME: value")
    if len(data["claims"]) > MAX_CLAIMS:
        raise GrukitError(f"{path}: claims: {len(data['claims'])} claims, more than the {MAX_CLAIMS} one file may make")
    claims = []
    for name, value in data["claims"].items():
        name = name.text if isinstance(name, Printed) else str(name)
        claims.append(_claim(name, value, table, f"{path}: claims.{name}"))
    return ClaimsFile(path, problem, table, claims, None if decimals is None else int(decimals.value),
                      str(data.get("title") or ""), walk)


def claims_problem(spec, path: Path, fit_weights: bool = False) -> Problem:
    """A claims file's ``problem:``, a file beside it or a mapping (``fit_weights``: its weights read
    under the bias axis they hold, for ``identify``)."""
    if isinstance(spec, Printed) or not isinstance(spec, (str, dict)):
        raise GrukitError(f"{path}: problem: expected a problem file name or a problem mapping")
    if isinstance(spec, str):
        return load_problem(referenced_file(path, spec, f"{path}: problem"), fit_weights=fit_weights)
    return problem_from_mapping(exact(spec), path, fit_weights=fit_weights)


def _claim(name: str, value, table: NameTable, where: str) -> Claim:
    if isinstance(value, str):
        parsed = _number_text(value, where)
        if parsed is None:  # a formula, read at a generic step: [t] is step 1, [t-1] its previous state
            generic = _step_part(name, table).replace("[t-1]", "[0]").replace("[t]", "[1]")
            node, index = table.resolve(generic, where)
            return Claim(name, node, index, value, formula=value)
        value = parsed
    node, index = table.resolve(name, where)
    target = np.asarray(table.walk.values[node], dtype=object)[index]
    value = _unquoted(value, where)
    numbers = _numbers(value, where)
    shape = np.shape(target)
    if numbers.size != np.size(target) or (numbers.shape != shape and len(shape) > 1 and numbers.size > 1):
        raise GrukitError(f"{where}: expected {_shape_text(shape)} (in the convention's orientation), "
                          f"got {_shape_text(numbers.shape)}")
    numbers = numbers.reshape(shape)
    return Claim(name, node, index, _text(value), numbers)


def _step_part(name: str, table: NameTable) -> str:
    """A parameter gradient's part at step t (``dL/db_h[t]``, ``dL/db_h|t``, ``dL/db_h_t``) as the name of its
    part at the generic step (``dL/db_h|t=1``); any other name as written."""
    m = re.fullmatch(r"(dL/d.+?)(?:\[t\]|\|t|_t|_\{t\})", name)
    conv = table.walk.convention
    if m and m.group(1) in {"dL/d" + conv.key(p) for p in conv.parameters()}:
        return f"{m.group(1)}|t=1"
    return name


def _number_text(text: str, where: str):
    """A string holding a number or a list of numbers, read as printed; None for a formula."""
    try:
        value = load_literal(text, where)
    except NumberOutOfRange:
        raise
    except GrukitError:
        return None
    return value if isinstance(value, (Printed, list)) else None


def _unquoted(value, where: str):
    """A list's quoted numbers read as printed (``["0.850", 0.600]``: the quotes keep a trailing zero)."""
    if isinstance(value, list):
        return [_unquoted(v, where) for v in value]
    if isinstance(value, str):
        parsed = _number_text(value, where)
        return parsed if isinstance(parsed, Printed) else value
    return value


def _numbers(value, where: str) -> np.ndarray:
    if isinstance(value, dict):
        raise GrukitError(f"{where}: expected numbers, got a mapping")
    arr = object_array(value, where)
    if arr.dtype == object and arr.ndim and any(isinstance(v, (list, dict)) for v in arr.ravel()):
        raise GrukitError(f"{where}: rows of unequal length")
    for v in arr.ravel():
        if not isinstance(v, Printed):
            raise GrukitError(f"{where}: expected numbers, got {shown(v)}")
        if v.decimals > MAX_DECIMALS:
            raise GrukitError(f"{where}: {shown(v.text, 40)} has {v.decimals} decimals; a claim is compared to at "
                              f"most {MAX_DECIMALS}")
    return arr


def _text(value) -> str:
    if isinstance(value, Printed):
        return value.text
    return "[" + ", ".join(_text(v) for v in value) + "]"


def _shape_text(shape) -> str:
    return "a single number" if not shape or shape == (1,) else "x".join(map(str, shape)) + " numbers"

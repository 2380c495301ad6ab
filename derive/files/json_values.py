"""JSON read within the YAML reader's bounds, numbers kept as written, every error naming the file and field.

Some people write claims as JSON (numbers as strings, to keep their printed text). A JSON file may
be as hostile as a YAML one (docs/security.md), so :func:`parse_json` holds it to the limits of
:mod:`grukit.derive.files.yaml_values` and refuses what the YAML loader refuses, in one line naming
the file, the field path and the line:

* at most :data:`~grukit.derive.files.yaml_values.MAX_FILE_BYTES` of UTF-8 text (the same
  :func:`~grukit.derive.files.yaml_values.read_text`), nesting of at most
  :data:`~grukit.derive.files.yaml_values.MAX_DEPTH` levels -- measured on the text before Python's
  ``json`` parses it, so that no depth reaches its recursion --,
  :data:`~grukit.derive.files.yaml_values.MAX_NODES` values;
* keys of one line and at most :data:`~grukit.derive.files.yaml_values.MAX_KEY` characters, none twice
  in one object (``json`` would let the last one win);
* numbers within :data:`~grukit.derive.files.yaml_values.NUMBER_RANGE`, checked from their text;
  ``NaN`` and ``Infinity`` (which Python's ``json`` reads, the standard does not) refused.

Each number reaches the caller as its text, through ``number`` (the claims reader keeps it as
printed); strings, true/false, null, lists and objects as ``json`` reads them.
"""
from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Callable

from grukit.derive.errors import GrukitError
from grukit.derive.files.yaml_values import (
    KEY_CONTROL,
    MAX_DEPTH,
    MAX_KEY,
    MAX_NODES,
    NumberOutOfRange,
    decimal_problem,
    read_text,
    shown,
)

_BRACKETS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)


class _Number(str):
    """A JSON number's text, until the walk checks it and hands it to ``number``."""


class _Constant(str):
    """NaN, Infinity or -Infinity: read by Python's ``json``, refused by grukit."""


class _Pairs(list):
    """An object's (key, value) pairs in order, until the walk refuses duplicate keys."""


def _line(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def _check_depth(text: str, where: str) -> None:
    depth = 0
    for m in _BRACKETS.finditer(text):
        token = m.group(0)
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise GrukitError(f"{where}: nested more than {MAX_DEPTH} levels deep (line {_line(text, m.start())})")
        elif token in "]}":
            depth -= 1


def parse_json(text: str, where: str, number: Callable[[str], object]) -> object:
    """``text`` read as JSON within the bounds above; each number is ``number(its text)``."""
    _check_depth(text, where)
    try:
        data = json.loads(text, parse_float=_Number, parse_int=_Number, parse_constant=_Constant,
                          object_pairs_hook=_Pairs)
    except json.JSONDecodeError as exc:
        raise GrukitError(f"{where}: not valid JSON (line {exc.lineno}): {exc.msg}") from None
    except RecursionError:  # the depth check above makes this unreachable; kept as a one-line refusal
        raise GrukitError(f"{where}: not valid JSON: nested too deeply") from None
    count = [0]
    return _walk(data, "", where, number, count)


def _walk(value, field: str, where: str, number, count: list[int]):
    count[0] += 1
    if count[0] > MAX_NODES:
        raise GrukitError(f"{where}: {field or 'the file'}: more than {MAX_NODES} values (give big arrays as "
                          f".npy/.npz files)")
    at = f"{where}: {field.lstrip('.')}: " if field else f"{where}: "
    if isinstance(value, _Constant):
        raise GrukitError(f"{at}{value} is not a number JSON allows (grukit reads finite numbers)")
    if isinstance(value, _Number):
        problem = decimal_problem(value, Decimal(value))
        if problem:
            raise NumberOutOfRange(f"{at}{problem}")
        return number(str(value))
    if isinstance(value, _Pairs):
        out = {}
        for key, item in value:
            if len(key) > MAX_KEY or KEY_CONTROL.search(key):
                raise GrukitError(f"{at}the key {shown(key)}: keys are names of at most {MAX_KEY} characters "
                                  f"on one line")
            if key in out:
                raise GrukitError(f"{at}the key {shown(key)} appears twice in one object")
            out[key] = _walk(item, f"{field}.{key}", where, number, count)
        return out
    if isinstance(value, list):
        return [_walk(item, f"{field}[{k}]", where, number, count) for k, item in enumerate(value)]
    return value


def load_json(path: Path, number: Callable[[str], object]) -> object:
    """A JSON file read by the one bounded reader of text files, then :func:`parse_json`."""
    return parse_json(read_text(Path(path)), str(path), number)


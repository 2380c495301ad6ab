"""YAML read safely and exactly, and the numbers and arrays in it, every error naming the file and field.

The loader is PyYAML's safe loader with decimals read as exact :class:`~fractions.Fraction` values
(0.1 is 1/10, 1e-3 is 1/1000); :func:`to_number`, :func:`to_array` and :func:`matrix_rows` check a
value's type and shape where it is read.

Every file handed to grukit may be hostile, so the loader reads plain YAML only, within bounds
(docs/security.md), and refuses anything else in one line naming the file, the field and the line:

* text, numbers, true/false, null, lists and mappings: no tags beyond those (``!!python/...``,
  ``!!binary``, ``!!set``...), no anchors or aliases (``&a``, ``*a``: a shared or recursive value,
  the "billion laughs"), no duplicate keys (YAML's "the last one wins" hides a typo);
* at most :data:`MAX_DEPTH` levels of nesting, :data:`MAX_NODES` values, :data:`MAX_FILE_BYTES` bytes
  of UTF-8 text; keys are short one-line names;
* numbers of at most :data:`MAX_DIGITS` digits, 0 or between 1e-300 and 1e100 in magnitude (so that
  exact fractions stay small, and float64 reads every one finite).
"""
from __future__ import annotations

import math
import os
import re
import stat
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path

import numpy as np
import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from grukit.derive.errors import GrukitError

MAX_FILE_BYTES = 4 * 2 ** 20
"""The largest YAML file grukit reads (big arrays belong in .npy/.npz files)."""
MAX_NODES = 200_000
"""The most values (scalars, lists and mappings) one YAML text may hold."""
MAX_DEPTH = 32
"""The deepest nesting of lists and mappings (a problem needs 5 or so)."""
MAX_KEY = 200
"""The longest mapping key, in characters."""
MAX_DIGITS = 100
"""The most digits a number may be written with."""
SMALLEST, LARGEST = Decimal("1e-300"), Decimal("1e100")
"""The range of a number's magnitude (besides 0)."""
NUMBER_RANGE = f"grukit reads numbers of at most {MAX_DIGITS} digits, 0 or between 1e-300 and 1e100 in magnitude"

_CORE = "tag:yaml.org,2002:"
TAGS = {_CORE + t for t in ("str", "int", "float", "bool", "null", "seq", "map")}
"""The only tags a grukit YAML file may hold, implicit or written."""
_INT = re.compile(r"""^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+
                    |[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$""", re.X)
_SEXAGESIMAL_FLOAT = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*$")
_SPECIAL_FLOAT = {".inf", "+.inf", "-.inf", ".nan"}
KEY_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""Characters a key may not hold: control characters and the Unicode line and paragraph separators."""


class YamlRefusal(yaml.MarkedYAMLError):
    """Something a grukit YAML file may not hold, at ``field`` (a path such as ``weights.W_z[0]``)."""

    def __init__(self, field: str, problem: str, mark, number: bool = False):
        super().__init__(problem=problem, problem_mark=mark)
        self.field, self.number = field, number


class NumberOutOfRange(GrukitError):
    """A number beyond what grukit reads (:data:`NUMBER_RANGE`)."""


def shown(value, limit: int = 60) -> str:
    """``repr(value)`` on one line, cut to about ``limit`` characters (for error messages)."""
    if isinstance(value, str):
        text = repr(value)
    else:
        text = repr(value) if isinstance(value, (int, float, bool, type(None), Fraction)) else \
            _short_repr(value, limit)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _short_repr(value, limit: int) -> str:
    """A repr that stops early for big (or shared) nested values."""
    if isinstance(value, (list, tuple, dict)):
        items = list(value.items()) if isinstance(value, dict) else list(value)
        parts, size = [], 2
        for item in items[:8]:
            part = (f"{_short_repr(item[0], limit)}: {_short_repr(item[1], limit)}" if isinstance(value, dict)
                    else _short_repr(item, limit))
            parts.append(part)
            size += len(part) + 2
            if size > limit:
                break
        more = ", ..." if len(parts) < len(items) else ""
        open_, close = ("{", "}") if isinstance(value, dict) else ("[", "]")
        return open_ + ", ".join(parts) + more + close
    text = repr(value)
    return text[:limit]


class ExactLoader(yaml.SafeLoader):
    """SafeLoader that reads decimal numbers, exponent forms included, as exact fractions (0.1 is
    1/10, 1.5e-3 is 3/2000). The resolver below is added to this class only, not to PyYAML's own.

    Composing refuses what grukit does not read (see the module's docstring); each refusal names
    the field it is at."""

    def __init__(self, stream):
        super().__init__(stream)
        self._fields: list[str] = []
        self._nodes = 0

    def _field(self) -> str:
        text = "".join(self._fields).lstrip(".")
        return text if len(text) <= 80 else text[:77] + "..."

    def compose_node(self, parent, index):
        key = isinstance(parent, MappingNode) and index is None
        if isinstance(parent, SequenceNode):
            self._fields.append(f"[{index}]")
        elif isinstance(parent, MappingNode) and isinstance(index, ScalarNode):
            self._fields.append("." + index.value)
        else:
            self._fields.append("")
        try:
            event = self.peek_event()
            if isinstance(event, AliasEvent):
                raise YamlRefusal(self._field(), f"an alias (*{event.anchor}): grukit reads no anchors or aliases; "
                                  f"write the value out", event.start_mark)
            if event.anchor is not None:
                raise YamlRefusal(self._field(), f"an anchor (&{event.anchor}): grukit reads no anchors or aliases; "
                                  f"write the value out", event.start_mark)
            self._nodes += 1
            if self._nodes > MAX_NODES:
                raise YamlRefusal(self._field(), f"more than {MAX_NODES} values (give big arrays as .npy/.npz "
                                  f"files)", event.start_mark)
            if len(self._fields) > MAX_DEPTH:
                raise YamlRefusal(self._field(), f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
            node = super().compose_node(parent, index)
            if node.tag not in TAGS:
                raise YamlRefusal(self._field(), f"the tag {shown(node.tag)} (grukit reads plain YAML: text, "
                                  f"numbers, true/false, null, lists and mappings)", node.start_mark)
            if key:
                self._check_key(node)
            elif isinstance(node, ScalarNode):
                self._check_scalar(node)
        finally:
            self._fields.pop()
        return node

    def _check_key(self, node) -> None:
        if not isinstance(node, ScalarNode):
            raise YamlRefusal(self._field(), "a list or mapping as a key (keys are names)", node.start_mark)
        self._check_scalar(node)
        if len(node.value) > MAX_KEY or KEY_CONTROL.search(node.value):
            raise YamlRefusal(self._field(), f"the key {shown(node.value)}: keys are names of at most {MAX_KEY} "
                              f"characters on one line", node.start_mark)

    def _check_scalar(self, node) -> None:
        problem = None
        if node.tag == _CORE + "int":
            problem = _int_problem(node.value, lambda: self.construct_yaml_int(node))
        elif node.tag == _CORE + "float":
            problem = _float_problem(node.value)
        elif node.tag == _CORE + "bool" and node.value.lower() not in self.bool_values:
            problem = f"{shown(node.value)} is not true or false"
        if problem:
            raise YamlRefusal(self._field(), problem, node.start_mark, number=problem.endswith(f"({NUMBER_RANGE})"))

    def construct_mapping(self, node, deep=False):
        """A mapping whose every key is new (YAML lets the last of two equal keys win silently)."""
        if not isinstance(node, MappingNode):
            return super().construct_mapping(node, deep)
        mapping = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                seen = key in mapping
            except TypeError:
                raise YamlRefusal("", "a list or mapping as a key (keys are names)", key_node.start_mark) from None
            if seen:
                raise YamlRefusal("", f"the key {shown(key_node.value)} appears twice in one mapping",
                                  key_node.start_mark)
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


def _out_of_range(text: str) -> str:
    return f"{shown(text, 40)} is out of range ({NUMBER_RANGE})"


def decimal_problem(text: str, value: Decimal) -> str | None:
    """Why a finite decimal is beyond :data:`NUMBER_RANGE` (None when it is within)."""
    sign, digits, exponent = value.as_tuple()
    if len(digits) > MAX_DIGITS or not -MAX_DIGITS - 300 <= exponent <= 100:
        return _out_of_range(text)
    if value and not SMALLEST <= abs(value) <= LARGEST:
        return _out_of_range(text)
    return None


def _int_problem(text: str, read) -> str | None:
    """Why an integer's text is not one grukit reads; ``read()`` gives its value (once the text is short)."""
    plain = text.replace("_", "").lstrip("+-")
    if not _INT.match(text) or not plain:
        return f"{shown(text, 40)} is not a whole number"
    if len(plain) > MAX_DIGITS:
        return _out_of_range(text)
    if not plain.isdigit() or (plain[0] == "0" and plain != "0"):  # 0x.., 0b.., octal 017, 1:30
        return _out_of_range(text) if abs(read()) > LARGEST else None
    return decimal_problem(text, Decimal(plain))


def _float_problem(text: str) -> str | None:
    plain = text.replace("_", "")
    if plain.lower() in _SPECIAL_FLOAT:
        return None  # read as float inf or nan, refused (naming the field) where a number is read
    if len(plain) > MAX_DIGITS + 12:
        return _out_of_range(text)
    try:
        value = Decimal(plain)
    except InvalidOperation:
        if _SEXAGESIMAL_FLOAT.match(text):
            return None
        return f"{shown(text, 40)} is not a number"
    if not value.is_finite():
        return None
    return decimal_problem(text, value)


def _exact_float(loader, node):
    text = loader.construct_scalar(node).replace("_", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        return float(yaml.SafeLoader.construct_yaml_float(loader, node))  # .inf / .nan, 1:30.5
    if not value.is_finite():
        return math.nan if value.is_nan() else float(value)
    if not value:
        return Fraction(0)
    return Fraction(value)


ExactLoader.add_constructor("tag:yaml.org,2002:float", _exact_float)
# YAML 1.1 (PyYAML) reads a number in exponent form as a float only with a dot and a signed
# exponent (1.0e+6); 1e6, 1.5e3 and -2E+2 would be strings. This loader reads them all as numbers.
ExactLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))
# Dates, YAML 1.1's merge key (<<), value key (=) and yaml tag (!, &, *) stay text: grukit reads none
# of them, and "=" or "2024-01-01" as a title is text.
ExactLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag not in {_CORE + t for t in ("timestamp", "merge", "value", "yaml")}]
    for first, resolvers in ExactLoader.yaml_implicit_resolvers.items()}


def read_text(path: Path) -> str:
    """A file's UTF-8 text, read only if it is a regular file of at most :data:`MAX_FILE_BYTES`
    (a folder, a FIFO or a device is refused without waiting on it); every failure one line."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise GrukitError(f"{path}: cannot read ({exc.strerror or exc})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise GrukitError(f"{path}: {'is a folder' if stat.S_ISDIR(mode) else 'not a regular file'}, not a YAML file")
    with os.fdopen(fd, "rb") as fh:
        try:
            data = fh.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise GrukitError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(data) > MAX_FILE_BYTES:
        raise GrukitError(f"{path}: larger than {_size(MAX_FILE_BYTES)} (grukit reads YAML files up to that; "
                          f"give big arrays as .npy/.npz files)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise GrukitError(f"{path}: not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start}, "
                          f"line {line})") from None


def _size(n: int) -> str:
    return f"{n / 2 ** 20:g} MiB" if n >= 2 ** 20 else f"{n} bytes"


def load_yaml(path: Path) -> object:
    return parse_yaml(read_text(path), ExactLoader, str(path))


def parse_yaml(text: str, loader: type, where: str) -> object:
    """``text`` read safely with ``loader`` (a SafeLoader subclass, usually :class:`ExactLoader`); bad
    YAML, and what grukit does not read, is a one-line error naming ``where``, the field and the line."""
    if len(text) > MAX_FILE_BYTES:
        raise GrukitError(f"{where}: longer than {_size(MAX_FILE_BYTES)}")
    try:
        return yaml.load(text, Loader=loader)
    except YamlRefusal as exc:
        field = f"{exc.field}: " if exc.field else ""
        raise (NumberOutOfRange if exc.number else GrukitError)(
            f"{where}: {field}{exc.problem} (line {exc.problem_mark.line + 1})") from None
    except yaml.reader.ReaderError as exc:  # a character YAML forbids (NUL, most control characters)
        line = text[:exc.position].count("\n") + 1
        char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else shown(exc.character)
        raise GrukitError(f"{where}: not valid YAML (line {line}): the character {char} is not allowed") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = f" (line {mark.line + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc)
        if str(problem).startswith("but ") and getattr(exc, "context", None):  # "expected a single document..."
            problem = f"{exc.context}, {problem}"
        raise GrukitError(f"{where}: not valid YAML{line}: {' '.join(str(problem).split())}") from None
    except RecursionError:  # a loader not derived from ExactLoader, nesting beyond Python's stack
        raise GrukitError(f"{where}: not valid YAML: nested too deeply") from None


# --- numbers ------------------------------------------------------------------------------------

def to_number(value, where: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, Fraction, float, np.integer, np.floating)):
        raise GrukitError(f"{where}: expected a number, got {shown(value)}")
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise GrukitError(f"{where}: {value} is not a finite number")
        value = Fraction(float(value))
    value = Fraction(value)
    if value and not (Fraction(SMALLEST) <= abs(value) <= Fraction(LARGEST)):
        raise GrukitError(f"{where}: {float(value):.3g} is out of range ({NUMBER_RANGE})")
    return value


def object_array(value, where: str) -> np.ndarray:
    """``value`` as an object array; a shape NumPy cannot hold is an error naming ``where``."""
    try:
        return np.array(value, dtype=object) if not isinstance(value, np.ndarray) else value.astype(object)
    except (ValueError, TypeError):
        raise GrukitError(f"{where}: rows of unequal length, or nested too deeply") from None


def to_array(value, shape: tuple[int, ...], where: str) -> np.ndarray:
    """A nested list (or array) of numbers with exactly ``shape``; vectors may be written as columns."""
    if isinstance(value, dict):
        raise GrukitError(f"{where}: expected {'x'.join(map(str, shape))} numbers, got a mapping")
    arr = object_array(value, where)
    if arr.dtype == object and arr.ndim and any(isinstance(v, (list, tuple, dict)) for v in arr.ravel()):
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

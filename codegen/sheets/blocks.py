"""The block types of a sheet model: plain data the templates lay out (``sheet.tex.j2``, ``sheet.md.j2``).

Prose is a list of segments: ``("text", s)`` is escaped by the template, ``("math", s)`` is LaTeX math.
A display line is ``[lhs, rhs]`` (``lhs = rhs``) or ``[lhs, relation, rhs]``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from grukit.codegen.sheets.numbers import join_sum


def text(*segs) -> list:
    """Prose as segments: plain strings are text, ("math", s) is math."""
    return [("math", s[1]) if isinstance(s, tuple) else ("text", s) for s in segs]


@dataclass
class TextBlock:
    segs: list
    type: ClassVar[str] = "text"


@dataclass
class DisplayBlock:
    """An aligned display with optional lead-in prose."""

    lines: list
    segs: list = field(default_factory=list)
    type: ClassVar[str] = "display"


@dataclass
class ProductEntry:
    """One entry of a matrix-vector product: its terms, their values, the result."""

    terms: str
    sums: str
    result: str


@dataclass
class ProductBlock:
    """A matrix-vector product written out entry by entry."""

    expr: str
    left: str
    right: str
    entries: list[ProductEntry]
    result: str
    column: bool
    single_terms: bool
    label: str = ""
    segs: list = field(default_factory=list)
    scalar: bool = False  # a 1 x 1 weight: the product of two numbers, written on one line
    type: ClassVar[str] = "product"


@dataclass
class TableBlock:
    header: list  # one prose list per column
    rows: list  # rows of prose lists
    align: str
    chunk: int  # rows per table
    type: ClassVar[str] = "table"


@dataclass
class Group:
    title: list
    blocks: list


@dataclass
class Section:
    title: list
    blocks: list
    groups: list = field(default_factory=list)


@dataclass
class Part:
    title: str
    intro: list
    sections: list
    questions: list | None = None


def paragraph(*segs) -> TextBlock:
    return TextBlock(text(*segs))


def display(lines, lead=None) -> DisplayBlock:
    rows = [[line[0], "=", line[1]] if len(line) == 2 else list(line) for line in lines]
    return DisplayBlock(rows, lead or [])


def sum_rows(items: list[str], per_line: int) -> list[list[str]]:
    """``a + b + c + ...`` as aligned lines of at most ``per_line`` terms (continuations start with
    their operator); a term that is one number carries its own sign (:func:`join_sum`)."""
    rows = []
    for k in range(0, len(items), per_line):
        chunk = join_sum(items[max(0, k - 1):k + per_line])
        if k == 0:
            rows.append(["", "=", chunk])
        else:  # the previous line's last item was included only for its operator: drop it
            rest = chunk[len(items[k - 1]):].lstrip()
            rows.append(["", "", r"\quad " + rest])
    return rows


def table_chunk(n: int, most: int) -> int:
    """Rows per table so that ``n`` rows split into equal tables of at most ``most`` rows."""
    tables = max(1, -(-n // most))
    return max(1, -(-n // tables))


def partial(name_tex: str, via: str) -> str:
    """The part of an adjoint that flows back through ``via``."""
    return r"\left.%s\right|_{%s}" % (name_tex, via)

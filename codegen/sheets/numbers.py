"""Numbers on a sheet: placeholder tokens while the model is built, formatted text at the end.

A sheet model is built once per number system. Every number becomes a token (``\\x01<i><style>\\x02``)
when it is placed; :func:`substitute` formats them all at the end. In stepwise mode the same model
is built from the exact solution too, token for token, and every displayed value that differs from
the exact value at the displayed decimals gets a dagger.
"""
from __future__ import annotations

import re
from dataclasses import fields, is_dataclass, replace

import numpy as np

from grukit.codegen.latex import GruLatexPrinter
from grukit.derive.numeric.evaluate import round_half_up

MARK = r"^{\dagger}"
_TOKEN = re.compile("\x01(\\d+)([a-z])\x02")


def format_number(value, decimals: int) -> str:
    """``value`` as the sheet prints it: every number, given or computed, with the sheet's
    ``decimals`` places, rounded half away from zero (``0.8000``, ``0.3610``, ``-0.9095``)."""
    d = round_half_up(value.item() if isinstance(value, np.ndarray) else value, decimals)
    text = format(d, "f")
    return text.lstrip("-") if d == 0 else text


def restyle(tex: str, style: str) -> str | None:
    """``tex`` with its style changed to ``style`` when it is exactly one number token, else None."""
    m = _TOKEN.fullmatch(tex)
    return None if m is None else f"\x01{m.group(1)}{style}\x02"


class NumberPrinter(GruLatexPrinter):
    """The LaTeX printer of a sheet's formulas with numbers in them: a name may be a number token."""

    def restyle(self, tex: str, style: str) -> str | None:
        return restyle(tex, style)


def join_sum(items: list[str]) -> str:
    """``a + b + c`` where a later item that is one number carries its own sign (``a - 0.3``)."""
    out = items[0] if items else ""
    for item in items[1:]:
        term = restyle(item, "t")
        out += " " + term if term is not None else " + " + item
    return out


class NumberTokens:
    """Records every number the sheet shows and hands out a placeholder token for it."""

    def __init__(self):
        self.values: list = []

    def __call__(self, value, style: str = "v") -> str:
        if isinstance(value, np.ndarray):  # a 0-d result of the stepwise engine
            value = value.item()
        self.values.append(value)
        return f"\x01{len(self.values) - 1}{style}\x02"

    def count(self, text: str) -> int:
        """How many numbers a piece of the model shows."""
        return text.count("\x01")


def styled(text: str, style: str, mark: bool) -> str:
    """The one rule for a number in arithmetic. v: plain; f: a factor (parenthesised when negative);
    p: always parenthesised (a factor after another number); t: a later term of a sum, its sign the
    operator (``+ 0.3``, ``- 0.3``); m: a subtracted term (``- 0.3``, and ``+ 0.3`` for -0.3)."""
    negative = text.startswith("-")
    body = text + (MARK if mark else "")
    if style == "f":
        return f"\\left({body}\\right)" if negative else body
    if style == "p":
        return f"\\left({body}\\right)"
    if style == "t":
        return f"- {body[1:]}" if negative else f"+ {body}"
    if style == "m":
        return f"+ {body[1:]}" if negative else f"- {body}"
    return body


def substitute(tree, shown: list, exact: list | None, decimals: int, counter: list):
    """Replace the tokens in every string of the model tree (dicts, lists, block dataclasses) by the
    formatted numbers; ``counter[0]`` counts the daggers."""
    if isinstance(tree, str):
        def repl(m):
            i, style = int(m.group(1)), m.group(2)
            text = format_number(shown[i], decimals)
            mark = exact is not None and format_number(exact[i], decimals) != text
            counter[0] += mark
            return styled(text, style, mark)
        return _TOKEN.sub(repl, tree)
    if is_dataclass(tree):
        return replace(tree, **{f.name: substitute(getattr(tree, f.name), shown, exact, decimals, counter)
                                for f in fields(tree)})
    if isinstance(tree, dict):
        return {k: substitute(v, shown, exact, decimals, counter) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [substitute(v, shown, exact, decimals, counter) for v in tree]
    return tree

"""The names a claim may use for a number of a problem, and how a written name finds its number.

Every node of a :class:`~grukit.derive.audit.replay.Walk` is a name (``z[1]``, ``W_z x[1]``,
``dL/dh[0]|a_z[1]``, ``dL/dW_z``); the walk adds the second names its sums give (``dL/dz[1]|h[1]``
is all of ``dL/dz[1]``). This module adds the spellings people use -- ``c[t]`` for the candidate,
the convention's own state letter (``s[t]`` in the homework), ``logits``, ``probabilities``,
products in either order -- and finds the number a written name means, element included
(``h[1][0]``, ``dL/dW_z[2][1]``): the longest name the text starts with, then its indices.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from grukit.derive.audit.replay import SOFTMAX_HEADS, Walk
from grukit.derive.errors import GrukitError

_SPELLINGS = ((r"candidate\[", "c["), (r"candidate\[", "h~["), (r"(?<![\w/])o\[", "logits["),
              (r"(?<![\w/])p\[", "probabilities["), (r"(?<![\w/])p\[", "softmax["), (r"(?<![\w/])p\[", "y_hat["))
"""Other spellings of a name's parts: (pattern in a name, replacement)."""
_OUTPUT_SPELLINGS = ((r"(?<![\w/])o\[", "y_hat["), (r"dL/do\[", "dL/dy_hat["))
"""y-hat is the output layer's value where no softmax follows it (a squared-error head)."""
_OUTPUT_LAYER = {"W_o": "W_y", "b_o": "b_y"}
"""The output layer's parameters as printed derivations name them (``L = (y - W_y h_T)^2``)."""
_INDEX = re.compile(r"^((?:\[\d+\])*)$")


def normal(text: str) -> str:
    """A name as compared: no spaces or product signs, ``∂`` read as ``d``, ``ᵀ`` as ``^T``."""
    text = text.replace("∂", "d").replace("ᵀ", "^T").replace("′", "'").replace("ŷ", "y_hat").replace("y\u0302", "y_hat")
    return re.sub(r"[\s*·⋅⊙∘]", "", text)


@dataclass(frozen=True)
class Row:
    """One name for ``grukit names``: the number's shape, what it is, its other spellings."""

    name: str
    shape: tuple[int, ...]
    what: str
    inputs: tuple[str, ...]
    spellings: tuple[str, ...]


class NameTable:
    """Every name of a problem's numbers: canonical names, second names and spellings."""

    def __init__(self, walk: Walk):
        self.walk = walk
        conv = walk.convention
        self.lookup: dict[str, str] = {}
        self.spellings: dict[str, list[str]] = {n: [] for n in walk.info}
        replacements = list(_SPELLINGS)
        if walk.problem.loss is not None and walk.problem.loss.kind not in SOFTMAX_HEADS:
            replacements += _OUTPUT_SPELLINGS
        keys = {conv.key(p) for p in conv.parameters()}
        replacements += [(rf"(?:(?<!\w)|(?<=dL/d)){old}(?!\w)", new) for old, new in _OUTPUT_LAYER.items()
                         if new not in keys]
        letter = conv.notation.letter("h")
        if letter not in ("h", "c"):
            replacements.append((r"candidate\[", f"{letter}["))
        if conv.notation.state != "h":
            replacements.append((r"(^|[^\w]|dL/d)h\[", rf"\g<1>{conv.notation.state}["))
        names = dict.fromkeys(walk.info) | dict(walk.aliases)
        for written in names:
            target = walk.name(written)
            for spelling in self._variants(written, replacements):
                self._add(spelling, target)

    def _variants(self, name: str, replacements) -> list[str]:
        out = [name]
        for pattern, repl in replacements:
            out += [re.sub(pattern, repl, v) for v in out if re.search(pattern, v)]
        product = re.fullmatch(r"(\S+) (\S+|\[.*\])", name)
        if product and not name.startswith("dL/d"):
            out += [f"{b} {a}" for a, b in [product.groups()]]
        return out

    def _add(self, spelling: str, target: str) -> None:
        key = normal(spelling)
        if self.lookup.get(key, target) != target:
            raise GrukitError(f"names: {spelling!r} would name both {self.lookup[key]} and {target}")
        self.lookup[key] = target
        if spelling != target and spelling not in self.spellings[target]:
            self.spellings[target].append(spelling)

    def resolve(self, text: str, where: str) -> tuple[str, tuple[int, ...]]:
        """(node, index) of a written name: ``h[1][0]`` is element 0 of ``h[1]``."""
        key = normal(text)
        for end in range(len(key), 0, -1):
            head, rest = key[:end], key[end:]
            if head in self.lookup and _INDEX.match(rest):
                node = self.lookup[head]
                index = tuple(int(i) for i in re.findall(r"\d+", rest))
                shape = np.shape(self.walk.values[node])
                if len(index) > len(shape) or any(i >= n for i, n in zip(index, shape)):
                    raise GrukitError(f"{where}: index {rest} outside {node}, shape {'x'.join(map(str, shape))}")
                return node, index
        raise GrukitError(f"{where}: unknown name (`grukit names` lists the names of this problem)")

    def rows(self) -> list[Row]:
        w = self.walk
        return [Row(n, np.shape(w.values[n]), i.what, i.inputs, tuple(self.spellings[n])) for n, i in w.info.items()]

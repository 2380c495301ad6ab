"""The worked sheet's step for one quantity, and a convention's equations, as LaTeX for the page.

The step is found, not written again: the sheet model (:func:`~grukit.codegen.sheets.sheet.build_sheet`)
holds every display and product of the sheet, and the one whose left-hand side is the quantity's
LaTeX name (:func:`~grukit.codegen.latex.quantity_tex`, ``adjoint_tex``, ``gradient_tex``: the names
the sheet itself prints) is rendered by the Markdown sheet's own macros (``sheet.md.j2``), ``$$``
math that KaTeX typesets in the browser. A product (``U_z h[0]``) is shown with the stage that adds
it up; a number the sheet does not set on a line of its own (a logit) is left to the whole sheet.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from grukit.codegen.latex import compact_equations, gradient_tex, quantity_tex
from grukit.codegen.render import environment
from grukit.codegen.sheets.blocks import DisplayBlock, ProductBlock, partial
from grukit.codegen.sheets.sheet import Sheet
from grukit.derive.audit.compare import Comparison, compare
from grukit.derive.cell.convention import Convention
from grukit.derive.cell.equations import cell_equations
from grukit.derive.cell.presets import PRESETS

_QUANTITY = re.compile(r"(?P<q>[a-z_]+)\[(?P<t>\d+)\]")
_STEP_PART = re.compile(r"(?P<key>.+)\|t=(?P<t>\d+)")


def _quantity(conv: Convention, text: str) -> str | None:
    m = _QUANTITY.fullmatch(text)
    if not m:
        return None
    q = "c" if m["q"] == "candidate" else m["q"]
    try:
        return quantity_tex(conv, q, int(m["t"]))
    except KeyError:
        return None


def _output_layer(conv: Convention, name: str) -> str | None:
    """The output layer's names as the sheet's loss part prints them (``W_{o} h_{1}``, ``o_{1}``, the first
    probability ``\\hat{y}_{1,1}``, ``L``)."""
    if name == "loss":
        return "L"
    m = re.fullmatch(r"(?P<q>[op])\[(?P<t>\d+)\]", name)
    if m:
        return f"o_{{{m['t']}}}" if m["q"] == "o" else f"\\hat{{y}}_{{{m['t']},1}}"
    m = re.fullmatch(r"W_o (?P<h>h\[\d+\])|(?P<r>h\[\d+\]) W_o", name)
    if m:
        h = _quantity(conv, m["h"] or m["r"])
        return f"W_{{o}} {h}" if m["h"] else f"{h} W_{{o}}"
    return None


def node_tex(conv: Convention, name: str) -> str | None:
    """The LaTeX a sheet names a walk's node with (``dL/dh[0]|q[1]`` -> ``\\left.\\delta h_{0}\\right|_{q_{1}}``),
    or None for a number the sheet names otherwise."""
    if not name.startswith("dL/d"):
        return _quantity(conv, name) or _output_layer(conv, name)
    rest = name[len("dL/d"):]
    params = {conv.key(p): conv.tex(p) for p in conv.parameters()} | {"W_o": "W_{o}", "b_o": "b_{o}"}
    step = _STEP_PART.fullmatch(rest)
    if step and step["key"] in params:
        return r"\left." + gradient_tex(params[step["key"]]) + r"\right|_{t=%s}" % step["t"]
    if rest in params:
        return gradient_tex(params[rest])
    of, _, via = rest.partition("|")
    tex = _quantity(conv, of)
    if tex is None:
        return None
    if not via:
        return r"\delta " + tex
    through = _quantity(conv, via)
    return None if through is None else partial(r"\delta " + tex, through)


def _heads(block) -> list[str]:
    """What a block sets: a display's first left-hand side, a product's label and expression."""
    if isinstance(block, DisplayBlock):
        return [row[0] for row in block.lines if row[0].strip()][:1]
    if isinstance(block, ProductBlock):
        return [h for h in (block.label, block.expr) if h]
    return []


def _squeezed(tex: str) -> str:
    return re.sub(r"\s+", "", tex)


@dataclass
class Step:
    """A worked step: its heading and blocks, as Markdown with ``$``/``$$`` math."""

    title: str
    blocks: list[str]


class WorkedSheet:
    """A sheet model indexed by what each block sets."""

    def __init__(self, sheet: Sheet, convention: Convention):
        self.conv = convention
        self.macros = environment("text").get_template("sheet.md.j2").make_module(vars=sheet.model)
        self.groups: list[tuple[list, list]] = []  # (title segments, blocks)
        for part in sheet.model["parts"]:
            if part.intro:
                self.groups.append(([("text", part.title)], part.intro))
            for section in part.sections:
                if section.blocks:
                    self.groups.append((section.title or [("text", part.title)], section.blocks))
                self.groups += [(g.title, g.blocks) for g in section.groups]

    def _find(self, tex: str):
        target = _squeezed(tex)
        for title, blocks in self.groups:
            for block in blocks:
                if any(h == target or h.startswith(target + "=") for h in map(_squeezed, _heads(block))):
                    return title, blocks, block
        return None

    def step(self, name: str, consumers: dict[str, str]) -> Step | None:
        """The block that sets ``name``; for a product, the blocks of the stage that adds it up."""
        tex = node_tex(self.conv, name)
        found = self._find(tex) if tex else None
        if found is not None:
            title, _, block = found
            return Step(self.macros.prose(title), [self.macros.block(block)])
        consumer = consumers.get(name)
        tex = node_tex(self.conv, consumer) if consumer else None
        found = self._find(tex) if tex else None
        if found is None:
            return None
        title, blocks, _ = found
        return Step(self.macros.prose(title), [self.macros.block(b) for b in blocks])


def equations_tex(conv: Convention) -> str:
    """One step of a convention in its own notation, as one aligned display."""
    lines = [f"{lhs} &= {rhs}" for lhs, rhs in compact_equations(cell_equations(conv))]
    return r"\begin{aligned}" + r" \\ ".join(lines) + r"\end{aligned}"


@lru_cache(maxsize=64)
def comparison(a: str, b: str) -> Comparison:
    """``grukit compare A B`` for two built-in conventions, kept (a proof takes SymPy a moment)."""
    return compare(PRESETS[a], PRESETS[b])

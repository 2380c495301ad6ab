"""docs/conventions.md, generated from the preset registry.

``grukit docs`` rewrites the file; ``grukit docs --check`` exits 1 (and prints a diff) when the
file on disk differs from what the registry renders. Everything in the page is read from
:data:`grukit.derive.cell.presets.PRESETS`, the axis tables of :mod:`grukit.derive.cell.convention`, the stage
list and the layouts: the table of axes, each preset's equations (printed by
:func:`grukit.codegen.latex.compact_equations`) and its parameter names and shapes, so the page cannot
drift from the code without ``--check`` (and the test suite) noticing.
"""
from __future__ import annotations

import difflib
from pathlib import Path

import sympy as sp

from grukit.codegen.latex import compact_equations
from grukit.codegen.render import render
from grukit.derive.cell.convention import ARRANGEMENT_AXES, AXES, GATES, LAYOUT_NAMES, PARAMETER_AXES, Convention
from grukit.derive.cell.equations import cell_equations
from grukit.derive.cell.layouts import LAYOUTS
from grukit.derive.cell.presets import PRESETS

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "conventions.md"
TEMPLATE = "conventions.md.j2"

_D, _H = sp.Symbol("D", positive=True, integer=True), sp.Symbol("H", positive=True, integer=True)
_ROLES = {
    "input_weight": "input weight",
    "recurrent_weight": "recurrent weight",
    "input_bias": "input bias",
    "recurrent_bias": "recurrent bias",
}
_GATE_NAMES = {"z": "update gate", "r": "reset gate", "h": "candidate"}


def _shape(shape) -> str:
    """A symbolic shape as text: (H, D) -> 'H × D', (3*H,) -> '3H'."""
    return " × ".join(str(dim).replace("*", "") for dim in shape)


def parameter_rows(conv: Convention) -> list[dict[str, str]]:
    """Each parameter: its problem-file key, its LaTeX, its role and its shape in D and H."""
    return [
        {"key": conv.key(p), "tex": conv.tex(p), "role": f"{_ROLES[p.role]}, {_GATE_NAMES[p.gate]}",
         "shape": _shape(conv.param_shape(p, _D, _H))}
        for p in conv.parameters()
    ]


def layout_rows(conv: Convention) -> list[dict[str, str]]:
    """The framework arrays a layout file for this preset holds (empty without a layout)."""
    if conv.layout is None:
        return []
    shapes = LAYOUTS[conv.layout].array_shapes(conv, _D, _H)
    return [{"name": name, "shape": _shape(shape)} for name, shape in shapes.items()]


def preset_context(conv: Convention) -> dict:
    axes = conv.axes()
    axes["gate_order"] = ", ".join(axes["gate_order"])
    axes["layout"] = axes["layout"] or "—"
    return {
        "name": conv.name,
        "description": conv.description,
        "source": conv.source,
        "axes": axes,
        "equations": compact_equations(cell_equations(conv)),
        "parameters": parameter_rows(conv),
        "layout_arrays": layout_rows(conv),
    }


def arrangement_rows() -> list[dict[str, str]]:
    """The axes without a fixed set of values: what each may hold, and what it means."""
    choices = {"gate_order": "the gates " + ", ".join(f"`{g}`" for g in GATES) + " in some order",
               "layout": ", ".join(f"`{n}`" for n in LAYOUT_NAMES) + " or none"}
    return [{"axis": axis, "choices": choices[axis], "meaning": meaning}
            for axis, meaning in ARRANGEMENT_AXES.items()] + \
        [{"axis": axis, "choices": "a number, or none", "meaning": meaning} for axis, meaning in PARAMETER_AXES.items()]


def render_conventions(presets: dict[str, Convention] | None = None) -> str:
    """The text of docs/conventions.md."""
    presets = PRESETS if presets is None else presets
    return render(TEMPLATE, presets=[preset_context(c) for c in presets.values()], axes=AXES,
                  arrangement=arrangement_rows())


def diff(current: str, fresh: str, path: Path = OUTPUT) -> str:
    return "".join(difflib.unified_diff(current.splitlines(keepends=True), fresh.splitlines(keepends=True),
                                        f"{path} (on disk)", f"{path} (from the registry)"))


def stale(path: Path = OUTPUT) -> str | None:
    """A diff saying how ``path`` differs from what the registry renders, or None when it does not."""
    fresh = render_conventions()
    current = path.read_text() if path.exists() else ""
    return None if current == fresh else (diff(current, fresh, path) or f"{path}: missing\n")


def write(path: Path = OUTPUT) -> bool:
    """Rewrite ``path`` from the registry; whether it changed."""
    fresh = render_conventions()
    if path.exists() and path.read_text() == fresh:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(fresh)
    return True

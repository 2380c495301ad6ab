"""The `sheet` and `problem` subcommands (worked solution sheets, instructor mode).

``grukit sheet [PROBLEM] [-o OUT]`` writes the worked solution sheet of a problem; OUT ends in
``.pdf`` (the default, ``sheet.pdf`` in the current folder; needs pdflatex, and latexmk if present),
``.tex`` or ``.md``. Without PROBLEM it works the built-in course-notes example.
``grukit sheet --gallery docs`` regenerates ``docs/sheets/`` and ``docs/gallery.md``.

``grukit problem --convention X --dims DxH --steps T --seed N [--variants K] [-o DIR]`` writes K
random problems with their question and solution sheets.
"""
from __future__ import annotations

from pathlib import Path

from grukit.codegen.output import require_tex
from grukit.codegen.sheets.gallery import write_gallery
from grukit.codegen.sheets.instructor import write_variants
from grukit.codegen.sheets.sheet import build_sheet, load_or_builtin, output_suffix
from grukit.derive.errors import GrukitError
from grukit.derive.files.layer_file import load_any
from grukit.derive.layers.cells import cell_problem
from grukit.derive.layers.problem import LayerProblem


def cmd_sheet(args) -> int:
    if args.gallery is not None:
        if args.problem is not None:
            raise GrukitError("--gallery: give either a PROBLEM or --gallery DOCS, not both")
        for path in write_gallery(Path(args.gallery)):
            print(f"wrote {path}")
        return 0
    out = Path(args.output)
    if output_suffix(out) == ".pdf":
        require_tex(out)
    problem = load_or_builtin(args.problem) if args.problem is None else _one_cell(args)
    sheet = build_sheet(problem, decimals=args.decimals, rounding=args.rounding,
                        forward_only=args.forward_only, questions_only=args.questions_only, steps=args.steps)
    sheet.write(out)
    print(f"wrote {out}")
    return 0


def _one_cell(args):
    """A problem file; for a layer problem, the cell and sequence that ``--cell``/``--sequence`` choose."""

    problem = load_any(args.problem)
    if isinstance(problem, LayerProblem):
        return cell_problem(problem, parse_cell(args.cell, problem), args.sequence)
    if args.cell is not None or args.sequence:
        raise GrukitError(f"{args.problem}: --cell/--sequence: a problem of one cell and one sequence")
    return problem


def parse_cell(text: str | None, problem: LayerProblem, option: str = "--cell") -> int:
    """``LAYER,DIRECTION`` (``1,reverse``; the direction may be left out when a layer has one) -> the
    cell's index in PyTorch's h_n order."""
    cells = problem.network.cells
    choices = ", ".join(f"{k},{c.direction}" for k, c in cells)
    if text is None:
        if len(cells) == 1:
            return 0
        raise GrukitError(f"{problem.path}: {option}: missing: the network has {len(cells)} cells; choose one of "
                          f"{choices}")
    layer, _, direction = str(text).replace(":", ",").partition(",")
    try:
        k = int(layer)
    except ValueError:
        raise GrukitError(f"{option} {text}: expected LAYER,DIRECTION (one of {choices})") from None
    match = [i for i, (kk, c) in enumerate(cells) if kk == k and (not direction or c.direction == direction)]
    if len(match) != 1:
        raise GrukitError(f"{option} {text}: no such cell{' (give the direction)' if len(match) > 1 else ''}; "
                          f"choose one of {choices}")
    return match[0]


def cmd_problem(args) -> int:
    for path in write_variants(args.convention, args.dims, args.steps, args.seed, args.variants,
                               args.output, args.format, args.decimals):
        print(f"wrote {path}")
    return 0

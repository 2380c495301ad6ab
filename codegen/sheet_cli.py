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

from grukit.codegen.sheet_options import DEFAULT_DECIMALS, DEFAULT_OUTPUT, ROUNDINGS


def cmd_sheet(args) -> int:
    from grukit.codegen.gallery import write_gallery
    from grukit.codegen.output import require_tex
    from grukit.codegen.sheet import build_sheet, load_or_builtin, output_suffix
    from grukit.derive.errors import GrukitError

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
    from grukit.derive.errors import GrukitError
    from grukit.derive.layer_cells import cell_problem, parse_cell
    from grukit.derive.layer_problem import LayerProblem, load_any

    problem = load_any(args.problem)
    if isinstance(problem, LayerProblem):
        return cell_problem(problem, parse_cell(args.cell, problem), args.sequence)
    if args.cell is not None or args.sequence:
        raise GrukitError(f"{args.problem}: --cell/--sequence: a problem of one cell and one sequence")
    return problem


def cmd_problem(args) -> int:
    from grukit.codegen.instructor import write_variants

    for path in write_variants(args.convention, args.dims, args.steps, args.seed, args.variants,
                               args.output, args.format, args.decimals):
        print(f"wrote {path}")
    return 0


def add_commands(sub) -> None:
    """Register the sheet commands on the CLI's subparsers (light: see :mod:`grukit.codegen.sheet_options`)."""
    from grukit.codegen.instructor import FORMATS as PROBLEM_FORMATS

    p = sub.add_parser("sheet", help="worked solution sheet of a problem (PDF, LaTeX or Markdown)",
                       description="Write the worked solution sheet of a problem: every stage of every time "
                                   "step with its numbers, the loss, the backward pass, a summary of all "
                                   "gradients and one update.")
    p.add_argument("problem", nargs="?", help="problem YAML file (default: the built-in course-notes example)")
    p.add_argument("-o", "--output", default=DEFAULT_OUTPUT,
                   help=f"output file ending in .pdf, .tex or .md (default: {DEFAULT_OUTPUT})")
    p.add_argument("--decimals", type=int, default=DEFAULT_DECIMALS,
                   help=f"decimals shown (default {DEFAULT_DECIMALS})")
    p.add_argument("--rounding", choices=ROUNDINGS, default="exact",
                   help="exact: exact values, rounded for display; stepwise: round every intermediate "
                        "value and reuse it (a hand calculation), marking departures from exact")
    p.add_argument("--forward-only", action="store_true", help="the forward pass and the loss only")
    p.add_argument("--questions-only", action="store_true", help="the question sheet (data, no answers)")
    p.add_argument("--steps", metavar="SPEC", help="time steps worked in full, e.g. 1-3,last or all (default: "
                   "all of up to 10 steps, else 1-3,last); the sums and the summary cover every step")
    p.add_argument("--cell", metavar="LAYER,DIRECTION",
                   help="for a multi-layer or bidirectional problem: the cell the sheet works, e.g. 1,reverse "
                        "(layers count from 0)")
    p.add_argument("--sequence", type=int, default=0, metavar="B",
                   help="for a batch: the sequence the sheet works (from 0; default 0)")
    p.add_argument("--gallery", metavar="DOCS",
                   help="regenerate DOCS/sheets/ and DOCS/gallery.md from DOCS/examples/*.yaml")
    p.set_defaults(func=cmd_sheet)

    p = sub.add_parser("problem", help="instructor mode: random problems with question and solution sheets",
                       description="Write K random problems with short decimals, each as problem YAML, a "
                                   "question sheet and a solution sheet. The same settings give the same bytes.")
    p.add_argument("--convention", required=True,
                   help="a preset name (see `grukit conventions`) or a convention .yaml file")
    p.add_argument("--dims", default="2x3", help="input and hidden size as DxH (default 2x3)")
    p.add_argument("--steps", type=int, default=2, help="time steps T (default 2)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--variants", type=int, default=1, help="how many problems K (default 1)")
    p.add_argument("-o", "--output", default=".", help="output folder (default: the current folder)")
    p.add_argument("--format", choices=PROBLEM_FORMATS, default="tex", help="sheet format (default tex)")
    p.add_argument("--decimals", type=int, default=DEFAULT_DECIMALS,
                   help=f"decimals shown on the sheets (default {DEFAULT_DECIMALS})")
    p.set_defaults(func=cmd_problem)

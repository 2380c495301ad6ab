"""The ``grukit`` command line's arguments: every subcommand, its options and the function that runs it.

Only this package parses arguments. Building the parser imports nothing heavy -- each command names
the function that runs it as ``"module:function"`` inside :mod:`grukit.codegen.cli`, imported by
:func:`grukit.codegen.cli.main.main` only when that command runs -- so ``grukit --help``,
``--version`` and ``grukit conventions`` start as fast as NumPy does.
"""
from __future__ import annotations

import argparse

from grukit import __version__
from grukit.codegen.sheets.options import DEFAULT_DECIMALS, DEFAULT_OUTPUT, PROBLEM_FORMATS, ROUNDINGS

ENGINE_CHOICES = ("exact", "numpy", "numba")
""":data:`grukit.derive.numeric.evaluate.ENGINES`, written out so that the parser needs no mpmath (a test
checks that the two agree)."""

DESCRIPTION = "grukit: GRU conventions as data; one SymPy derivation, many emitters."


def at_least(minimum: int):
    """An argparse type: a whole number >= ``minimum`` (a count or an index), else a usage error."""
    def whole(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {value}")
        return value

    whole.__name__ = f"whole number >= {minimum}"
    return whole


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grukit", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"grukit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _cell_commands(sub)
    _sheets_commands(sub)
    _kernels_commands(sub)
    _audit_commands(sub)
    _web_commands(sub)
    return parser


def _cell_commands(sub) -> None:
    p = sub.add_parser("conventions", help="list the built-in conventions or show one's equations")
    p.add_argument("name", nargs="?", help="a preset name or a convention .yaml file")
    p.add_argument("--latex", action="store_true", help="print the equations as LaTeX")
    p.set_defaults(run="conventions:cmd_conventions")

    for name, text in (("forward", "evaluate a problem's forward pass"),
                       ("grad", "every gradient of a problem's loss (BPTT)")):
        p = sub.add_parser(name, help=text)
        p.add_argument("problem", help="problem YAML file")
        p.add_argument("--engine", choices=ENGINE_CHOICES, default="exact",
                       help="exact (60 digits), numpy (float64) or numba (the generated float64 kernels)")
        p.add_argument("--json", action="store_true", help="one JSON object on stdout")
        if name == "grad":
            p.add_argument("--check", action="store_true",
                           help="also differentiate the fully expanded loss (small problems) and say whether "
                                "the two agree to the engine's accuracy (exit status 1 if not)")
        p.set_defaults(run=f"cell:cmd_{name}")


def _sheets_commands(sub) -> None:
    """Register the sheet commands on the CLI's subparsers (light: see :mod:`grukit.codegen.sheets.options`)."""

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
    p.add_argument("--sequence", type=at_least(0), default=0, metavar="B",
                   help="for a batch: the sequence the sheet works (from 0; default 0)")
    p.add_argument("--gallery", metavar="DOCS",
                   help="regenerate DOCS/sheets/ and DOCS/gallery.md from DOCS/examples/*.yaml")
    p.set_defaults(run="sheets:cmd_sheet")

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
    p.set_defaults(run="sheets:cmd_problem")


def _kernels_commands(sub) -> None:
    p = sub.add_parser("codegen", help="render the Numba kernels of the presets into generated/",
                       description="Render one kernel module per convention and dtype from the stage list and "
                                   "the backward records, through codegen/templates/kernel.py.j2.")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--convention", help="one preset (default: all)")
    which.add_argument("--all", action="store_true", help="every preset (the default)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="regenerate in memory; exit 1 with a unified diff if any file differs")
    mode.add_argument("--update", action="store_true", help="rewrite the files that differ (the default)")
    p.add_argument("--output", help="folder to write or check (default: the package's generated/)")
    p.set_defaults(run="kernels:cmd_codegen")

    p = sub.add_parser("bench", help="time the kernels against PyTorch, ONNX Runtime and NumPy",
                       description="Time the generated kernels against PyTorch (nn.GRU), ONNX Runtime (GRU) and "
                                   "the NumPy engine in one process, in interleaved rounds, float32 and float64; "
                                   "write docs/benchmarks.md and its plot.")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.add_argument("--quick", action="store_true",
                   help="two small sizes, few rounds (a smoke test; writes no report unless --output)")
    p.add_argument("--output", help="the Markdown report to write, with its .json and .png beside it "
                                    "(default: docs/benchmarks.md; '-' for none)")
    p.add_argument("--no-plot", action="store_true", help="skip the plot (matplotlib)")
    p.add_argument("--render", metavar="JSON", help="rewrite the report from a saved run's JSON (no timing)")
    p.set_defaults(run="kernels:cmd_bench")

    p = sub.add_parser("docs", help="rewrite docs/conventions.md from the preset registry",
                       description="Rewrite docs/conventions.md (the conventions page) from the preset registry.")
    p.add_argument("--check", action="store_true", help="exit 1 with a diff if the file is stale")
    p.add_argument("--output", help="where to write (default: the repository's docs/conventions.md)")
    p.set_defaults(run="kernels:cmd_docs")


def _audit_commands(sub) -> None:
    p = sub.add_parser("verify", help="check every number a worked example claims, and diagnose the wrong ones "
                                      "(a folder: grade a class, one table)",
                       description="Check a claims file (problem + the numbers a worked example prints) number by "
                                   "number: ok, rounding, propagated or wrong, and what explains each wrong one. "
                                   "Exit status 1 if any claim is wrong. Given a folder, grade every claims file in "
                                   "it (a class's submissions), in parallel, each bounded in time and memory, and "
                                   "write one table as OUTPUT.csv, OUTPUT.md and OUTPUT.json; exit status the worst "
                                   "row's (2: a file could not be graded).")
    p.add_argument("claims", help="claims YAML file, or a folder of them")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--problem", help="with a folder: the problem file every submission is checked against "
                                     "(default: the problem each one names)")
    p.add_argument("-o", "--output", metavar="OUTPUT", help="with a folder: the table's files, OUTPUT.csv, OUTPUT.md "
                                                            "and OUTPUT.json (default: grades)")
    p.add_argument("--jobs", type=at_least(1), help="with a folder: files graded at once (default: the CPUs)")
    p.add_argument("--timeout", type=at_least(1), default=60, metavar="SECONDS",
                   help="with a folder: the time one file may take (default 60)")
    p.add_argument("--memory", type=at_least(64), default=2048, metavar="MIB",
                   help="with a folder: the memory one file may take beyond grukit's own, in MiB (default 2048)")
    p.set_defaults(run="audit:cmd_verify")

    p = sub.add_parser("names", help="the names a claims file may use for a problem's numbers, with shapes")
    p.add_argument("file", help="problem or claims YAML file")
    p.add_argument("--json", action="store_true", help="one JSON list on stdout")
    p.set_defaults(run="audit:cmd_names")

    p = sub.add_parser("identify", help="rank every convention (and misreading) of the weights by how well it "
                                        "reproduces observed outputs")
    p.add_argument("file", help="problem file with observed: {h: ...} or {h_last: ...}, or a claims file")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--top", type=at_least(1), default=10, help="how many readings to list (default 10)")
    p.set_defaults(run="audit:cmd_identify")

    p = sub.add_parser("compare", help="prove two conventions equal (maybe under a reparameterization) or give "
                                       "a counterexample")
    p.add_argument("a", help="a preset name or a convention .yaml file")
    p.add_argument("b", help="a preset name or a convention .yaml file")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--write", metavar="DIR", help="write the counterexample's two problems as DIR/a.yaml, DIR/b.yaml")
    p.set_defaults(run="audit:cmd_compare")

    p = sub.add_parser("convert", help="convert a model file to another framework's (.pt, .safetensors, .onnx, "
                                       ".weights.h5, .keras), or weights between conventions (.npz)",
                       description="IN a model file (.onnx, .pt, .pth, .safetensors, .weights.h5, .keras) or a "
                                   "problem file, OUT a model file: the same network in OUT's framework, exactly, "
                                   "or one line saying why it has no exact form there. With --from and --to: one "
                                   "cell's .npz weights from one convention to another.")
    p.add_argument("--from", dest="source", help="for .npz: the weights' convention (preset or .yaml)")
    p.add_argument("--to", dest="target", help="for .npz: the convention to write (preset or .yaml)")
    p.add_argument("input", help="a model or problem file; or, with --from/--to, an .npz (the framework's arrays, "
                                 "or one array per parameter key)")
    p.add_argument("output", help="a model file (.pt, .pth, .safetensors, .onnx, .weights.h5, .keras); or .npz")
    p.set_defaults(run="audit:cmd_convert")

    p = sub.add_parser("diff", help="do two model files (or a model and a problem file) compute the same GRU?",
                       description="Run both networks on random and adversarial inputs; where they differ, print "
                                   "the largest difference, a counterexample and the convention axis that explains "
                                   "it, with the fix. Exit status 1 if they differ, 0 if not, 2 on bad input.")
    p.add_argument("a", help="a model file (.onnx, .pt, .pth, .safetensors, .weights.h5, .keras) or problem file")
    p.add_argument("b", help="a model file or problem file")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(run="models:cmd_diff")

def _web_commands(sub) -> None:
    p = sub.add_parser("serve", help="a local web page: check a hand calculation entry by entry, compare conventions",
                       description="Start a local web page where a student chooses an exercise, types the numbers "
                                   "of a hand calculation and sees each one judged (ok / rounding / propagated / "
                                   "wrong, diagnosed), and where two conventions are compared. Needs the web extra "
                                   "(pip install 'grukit[web]').")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=at_least(1), default=8000, help="the port (default 8000)")
    p.set_defaults(run="web:cmd_serve")

"""The ``grukit`` command line.

Every subcommand reads a problem (or a convention) and prints; bad input ends in one line on
stderr naming the file and field, exit status 2, and no traceback. Building the parser imports
nothing heavy, so ``grukit --help``, ``--version`` and ``grukit conventions`` start as fast as NumPy
does: each command imports SymPy, mpmath or Jinja itself when it runs.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from grukit import __version__
from grukit.codegen.text_output import STEP_KEYS, format_row
from grukit.derive.errors import GrukitError

ENGINE_CHOICES = ("exact", "numpy")
""":data:`grukit.derive.evaluate.ENGINES`, written out so that the parser needs no mpmath (a test
checks that the two agree)."""



# --- conventions ------------------------------------------------------------------------------

def cmd_conventions(args) -> int:
    if args.name is None:
        print_presets()
        return 0
    from grukit.derive.problem import named_convention

    conv = named_convention(args.name, "conventions")
    if args.latex:
        print_latex(conv)
    else:
        print_convention(conv)
    return 0


def print_presets() -> None:
    """One line per preset: the registry is plain data, so this needs no SymPy."""
    from grukit.derive.presets import PRESETS

    rows = [("name", "update rule", "reset", "biases", "gate act.", "orient.", "description")]
    for c in PRESETS.values():
        rows.append((c.name, c.update_rule, c.reset, c.biases, c.gate_activation, c.orientation, c.description))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(f"{cell:<{w}}" for cell, w in zip(r, widths)) + "  " + r[-1])
    print("\n`grukit conventions NAME` shows one convention's equations (NAME may be a convention .yaml "
          "file); add --latex for LaTeX.")


def print_latex(conv) -> None:
    from grukit.codegen.latex import compact_equations
    from grukit.codegen.render import render
    from grukit.derive.equations import cell_equations

    sys.stdout.write(render("equations.tex.j2", name=conv.name, description=conv.description,
                            source=conv.source, equations=compact_equations(cell_equations(conv))))


def print_convention(conv) -> None:
    from grukit.derive.equations import cell_equations

    print(f"{conv.name}: {conv.description}\nsource: {conv.source}\n")
    for axis, value in conv.axes().items():
        print(f"  {axis:<21} {value}")
    print("\nstages of one step (per hidden unit; W.v products follow the orientation):")
    for s in cell_equations(conv).stages:
        if hasattr(s, "products"):
            terms = [f"{conv.key(p.param)}.[{', '.join(p.operands)}]" for p in s.products]
            terms += [conv.key(b) for b in s.biases]
            print(f"  {s.target:<6} = {' + '.join(terms)}")
        else:
            print(f"  {s.target:<6} = {s.expr}")


# --- forward and grad -------------------------------------------------------------------------

def cmd_forward(args) -> int:
    from grukit.derive.layer_problem import LayerProblem, load_any
    from grukit.derive.solve import as_floats, solve

    problem = load_any(args.problem)
    if isinstance(problem, LayerProblem):  # batches, directions, layers, lengths, model files
        from grukit.codegen.layer_cli import forward_layers

        return forward_layers(problem, args)
    sol = solve(problem, args.engine)
    if args.json:
        steps = [{key: as_floats(tr.values[name]) for key, name in STEP_KEYS} for tr in sol.traces]
        states = [as_floats(tr.values["h"]) for tr in sol.traces]  # one sequence, one layer: B = 1
        print(json.dumps({"convention": problem.convention.name, "steps": steps,
                          "outputs": [states], "h_n": [[states[-1]]]}))
        return 0
    print(f"{problem.path}: convention {problem.convention.name}, T={problem.steps}, "
          f"D={problem.input_size}, H={problem.hidden_size}, engine {args.engine}")
    for t, tr in enumerate(sol.traces, start=1):
        print(f"t = {t}")
        for key, name in STEP_KEYS:
            print(f"  {key:<10} {format_row(tr.values[name])}")
    return 0


def cmd_grad(args) -> int:
    """Exit status 0, or 1 when ``--check`` finds a difference beyond the engine's tolerance."""
    from grukit.derive.layer_problem import LayerProblem, load_any
    from grukit.derive.solve import as_floats, solve

    problem = load_any(args.problem)
    if isinstance(problem, LayerProblem):
        from grukit.codegen.layer_cli import grad_layers

        return grad_layers(problem, args)
    if args.check:  # refuse a problem too large for the expanded form before any work
        from grukit.derive.explicit import check_size

        check_size(problem.input_size, problem.hidden_size, problem.steps)
    sol = solve(problem, args.engine, gradients=True)
    g = sol.gradient
    grads = {name: as_floats(v) for name, v in sol.named_gradients().items()}
    check = None
    if args.check:
        from grukit.derive.explicit import agreement, problem_gradient

        check = agreement(sol, *problem_gradient(problem))
    status = 0 if check is None or check.agrees else 1
    if args.json:
        out = {"loss": float(g.loss), "grads": grads, "inputs": as_floats(g.inputs), "h0": as_floats(g.h0)}
        if check is not None:
            out["check"] = {"max_difference": check.max_difference, "by_name": check.by_name,
                            "relative_difference": check.relative, "tolerance": check.tolerance,
                            "agrees": check.agrees}
        print(json.dumps(out))
        return status
    print(f"{problem.path}: convention {problem.convention.name}, loss {problem.loss.kind} = {float(g.loss):.10g}")
    for name, value in list(grads.items()) + [("inputs", as_floats(g.inputs)), ("h0", as_floats(g.h0))]:
        arr = np.asarray(value)
        print(f"dL/d{name} {arr.shape}:")
        for row in np.atleast_2d(arr):
            print("   " + format_row(row, 8))
    if check is not None:
        print(check_line(check, sol.engine.accuracy))
    return status


def check_line(check, accuracy: str) -> str:
    """What ``--check`` found, in words: agreement to the engine's accuracy, or clearly not."""
    numbers = (f"max difference {check.max_difference:.2g} (relative {check.relative:.2g}, "
               f"tolerance {check.tolerance:.0e})")
    if check.agrees:
        return f"check: agrees with the derivative of the fully expanded loss to {accuracy}: {numbers}"
    return (f"check: DOES NOT AGREE with the derivative of the fully expanded loss: {numbers}, largest in "
            f"dL/d{check.worst}; expected agreement to {accuracy}")


# --- the parser ------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grukit", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"grukit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("conventions", help="list the built-in conventions or show one's equations")
    p.add_argument("name", nargs="?", help="a preset name or a convention .yaml file")
    p.add_argument("--latex", action="store_true", help="print the equations as LaTeX")
    p.set_defaults(func=cmd_conventions)

    for name, func, text in (("forward", cmd_forward, "evaluate a problem's forward pass"),
                             ("grad", cmd_grad, "every gradient of a problem's loss (BPTT)")):
        p = sub.add_parser(name, help=text)
        p.add_argument("problem", help="problem YAML file")
        p.add_argument("--engine", choices=ENGINE_CHOICES + ("numba",), default="exact")
        p.add_argument("--json", action="store_true", help="one JSON object on stdout")
        if name == "grad":
            p.add_argument("--check", action="store_true",
                           help="also differentiate the fully expanded loss (small problems) and say whether "
                                "the two agree to the engine's accuracy (exit status 1 if not)")
        p.set_defaults(func=func)

    from grukit.codegen import audit_cli, kernel_cli, sheet_cli

    sheet_cli.add_commands(sub)
    kernel_cli.add_commands(sub)
    audit_cli.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except GrukitError as exc:
        print(f"grukit: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())

"""``grukit conventions NAME``, ``forward`` and ``grad``: one convention's equations, a problem's forward
pass and every gradient, in the engine the user picks (``exact``, ``numpy`` or the generated
kernels, ``numba``); layer problems are printed by :mod:`grukit.codegen.cli.layers`."""
from __future__ import annotations

import sys

import numpy as np

from grukit.codegen.cli.layers import forward_layers, grad_layers
from grukit.codegen.cli.text import STEP_KEYS, format_row, print_json
from grukit.codegen.latex import compact_equations
from grukit.codegen.render import render
from grukit.derive.cell.equations import cell_equations
from grukit.derive.check.explicit import agreement, check_size, problem_gradient
from grukit.derive.files.convention_file import named_convention
from grukit.derive.files.layer_file import load_any
from grukit.derive.layers.problem import LayerProblem
from grukit.derive.numeric.solve import as_floats, solve

# --- one convention's equations ---------------------------------------------------------------

def show_convention(args) -> int:
    """``grukit conventions NAME [--latex]``: one convention's axes and stages, or its equations in LaTeX."""
    conv = named_convention(args.name, "conventions")
    if args.latex:
        print_latex(conv)
    else:
        print_convention(conv)
    return 0


def print_latex(conv) -> None:
    sys.stdout.write(render("equations.tex.j2", name=conv.name, description=conv.description,
                            source=conv.source, equations=compact_equations(cell_equations(conv))))


def print_convention(conv) -> None:
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
    problem = load_any(args.problem)
    if isinstance(problem, LayerProblem):  # batches, directions, layers, lengths, model files

        return forward_layers(problem, args)
    sol = solve(problem, args.engine)
    if args.json:
        steps = [{key: as_floats(tr.values[name]) for key, name in STEP_KEYS if name in tr.values}
                 for tr in sol.traces]  # a cell without a reset gate has no r
        states = [as_floats(tr.values["h"]) for tr in sol.traces]  # one sequence, one layer: B = 1
        print_json({"convention": problem.convention.name, "steps": steps,
                          "outputs": [states], "h_n": [[states[-1]]]}, problem.path)
        return 0
    print(f"{problem.path}: convention {problem.convention.name}, T={problem.steps}, "
          f"D={problem.input_size}, H={problem.hidden_size}, engine {args.engine}")
    for t, tr in enumerate(sol.traces, start=1):
        print(f"t = {t}")
        for key, name in STEP_KEYS:
            if name in tr.values:
                print(f"  {key:<10} {format_row(tr.values[name])}")
    return 0


def cmd_grad(args) -> int:
    """Exit status 0, or 1 when ``--check`` finds a difference beyond the engine's tolerance."""

    problem = load_any(args.problem)
    if isinstance(problem, LayerProblem):
        return grad_layers(problem, args)
    if args.check:  # refuse a problem too large for the expanded form before any work

        check_size(problem.input_size, problem.hidden_size, problem.steps)
    sol = solve(problem, args.engine, gradients=True)
    g = sol.gradient
    grads = {name: as_floats(v) for name, v in sol.named_gradients().items()}
    check = None
    if args.check:
        check = agreement(sol, *problem_gradient(problem))
    status = 0 if check is None or check.agrees else 1
    if args.json:
        out = {"loss": float(g.loss), "grads": grads, "inputs": as_floats(g.inputs), "h0": as_floats(g.h0)}
        if check is not None:
            out["check"] = {"max_difference": check.max_difference, "by_name": check.by_name,
                            "relative_difference": check.relative, "tolerance": check.tolerance,
                            "agrees": check.agrees}
        print_json(out, problem.path)
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

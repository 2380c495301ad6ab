"""One cell of a layer problem as a plain single-cell problem: what a worked sheet of a multi-layer,
bidirectional, batched or masked problem works (``grukit sheet PROBLEM --cell 1,reverse --sequence 2``)."""
from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np

from grukit.derive.cell.losses import LossHead
from grukit.derive.errors import GrukitError
from grukit.derive.layers.problem import LayerProblem, solve_layers
from grukit.derive.numeric.problem import Problem


def _fraction(value) -> Fraction:
    """An engine number (mpf, float, Fraction) as the exact Fraction it is."""

    if isinstance(value, Fraction):
        return value
    if isinstance(value, mpmath.mpf):
        sign, man, exp, _ = value._mpf_
        if not man:
            return Fraction(0)
        return (-1) ** sign * Fraction(int(man)) * (Fraction(2) ** int(exp))
    return Fraction(float(value))


def cell_problem(problem: LayerProblem, cell: int, sequence: int = 0) -> Problem:
    """One cell of a layer problem, for one sequence, as a plain problem a sheet works.

    The cell sees its own inputs (the layer below's outputs), its own h0, and only the steps that
    sequence has, in the order the cell processes them (a masked or padded step keeps the state, so
    it is no step of the cell). Its loss is ``weighted_sum`` with G_s = dL/dh_s from outside the
    cell's recurrence (the outputs and h_n, through the layers above, the merge and the padding
    rules; what a padded step after s receives is added to s, whose state it holds): every gradient
    of this cell -- its parameters' share from this sequence, its inputs, its h0 -- is the network
    loss's, while the sheet's loss value is that linear stand-in, not the network's loss."""

    if not 0 <= sequence < problem.batch:
        raise GrukitError(f"{problem.path}: --sequence {sequence}: the batch has sequences 0..{problem.batch - 1}")
    sol = solve_layers(problem, "exact", gradients=problem.loss is not None)
    run = sol.run
    cr = run.cells[cell]
    valid = problem.valid
    steps = [t for t in cr.order if valid is None or valid[sequence, t]]
    if not steps:
        raise GrukitError(f"{problem.path}: sequence {sequence} has no step: there is nothing to work")
    conv = cr.cell.convention
    inputs = np.array([[_fraction(v) for v in cr.inputs[t][:, sequence]] for t in steps], dtype=object)
    h0 = np.array([_fraction(v) for v in cr.h0[:, sequence]], dtype=object)
    exact = np.vectorize(_fraction, otypes=[object])
    params = {p: exact(np.asarray(v, dtype=object)) for p, v in cr.cell.params.items()}
    label = problem.cell_label(cell)
    layers = len(problem.network.layers)
    description = (f"{problem.description + ' ' if problem.description else ''}This sheet works {label}"
                   f"{f', sequence {sequence} of {problem.batch},' if problem.batched else ''} of {problem.path.name} "
                   f"(a {problem.network.framework} network of {layers} layer{'s' if layers > 1 else ''}).")
    if len(steps) != len(cr.order) or cr.cell.direction == "reverse":
        description += (f" Its steps are the input positions {', '.join(str(t + 1) for t in steps)}, in the order "
                        f"the cell takes them" + (" (the others are padded or masked)." if len(steps) != len(cr.order)
                                                  else "."))
    out = Problem(problem.path, conv, inputs, h0, params, title=problem.title or f"GRU cell: {label}",
                  description=description, layout=None)
    if sol.gradient is not None:
        seeds = sol.gradient.cell_seeds[cell]
        G, s = [], -1
        rows: dict[int, list] = {}
        early = False
        for t in cr.order:  # a padded step's seed goes to the step whose state it holds
            if valid is None or valid[sequence, t]:
                s += 1
            if s >= 0:
                rows.setdefault(s, []).append(seeds[t][:, sequence])
            elif any(v != 0 for v in seeds[t][:, sequence]):
                early = True
        for s in range(len(steps)):
            total = rows[s][0]
            for extra in rows[s][1:]:
                total = total + extra
            G.append([_fraction(v) for v in total])
        out.loss = LossHead("weighted_sum", tuple(range(len(steps))), tuple(np.array(g, dtype=object) for g in G),
                            stand_in="network_after_h0" if early else "network")
    return out

"""The sheet's closing parts: the BPTT sums, the summary table, one update, the headline results,
and the question sheet."""
from __future__ import annotations

import numpy as np

from grukit.codegen.latex import gradient_tex, parameter_gradient_tex
from grukit.codegen.sheets.blocks import Part, Section, TableBlock, display, paragraph, sum_rows, table_chunk, text
from grukit.codegen.sheets.writer import SheetWriter
from grukit.derive.numeric.solve import learning_rate


def gradient_rows(w: SheetWriter) -> list[tuple[str, object, np.ndarray]]:
    """(name tex, key in the solution, gradient) of every parameter, the output layer, each input, h0."""
    g = w.sol.gradient
    rows = [(w.ptex(p), p, g.params[p]) for p in w.conv.parameters()]
    rows += [(name[0] + "_{o}", name, g.output[name]) for name in ("W_o", "b_o") if name in g.output]
    rows += [(w.q("x", t + 1), ("x", t), g.inputs[t]) for t in range(w.T)]
    rows.append((w.q("h_prev", 1), "h0", g.h0))
    return rows


def results(w: SheetWriter) -> list:
    """The headline numbers: each state, the loss and every gradient."""
    lines = [[w.q("h", t + 1), w.vec(tr.values["h"])] for t, tr in enumerate(w.sol.traces)]
    if w.head is not None:
        lines.append(["L", w.num(w.sol.gradient.head.loss)])
        if not w.forward_only:
            lines += [[gradient_tex(name), w.mat(values)] for name, _, values in gradient_rows(w)]
    return lines


def bptt_part(w: SheetWriter) -> Part:
    g = w.sol.gradient
    blocks = []
    for param in w.conv.parameters():
        lhs, rhs = parameter_gradient_tex(w.rec, param, "t")
        contribs = w.elided(range(w.T), lambda t: w.mat(g.steps[t].params[param]))
        per_step = w.elided(range(w.T), lambda t: r"\left." + gradient_tex(w.ptex(param)) + r"\right|_{t=%d}" % (t + 1))
        shape = np.asarray(g.params[param], dtype=object).shape
        cols = shape[1] if len(shape) == 2 else (1 if w.column else shape[0])
        blocks.append(display([[lhs, rhs]] + sum_rows(per_step, 4) + sum_rows(contribs, w.per_line(cols))
                              + [["", w.mat(g.params[param])]]))
    intro = [paragraph("Each weight’s gradient is the sum of its contributions from every time step.")]
    if not w.all_worked:
        intro.append(paragraph("The contributions of the steps not worked in full are written ",
                               ("math", r"\cdots"), "; every sum includes them."))
    return Part("Back-propagation through time: the sums", intro, [Section([], blocks, [])])


def summary_part(w: SheetWriter) -> Part:
    """Every gradient (each a sum over every step); the inputs' gradients of the worked steps, a row
    of dots for each run of the others."""
    header = [text("gradient"), text("shape"), text("value"), text("largest ", ("math", r"\lvert \text{entry} \rvert"))]
    rows, dots = [], [text(("math", r"\vdots"))] * 4
    for name, key, values in gradient_rows(w):
        if isinstance(key, tuple) and key[1] not in w.worked:  # an input of a step not worked in full
            if rows[-1] is not dots:
                rows.append(dots)
            continue
        rows.append([text(("math", r"\partial L / \partial " + name)), text(("math", w.shape(values))),
                     text(("math", w.mat(values))), text(("math", w.num(w.sol.largest[key])))])
    table = TableBlock(header, rows, "lccc", table_chunk(len(rows), 7))
    return Part("Summary of the gradients", [], [Section([], [table], [])])


def update_part(w: SheetWriter) -> Part:
    lr_tok = w.num(learning_rate(w.p))
    given = {p: w.p.params[p] for p in w.conv.parameters()} | {"W_o": w.head.W_o, "b_o": w.head.b_o}
    blocks = []
    for name, key, grad in gradient_rows(w):
        if key not in w.sol.update:
            continue
        blocks.append(display([["{" + name + r"}^{\text{new}}", f"{name} - \\eta\\, {gradient_tex(name)}"],
                               ["", f"{w.mat(given[key])} - {w.times(lr_tok, grad)} = {w.mat(w.sol.update[key])}"]]))
    note = ("the problem’s learning rate" if w.p.learning_rate is not None
            else "a learning rate chosen for illustration (the problem gives none)")
    intro = [paragraph("One step of gradient descent with ", ("math", r"\eta = " + lr_tok),
                       f", {note}: every parameter moves against its gradient, all at once.")]
    return Part("One gradient-descent update", intro, [Section([], blocks, [])])


def questions_part(w: SheetWriter) -> Part:
    def listing(texs: list[str]) -> list:
        segs = []
        for k, tex in enumerate(texs):
            segs += [", " if k else "", ("math", tex)]
        return segs

    forward = [w.q(s.target, "t") for s in w.eqs.stages]
    steps = ("For each time step ", ("math", r"t = 1, \dots, %d" % w.T)) if w.T > 1 else \
        ("For the time step ", ("math", "t = 1"))
    items = [text(*steps, " compute, stage by stage, ", *listing(forward),
                  ", writing every matrix-vector product out entry by entry.")]
    if w.head is not None:
        items.append(text("Compute the loss ", ("math", "L"), "."))
        if not w.forward_only:
            names = [w.ptex(p) for p in w.conv.parameters()]
            names += [n for n, v in (("W_{o}", w.head.W_o), ("b_{o}", w.head.b_o)) if v is not None]
            items.append(text("By back-propagation through time, compute the gradients ",
                              *listing([r"\partial L / \partial " + n for n in names]), ", then ",
                              ("math", r"\partial L / \partial " + w.q("x", "t")), " for every step and ",
                              ("math", r"\partial L / \partial " + w.q("h_prev", 1)), "."))
            items.append(text("Apply one gradient-descent update with learning rate ",
                              ("math", r"\eta = " + w.num(learning_rate(w.p))), "."))
    items.append(text(f"Give every result to {w.decimals} decimals."))
    return Part("Questions", [], [], items)

"""The sheet's backward pass through the GRU: the backward records of every step, with numbers.

Every formula is printed from a record of :func:`grukit.derive.cell.records.backward_records` and every
number is read from the solution's :class:`~grukit.derive.numeric.bptt.StepGradient` (its paths,
contributions and transposed products); nothing here computes.
"""
from __future__ import annotations

from grukit.codegen.latex import (
    backward_equations,
    gradient_tex,
    local_tex,
    operand_tex,
    outer_tex,
    pointwise_tex,
    stage_equations,
    transposed_product_tex,
)
from grukit.codegen.sheets.blocks import Group, Part, Section, display, paragraph, partial, sum_rows, text
from grukit.codegen.sheets.numbers import NumberPrinter
from grukit.codegen.sheets.writer import SheetWriter
from grukit.derive.cell.records import BiasRecord, LocalRecord, TransposedRecord, WeightRecord
from grukit.derive.numeric.evaluate import column_matrix


def backward_part(w: SheetWriter) -> Part:
    sections = []
    for t, skipped in w.worked_and_gaps(reverse=True):
        if skipped:
            sections.append(w.gap_section(skipped, w.covers_every_step()))
        else:
            sections.append(_step(w, t))
            w.progress(f"backward pass, step {t + 1}")
    intro = [paragraph(
        "Back through the GRU, one time step at a time from the last. Within a step the stages are "
        "taken in reverse order; each local derivative comes from sympy.diff of the stage’s formula, "
        "each linear stage follows the index rules (gradient of a weight = adjoint times operand "
        "transposed; gradient of an operand = weight transposed times adjoint).")]
    if w.T > 1:
        intro.append(paragraph(
            "A weight gets a contribution from every time step, written ",
            ("math", r"\left." + gradient_tex("W") + r"\right|_{t}"),
            "; the contributions are summed after the last step back (back-propagation through time)."))
    return Part("Backward pass through the GRU", intro, sections)


class _Step:
    """The labels of one step's backward pass: a contribution is named by the stage it comes back
    through when its adjoint has several paths."""

    def __init__(self, w: SheetWriter, t: int):
        self.w, self.t, self.T1 = w, t, t + 1
        self.grad = w.sol.gradient.steps[t]
        self.formulas = dict(backward_equations(w.rec, self.T1))

    def paths(self, name: str) -> int:
        return len(self.w.rec.sum_of(name).paths)

    def label(self, name: str, via: str) -> str:
        d = self.w.d(name, self.T1)
        return d if self.paths(name) <= 1 else partial(d, self.w.q(via, self.T1))

    def step_label(self, tex: str) -> str:
        if self.w.T > 1:
            return r"\left." + gradient_tex(tex) + r"\right|_{t=%d}" % self.T1
        return gradient_tex(tex)

    def adjoint_sum(self, name: str):
        w, T1 = self.w, self.T1
        lhs = w.d(name, T1)
        parts = self.grad.paths[name]
        lines = [[lhs, " + ".join(self.label(name, p.via) for p, _ in parts)]]
        if lhs in self.formulas:
            lines.append(["", self.formulas[lhs]])
        rows = sum_rows([w.vec(v) for _, v in parts], w.per_line(w.width(name)))
        w.attach(rows, w.vec(self.grad.adjoints[name]))
        return display(lines + rows, text("All paths into ", ("math", w.q(name, T1)), " added up:"))


def _step(w: SheetWriter, t: int) -> Section:
    s = _Step(w, t)
    T1 = s.T1
    groups = [_seed(w, s)]
    stage_eqs = dict(stage_equations(w.eqs, T1))
    for stage in reversed(w.eqs.stages):
        target_tex = w.q(stage.target, T1)
        blocks = []
        if stage.target != "h" and s.paths(stage.target) > 1:
            blocks.append(s.adjoint_sum(stage.target))
        for r in w.rec.stage_records(stage.target):
            blocks += _record_blocks(w, s, r)
        groups.append(Group(text("Back through ", ("math", f"{target_tex} = {stage_eqs[target_tex]}")), blocks))
    blocks = [s.adjoint_sum(name) for name in ("x", "h_prev") if s.paths(name) > 1]
    if t == 0:
        blocks.append(paragraph("This is the gradient with respect to the initial state: ",
                                ("math", gradient_tex(w.q("h_prev", 1)) + " = " + w.d("h_prev", 1)), "."))
    if blocks:
        groups.append(Group(text("Gradients of the input ", ("math", w.q("x", T1)),
                                 " and the previous state ", ("math", w.q("h_prev", T1))), blocks))
    return Section(text(f"Time step {T1}"), [], groups)


def _seed(w: SheetWriter, s: _Step) -> Group:
    """Where dL/dh_t comes from: the loss at this step and the step after."""
    T1 = s.T1
    seeds = w.sol.gradient.seeds[s.t]
    d_h = w.vec(s.grad.adjoints["h"])
    if seeds:
        names = {"loss": "L", "next step": r"\text{step } %d" % (T1 + 1)}
        lines = [[w.d("h", T1), "=", " + ".join(partial(w.d("h", T1), names[k]) for k, _ in seeds)]]
        if len(seeds) > 1:
            lines += sum_rows([w.vec(v) for _, v in seeds], w.per_line(w.width("h")))
        w.attach(lines, d_h)
        source = "the loss and from the next step" if len(seeds) > 1 else (
            "the loss" if seeds[0][0] == "loss" else "the next step")
        lead = text("The state ", ("math", w.q("h", T1)), " gets its gradient from " + source + ":")
    else:
        lines = [[w.d("h", T1), d_h]]
        lead = text("No loss term reaches ", ("math", w.q("h", T1)), ":")
    return Group(text("Into the state ", ("math", w.q("h", T1))), [display(lines, lead)])


def _record_blocks(w: SheetWriter, s: _Step, r) -> list:
    T1, grad = s.T1, s.grad
    if isinstance(r, LocalRecord):
        names = sorted(x.name for x in r.contribution.free_symbols)
        inline = {n: w.vec(grad.adjoints[r.target] if n.startswith("d_") else w.shown(s.t, n)) for n in names}
        lines = [[s.label(r.operand, r.target), "=", local_tex(w.conv, r, T1)[1]]]
        numbers = pointwise_tex(w.conv, r.contribution, T1, inline, printer=NumberPrinter)
        if r.reduce:
            lines.append(["", "=", r"\sum_j \left[%s\right]_j" % numbers])
            lines.append(["", "=", w.sum_terms(grad.units[r].ravel())])  # the units' terms, summed
        else:
            lines.append(["", "=", numbers])
        w.attach(lines, w.vec(grad.contributions[r]))
        return [display(lines)]
    if isinstance(r, WeightRecord):
        v_tex = operand_tex(w.conv, r.operands, T1)
        return [display([[s.step_label(w.ptex(r.param)), outer_tex(w.conv, w.d(r.target, T1), v_tex)],
                         ["", w.outer(grad.adjoints[r.target], w.shown_operand(s.t, r.operands))
                          + " = " + w.mat(grad.params[r.param])]])]
    if isinstance(r, BiasRecord):
        return [display([[s.step_label(w.ptex(r.param)), w.d(r.target, T1) + " = " + w.vec(grad.params[r.param])]])]
    assert isinstance(r, TransposedRecord)
    if r.operand != r.operands[0]:
        return []  # a stacked operand's product is written once, with its split (below)
    expr = transposed_product_tex(w.conv, w.ptex(r.param), w.d(r.target, T1))
    M_shown = column_matrix(w.eqs, w.p.params[r.param])
    values_k = grad.products[(r.target, r.index)]
    d_target = grad.adjoints[r.target]
    if len(r.operands) == 1:
        return [w.product(expr, M_shown.T, d_target, values_k, label=s.label(r.operand, r.target))]
    split = [[s.label(n, r.target), w.vec(_contribution(w, s, r, n))] for n in r.operands]
    return [w.product(expr, M_shown.T, d_target, values_k), display(split, text("Split by operand:"))]


def _contribution(w: SheetWriter, s: _Step, r: TransposedRecord, operand: str):
    """The value of the transposed-product record of ``r``'s product that feeds ``operand``."""
    return next(v for rec, v in s.grad.contributions.items()
                if isinstance(rec, TransposedRecord)
                and (rec.target, rec.index, rec.operand) == (r.target, r.index, operand))

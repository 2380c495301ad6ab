"""The sheet's loss: the output layer, the loss terms, and the first step back (into the state)."""
from __future__ import annotations

from grukit.codegen.latex import gradient_tex, outer_tex, scalar_tex, symbol_base, transposed_product_tex
from grukit.codegen.sheets.blocks import Group, Part, Section, display, paragraph, partial, text
from grukit.codegen.sheets.numbers import NumberPrinter, join_sum
from grukit.codegen.sheets.writer import SheetWriter
from grukit.derive.cell.losses import loss_gradient, loss_term, softmax_probabilities


def _out_names(w: SheetWriter, t1: int) -> tuple[str, str]:
    """(vector, entry pattern) of the loss's input at step t1: the output o or the state itself."""
    if w.head.W_o is not None:
        return f"o_{{{t1}}}", f"o_{{{t1},{{k}}}}"
    st = symbol_base(w.conv.notation.state_tex)
    return w.q("h", t1), f"{st}_{{{t1},{{k}}}}"


def _target_label(w: SheetWriter) -> str:
    return "y" if w.head.kind != "weighted_sum" else "G"


def _symbol_names(w: SheetWriter, t1: int, outputs: int):
    """The loss term of one step and its symbols named as the sheet writes them."""
    expr, o_syms, y_syms = loss_term(w.head.kind, outputs)
    _, o_pat = _out_names(w, t1)
    names = {s: o_pat.replace("{k}", str(k + 1)) for k, s in enumerate(o_syms)}
    names.update({s: f"{_target_label(w)}_{{{t1},{k + 1}}}" for k, s in enumerate(y_syms)})
    return expr, o_syms, y_syms, names


def _number_names(w: SheetWriter, syms, values) -> dict:
    return {s: w.num(v) for s, v in zip(syms, values)}


def _loss_name(w: SheetWriter, i: int) -> str:
    return "L" if len(w.head.steps) == 1 else f"L_{{{w.head.steps[i] + 1}}}"


def _output_matrix(w: SheetWriter):
    """W_o as the matrix that multiplies a column vector (as given, exactly)."""
    return w.p.loss.W_o if w.column else w.p.loss.W_o.T


LOSS_STATEMENTS = {
    "softmax_cross_entropy": ("The loss is the cross-entropy ",
                              r"-{total}\sum_{{k}} {label}_{{{t},k}} "
                              r"\log \operatorname{{softmax}}\left({out}\right)_{{k}}",
                              " against the one-hot target{s} ", "{y}", ". "),
    "squared_error": ("The loss is the squared error ",
                      r"{total}\tfrac{{1}}{{2}} \left\lVert {out} - {y} \right\rVert^{{2}}", ". "),
    "weighted_sum": ("The loss is the weighted sum ", r"{total}{y} \cdot {out}",
                     " (the standard probe of a layer’s gradients). "),
    "final_mse": ("The loss is the mean squared error over the units ",
                  r"{total}\tfrac{{1}}{{{n}}} \left\lVert {out} - {y} \right\rVert^{{2}}", ". "),
    "final_squared_error": ("The loss is the squared error on the last step ",
                            r"\left\lVert {out} - {y} \right\rVert^{{2}}", ". "),
    "final_half_squared_error": ("The loss is the squared error on the last step ",
                                 r"\tfrac{{1}}{{2}} \left\lVert {out} - {y} \right\rVert^{{2}}", ". "),
}
"""Each loss head's sentence: prose, then its formula (math), then prose and math alternating."""

STAND_IN = ("The loss is the weighted sum ", r"{total}{y} \cdot {out}", " with ",
            r"{label}_{{t}} = \partial \mathcal{{L}} / \partial {h_t}",
            ", what the rest of the network (the layers above, the merge, the padding rules, the final state) "
            "sends back to this cell’s state, ", r"\mathcal{{L}}", " being the network’s loss: every gradient "
            "on this sheet is the network’s (this sequence’s share of the parameters’), while the loss value is "
            "this stand-in’s. ")
"""A cell of a network worked alone: its loss stands in for the network's (``LossHead.stand_in``)."""


def loss_statement(w: SheetWriter) -> list:
    """The problem statement's sentence about the loss, its formula typeset as math."""
    head, T = w.head, w.T
    steps = head.steps
    if len(steps) == 1:
        t, total = str(steps[0] + 1), ""
    elif len(steps) == T:
        t, total = "t", r"\sum_{t=1}^{%d} " % T
    else:
        t, total = "t", r"\sum_{t \in \{%s\}} " % ", ".join(str(s + 1) for s in steps)
    h = w.q("h", t)
    out = h if head.W_o is None else (f"W_{{o}} {h}" if w.column else f"{h} W_{{o}}")
    if head.b_o is not None:
        out += " + b_{o}"
    label = _target_label(w)
    fill = {"total": total, "t": t, "out": out, "label": label, "y": f"{label}_{{{t}}}",
            "n": head.outputs, "s": "s" if total else "", "h_t": w.q("h", "t")}
    parts = STAND_IN if head.stand_in else LOSS_STATEMENTS[head.kind]
    segs = []
    for k, part in enumerate(parts):
        filled = part.format(**fill)
        segs.append(("math", ("L = " if k == 1 else "") + filled) if k % 2 else filled)
    if head.stand_in == "network_after_h0":
        h0 = w.q("h_prev", 1)
        segs += ["(Masked steps before its first step hold ", ("math", h0), " itself; what they receive goes to ",
                 ("math", r"\partial \mathcal{L} / \partial " + h0), " directly and is not on this sheet.) "]
    return segs


def _worked_loss_steps(w: SheetWriter):
    """(index among the loss terms, its values, 1-based step) of each loss term the sheet works."""
    for i, s in enumerate(w.sol.gradient.head.steps):
        if s.step in w.worked:
            yield i, s, s.step + 1


def loss_part(w: SheetWriter) -> Part:
    values = w.sol.gradient.head
    head = w.head
    groups = []
    for i, s, T1 in _worked_loss_steps(w):
        blocks = []
        o_vec, _ = _out_names(w, T1)
        h = w.sol.traces[s.step].values["h"]
        if head.W_o is not None:
            expr = f"W_{{o}} {w.q('h', T1)}" if w.column else f"{w.q('h', T1)} W_{{o}}"
            blocks.append(w.product(expr, _output_matrix(w), h, s.output_product, segs=text(
                "The output layer ", ("math", o_vec + " = " + expr + (" + b_{o}" if head.b_o is not None else "")),
                ":")))
            if head.b_o is not None:
                blocks.append(display([[o_vec, join_sum([w.vec(s.output_product.result), w.vec(head.b_o)])
                                        + " = " + w.vec(s.output)]]))
        else:
            blocks.append(paragraph("There is no output layer: the loss reads the state ", ("math", o_vec), " itself."))
        expr, o_syms, y_syms, names = _symbol_names(w, T1, len(s.output))
        if s.probabilities is not None:
            lines = []
            for k, pk in enumerate(softmax_probabilities(len(s.output))):
                lines.append([r"\hat{y}_{%d,%d}" % (T1, k + 1), scalar_tex(pk, names, "")])
                lines.append(["", scalar_tex(pk, _number_names(w, o_syms, s.output), printer=NumberPrinter)
                              + " = " + w.num(s.probabilities[k])])
            blocks.append(display(lines, text("Softmax probabilities:")))
        num_names = _number_names(w, o_syms, s.output) | _number_names(w, y_syms, head.targets[i])
        blocks.append(display([[_loss_name(w, i), scalar_tex(expr, names, "")],
                               ["", scalar_tex(expr, num_names, printer=NumberPrinter)],
                               ["", w.num(s.term)]],
                              text("The loss term, with the target ",
                                   ("math", f"{_target_label(w)}_{{{T1}}} = " + w.vec(head.targets[i])), ":")))
        what = ", ".join(name for name, on in (("output layer", head.W_o is not None),
                                                ("softmax", s.probabilities is not None)) if on)
        what = (what + " and loss term") if what else "loss term"
        groups.append(Group(text(_step_prefix(w, T1) + what[0].upper() + what[1:]), blocks))
    if len(head.steps) > 1:
        by_step = {s.step: (i, s) for i, s in enumerate(values.steps)}
        names = w.elided(by_step, lambda t: _loss_name(w, by_step[t][0]))
        terms = w.elided(by_step, lambda t: w.num(by_step[t][1].term))
        groups.append(Group(text("Total loss"), [display(
            [["L", " + ".join(names)], ["", join_sum(terms)], ["", w.num(values.loss)]],
            text("The total loss sums the terms of every step:"))]))
    return Part("Loss", [], [Section([], [], groups)])


def _step_prefix(w: SheetWriter, T1: int) -> str:
    return f"Step {T1}: " if len(w.head.steps) > 1 else ""


def output_backward_part(w: SheetWriter) -> Part:
    head = w.head
    groups = []
    for i, s, T1 in _worked_loss_steps(w):
        o_vec, _ = _out_names(w, T1)
        _, o_syms, y_syms, names = _symbol_names(w, T1, len(s.output))
        num_names = _number_names(w, o_syms, s.output) | _number_names(w, y_syms, head.targets[i])
        lines = []
        L = _loss_name(w, i)
        for k, gk in enumerate(loss_gradient(head.kind, len(s.output))):
            lhs = r"\delta %s = \frac{\partial %s}{\partial %s}" % (names[o_syms[k]], L, names[o_syms[k]])
            lines.append([lhs, scalar_tex(gk, names, "")])
            lines.append(["", scalar_tex(gk, num_names, printer=NumberPrinter) + " = " + w.num(s.d_output[k])])
        blocks = [display(lines, text("The derivative of the loss term with respect to each entry of ",
                                      ("math", o_vec), " (by sympy.diff):"))]
        blocks.append(display([[r"\delta " + o_vec, w.vec(s.d_output)]]))
        if head.W_o is not None:
            h = w.sol.traces[s.step].values["h"]
            at = r"\right|_{t=%d}" % T1 if len(head.steps) > 1 else None
            gW = gradient_tex("W_{o}") if at is None else r"\left." + gradient_tex("W_{o}") + at
            gb = gradient_tex("b_{o}") if at is None else r"\left." + gradient_tex("b_{o}") + at
            blocks.append(display([[gW, outer_tex(w.conv, r"\delta " + o_vec, w.q("h", T1))],
                                   ["", w.outer(s.d_output, h) + " = " + w.mat(s.d_W_o)]],
                                  text("Output layer gradients:")))
            if head.b_o is not None:
                blocks.append(display([[gb, r"\delta " + o_vec + " = " + w.vec(s.d_output)]]))
            blocks.append(w.product(transposed_product_tex(w.conv, "W_{o}", r"\delta " + o_vec), _output_matrix(w).T,
                                    s.d_output, s.d_h_product, label=partial(w.d("h", T1), "L"),
                                    segs=text("The gradient flows into the GRU state:")))
        else:
            blocks.append(display([[partial(w.d("h", T1), "L"), r"\delta " + o_vec + " = " + w.vec(s.d_h)]],
                                  text("The loss reads the state directly, so it hands its gradient "
                                       "to the state unchanged:")))
        what = "loss term" + (" and output layer" if head.W_o is not None else "")
        groups.append(Group(text(_step_prefix(w, T1) + what[0].upper() + what[1:]), blocks))
    if len(head.steps) > 1 and head.W_o is not None:
        g = w.sol.gradient
        blocks = [display([[gradient_tex("W_{o}"), r"\sum_{t} \left." + gradient_tex("W_{o}") + r"\right|_{t}"],
                           ["", w.mat(g.output["W_o"])]], text("Summed over the steps that carry a loss term:"))]
        if head.b_o is not None:
            blocks.append(display([[gradient_tex("b_{o}"), r"\sum_{t} \left." + gradient_tex("b_{o}") + r"\right|_{t}"],
                                   ["", w.vec(g.output["b_o"])]]))
        groups.append(Group(text("Output layer, all steps"), blocks))
    intro = [paragraph("Notation: ", ("math", r"\delta v = \partial L / \partial v"),
                       " is the gradient of the loss with respect to a quantity ", ("math", "v"), ", and ",
                       ("math", partial(r"\delta v", "y")), " is the part of it that flows back through ",
                       ("math", "y"), ". The backward pass starts at the loss.")]
    return Part("Backward pass", intro, [Section(text("Loss"), [], groups)])

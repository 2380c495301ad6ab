"""The sheet's problem statement, data and forward pass (every stage of every worked step, with numbers)."""
from __future__ import annotations

import numpy as np

from grukit.codegen.latex import affine_terms, compact_equations, operand_tex, product_tex, stage_equations, written_tex
from grukit.codegen.render import plain_text
from grukit.codegen.sheets.blocks import (
    Group,
    Part,
    Section,
    TableBlock,
    display,
    paragraph,
    sum_rows,
    table_chunk,
    text,
)
from grukit.codegen.sheets.loss import loss_statement
from grukit.codegen.sheets.numbers import NumberPrinter
from grukit.codegen.sheets.writer import SheetWriter
from grukit.derive.cell.convention import Param
from grukit.derive.cell.equations import Affine
from grukit.derive.cell.layouts import LAYOUTS
from grukit.derive.numeric.evaluate import column_matrix
from grukit.derive.numeric.solve import learning_rate

DATA_LINE_ENTRIES = 12
"""About how many numbers (matrix columns side by side) one line of the data block holds."""


def header(w: SheetWriter) -> dict:
    """Title, problem statement, convention, equations and data: the template's context."""
    p, conv = w.p, w.conv
    D, H, T = p.input_size, p.hidden_size, p.steps
    statement = [
        f"A GRU cell with input size D = {D} and hidden size H = {H} reads "
        f"{T} input{' vector' if D > 1 else ''}{'s' if T > 1 else ''} ",
        ("math", _inputs_tex(w)),
        " starting from the state ",
        ("math", w.q("h_prev", 1)),
        ". ",
    ]
    if w.head is not None:
        statement += loss_statement(w)
    if w.questions:
        rounding = ""
    else:
        statement += [_scope(w)] + w.steps_note()
        rounding = (f"Values are computed exactly and shown rounded to {w.decimals} decimals."
                    if w.rounding == "exact" else
                    f"Every intermediate value is rounded to {w.decimals} decimals and the rounded value "
                    "is used from then on, as in a hand calculation.")
    axes = [{"axis": k, "value": ", ".join(v) if isinstance(v, list) else str(v)}
            for k, v in conv.axes().items() if v is not None]
    return {  # the user's text without control characters: a sheet's number tokens are made of two
        "title": plain_text(p.title or f"GRU worked example ({conv.name})"),
        "kind": "questions" if w.questions else "solution",
        "description": plain_text(p.description) if p.description else p.description,
        "problem_file": plain_text(p.path.name),
        "convention": {"name": plain_text(conv.name), "description": plain_text(conv.description),
                       "source": plain_text(conv.source), "axes": axes},
        "statement": text(*statement),
        "rounding_note": rounding,
        "stepwise": w.rounding == "stepwise",
        "decimals": w.decimals,
        "equations": [list(e) for e in compact_equations(w.eqs)],
        "stages": [list(e) for e in stage_equations(w.eqs)],
        "orientation_note": _orientation_note(w),
        "data": _data_groups(w),
        "framework": _framework_rows(w),
    }


def _inputs_tex(w: SheetWriter) -> str:
    if w.T <= 4:
        return ", ".join(w.q("x", t + 1) for t in range(w.T))
    return f"{w.q('x', 1)}, {w.q('x', 2)}, \\dots, {w.q('x', w.T)}"


def _scope(w: SheetWriter) -> str:
    if w.head is None:
        return "The problem gives no loss, so the sheet works the forward pass only. "
    if w.forward_only:
        return "This sheet works the forward pass and the loss only. "
    return ("The sheet works the forward pass, the loss, every gradient by back-propagation "
            "through time and one gradient-descent update. ")


def _orientation_note(w: SheetWriter) -> list:
    lead = ("Vectors are columns and a weight multiplies from the left, as in " if w.column else
            "Vectors are rows and a weight multiplies from the right, as in ")
    return text(lead, ("math", product_tex(w.conv, Param("input_weight", "z"), w.q("x", "t"))), ".")


def _data_groups(w: SheetWriter) -> list:
    """The data, one group per kind: inputs, initial state, each gate's weights, the biases, the
    output layer, the targets, the learning rate. A group's items are laid out on lines of about
    :data:`DATA_LINE_ENTRIES` numbers side by side."""
    p, conv, head = w.p, w.conv, w.head

    def item(name: str, values) -> dict:
        return {"name": name, "value": w.mat(values), "columns": _columns(w, values)}

    groups = [("Inputs", [item(w.q("x", t + 1), p.inputs[t]) for t in range(p.steps)]),
              ("Initial state", [item(w.q("h_prev", 1), p.h0)])]
    roles = {g: w.eqs.quantity("c" if g == "h" else g).role for g in conv.gates}
    for gate in conv.gates:
        weights = [q for q in conv.parameters() if q.gate == gate and not q.is_bias]
        groups.append((roles[gate][0].upper() + roles[gate][1:] + " weights",
                       [item(w.ptex(q), p.params[q]) for q in weights]))
    groups.append(("Biases", [item(w.ptex(q), p.params[q]) for q in conv.parameters() if q.is_bias]))
    if head is not None:
        groups.append(("Output layer", [item(n, v) for n, v in (("W_{o}", head.W_o), ("b_{o}", head.b_o))
                                        if v is not None]))
        label = "y" if head.kind != "weighted_sum" else "G"
        groups.append(("Targets" if label == "y" else "Weights of the loss",
                       [item(f"{label}_{{{t + 1}}}", target) for t, target in zip(head.steps, head.targets)]))
        if not w.forward_only:
            groups.append(("Learning rate", [{"name": r"\eta", "value": w.num(learning_rate(p)), "columns": 1}]))
    return [{"label": text(label + ":"), "lines": _lines(items)} for label, items in groups if items]


def _columns(w: SheetWriter, values) -> int:
    arr = np.asarray(values, dtype=object)
    if arr.size == 1:
        return 1
    if arr.ndim == 2:
        return arr.shape[1]
    return 1 if w.column else arr.shape[0]


def _lines(items: list[dict]) -> list[list[dict]]:
    lines, width = [], 0
    for it in items:
        if lines and width + it["columns"] + 1 <= DATA_LINE_ENTRIES:
            lines[-1].append(it)
            width += it["columns"] + 1
        else:
            lines.append([it])
            width = it["columns"] + 1
    return lines


def _framework_rows(w: SheetWriter) -> dict | None:
    """Where each parameter sits in the framework's packed arrays (conventions with a layout)."""
    conv, p = w.conv, w.p
    if conv.layout is None:
        return None
    layout = LAYOUTS[conv.layout]
    locations = layout.locations(conv, p.input_size, p.hidden_size)
    rows = [{"param": w.ptex(param), "array": locations[param][0], "transposed": locations[param][1]}
            for param in conv.parameters()]
    return {"layout": layout.name, "order": ", ".join(conv.notation.letter(g) for g in layout.gate_order(conv)),
            "rows": rows}


# -- the forward pass --------------------------------------------------------------------------------

def forward_part(w: SheetWriter) -> Part:
    sections = []
    for t, skipped in w.worked_and_gaps():
        if skipped:
            sections.append(w.gap_section(skipped, w.covers_every_step()))
            continue
        T1 = t + 1
        intro = [display([[w.q("x", T1), w.vec(w.shown(t, "x")) + r",\qquad "
                           + w.q("h_prev", T1) + " = " + w.vec(w.shown(t, "h_prev"))]],
                         text("The step reads"))]
        groups = [_forward_stage(w, t, s) for s in w.eqs.stages]
        sections.append(Section(text(f"Time step {T1}"), intro, groups))
        w.progress(f"forward pass, step {T1}")
    intro = [paragraph("Each time step is computed stage by stage: every matrix-vector product entry by entry, "
                       "then the sum with the biases, the activation and the state update.")]
    if w.rounding == "stepwise":
        intro.append(paragraph(
            f"Stepwise rounding: every intermediate result is rounded to {w.decimals} decimals and the "
            "rounded value is reused. A dagger ", ("math", r"^{\dagger}"),
            f" marks a value that differs in the last shown digit from the exact value rounded to "
            f"{w.decimals} decimals."))
    return Part("Forward pass", intro, sections + [_forward_results(w)])


def _forward_stage(w: SheetWriter, t: int, stage) -> Group:
    T1 = t + 1
    conv = w.conv
    values = w.sol.traces[t].values
    role = w.eqs.quantity(stage.target).role
    lhs = w.q(stage.target, T1)
    heading = role[0].upper() + role[1:] + ": "
    if isinstance(stage, Affine):
        title = text(heading, ("math", lhs + " = " + " + ".join(affine_terms(conv, stage, T1))))
        blocks = []
        parts = []
        for k, prod in enumerate(stage.products):
            values_k = w.sol.products[(t, stage.target, k)]
            expr = product_tex(conv, prod.param, operand_tex(conv, prod.operands, T1))
            blocks.append(w.product(expr, column_matrix(w.eqs, w.p.params[prod.param]),
                                    w.shown_operand(t, prod.operands), values_k))
            parts.append(w.vec(values_k.result))
        parts += [w.vec(w.p.params[b]) for b in stage.biases]
        if len(parts) > 1:
            rows = sum_rows(parts, w.per_line(w.width(stage.target)))
            rows[0][0] = lhs
            w.attach(rows, w.vec(values[stage.target]))
            blocks.append(display(rows, text("Adding up" + (" (with the bias)" if stage.biases else "") + ":")))
        return Group(title, blocks)
    inline = {n: w.vec(w.shown(t, n)) for n in stage.operands}
    lines = [[lhs, "=", written_tex(conv, stage, T1)],
             ["", "=", written_tex(conv, stage, T1, inline, printer=NumberPrinter)]]
    w.attach(lines, w.vec(values[stage.target]))
    return Group(text(heading, ("math", lhs)), [display(lines)])


def _forward_results(w: SheetWriter) -> Section:
    """The gates, candidate and state of each worked step (a row of dots for the steps between)."""
    names = tuple(n for n in ("z", "r", "c", "h") if n in w.sol.traces[0].values)  # no r without a reset gate
    header = [text("step")] + [text(("math", w.q(n, "t"))) for n in names]
    rows = []
    for t, skipped in w.worked_and_gaps():
        if skipped:
            first, last = skipped[0] + 1, skipped[1] + 1
            rows.append([text(str(first) if first == last else f"{first} to {last}")]
                        + [text(("math", r"\vdots")) for _ in names])
        else:
            rows.append([text(str(t + 1))] + [text(("math", w.vec(w.sol.traces[t].values[n]))) for n in names])
    table = TableBlock(header, rows, "c" * (len(names) + 1), table_chunk(len(rows), 12))
    return Section(text("Forward results"), [table], [])

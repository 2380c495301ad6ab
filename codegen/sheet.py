"""Worked solution sheets: a pure-data *sheet model* built from one solved problem.

:func:`build_sheet` solves a problem with the exact engine (and, for ``rounding="stepwise"``, with
the hand-calculation engine too) and turns the stage list, the symbolic adjoint and the numbers into
a tree of plain dicts and lists of LaTeX math strings and formatted numbers. All layout lives in the
templates ``templates/sheet.tex.j2`` (LaTeX, compiled to PDF) and ``templates/sheet.md.j2``
(Markdown with ``$$`` math for GitHub and Jupyter).

What the sheet prints comes from the one derivation:

* the forward stages are :func:`grukit.derive.equations.cell_equations`, printed by
  :mod:`grukit.codegen.latex`, and their numbers are the engine's :class:`StepTrace`;
* the backward stages are :func:`grukit.derive.backward.cell_adjoint`'s ``LocalDerivative``
  expressions, evaluated with the engine, and every adjoint and parameter gradient is read from
  :func:`grukit.derive.backward.backward` (``Gradient.steps[t]``);
* nothing here names a convention: the sheet branches on the convention's fields only.

Numbers are written as tokens while the model is built and formatted at the end; in stepwise mode
the same model is built from the exact solution too, token for token, and every displayed value
that differs from the exact value at the displayed decimals gets a dagger.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import mpmath
import numpy as np
import sympy as sp

from grukit.codegen.latex import (
    adjoint_tex, affine_terms, backward_equations, compact_equations, local_tex, operand_tex,
    gradient_tex, parameter_gradient_tex, pointwise_tex, product_tex, quantity_tex, stage_equations, transpose_tex,
)
from grukit.codegen.output import compile_pdf, write_atomic
from grukit.codegen.render import render
from grukit.derive.backward import cell_adjoint, loss_and_output_grads
from grukit.derive.convention import Param
from grukit.derive.equations import Affine, cell_equations
from grukit.derive.errors import GrukitError
from grukit.derive.evaluate import DIGITS, column_matrix, round_half_up
from grukit.derive.layouts import LAYOUTS
from grukit.derive.losses import LOSS_TYPES, loss_gradient, loss_term
from grukit.derive.problem import Problem, load_problem
from grukit.derive.solve import solve

DEFAULT_DECIMALS = 4
DEFAULT_LEARNING_RATE = Fraction(1, 10)
ROUNDINGS = ("exact", "stepwise")
FORMATS = (".tex", ".pdf", ".md")
BUILTIN_EXAMPLE = "course-notes.yaml"
"""The problem of ``grukit sheet`` without a PROBLEM: the course notes' worked example (seed 001),
shipped with the templates (a copy of ``docs/examples/course-notes.yaml``; a test keeps them equal)."""

_MARK = r"^{\dagger}"
_TOKEN = re.compile("\x01(\\d+)([a-z])\x02")
_GIVEN_DIGITS = 10  # given data that is a decimal with at most this many places is printed exactly


# --- numbers ----------------------------------------------------------------------------------------

def format_number(value, decimals: int) -> str:
    """``value`` as the sheet prints it.

    Given data (exact fractions) keeps its own short decimal form (``0.8``, ``-0.25``, ``1``);
    computed values are rounded half away from zero to ``decimals`` places (``0.3610``).
    """
    if isinstance(value, (int, Fraction)) and not isinstance(value, bool):
        f = Fraction(value)
        if (f * 10 ** _GIVEN_DIGITS).denominator == 1:
            d = (Decimal(f.numerator) / Decimal(f.denominator)).normalize()
            text = format(d, "f")
            return "0" if d == 0 else text
    d = round_half_up(value, decimals)
    text = format(d, "f")
    return text.lstrip("-") if d == 0 else text


class _Numbers:
    """Records every number the sheet shows and hands out a placeholder token for it."""

    def __init__(self):
        self.values: list = []

    def __call__(self, value, style: str = "v") -> str:
        if isinstance(value, np.ndarray):  # a 0-d result of the stepwise engine
            value = value.item()
        self.values.append(value)
        return f"\x01{len(self.values) - 1}{style}\x02"


def _styled(text: str, style: str, mark: bool) -> str:
    """v: plain; f: a factor (parenthesised when negative); p: always parenthesised;
    t: a later term of a sum (with its own + or -)."""
    negative = text.startswith("-")
    body = text + (_MARK if mark else "")
    if style == "f":
        return f"\\left({body}\\right)" if negative else body
    if style == "p":
        return f"\\left({body}\\right)"
    if style == "t":
        return f"- {body[1:]}" if negative else f"+ {body}"
    return body


def _substitute(tree, shown: list, exact: list | None, decimals: int, counter: list):
    """Replace the tokens in every string of the model tree by the formatted numbers."""
    if isinstance(tree, str):
        def repl(m):
            i, style = int(m.group(1)), m.group(2)
            text = format_number(shown[i], decimals)
            mark = exact is not None and format_number(exact[i], decimals) != text
            counter[0] += mark
            return _styled(text, style, mark)
        return _TOKEN.sub(repl, tree)
    if isinstance(tree, dict):
        return {k: _substitute(v, shown, exact, decimals, counter) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_substitute(v, shown, exact, decimals, counter) for v in tree]
    return tree


def _mul(a, b):
    with mpmath.workdps(DIGITS):
        return a * b


# --- small model pieces -------------------------------------------------------------------------------

def _text(*segs) -> list:
    """Prose as segments: plain strings are text (escaped by the template), ("math", s) is math."""
    return [("math", s[1]) if isinstance(s, tuple) else ("text", s) for s in segs]


def _display(lines, lead=None) -> dict:
    """An aligned display; each line is [lhs, rhs] (``lhs = rhs``) or [lhs, relation, rhs]."""
    rows = [[line[0], "=", line[1]] if len(line) == 2 else list(line) for line in lines]
    return {"type": "display", "segs": lead or [], "lines": rows}


def _sum_rows(items: list[str], per_line: int) -> list[list[str]]:
    """``a + b + c + ...`` as aligned lines of at most ``per_line`` terms (continuations start with +)."""
    rows = []
    for k in range(0, len(items), per_line):
        chunk = " + ".join(items[k:k + per_line])
        rows.append(["", "=", chunk] if k == 0 else ["", "", r"\quad + " + chunk])
    return rows


def _paragraph(*segs) -> dict:
    return {"type": "text", "segs": _text(*segs)}


def _chunk(n: int, most: int) -> int:
    """Rows per table so that ``n`` rows split into equal tables of at most ``most`` rows."""
    tables = max(1, -(-n // most))
    return max(1, -(-n // tables))


def _partial(name_tex: str, via: str) -> str:
    """The part of an adjoint that flows back through ``via``."""
    return r"\left.%s\right|_{%s}" % (name_tex, via)


# --- the builder ---------------------------------------------------------------------------------------

class _Builder:
    """Builds the sheet model of one problem from one solution (one number system)."""

    def __init__(self, problem: Problem, sol, decimals: int, forward_only: bool, questions: bool,
                 rounding: str):
        self.p = problem
        self.sol = sol
        self.conv = problem.convention
        self.eqs = cell_equations(self.conv)
        self.adj = cell_adjoint(self.conv)
        self.decimals = decimals
        self.forward_only = forward_only
        self.questions = questions
        self.rounding = rounding
        self.column = self.conv.orientation == "column"
        self.num = _Numbers()
        self.T = problem.steps
        self.head = problem.loss
        self._loss_context = None

    # -- number formatting helpers (every number becomes a token) --
    def vec(self, values, factor: bool = False) -> str:
        values = list(np.ravel(np.asarray(values, dtype=object)))
        if len(values) == 1:
            return self.num(values[0], "f" if factor else "v")
        sep = r" \\ " if self.column else " & "
        return r"\begin{bmatrix} %s \end{bmatrix}" % sep.join(self.num(v) for v in values)

    def col(self, values) -> str:
        values = list(np.ravel(np.asarray(values, dtype=object)))
        if len(values) == 1:
            return self.num(values[0])
        return r"\begin{bmatrix} %s \end{bmatrix}" % r" \\ ".join(self.num(v) for v in values)

    def row(self, values) -> str:
        values = list(np.ravel(np.asarray(values, dtype=object)))
        if len(values) == 1:
            return self.num(values[0])
        return r"\begin{bmatrix} %s \end{bmatrix}" % " & ".join(self.num(v) for v in values)

    def mat(self, values) -> str:
        arr = np.asarray(values, dtype=object)
        if arr.ndim == 1:
            return self.vec(arr)
        rows = [" & ".join(self.num(v) for v in r) for r in arr]
        return r"\begin{bmatrix} %s \end{bmatrix}" % r" \\ ".join(rows)

    def width(self, name: str) -> int:
        """Printed width of a quantity's vector, in entries (1 for a column vector)."""
        size = self.eqs.width(name, self.p.input_size, self.p.hidden_size)
        return 1 if self.column else size

    def attach(self, rows: list, value: str) -> None:
        """Append ``= value`` to the last line, or on a line of its own when that line is already wide
        (row vectors: about ten numbers)."""
        if not self.column and rows[-1][-1].count("\x01") + value.count("\x01") > 9:
            rows.append(["", "=", value])
        else:
            rows[-1][-1] += " = " + value

    @staticmethod
    def per_line(width: int) -> int:
        """How many vectors or matrices of ``width`` entries fit side by side on a line."""
        return max(1, 12 // (width + 1))

    def sum_terms(self, values) -> str:
        values = list(values)
        return " ".join([self.num(values[0])] + [self.num(v, "t") for v in values[1:]])

    # -- names --
    def q(self, name: str, t) -> str:
        return quantity_tex(self.conv, name, t)

    def d(self, name: str, t) -> str:
        return adjoint_tex(self.conv, name, t)

    def ptex(self, param: Param) -> str:
        return self.conv.tex(param)

    # -- values: given data as exact fractions, computed values from the engine --
    def shown(self, t: int, name: str):
        if name == "x":
            return self.p.inputs[t]
        if name == "h_prev" and t == 0:
            return self.p.h0
        return self.sol.traces[t].values[name]

    def engine_value(self, t: int, name: str):
        return self.sol.traces[t].values[name]

    # -- a matrix-vector product written out entry by entry --
    def product(self, expr: str, M_shown, M_eng, v_shown, v_eng, result, label: str | None = None,
                segs=None) -> dict:
        """``M v`` (``M`` is the column-form matrix) in the convention's orientation.

        Column conventions print ``M v`` with a column vector; row conventions ``v M^T`` with a row
        vector and the matrix as they store it.
        """
        M_shown = np.asarray(M_shown, dtype=object)
        entries = []
        for j in range(M_shown.shape[0]):
            if self.column:
                terms = [self.num(M_shown[j, i], "f") + self.num(v_shown[i], "p") for i in range(M_shown.shape[1])]
            else:
                terms = [self.num(v_shown[i], "f") + self.num(M_shown[j, i], "p") for i in range(M_shown.shape[1])]
            values = [_mul(M_eng[j, i], v_eng[i]) for i in range(M_shown.shape[1])]
            entries.append({"terms": " + ".join(terms), "sums": self.sum_terms(values),
                            "result": self.num(result[j])})
        if self.column:
            left, right = self.mat(M_shown), self.col(v_shown)
        else:
            left, right = self.row(v_shown), self.mat(M_shown.T)
        return {"type": "product", "segs": segs or [], "label": label or "", "expr": expr,
                "left": left, "right": right, "entries": entries, "result": self.vec(result),
                "column": self.column, "single_terms": M_shown.shape[1] == 1}

    def outer(self, d_values, v_values) -> str:
        """The numbers of ``delta v^T`` (column) or ``v^T delta`` (row)."""
        if self.column:
            return f"{self.col(d_values)} {self.row(v_values)}"
        return f"{self.col(v_values)} {self.row(d_values)}"

    def outer_formula(self, d_tex: str, v_tex: str) -> str:
        if self.column:
            return f"{d_tex} {transpose_tex(v_tex)}"
        return f"{transpose_tex(v_tex)} {d_tex}"

    # ------------------------------------------------------------------------------------------
    def build(self) -> dict:
        model = self.header()
        model["parts"] = []
        model["results"] = []
        if self.questions:
            model["parts"].append(self.questions_part())
            return model
        model["results"] = self.results()
        model["parts"].append(self.forward_part())
        if self.head is not None:
            model["parts"].append(self.loss_part())
        if self.head is not None and not self.forward_only:
            model["parts"].append(self.output_backward_part())
            model["parts"].append(self.backward_part())
            if self.T > 1:
                model["parts"].append(self.bptt_part())
            model["parts"].append(self.summary_part())
            model["parts"].append(self.update_part())
        return model

    def results(self) -> list:
        """The headline numbers: each state, the loss and every gradient."""
        lines = [[self.q("h", t + 1), self.vec(tr.values["h"])] for t, tr in enumerate(self.sol.traces)]
        if self.head is not None:
            loss = self.loss_context()[0]
            lines.append(["L", self.num(loss)])
            if not self.forward_only:
                lines += [[gradient_tex(name), self.mat(values)] for name, values in self.gradient_rows()]
        return lines

    # -- title, statement, equations, data --
    def header(self) -> dict:
        p, conv = self.p, self.conv
        D, H, T = p.input_size, p.hidden_size, p.steps
        title = p.title or f"GRU worked example ({conv.name})"
        kind = "questions" if self.questions else "solution"
        statement = [
            f"A GRU cell with input size D = {D} and hidden size H = {H} reads "
            f"{T} input vector{'s' if T > 1 else ''} ",
            ("math", ", ".join(self.q("x", t + 1) for t in range(T))),
            " starting from the state ",
            ("math", self.q("h_prev", 1)),
            ". ",
        ]
        if self.head is not None:
            statement += [f"The loss is the {LOSS_TYPES[self.head.kind]}"]
            if len(self.head.steps) < T:
                statement += [" (at the last step only)"]
            statement += [". "]
        if self.questions:
            pass
        elif self.head is None:
            statement += ["The problem gives no loss, so the sheet works the forward pass only. "]
        elif self.forward_only:
            statement += ["This sheet works the forward pass and the loss only. "]
        else:
            statement += ["The sheet works the forward pass, the loss, every gradient by back-propagation "
                          "through time and one gradient-descent update. "]
        rounding = ("" if self.questions else
                    f"Values are computed exactly and shown rounded to {self.decimals} decimals."
                    if self.rounding == "exact" else
                    f"Every intermediate value is rounded to {self.decimals} decimals and the rounded value "
                    "is used from then on, as in a hand calculation.")
        axes = [{"axis": k, "value": ", ".join(v) if isinstance(v, list) else str(v)}
                for k, v in conv.axes().items() if v is not None]
        return {
            "title": title, "kind": kind,
            "description": p.description,
            "problem_file": p.path.name,
            "convention": {"name": conv.name, "description": conv.description, "source": conv.source,
                           "axes": axes},
            "statement": _text(*statement),
            "rounding_note": rounding,
            "stepwise": self.rounding == "stepwise",
            "decimals": self.decimals,
            "equations": [list(e) for e in compact_equations(self.eqs)],
            "stages": [list(e) for e in stage_equations(self.eqs)],
            "orientation_note": self.orientation_note(),
            "data": self.data_rows(),
            "framework": self.framework_rows(),
        }

    def orientation_note(self) -> list:
        if self.column:
            return _text("Vectors are columns and a weight multiplies from the left, as in ",
                         ("math", product_tex(self.conv, Param("input_weight", "z"), self.q("x", "t"))),
                         ".")
        return _text("Vectors are rows and a weight multiplies from the right, as in ",
                     ("math", product_tex(self.conv, Param("input_weight", "z"), self.q("x", "t"))),
                     ".")

    def data_rows(self) -> list:
        p = self.p
        rows = []
        for t in range(p.steps):
            rows.append({"name": self.q("x", t + 1), "value": self.vec(p.inputs[t]), "shape": self.shape(p.inputs[t])})
        rows.append({"name": self.q("h_prev", 1), "value": self.vec(p.h0), "shape": self.shape(p.h0)})
        for param in self.conv.parameters():
            rows.append({"name": self.ptex(param), "value": self.mat(p.params[param]),
                         "shape": self.shape(p.params[param])})
        head = self.head
        if head is not None:
            if head.W_o is not None:
                rows.append({"name": "W_{o}", "value": self.mat(head.W_o), "shape": self.shape(head.W_o)})
            if head.b_o is not None:
                rows.append({"name": "b_{o}", "value": self.vec(head.b_o), "shape": self.shape(head.b_o)})
            label = "y" if head.kind != "weighted_sum" else "G"
            for t, target in zip(head.steps, head.targets):
                rows.append({"name": f"{label}_{{{t + 1}}}", "value": self.vec(target), "shape": self.shape(target)})
            if not self.forward_only:
                rows.append({"name": r"\eta", "value": self.num(self.learning_rate), "shape": "1"})
        return rows

    def shape(self, values) -> str:
        shape = np.asarray(values, dtype=object).shape
        if len(shape) == 1:
            shape = (shape[0], 1) if self.column else (1, shape[0])
        return r" \times ".join(map(str, shape))

    @property
    def learning_rate(self):
        return self.p.learning_rate if self.p.learning_rate is not None else DEFAULT_LEARNING_RATE

    def framework_rows(self):
        """Where each parameter sits in the framework's packed arrays (conventions with a layout)."""
        conv, p = self.conv, self.p
        if conv.layout is None or conv.layout not in LAYOUTS:
            return None
        layout = LAYOUTS[conv.layout]
        H = p.hidden_size
        shapes = layout.array_shapes(conv, p.input_size, H)
        lead = "0, " * layout.lead
        order = layout.gate_order(conv)
        rows = []
        for param in conv.parameters():
            k = order.index(param.gate)
            lo, hi = k * H, (k + 1) * H
            transposed = False
            if param.is_bias:
                offset = (0 if param.role == "input_bias" else 3 * H) + lo
                where = ""
                for name in layout.biases[conv.biases]:
                    size = int(np.prod(shapes[name]))
                    if offset < size:
                        index = np.unravel_index(offset, shapes[name])
                        head = "".join(f"{int(i)}, " for i in index[:-1])
                        where = f"{name}[{head}{int(index[-1])}:{int(index[-1]) + H}]"
                        break
                    offset -= size
            else:
                name = layout.input_weight if param.role == "input_weight" else layout.recurrent_weight
                where = f"{name}[{lead}:, {lo}:{hi}]" if layout.orientation == "row" else f"{name}[{lead}{lo}:{hi}, :]"
                transposed = layout.orientation != conv.orientation
            rows.append({"param": self.ptex(param), "array": where, "transposed": transposed})
        return {"layout": layout.name, "order": ", ".join(conv.notation.letter(g) for g in order),
                "rows": rows}

    # -- forward --
    def forward_part(self) -> dict:
        sections = []
        for t in range(self.T):
            T1 = t + 1
            intro = [_display([[self.q("x", T1), self.vec(self.shown(t, "x")) + r",\qquad "
                                + self.q("h_prev", T1) + " = " + self.vec(self.shown(t, "h_prev"))]],
                              _text("The step reads"))]
            groups = [self.forward_stage(t, s) for s in self.eqs.stages]
            sections.append({"title": _text(f"Time step {T1}"), "blocks": intro, "groups": groups})
        return {"title": "Forward pass", "intro": [_paragraph(
            "Each time step is computed stage by stage: every matrix-vector product entry by entry, "
            "then the sum with the biases, the activation and the state update.")] + self.stepwise_intro(),
            "sections": sections + [self.forward_results()]}

    def stepwise_intro(self) -> list:
        if self.rounding != "stepwise":
            return []
        return [_paragraph(
            f"Stepwise rounding: every intermediate result is rounded to {self.decimals} decimals and the "
            "rounded value is reused. A dagger ", ("math", r"^{\dagger}"),
            f" marks a value that differs in the last shown digit from the exact value rounded to "
            f"{self.decimals} decimals.")]

    def forward_stage(self, t: int, stage) -> dict:
        T1 = t + 1
        conv = self.conv
        trace = self.sol.traces[t]
        role = self.eqs.quantity(stage.target).role
        lhs = self.q(stage.target, T1)
        heading = role[0].upper() + role[1:] + ": "
        if isinstance(stage, Affine):
            terms = affine_terms(conv, stage, T1)
            title = _text(heading, ("math", lhs + " = " + " + ".join(terms)))
            blocks = []
            parts = []
            for k, prod in enumerate(stage.products):
                v_shown = np.concatenate([np.asarray(self.shown(t, n), dtype=object) for n in prod.operands])
                v_eng = np.concatenate([self.engine_value(t, n) for n in prod.operands])
                result = trace.products[(stage.target, k)]
                expr = product_tex(conv, prod.param, operand_tex(conv, prod.operands, T1))
                blocks.append(self.product(expr, column_matrix(self.eqs, self.p.params[prod.param]),
                                           column_matrix(self.eqs, self.sol.params[prod.param]),
                                           v_shown, v_eng, result))
                parts.append(self.vec(result))
            parts += [self.vec(self.p.params[b]) for b in stage.biases]
            if len(parts) > 1:
                rows = _sum_rows(parts, self.per_line(self.width(stage.target)))
                rows[0][0] = lhs
                self.attach(rows, self.vec(trace.values[stage.target]))
                blocks.append(_display(rows, _text("Adding up" + (" (with the bias)" if stage.biases else "") + ":")))
            return {"title": title, "blocks": blocks}
        # a function of its operands alone (sigma(a), tanh(a)) needs no parentheses around a negative number
        bare = isinstance(stage.expr, sp.Function) and all(arg.is_Symbol for arg in stage.expr.args)
        inline = {n: self.vec(self.shown(t, n), factor=not bare) for n in stage.operands}
        title = _text(heading, ("math", lhs))
        lines = [[lhs, "=", pointwise_tex(conv, stage.expr, T1)],
                 ["", "=", pointwise_tex(conv, stage.expr, T1, inline)]]
        self.attach(lines, self.vec(trace.values[stage.target]))
        return {"title": title, "blocks": [_display(lines)]}

    def forward_results(self) -> dict:
        names = [n for n in ("z", "r", "c", "h")]
        header = [{"segs": _text("step")}] + [{"segs": _text(("math", self.q(n, "t")))} for n in names]
        rows = []
        for t in range(self.T):
            rows.append([_text(str(t + 1))] + [_text(("math", self.vec(self.sol.traces[t].values[n])))
                                               for n in names])
        table = {"type": "table", "header": header, "rows": rows, "align": "c" * (len(names) + 1),
                 "chunk": _chunk(len(rows), 12)}
        return {"title": _text("Forward results"), "blocks": [table], "groups": []}

    # -- loss (forward) --
    def loss_context(self):
        """(loss, dL/dh_t from the loss per step, loss terms, dL/do per loss step, outputs o per loss step)."""
        if self._loss_context is None:
            self._loss_context = self._compute_loss_context()
        return self._loss_context

    def _compute_loss_context(self):
        sol = self.sol
        head = sol.head
        loss, d_h, _, _, terms, d_outs, outputs = loss_and_output_grads(
            head, sol.traces, sol.engine, self.conv.orientation)
        return loss, d_h, terms, d_outs, outputs

    def out_names(self, t1: int) -> tuple[str, str]:
        """(vector, entry pattern) of the loss's input at step t1: the output o or the state itself."""
        if self.head.W_o is not None:
            return f"o_{{{t1}}}", f"o_{{{t1},{{k}}}}"
        st = self.conv.notation.state_tex
        return self.q("h", t1), f"{st}_{{{t1},{{k}}}}"

    def loss_symbols(self, t1: int, O: int):
        expr, o_syms, y_syms = loss_term(self.head.kind, O)
        o_vec, o_pat = self.out_names(t1)
        ylabel = "y" if self.head.kind != "weighted_sum" else "G"
        names = {s: o_pat.replace("{k}", str(k + 1)) for k, s in enumerate(o_syms)}
        names.update({s: f"{ylabel}_{{{t1},{k + 1}}}" for k, s in enumerate(y_syms)})
        return expr, o_syms, y_syms, names

    def loss_name(self, i: int) -> str:
        return "L" if len(self.head.steps) == 1 else f"L_{{{self.head.steps[i] + 1}}}"

    def loss_part(self) -> dict:
        sol, head = self.sol, self.sol.head
        eng = sol.engine
        loss, _, terms, _, outputs = self.loss_context()
        groups = []
        for i, (t, target) in enumerate(zip(head.steps, head.targets)):
            T1 = t + 1
            h = sol.traces[t].values["h"]
            o = outputs[i]
            O = len(o)
            blocks = []
            o_vec, _ = self.out_names(T1)
            if head.W_o is not None:
                M_shown = self.p.loss.W_o if self.column else self.p.loss.W_o.T
                M_eng = head.W_o if self.column else head.W_o.T
                expr = f"W_{{o}} {self.q('h', T1)}" if self.column else f"{self.q('h', T1)} W_{{o}}"
                prod = eng.matvec(M_eng, h)
                blocks.append(self.product(expr, M_shown, M_eng, h, h, prod, segs=_text(
                    "The output layer ", ("math", o_vec + " = " + expr + (" + b_{o}" if head.b_o is not None else "")),
                    ":")))
                if head.b_o is not None:
                    blocks.append(_display([[o_vec, f"{self.vec(prod)} + {self.vec(self.p.loss.b_o)} = "
                                             + self.vec(o)]]))
            else:
                blocks.append(_paragraph("There is no output layer: the loss reads the state ",
                                         ("math", o_vec), " itself."))
            expr, o_syms, y_syms, names = self.loss_symbols(T1, O)
            env = {s.name: v for s, v in zip(o_syms, o)} | {s.name: v for s, v in zip(y_syms, target)}
            if head.kind == "softmax_cross_entropy":
                probs = [sp.exp(ok) / sum(sp.exp(oj) for oj in o_syms) for ok in o_syms]
                lines = []
                for k, pk in enumerate(probs):
                    lhs = r"\hat{y}_{%d,%d}" % (T1, k + 1)
                    value = eng.scalar(pk, env)
                    lines.append([lhs, sp.latex(pk, symbol_names=names)])
                    lines.append(["", sp.latex(pk, symbol_names=self.number_names(o_syms, o), mul_symbol="dot")
                                  + " = " + self.num(value)])
                blocks.append(_display(lines, _text("Softmax probabilities:")))
            num_names = self.number_names(o_syms, o) | self.number_names(y_syms, self.p.loss.targets[i])
            L = self.loss_name(i)
            blocks.append(_display([[L, sp.latex(expr, symbol_names=names)],
                                    ["", sp.latex(expr, symbol_names=num_names, mul_symbol="dot")],
                                    ["", self.num(terms[i])]],
                                   _text("The loss term, with the target ",
                                         ("math", f"{'y' if head.kind != 'weighted_sum' else 'G'}_{{{T1}}} = "
                                          + self.vec(self.p.loss.targets[i])), ":")))
            what = ", ".join(w for w, on in (("output layer", head.W_o is not None),
                                              ("softmax", head.kind == "softmax_cross_entropy")) if on)
            what = (what + " and loss term") if what else "loss term"
            title = _text((f"Step {T1}: " if len(head.steps) > 1 else "") + what[0].upper() + what[1:])
            groups.append({"title": title, "blocks": blocks})
        if len(head.steps) > 1:
            groups.append({"title": _text("Total loss"), "blocks": [_display(
                [["L", " + ".join(self.loss_name(i) for i in range(len(head.steps)))],
                 ["", self.sum_terms(terms)], ["", self.num(loss)]],
                _text("The total loss sums the terms of every step:"))]})
        return {"title": "Loss", "intro": [], "sections": [{"title": [], "blocks": [], "groups": groups}]}

    def number_names(self, syms, values) -> dict:
        return {s: self.num(v, "f") for s, v in zip(syms, values)}

    # -- backward: the loss head --
    def output_backward_part(self) -> dict:
        sol, head = self.sol, self.sol.head
        eng = sol.engine
        g = sol.gradient
        _, d_h, _, d_outs, outputs = self.loss_context()
        groups = []
        for i, t in enumerate(head.steps):
            T1 = t + 1
            o_vec, _ = self.out_names(T1)
            O = len(outputs[i])
            expr, o_syms, y_syms, names = self.loss_symbols(T1, O)
            grads = loss_gradient(head.kind, O)
            num_names = self.number_names(o_syms, outputs[i]) | self.number_names(y_syms, self.p.loss.targets[i])
            lines = []
            L = self.loss_name(i)
            for k, gk in enumerate(grads):
                lhs = r"\delta %s = \frac{\partial %s}{\partial %s}" % (names[o_syms[k]], L, names[o_syms[k]])
                lines.append([lhs, sp.latex(gk, symbol_names=names)])
                lines.append(["", sp.latex(gk, symbol_names=num_names, mul_symbol="dot") + " = "
                              + self.num(d_outs[i][k])])
            blocks = [_display(lines, _text("The derivative of the loss term with respect to each entry of ",
                                            ("math", o_vec), " (by sympy.diff):"))]
            blocks.append(_display([[r"\delta " + o_vec, self.vec(d_outs[i])]]))
            if head.W_o is not None:
                h = sol.traces[t].values["h"]
                h_tex = self.q("h", T1)
                step = r"\right|_{t=%d}" % T1 if len(head.steps) > 1 else None
                gW = gradient_tex("W_{o}") if step is None else r"\left." + gradient_tex("W_{o}") + step
                gb = gradient_tex("b_{o}") if step is None else r"\left." + gradient_tex("b_{o}") + step
                dW = eng.outer(d_outs[i], h)
                blocks.append(_display([[gW, self.outer_formula(r"\delta " + o_vec, h_tex)],
                                        ["", self.outer(d_outs[i], h) + " = " + self.mat(dW if self.column else dW.T)]],
                                       _text("Output layer gradients:")))
                if head.b_o is not None:
                    blocks.append(_display([[gb, r"\delta " + o_vec + " = " + self.vec(d_outs[i])]]))
                M_eng = head.W_o if self.column else head.W_o.T
                M_shown = self.p.loss.W_o if self.column else self.p.loss.W_o.T
                w_t = transpose_tex("W_{o}")
                expr = f"{w_t} \\delta {o_vec}" if self.column else f"\\delta {o_vec} {w_t}"
                blocks.append(self.product(expr, M_shown.T, M_eng.T, d_outs[i], d_outs[i], d_h[t],
                                           label=_partial(self.d("h", T1), "L"),
                                           segs=_text("The gradient flows into the GRU state:")))
            else:
                blocks.append(_display([[_partial(self.d("h", T1), "L"), r"\delta " + o_vec + " = " + self.vec(d_h[t])]],
                                       _text("The loss reads the state directly, so it hands its gradient "
                                             "to the state unchanged:")))
            what = "loss term" + (" and output layer" if head.W_o is not None else "")
            title = _text((f"Step {T1}: " if len(head.steps) > 1 else "") + what[0].upper() + what[1:])
            groups.append({"title": title, "blocks": blocks})
        if len(head.steps) > 1 and head.W_o is not None:
            blocks = []
            lines = [[gradient_tex("W_{o}"), r"\sum_{t} \left." + gradient_tex("W_{o}") + r"\right|_{t}"],
                     ["", self.mat(g.output["W_o"])]]
            blocks.append(_display(lines, _text("Summed over the steps that carry a loss term:")))
            if head.b_o is not None:
                blocks.append(_display([[gradient_tex("b_{o}"), r"\sum_{t} \left." + gradient_tex("b_{o}") + r"\right|_{t}"],
                                        ["", self.vec(g.output["b_o"])]]))
            groups.append({"title": _text("Output layer, all steps"), "blocks": blocks})
        intro = [_paragraph("Notation: ", ("math", r"\delta v = \partial L / \partial v"),
                            " is the gradient of the loss with respect to a quantity ", ("math", "v"), ", and ",
                            ("math", _partial(r"\delta v", "y")), " is the part of it that flows back through ",
                            ("math", "y"), ". The backward pass starts at the loss.")]
        return {"title": "Backward pass", "intro": intro,
                "sections": [{"title": _text("Loss"), "blocks": [], "groups": groups}]}

    # -- backward: the GRU, step by step --
    def contribution_counts(self) -> dict:
        counts: dict[str, int] = {}
        for a in self.adj.stages:
            if isinstance(a.stage, Affine):
                for prod in a.stage.products:
                    for n in prod.operands:
                        counts[n] = counts.get(n, 0) + 1
            else:
                for loc in a.locals:
                    counts[loc.operand] = counts.get(loc.operand, 0) + 1
        return counts

    def backward_part(self) -> dict:
        sections = []
        for t in reversed(range(self.T)):
            sections.append(self.backward_step(t))
        intro = [_paragraph(
            "Back through the GRU, one time step at a time from the last. Within a step the stages are "
            "taken in reverse order; each local derivative comes from sympy.diff of the stage's formula, "
            "each linear stage follows the index rules (gradient of a weight = adjoint times operand "
            "transposed; gradient of an operand = weight transposed times adjoint).")]
        if self.T > 1:
            intro.append(_paragraph(
                "A weight gets a contribution from every time step, written ",
                ("math", r"\left." + gradient_tex("W") + r"\right|_{t}"),
                "; the contributions are summed after the last step back (back-propagation through time)."))
        return {"title": "Backward pass through the GRU", "intro": intro, "sections": sections}

    def backward_step(self, t: int) -> dict:
        conv, sol = self.conv, self.sol
        eng = sol.engine
        T1 = t + 1
        g = sol.gradient
        step = g.steps[t]
        trace = sol.traces[t]
        values = trace.values
        counts = self.contribution_counts()
        head = sol.head
        _, d_h_loss, _, _, _ = self.loss_context()
        contribs: dict[str, list[tuple[str, object]]] = {}
        formulas = dict(backward_equations(self.adj, T1))
        step_label = (lambda tex: r"\left." + gradient_tex(tex) + r"\right|_{t=%d}" % T1) if self.T > 1 else gradient_tex

        def adj_value(name):
            return step.adjoints[name]

        def adj_label(name: str, via: str) -> str:
            return self.d(name, T1) if counts.get(name, 0) <= 1 else _partial(self.d(name, T1), via)

        groups = []
        # where dL/dh_t comes from
        parts, texts = [], []
        if t in d_h_loss and t in head.steps:
            parts.append(d_h_loss[t])
            texts.append(_partial(self.d("h", T1), "L"))
        if t + 1 < self.T:
            parts.append(g.steps[t + 1].adjoints["h_prev"])
            texts.append(_partial(self.d("h", T1), r"\text{step } %d" % (T1 + 1)))
        if parts:
            lines = [[self.d("h", T1), "=", " + ".join(texts)]]
            if len(parts) > 1:
                lines += _sum_rows([self.vec(v) for v in parts], self.per_line(self.width("h")))
            self.attach(lines, self.vec(adj_value("h")))
            lead = _text("The state ", ("math", self.q("h", T1)),
                         " gets its gradient from " + ("the loss and from the next step" if len(parts) > 1 else
                                                       ("the loss" if t in head.steps else "the next step")) + ":")
        else:
            lines = [[self.d("h", T1), self.vec(adj_value("h"))]]
            lead = _text("No loss term reaches ", ("math", self.q("h", T1)), ":")
        groups.append({"title": _text("Into the state ", ("math", self.q("h", T1))), "blocks": [_display(lines, lead)]})

        stage_eqs = dict(stage_equations(self.eqs, T1))
        for a in self.adj.stages:
            s = a.stage
            target_tex = self.q(s.target, T1)
            blocks = []
            if s.target != "h" and counts.get(s.target, 0) > 1:
                blocks.append(self.adjoint_sum(s.target, T1, formulas, contribs, adj_value(s.target)))
            title = _text("Back through ", ("math", f"{target_tex} = {stage_eqs[target_tex]}"))
            d_target = adj_value(s.target)
            if not isinstance(s, Affine):
                for loc in a.locals:
                    names = sorted(x.name for x in loc.contribution.free_symbols)
                    env = {n: (d_target if n == "d_" + s.target else values[n]) for n in names}
                    contrib = eng.apply(loc.contribution, env) if env else eng.zeros(values[loc.operand].shape)
                    lhs = adj_label(loc.operand, target_tex)
                    formula = local_tex(conv, loc, T1)[1]
                    numbers = pointwise_tex(conv, loc.contribution, T1, {
                        n: self.vec(v if n.startswith("d_") else self.shown(t, n), factor=True)
                        for n, v in env.items()})
                    lines = [[lhs, "=", formula]]
                    if loc.reduce:
                        lines.append(["", "=", r"\sum_j \left[%s\right]_j" % numbers])
                        lines.append(["", "=", self.sum_terms(np.ravel(contrib))])
                        contrib = eng.total(contrib)
                    else:
                        lines.append(["", "=", numbers])
                    self.attach(lines, self.vec(contrib))
                    blocks.append(_display(lines))
                    contribs.setdefault(loc.operand, []).append((lhs, contrib))
            else:
                for prod in s.products:
                    operands = prod.operands
                    v_shown = np.concatenate([np.asarray(self.shown(t, n), dtype=object) for n in operands])
                    v_tex = operand_tex(conv, operands, T1)
                    dM = step.params[prod.param]
                    blocks.append(_display([[step_label(self.ptex(prod.param)),
                                             self.outer_formula(self.d(s.target, T1), v_tex)],
                                            ["", self.outer(d_target, v_shown) + " = " + self.mat(dM)]]))
                    M_eng = column_matrix(self.eqs, sol.params[prod.param])
                    M_shown = column_matrix(self.eqs, self.p.params[prod.param])
                    d_operand = eng.matvec(M_eng.T, d_target)
                    w_t = transpose_tex(self.ptex(prod.param))
                    expr = f"{w_t} {self.d(s.target, T1)}" if self.column else f"{self.d(s.target, T1)} {w_t}"
                    if len(operands) == 1:
                        label = adj_label(operands[0], target_tex)
                        blocks.append(self.product(expr, M_shown.T, M_eng.T, d_target, d_target, d_operand,
                                                   label=label))
                        contribs.setdefault(operands[0], []).append((label, d_operand))
                    else:
                        blocks.append(self.product(expr, M_shown.T, M_eng.T, d_target, d_target, d_operand))
                        start, lines = 0, []
                        for n in operands:
                            size = values[n].shape[0]
                            part = d_operand[start:start + size]
                            start += size
                            label = adj_label(n, target_tex)
                            lines.append([label, self.vec(part)])
                            contribs.setdefault(n, []).append((label, part))
                        blocks.append(_display(lines, _text("Split by operand:")))
                for b in s.biases:
                    blocks.append(_display([[step_label(self.ptex(b)),
                                             self.d(s.target, T1) + " = " + self.vec(step.params[b])]]))
            groups.append({"title": title, "blocks": blocks})
        # the step's input and previous state
        blocks = []
        for name in ("x", "h_prev"):
            if counts.get(name, 0) > 1:
                blocks.append(self.adjoint_sum(name, T1, formulas, contribs, adj_value(name)))
        if t == 0:
            blocks.append(_paragraph("This is the gradient with respect to the initial state: ",
                                     ("math", gradient_tex(self.q("h_prev", 1)) + " = " + self.d("h_prev", 1)), "."))
        if blocks:
            groups.append({"title": _text("Gradients of the input ", ("math", self.q("x", T1)),
                                          " and the previous state ", ("math", self.q("h_prev", T1))),
                           "blocks": blocks})
        return {"title": _text(f"Time step {T1}"), "blocks": [], "groups": groups}

    def adjoint_sum(self, name: str, T1: int, formulas: dict, contribs: dict, total) -> dict:
        lhs = self.d(name, T1)
        parts = contribs.get(name, [])
        lines = [[lhs, " + ".join(label for label, _ in parts)]]
        if lhs in formulas:
            lines.append(["", formulas[lhs]])
        rows = _sum_rows([self.vec(v) for _, v in parts], self.per_line(self.width(name)))
        self.attach(rows, self.vec(total))
        return _display(lines + rows, _text("All paths into ", ("math", self.q(name, T1)), " added up:"))

    # -- BPTT sums, summary, update --
    def bptt_part(self) -> dict:
        g = self.sol.gradient
        blocks = []
        for param in self.conv.parameters():
            lhs, rhs = parameter_gradient_tex(self.eqs, param, "t")
            contribs = [self.mat(s.params[param]) for s in g.steps]
            per_step = [r"\left." + gradient_tex(self.ptex(param)) + r"\right|_{t=%d}" % (t + 1) for t in range(self.T)]
            shape = np.asarray(g.params[param], dtype=object).shape
            cols = shape[1] if len(shape) == 2 else (1 if self.column else shape[0])
            blocks.append(_display([[lhs, rhs]] + _sum_rows(per_step, 4) + _sum_rows(contribs, self.per_line(cols))
                                   + [["", self.mat(g.params[param])]]))
        intro = [_paragraph("Each weight's gradient is the sum of its contributions from every time step.")]
        return {"title": "Back-propagation through time: the sums", "intro": intro,
                "sections": [{"title": [], "blocks": blocks, "groups": []}]}

    def gradient_rows(self):
        """(name tex, gradient values) of every parameter, the output layer, each input and h0."""
        g = self.sol.gradient
        rows = [(self.ptex(p), g.params[p]) for p in self.conv.parameters()]
        if "W_o" in g.output:
            rows.append(("W_{o}", g.output["W_o"]))
        if "b_o" in g.output:
            rows.append(("b_{o}", g.output["b_o"]))
        for t in range(self.T):
            rows.append((self.q("x", t + 1), g.inputs[t]))
        rows.append((self.q("h_prev", 1), g.h0))
        return rows

    def summary_part(self) -> dict:
        header = [{"segs": _text("gradient")}, {"segs": _text("shape")}, {"segs": _text("value")},
                  {"segs": _text("largest ", ("math", r"\lvert \text{entry} \rvert"))}]
        rows = []
        for name, values in self.gradient_rows():
            arr = np.asarray(values, dtype=object)
            largest = max((abs(v) for v in arr.ravel()), default=0)
            rows.append([_text(("math", r"\partial L / \partial " + name)), _text(("math", self.shape(arr))),
                         _text(("math", self.mat(arr))), _text(("math", self.num(largest)))])
        table = {"type": "table", "header": header, "rows": rows, "align": "lccc", "chunk": _chunk(len(rows), 7)}
        return {"title": "Summary of the gradients", "intro": [],
                "sections": [{"title": [], "blocks": [table], "groups": []}]}

    def update_part(self) -> dict:
        eng = self.sol.engine
        lr = self.learning_rate
        lr_eng = eng.array([lr])
        lr_tok = self.num(lr)
        blocks = []
        given = {self.ptex(p): self.p.params[p] for p in self.conv.parameters()}
        engine_params = {self.ptex(p): self.sol.params[p] for p in self.conv.parameters()}
        if self.head.W_o is not None:
            given["W_{o}"], engine_params["W_{o}"] = self.p.loss.W_o, self.sol.head.W_o
        if self.head.b_o is not None:
            given["b_{o}"], engine_params["b_{o}"] = self.p.loss.b_o, self.sol.head.b_o
        for name, grad in self.gradient_rows():
            if name not in given:
                continue
            step = eng.outer(-lr_eng, grad)[0]
            new = eng.add(engine_params[name], step)
            blocks.append(_display([["{" + name + r"}^{\text{new}}", f"{name} - \\eta\\, {gradient_tex(name)}"],
                                    ["", f"{self.mat(given[name])} - {lr_tok} {self.mat(grad)} = {self.mat(new)}"]]))
        note = ("the problem's learning rate" if self.p.learning_rate is not None
                else "a learning rate chosen for illustration (the problem gives none)")
        intro = [_paragraph("One step of gradient descent with ", ("math", r"\eta = " + lr_tok),
                            f", {note}: every parameter moves against its gradient, all at once.")]
        return {"title": "One gradient-descent update", "intro": intro,
                "sections": [{"title": [], "blocks": blocks, "groups": []}]}

    # -- questions --
    def questions_part(self) -> dict:
        conv = self.conv

        def listing(texs: list[str]) -> list:
            segs = []
            for k, tex in enumerate(texs):
                segs += [", " if k else "", ("math", tex)]
            return segs

        forward = [self.q(s.target, "t") for s in self.eqs.stages]
        steps = ("For each time step ", ("math", r"t = 1, \dots, %d" % self.T)) if self.T > 1 else \
            ("For the time step ", ("math", "t = 1"))
        items = [_text(*steps, " compute, stage by stage, ", *listing(forward),
                       ", writing every matrix-vector product out entry by entry.")]
        if self.head is not None:
            items.append(_text("Compute the loss ", ("math", "L"), "."))
            if not self.forward_only:
                names = [self.ptex(p) for p in conv.parameters()]
                names += [n for n, v in (("W_{o}", self.head.W_o), ("b_{o}", self.head.b_o)) if v is not None]
                items.append(_text("By back-propagation through time, compute the gradients ",
                                   *listing([r"\partial L / \partial " + n for n in names]), ", then ",
                                   ("math", r"\partial L / \partial " + self.q("x", "t")), " for every step and ",
                                   ("math", r"\partial L / \partial " + self.q("h_prev", 1)), "."))
                items.append(_text("Apply one gradient-descent update with learning rate ",
                                   ("math", r"\eta = " + self.num(self.learning_rate)), "."))
        items.append(_text(f"Give every result to {self.decimals} decimals."))
        return {"title": "Questions", "intro": [], "sections": [], "questions": items}


# --- the sheet ---------------------------------------------------------------------------------------------

@dataclass
class Sheet:
    """A built sheet: the model (plain data) and its renderings.

    In a notebook the sheet displays itself (``_repr_markdown_``); ``_repr_latex_`` gives the
    results as one LaTeX display.
    """

    model: dict

    def tex(self) -> str:
        return render("sheet.tex.j2", **self.model)

    def markdown(self) -> str:
        return render("sheet.md.j2", **self.model)

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def _repr_latex_(self) -> str:
        return render("sheet_repr.tex.j2", **self.model)

    def write(self, out: str | Path) -> Path:
        """Write the sheet as .tex, .md or .pdf (by the suffix), atomically."""
        out = Path(out)
        suffix = output_suffix(out)
        if suffix == ".tex":
            write_atomic(out, self.tex().encode())
        elif suffix == ".md":
            write_atomic(out, self.markdown().encode())
        else:
            write_atomic(out, compile_pdf(self.tex(), out))
        return out


def output_suffix(out: Path) -> str:
    """The sheet format named by ``out``'s suffix, or the one-line error."""
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise GrukitError(f"{out}: -o: unknown output type {out.suffix or '(none)'!r} (choose .tex, .pdf or .md)")
    return suffix


def build_sheet(problem: Problem, decimals: int = DEFAULT_DECIMALS, rounding: str = "exact",
                forward_only: bool = False, questions_only: bool = False) -> Sheet:
    """Solve ``problem`` and build its sheet model."""
    if rounding not in ROUNDINGS:
        raise GrukitError(f"--rounding: unknown value {rounding!r} (choose exact or stepwise)")
    if not isinstance(decimals, int) or not 1 <= decimals <= 12:
        raise GrukitError(f"--decimals: expected a whole number from 1 to 12, got {decimals!r}")
    gradients = problem.loss is not None and not questions_only
    exact = None if questions_only else solve(problem, "exact", gradients=gradients)
    if rounding == "stepwise" and not questions_only:
        shown_sol = solve(problem, "stepwise", gradients=gradients, decimals=decimals)
    else:
        shown_sol = exact
    builder = _Builder(problem, shown_sol, decimals, forward_only, questions_only, rounding)
    model = builder.build()
    exact_values = None
    if shown_sol is not exact:
        reference = _Builder(problem, exact, decimals, forward_only, questions_only, rounding)
        reference.build()
        exact_values = reference.num.values
        assert len(exact_values) == len(builder.num.values)
    counter = [0]
    with mpmath.workdps(DIGITS):  # round_half_up reads the values at the working precision
        model = _substitute(model, builder.num.values, exact_values, decimals, counter)
    model["marks"] = counter[0]
    return Sheet(model)


def builtin_example() -> Path:
    """The packaged copy of the course-notes problem."""
    return Path(__file__).resolve().parent / "templates" / BUILTIN_EXAMPLE


def load_or_builtin(path: str | None) -> Problem:
    return load_problem(path if path is not None else builtin_example())

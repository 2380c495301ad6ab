"""The state a sheet is written with: the problem, its solution and the number tokens, and the
helpers that place numbers into LaTeX (vectors, matrices, sums, products written out).

Everything here *prints*: the values come from the solution (:mod:`grukit.derive.numeric.solve` with
``detail=True``), the formulas from :mod:`grukit.codegen.latex`.
"""
from __future__ import annotations

import time

import numpy as np

from grukit.codegen.latex import adjoint_tex, quantity_tex
from grukit.codegen.sheets.blocks import ProductBlock, ProductEntry, Section, paragraph, text
from grukit.codegen.sheets.numbers import NumberTokens, restyle
from grukit.derive.cell.convention import Param
from grukit.derive.cell.equations import cell_equations
from grukit.derive.cell.records import backward_records
from grukit.derive.numeric.bptt import ProductValues
from grukit.derive.numeric.problem import Problem


def steps_text(steps) -> str:
    """1-based step numbers as a person lists them: ``1 to 3, 7 and 5000``."""
    runs: list[list[int]] = []
    for t in sorted(steps):
        if runs and t == runs[-1][1] + 1:
            runs[-1][1] = t
        else:
            runs.append([t, t])
    parts = [str(a + 1) if a == b else (f"{a + 1} and {b + 1}" if b == a + 1 else f"{a + 1} to {b + 1}")
             for a, b in runs]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


class Progress:
    """Progress of long work on stderr (a sheet with many steps): a line per message with the
    seconds since the start, at most one every ``every`` seconds unless ``force``d."""

    def __init__(self, stream, every: float = 2.0):
        self._clock = time.perf_counter
        self._start = self._clock()
        self._last = -every
        self._every = every
        self._stream = stream

    def __call__(self, message: str, force: bool = False) -> None:
        now = self._clock() - self._start
        if force or now - self._last >= self._every:
            self._last = now
            print(f"grukit sheet: {message} ({now:.0f} s)", file=self._stream, flush=True)


class SheetWriter:
    """One sheet model being written from one solution (one number system)."""

    def __init__(self, problem: Problem, sol, decimals: int, forward_only: bool, questions: bool,
                 rounding: str, worked: tuple[int, ...] | None = None, progress: Progress | None = None):
        self.p = problem
        self.sol = sol
        self.conv = problem.convention
        self.eqs = cell_equations(self.conv)
        self.rec = backward_records(self.conv)
        self.decimals = decimals
        self.forward_only = forward_only
        self.questions = questions
        self.rounding = rounding
        self.column = self.conv.orientation == "column"
        self.num = NumberTokens()
        self.T = problem.steps
        self.head = problem.loss
        self.worked = frozenset(range(self.T)) if worked is None else frozenset(worked)
        """The time steps (0-based) worked in full; the loss, the sums and the summary cover every step."""
        self.all_worked = len(self.worked) == self.T
        self._progress = progress

    # -- which steps are worked in full --
    def worked_and_gaps(self, reverse: bool = False):
        """(t, None) for each worked step and (first, (first, last)) for each run of steps between
        them that is not worked, in time order (or reversed)."""
        out, previous = [], -1
        for t in sorted(self.worked):
            if t > previous + 1:
                out.append((previous + 1, (previous + 1, t - 1)))
            out.append((t, None))
            previous = t
        if previous < self.T - 1:
            out.append((previous + 1, (previous + 1, self.T - 1)))
        return list(reversed(out)) if reverse else out

    def gap_section(self, gap: tuple[int, int], where: str | None) -> Section:
        """A run of steps not worked in full: what happened to them, in a sentence."""
        first, last = gap[0] + 1, gap[1] + 1
        steps = f"Time step {first}" if first == last else f"Time steps {first} to {last}"
        return Section(text(steps), [paragraph(
            "Not worked in full on this sheet: "
            f"{'it goes' if first == last else 'they go'} exactly as the steps shown"
            + (f", and {'it is' if first == last else 'they are'} included in the {where}." if where else "."))], [])

    def covers_every_step(self) -> str | None:
        """What on the sheet includes the steps not worked in full (None: nothing but the states)."""
        if self.head is None:
            return None
        if self.forward_only:
            return "loss"
        return "loss, the sums over time, the summary of the gradients and the update"

    def steps_note(self) -> list:
        if self.all_worked:
            return []
        where = self.covers_every_step()
        return [f"It works time step{'s' if len(self.worked) > 1 else ''} {steps_text(self.worked)} in full "
                f"(of {self.T}); the other steps are computed the same way"
                + (f", and the {where} include every step. " if where else ". ")]

    def elided(self, steps, item) -> list[str]:
        """``item(t)`` for each of ``steps`` that is worked, in time order, with ``\\cdots`` for each
        run of steps left out (``item`` is not called for those: their numbers are not shown)."""
        out: list[str] = []
        for t in sorted(steps):
            if t in self.worked:
                out.append(item(t))
            elif not out or out[-1] != r"\cdots":
                out.append(r"\cdots")
        return out

    def progress(self, message: str) -> None:
        if self._progress is not None:
            self._progress(message)

    # -- numbers into LaTeX (every number becomes a token) --
    def vec(self, values) -> str:
        """A vector in the convention's orientation; one number is written as a scalar (a plain
        token, which the formula printer and :func:`join_sum` style by where it stands)."""
        values = list(np.ravel(np.asarray(values, dtype=object)))
        if len(values) == 1:
            return self.num(values[0])
        sep = r" \\ " if self.column else " & "
        return r"\begin{bmatrix} %s \end{bmatrix}" % sep.join(self.num(v) for v in values)

    def col(self, values) -> str:
        return self._line(values, r" \\ ")

    def row(self, values) -> str:
        return self._line(values, " & ")

    def _line(self, values, sep: str) -> str:
        values = list(np.ravel(np.asarray(values, dtype=object)))
        if len(values) == 1:
            return self.num(values[0])
        return r"\begin{bmatrix} %s \end{bmatrix}" % sep.join(self.num(v) for v in values)

    def mat(self, values) -> str:
        arr = np.asarray(values, dtype=object)
        if arr.ndim == 1 or arr.size == 1:
            return self.vec(arr)
        rows = [" & ".join(self.num(v) for v in r) for r in arr]
        return r"\begin{bmatrix} %s \end{bmatrix}" % r" \\ ".join(rows)

    def times(self, factor: str, values) -> str:
        """``factor`` (a number token) times a vector or matrix: a scalar is parenthesised."""
        tex = self.mat(values)
        scalar = restyle(tex, "p")
        return f"{factor}{scalar}" if scalar is not None else f"{factor} {tex}"

    def sum_terms(self, values) -> str:
        values = list(values)
        return " ".join([self.num(values[0])] + [self.num(v, "t") for v in values[1:]])

    def width(self, name: str) -> int:
        """Printed width of a quantity's vector, in entries (1 for a column vector)."""
        size = self.eqs.width(name, self.p.input_size, self.p.hidden_size)
        return 1 if self.column else size

    def attach(self, rows: list, value: str) -> None:
        """Append ``= value`` to the last line, or on a line of its own when that line is already wide
        (row vectors: about ten numbers)."""
        if not self.column and self.num.count(rows[-1][-1]) + self.num.count(value) > 9:
            rows.append(["", "=", value])
        else:
            rows[-1][-1] += " = " + value

    @staticmethod
    def per_line(width: int) -> int:
        """How many vectors or matrices of ``width`` entries fit side by side on a line."""
        return max(1, 12 // (width + 1))

    def shape(self, values) -> str:
        arr = np.asarray(values, dtype=object)
        if arr.size == 1:
            return "1"
        shape = arr.shape
        if len(shape) == 1:
            shape = (shape[0], 1) if self.column else (1, shape[0])
        return r" \times ".join(map(str, shape))

    # -- names --
    def q(self, name: str, t) -> str:
        return quantity_tex(self.conv, name, t)

    def d(self, name: str, t) -> str:
        return adjoint_tex(self.conv, name, t)

    def ptex(self, param: Param) -> str:
        return self.conv.tex(param)

    # -- values: given data as exact fractions, computed values from the solution --
    def shown(self, t: int, name: str):
        if name == "x":
            return self.p.inputs[t]
        if name == "h_prev" and t == 0:
            return self.p.h0
        return self.sol.traces[t].values[name]

    def shown_operand(self, t: int, names: tuple[str, ...]) -> np.ndarray:
        """The stacked operand of a product as shown (given data exactly)."""
        return np.concatenate([np.asarray(self.shown(t, n), dtype=object) for n in names])

    # -- a matrix-vector product written out entry by entry --
    def product(self, expr: str, M_shown, v_shown, values: ProductValues, label: str | None = None,
                segs=None) -> ProductBlock:
        """``M v`` (``M`` is the column-form matrix) in the convention's orientation.

        Column conventions print ``M v`` with a column vector; row conventions ``v M^T`` with a row
        vector and the matrix as they store it. ``values`` holds the product and its terms."""
        M_shown = np.asarray(M_shown, dtype=object)
        entries = []
        for j in range(M_shown.shape[0]):
            if self.column:
                terms = [self.num(M_shown[j, i], "f") + self.num(v_shown[i], "p") for i in range(M_shown.shape[1])]
            else:
                terms = [self.num(v_shown[i], "f") + self.num(M_shown[j, i], "p") for i in range(M_shown.shape[1])]
            entries.append(ProductEntry(" + ".join(terms), self.sum_terms(values.terms[j]),
                                        self.num(values.result[j])))
        if self.column:
            left, right = self.mat(M_shown), self.col(v_shown)
        else:
            left, right = self.row(v_shown), self.mat(M_shown.T)
        return ProductBlock(expr, left, right, entries, self.vec(values.result), self.column,
                            M_shown.shape[1] == 1, label or "", segs or [], M_shown.size == 1)

    def outer(self, d_values, v_values) -> str:
        """The numbers of ``delta v^T`` (column) or ``v^T delta`` (row); two scalars as a product."""
        first, second = (d_values, v_values) if self.column else (v_values, d_values)
        left, right = self.col(first), self.row(second)
        a, b = restyle(left, "f"), restyle(right, "p")
        if a is not None and b is not None:
            return a + b
        return f"{left} {right}"

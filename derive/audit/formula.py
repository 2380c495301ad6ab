"""Formula claims: is a printed formula the one grukit derives?

A claim may be a formula instead of a number (``dL/dW_z: "delta_z x^T"``,
``dL/dh[t-1]: "dL/dh * (1 - z) + U_r^T delta_r"``). It is read at one generic step, in the
convention's orientation (column conventions: vectors are columns, ``W x``; row conventions: rows,
``x W``):

* juxtaposition or ``@`` is the matrix product; ``*``, ``⊙`` or ``∘`` the elementwise one;
  ``^T`` (or ``'``) transposes; ``^2`` squares elementwise; ``sigmoid``/``σ``, ``tanh``, ``exp``,
  ``log`` apply elementwise; numbers broadcast (``1 - z``);
* names: the step's quantities (``x``, ``h_prev`` or ``h[t-1]``, ``z``, ``r``, ``q``, ``a_z``,
  ``candidate`` or ``c``, ``h`` the new state ...), the parameters by their keys, adjoints
  ``dL/d<quantity>`` (``dL/dh`` is the step's incoming gradient) and ``delta_<g>``, the adjoint of
  gate g's pre-activation (``delta_z`` = ``dL/da_z``; ``delta_h`` the candidate's).

grukit's own formula is the step's records evaluated on symbols (``step_backward`` with the
symbolic engine). Both sides are written out in the step's independent symbols (every stage
replaced by its expression) and their difference simplified with SymPy; zero proves them equal.
When they differ and the difference is minus some of grukit's named paths, those are named.

A claims file may be hostile, so a formula is bounded before SymPy works on it (docs/security.md):
at most :data:`MAX_FORMULA` characters, :data:`MAX_NESTING` levels of parentheses, functions and
signs, numbers of at most :data:`MAX_NUMBER` characters, functions nested at most
:data:`MAX_FUNCTIONS` deep and ``exp`` inside none (``exp(exp(x))`` outgrows any number SymPy can
evaluate), and at most :data:`MAX_TERMS` terms once multiplied out. The problem itself has at most
:data:`MAX_SIZE` hidden units and inputs (the step's derivation grows with both).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import sympy as sp

from grukit.derive.cell.equations import Affine, cell_equations
from grukit.derive.cell.functions import sigmoid
from grukit.derive.cell.records import BiasRecord, LocalRecord, WeightRecord, backward_records
from grukit.derive.check.explicit import symbol_array
from grukit.derive.errors import GrukitError
from grukit.derive.files.yaml_values import shown
from grukit.derive.numeric.bptt import step_backward
from grukit.derive.numeric.evaluate import StepTrace, SymbolicEngine, column_matrix

_TOKEN = re.compile(r"\s*(?:(?P<num>\d+(?:\.\d*)?|\.\d+)|(?P<name>dL/d[\w~]+(?:\[[^\]]*\]|\{[^}]*\})?|"
                    r"[A-Za-z_σδ][\w~]*(?:\[[^\]]*\]|\{[^}]*\})?)|(?P<op>\^T|\^2|\*\*2|\.\*|[-+*/@⊙∘()'ᵀ^]))")
_FUNCTIONS = {"sigmoid": sigmoid, "σ": sigmoid, "sigma": sigmoid, "tanh": sp.tanh, "exp": sp.exp, "log": sp.log}

MAX_FORMULA = 400
"""The longest formula, in characters."""
MAX_NESTING = 16
"""The deepest nesting of parentheses, function calls and signs."""
MAX_NUMBER = 20
"""The longest number in a formula, in characters."""
MAX_FUNCTIONS = 3
"""The deepest nesting of sigmoid, tanh, exp and log (exp inside none of them)."""
MAX_TERMS = 50_000
"""The most terms a formula may have once multiplied out (over all its entries)."""
MAX_SIZE = 16
"""The most hidden units and inputs of a problem whose formula claims are checked."""


@dataclass
class FormulaCheck:
    equivalent: bool
    derived: str  # grukit's formula for the quantity, as its records write it
    difference: str  # claimed minus derived, simplified (entry by entry where they differ)
    missing: list[str]  # grukit's paths the claim lacks, when that is the difference


class Step:
    """One generic step on symbols: each quantity, parameter and adjoint as a SymPy matrix."""

    def __init__(self, problem):
        conv = self.convention = problem.convention
        self.eqs, self.rec = cell_equations(conv), backward_records(conv)
        D, H = problem.input_size, problem.hidden_size
        self.column = conv.orientation == "column"
        self.params = {p: symbol_array(conv.key(p), conv.param_shape(p, D, H)) for p in conv.parameters()}
        vec = {q.name: symbol_array(q.name, (self.eqs.width(q.name, D, H),)) for q in self.eqs.quantities}
        seed = symbol_array("dL/dh", (H,))
        self.grad = step_backward(self.rec, self.params, StepTrace(dict(vec)), seed, SymbolicEngine())
        self.vectors = vec
        self.adjoints = dict(self.grad.adjoints)
        self.expansion = self._definitions(vec)
        arrays = [vec["x"], vec["h_prev"], seed, *self.params.values()]
        self.independent = sorted({s for a in arrays for s in np.ravel(a) if isinstance(s, sp.Symbol)}, key=str)
        self._points = None

    def _definitions(self, vec) -> dict:
        """Each stage's symbols -> its expression in x, h_prev and the parameters (stage by stage)."""
        eng, subs = SymbolicEngine(), {}
        values = {"x": vec["x"], "h_prev": vec["h_prev"]}
        for stage in self.eqs.stages:
            if isinstance(stage, Affine):
                parts = [column_matrix(self.eqs, self.params[p.param]).dot(
                    np.concatenate([values[o] for o in p.operands])) for p in stage.products]
                parts += [self.params[b] for b in stage.biases]
                value = sum(parts[1:], parts[0])
            else:
                value = eng.apply(stage.expr, {o: values[o] for o in stage.operands})
            values[stage.target] = value
            subs.update(dict(zip(vec[stage.target], value)))
        stage_symbols = set(subs)
        self._passes = 1 if not any(e.free_symbols & stage_symbols for e in subs.values()) else len(self.eqs.stages) + 1
        return subs

    def matrix(self, values) -> sp.Matrix:
        """A vector in the convention's orientation (column or row), a matrix as it is."""
        arr = np.asarray(values, dtype=object)
        if arr.ndim == 1:
            return sp.Matrix(arr) if self.column else sp.Matrix([list(arr)])
        return sp.Matrix(arr)

    def lookup(self, name: str) -> sp.Matrix:
        conv = self.convention
        base = re.sub(r"(\[t\]|_t|_\{t\})$", "", name)
        base = re.sub(r"(\[t-1\]|_\{t-1\})$", "_prev", base)
        adjoint = base.startswith("dL/d")
        q = base[4:] if adjoint else base
        if base.startswith(("delta_", "δ")):
            gate = base.split("_", 1)[-1] if base.startswith("delta_") else base[1:].lstrip("_")
            gates = {conv.notation.letter(g): g for g in ("z", "r", "h")} | {"z": "z", "r": "r", "h": "h"}
            if gate not in gates:
                raise GrukitError(f"formula: unknown gate in {shown(name)}")
            q, adjoint = "a_" + gates[gate], True
        q = {"candidate": "c", "h~": "c", "htilde": "c", conv.notation.state: "h", "hprev": "h_prev",
             f"{conv.notation.state}_prev": "h_prev"}.get(q, q)
        if adjoint:
            if q == "h":
                return self.matrix(symbol_array("dL/dh", (len(self.vectors["h"]),)))
            if q in self.adjoints:
                return self.matrix(self.adjoints[q])
        elif q in self.vectors:
            return self.matrix(self.vectors[q])
        for p, value in self.params.items():
            if conv.key(p) == base:
                return self.matrix(value)
        raise GrukitError(f"formula: unknown name {shown(name)}")

    def points(self) -> list[dict]:
        """Two random rational points: each independent symbol a number, each stage's symbols their
        values there to 50 digits (so a difference is evaluated without writing it out)."""
        if self._points is None:
            rng = np.random.default_rng(0)
            self._points = []
            for _ in range(2):
                point = {s: sp.Rational(int(rng.integers(-9, 10)), 10) for s in self.independent}
                point |= {s: sp.N(e.xreplace(point), 50) for s, e in self.expansion.items()}
                self._points.append(point)
        return self._points

    def expand(self, m: sp.Matrix) -> sp.Matrix:
        """Written out in x, h_prev, the parameters and dL/dh (every stage replaced by its formula)."""
        for _ in range(self._passes):  # one pass: each stage's formula is already in the independent symbols
            m = m.xreplace(self.expansion)
        return m


def derived(step: Step, node: str) -> tuple[sp.Matrix, list]:
    """grukit's per-step formula for a claim's node, and the named paths it sums (if any).
    ``dL/dh[k]`` is the gradient that leaves step k+1 for h[k] (the step's ``h_prev`` adjoint)."""
    m = re.fullmatch(r"(dL/d)?([^\[|]+)(?:\[\d+\])?(?:\|.*)?", node)
    adjoint, q = bool(m.group(1)), {"candidate": "c"}.get(m.group(2), m.group(2))
    if adjoint:
        for p in step.convention.parameters():
            if step.convention.key(p) == q:
                return step.matrix(step.grad.params[p]), []
        q = "h_prev" if q == "h" else q
        if q in step.adjoints:
            return step.matrix(step.adjoints[q]), step.grad.paths.get(q, [])
    elif q in step.vectors and q != "x":
        return step.expand(step.matrix(step.vectors[q])), []
    raise GrukitError(f"formula: grukit writes no per-step formula for {node}")


_SUM_OVER_STEPS = re.compile(r"\s*(?:sum|Σ|∑|\\sum)\s*_\s*"
                             r"(?:t|\{\s*t\s*\}|\{\s*t\s*=\s*1\s*\}(?:\^\s*(?:T|\{\s*T\s*\}))?)(?!\w)\s*")
"""A formula's leading sum over the steps: ``sum_t``, ``Σ_t``, ``\\sum_{t=1}^{T}``."""


def over_steps(formula: str) -> tuple[str, bool]:
    """A formula without its leading sum over the steps, and whether it had one. A parameter's gradient
    is the sum over t of its per-step parts: ``dL/db_h: "sum_t delta_h[t]"`` claims each part is
    ``delta_h[t]``, as ``dL/db_h: "delta_h"`` and ``dL/db_h[t]: "delta_h[t]"`` do."""
    m = _SUM_OVER_STEPS.match(formula)
    return (formula[m.end():], True) if m else (formula, False)


def parameter_gradient(step: Step, node: str) -> bool:
    """Whether a claim's node is a parameter's gradient (all of it, or one step's part)."""
    base = re.sub(r"\|t=\d+$", "", node)
    return any(base == "dL/d" + step.convention.key(p) for p in step.convention.parameters())


_last_step: tuple = (None, None)
"""The last problem a step was derived for, and that step (a claims file's formulas share it)."""


def step_of(problem) -> Step:
    global _last_step
    if _last_step[0] is not problem:
        _last_step = (problem, Step(problem))
    return _last_step[1]


def check_formula(cf, claim) -> FormulaCheck:
    where = f"{cf.path}: claims.{claim.name}"
    problem = cf.problem
    if max(problem.hidden_size, problem.input_size) > MAX_SIZE:
        raise GrukitError(f"{where}: formula claims are checked on problems of at most {MAX_SIZE} hidden units "
                          f"and inputs (this one has H = {problem.hidden_size}, D = {problem.input_size})")
    try:
        text, summed = over_steps(claim.formula)
        parser = Parser(text, None)  # the formula's text first: bounded before any derivation
        step = step_of(problem)
        parser.step = step
        if summed and not parameter_gradient(step, claim.node):
            raise GrukitError("formula: a sum over t (sum_t ...) is a parameter gradient's formula: the sum of "
                              "its per-step parts")
        want, paths = derived(step, claim.node)
        got = parser.parse()
        terms = expanded_terms(got)
        if terms > MAX_TERMS:
            raise GrukitError(f"formula: more than {MAX_TERMS} terms once multiplied out")
    except GrukitError as exc:
        raise GrukitError(f"{where}: {str(exc).removeprefix('formula: ')}") from None
    except RecursionError:
        raise GrukitError(f"{where}: the formula is nested too deeply to check") from None
    if not isinstance(got, sp.MatrixBase) or got.shape != want.shape:
        shape = "a scalar" if not isinstance(got, sp.MatrixBase) else "x".join(map(str, got.shape))
        raise GrukitError(f"{where}: the formula is {shape}, the quantity {'x'.join(map(str, want.shape))}")
    diff = (got - want).applyfunc(sp.expand)
    equivalent = zero(step, diff)
    missing = [] if equivalent else _missing_paths(step, diff, paths)
    shown = "0" if equivalent else _entries(diff)
    return FormulaCheck(equivalent, written(step, claim.node), shown, missing)


def zero(step: Step, diff: sp.Matrix) -> bool:
    """Whether a difference is zero: expanded in the step's quantities (the common case), else
    evaluated at random rational points (a non-zero value disproves it at once), else written out
    in its independent symbols and simplified by SymPy (the proof)."""
    if all(e == 0 for e in diff):
        return True
    if _nonzero_somewhere(step, diff):
        return False
    return all(sp.simplify(e.rewrite(sp.exp)) == 0 for e in step.expand(diff))


def _nonzero_somewhere(step: Step, diff: sp.Matrix) -> bool:
    """Whether the difference is clearly not zero at one of the step's random points (an undefined
    value, such as a division by zero, counts as not zero; a value that is no plain number decides
    nothing)."""
    for point in step.points():
        for e in diff:
            value = sp.N(e.xreplace(point), 30)
            if value.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
                return True
            size = abs(value) if value.is_number else None  # complex values too (log of a negative number)
            if size is not None and size.is_Number and size > 1e-20:
                return True
    return False


def _missing_paths(step: Step, diff: sp.Matrix, paths) -> list[str]:
    """The smallest set of grukit's paths whose sum is minus the difference, if there is one."""
    values = [(p.name, step.matrix(v).applyfunc(sp.expand)) for p, v in paths]
    for k in range(1, len(values) + 1):
        for chosen in combinations(values, k):
            if zero(step, diff + sum((v for _, v in chosen), sp.zeros(*diff.shape))):
                return [n for n, _ in chosen]
    return []


def written(step: Step, node: str) -> str:
    """grukit's formula for a node in the formula language, from its stage or records."""
    conv, column = step.convention, step.column
    m = re.fullmatch(r"(dL/d)?([^\[|]+)(?:\[\d+\])?(?:\|.*)?", node)
    q = {"candidate": "c"}.get(m.group(2), m.group(2))

    def operand(names) -> str:
        return names[0] if len(names) == 1 else "[" + ", ".join(names) + "]"

    def record(r) -> str:
        d = f"dL/d{'h' if r.target == 'h' else r.target}"
        if isinstance(r, LocalRecord):
            return f"{d} * ({r.local})"
        if isinstance(r, WeightRecord):
            return f"{d} {operand(r.operands)}^T" if column else f"{operand(r.operands)}^T {d}"
        if isinstance(r, BiasRecord):
            return d
        product = f"{conv.key(r.param)}^T {d}" if column else f"{d} {conv.key(r.param)}^T"
        return product if len(r.operands) == 1 else f"({product})[rows of {r.operand}]"

    if m.group(1):
        for r in step.rec.records:
            if isinstance(r, (WeightRecord, BiasRecord)) and conv.key(r.param) == q:
                return record(r)
        q = "h_prev" if q == "h" else q
        return " + ".join(record(p.record) for p in step.rec.sum_of(q).paths)
    stage = step.eqs.stage(q)
    if isinstance(stage, Affine):
        terms = [f"{conv.key(p.param)} {operand(p.operands)}" if column
                 else f"{operand(p.operands)} {conv.key(p.param)}" for p in stage.products]
        return " + ".join(terms + [conv.key(b) for b in stage.biases])
    return str(stage.written)


def _entries(diff: sp.Matrix) -> str:
    out = [f"[{i}, {j}]: {diff[i, j]}" for i in range(diff.rows) for j in range(diff.cols) if diff[i, j] != 0]
    text = "; ".join(out)
    return text if len(text) <= 400 else text[:397] + "..."


class Parser:
    """A small recursive-descent parser of the formula language (see the module docstring)."""

    def __init__(self, text: str, step: Step | None):
        self.tokens, pos = [], 0
        text = text.strip()
        if len(text) > MAX_FORMULA:
            raise GrukitError(f"formula: longer than {MAX_FORMULA} characters")
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise GrukitError(f"formula: cannot read {shown(text[pos:], 40)}")
            kind = m.lastgroup
            if kind == "num" and len(m.group(kind)) > MAX_NUMBER:
                raise GrukitError(f"formula: the number {shown(m.group(kind), 30)} is longer than {MAX_NUMBER} "
                                  f"characters")
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
        self.k, self.step = 0, step
        self.depth, self.functions = 0, []

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise GrukitError(f"formula: nested more than {MAX_NESTING} deep")

    def peek(self):
        return self.tokens[self.k] if self.k < len(self.tokens) else (None, None)

    def take(self):
        tok = self.peek()
        self.k += 1
        return tok

    def parse(self):
        value = self.sum()
        if self.peek()[0] is not None:
            raise GrukitError(f"formula: unexpected {self.peek()[1]!r}")
        return value

    def sum(self):
        self._enter()
        value = self.product()
        while self.peek()[1] in ("+", "-"):
            op = self.take()[1]
            other = self.product()
            value = _broadcast(value, other, lambda a, b: a + b if op == "+" else a - b)
        self.depth -= 1
        return value

    def product(self):
        value = self.unary()
        while True:
            kind, tok = self.peek()
            if tok in ("*", "⊙", "∘", ".*"):
                self.take()
                value = _broadcast(value, self.unary(), lambda a, b: a * b)
            elif tok == "/":
                self.take()
                value = _broadcast(value, self.unary(), lambda a, b: a / b)
            elif tok == "@" or kind in ("name", "num") or tok == "(":
                if tok == "@":
                    self.take()
                other = self.unary()
                if isinstance(value, sp.MatrixBase) and isinstance(other, sp.MatrixBase):
                    if value.cols != other.rows:
                        raise GrukitError(f"formula: matrix product of shapes {value.shape} and {other.shape}")
                    value = value * other
                else:
                    value = _broadcast(value, other, lambda a, b: a * b)
            else:
                return value

    def unary(self):
        if self.peek()[1] == "-":
            self.take()
            self._enter()
            value = _broadcast(self.unary(), None, lambda a, _: -a)
            self.depth -= 1
            return value
        return self.postfix()

    def postfix(self):
        value = self.atom()
        while self.peek()[1] in ("^T", "'", "ᵀ", "^2", "**2"):
            op = self.take()[1]
            if op in ("^T", "'", "ᵀ"):
                value = value.T if isinstance(value, sp.MatrixBase) else value
            else:
                value = _broadcast(value, None, lambda a, _: a ** 2)
        return value

    def atom(self):
        kind, tok = self.take()
        if kind == "num":
            return sp.nsimplify(tok)
        if tok == "(":
            value = self.sum()
            if self.take()[1] != ")":
                raise GrukitError("formula: missing ')'")
            return value
        if kind == "name" and tok in _FUNCTIONS and self.peek()[1] == "(":
            if tok == "exp" and self.functions:
                raise GrukitError(f"formula: exp inside {self.functions[-1]}(...) (grukit checks no exp inside "
                                  f"another function: its values outgrow any number)")
            if len(self.functions) >= MAX_FUNCTIONS:
                raise GrukitError(f"formula: functions nested more than {MAX_FUNCTIONS} deep")
            self.take()
            self.functions.append(tok)
            arg = self.sum()
            self.functions.pop()
            if self.take()[1] != ")":
                raise GrukitError("formula: missing ')'")
            return _broadcast(arg, None, lambda a, _: _FUNCTIONS[tok](a))
        if kind == "name":
            return self.step.lookup(tok)
        raise GrukitError(f"formula: unexpected {shown(tok)}")


def _broadcast(a, b, op):
    """An elementwise operation, numbers broadcast over matrices."""
    if b is None:
        return a.applyfunc(lambda e: op(e, None)) if isinstance(a, sp.MatrixBase) else op(a, None)
    if isinstance(a, sp.MatrixBase) and isinstance(b, sp.MatrixBase):
        if a.shape != b.shape:
            raise GrukitError(f"formula: elementwise operation on shapes {a.shape} and {b.shape}")
        return sp.Matrix(a.rows, a.cols, [op(x, y) for x, y in zip(a, b)])
    if isinstance(a, sp.MatrixBase):
        return a.applyfunc(lambda e: op(e, b))
    if isinstance(b, sp.MatrixBase):
        return b.applyfunc(lambda e: op(a, e))
    return op(a, b)


def expanded_terms(value) -> int:
    """An upper bound on the terms ``value`` (a matrix or a number) has once SymPy multiplies it out,
    function arguments included; counted on the expression's shared subexpressions once, and
    stopping past :data:`MAX_TERMS`."""
    cap = MAX_TERMS + 1
    memo: dict = {}
    inner = [0]

    def terms(e) -> int:
        if e in memo:
            return memo[e]
        if e.is_Add:
            n = min(cap, sum(terms(a) for a in e.args))
        elif e.is_Mul:
            n = 1
            for a in e.args:
                n = min(cap, n * terms(a))
        elif e.is_Pow:
            base = terms(e.base)
            if e.exp.is_Integer and e.exp > 0:
                n = 1 if base == 1 else min(cap, base ** min(int(e.exp), 64))
            else:  # a denominator is multiplied out inside
                inner[0] = min(cap, inner[0] + base + terms(e.exp))
                n = 1
        else:  # a function (its argument is multiplied out inside), a symbol or a number
            for a in e.args:
                inner[0] = min(cap, inner[0] + terms(a))
            n = 1
        memo[e] = n
        return n

    entries = list(value) if isinstance(value, sp.MatrixBase) else [sp.sympify(value)]
    total = 0
    for e in entries:
        total = min(cap, total + terms(e))
    return min(cap, total + inner[0])

"""The one print step of the kernel emitter: per-unit SymPy assignments in, Python source lines out.

A block of assignments (a forward stage's value, a backward record's contribution, an adjoint's
sum) goes through SymPy's common-subexpression elimination (``CodeBlock.cse`` with
``order='canonical'``, so the same derivation always gives the same bytes) and is printed by
:class:`KernelPrinter`, a thin subclass of SymPy's ``PythonCodePrinter``:

* every number is written in the kernel's dtype (``1.0`` or ``np.float32(1.0)``): Numba types a
  bare ``1`` as int64, and ``int64 op float32`` promotes to float64, which would turn a float32
  kernel into a float64 one and stop it vectorizing;
* ``x**2`` is written ``(x*x)`` (``float32 ** int`` is float64 in Numba too);
* ``sigmoid``, ``tanh`` and ``Piecewise`` call the generated module's stable helpers (``_sigmoid``,
  ``_tanh``, ``_where``; a module defines those its code calls); ``exp`` and ``sign`` are NumPy's
  (they keep float32); ``softplus`` (ONNX's Softplus) is written in its stable form
  ``max(a, 0) + log1p(exp(-|a|))``; ``|`` joins conditions (no short-circuit branches);
* a symbol ``name`` is printed as the local variable ``v_name``.

Nothing here knows about GRUs: the emitter (:mod:`grukit.codegen.kernels.emit`) decides what the
assignments are; this module only prints them.
"""
from __future__ import annotations

import sympy as sp
from sympy.codegen.ast import Assignment, CodeBlock
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.pycode import PythonCodePrinter

from grukit.codegen.kernels.names import DTYPES, identifier

LOCAL_PREFIX = "v_"
"""Per-unit values are locals named ``v_<symbol>`` so they never collide with the kernel's own
variables (``b``, ``j``, ``t``, ``B``, ``H``, arrays in capitals)."""


def local_name(symbol_name: str) -> str:
    """``v_<symbol_name>``: a quantity's local variable (the name checked to make one)."""
    return identifier(LOCAL_PREFIX + symbol_name, "quantity")


class KernelPrinter(PythonCodePrinter):
    """SymPy's Python printer with dtype-typed numbers and the generated module's helpers."""

    printmethod = "_grukit_kernel"

    def __init__(self, dtype: str):
        if dtype not in DTYPES:
            raise ValueError(f"dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")
        super().__init__({"strict": True, "fully_qualified_modules": False})
        self.dtype = dtype

    # --- numbers: always the kernel's dtype -------------------------------------------------
    def _number(self, value) -> str:
        text = repr(float(value))
        return f"np.float32({text})" if self.dtype == "float32" else text

    def _print_Integer(self, expr):
        return self._number(int(expr))

    _print_Zero = _print_One = _print_NegativeOne = _print_Integer

    def _print_Rational(self, expr):
        return self._number(sp.Float(expr, 30))

    _print_Half = _print_Rational

    def _print_Float(self, expr):
        return self._number(expr)

    # --- symbols and operators ---------------------------------------------------------------
    def _print_Symbol(self, expr):
        return local_name(expr.name)

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.args
        if exp.is_Integer and 1 <= int(exp) <= 4:
            b = self.parenthesize(base, PRECEDENCE["Mul"], strict=True)
            return "(" + "*".join([b] * int(exp)) + ")"
        if exp.is_Integer and int(exp) == -1:
            return f"({self._number(1)}/{self.parenthesize(base, PRECEDENCE['Mul'], strict=True)})"
        raise NotImplementedError(f"kernel printer: power {expr} (only small integer exponents)")

    def _print_Or(self, expr):
        return "(" + " | ".join(self._print(a) for a in expr.args) + ")"

    def _print_And(self, expr):
        return "(" + " & ".join(self._print(a) for a in expr.args) + ")"

    def _print_BooleanTrue(self, expr):
        return "True"

    def _print_BooleanFalse(self, expr):
        return "False"

    def _print_Piecewise(self, expr):
        # _where(c1, e1, _where(c2, e2, e3)): both branches are evaluated (cheap arithmetic), which
        # lets LLVM turn the selection into a vector select.
        *pieces, (last, cond) = expr.args
        if cond != sp.true:
            raise NotImplementedError("kernel printer: a Piecewise needs a final (value, True) piece")
        out = self._print(last)
        for value, c in reversed(pieces):
            out = f"_where({self._print(c)}, {self._print(value)}, {out})"
        return out

    # --- the module's stable helpers ----------------------------------------------------------
    def _print_sigmoid(self, expr):
        return f"_sigmoid({self._print(expr.args[0])})"

    def _print_tanh(self, expr):
        return f"_tanh({self._print(expr.args[0])})"

    def _print_exp(self, expr):
        # NumPy's exp keeps a float32 argument float32 in Numba (math.exp would give float64)
        return f"np.exp({self._print(expr.args[0])})"

    def _print_sign(self, expr):
        # the derivative of |a| (softsign): NumPy's sign, 0 at 0 and NaN for NaN as in the numpy engine
        return f"np.sign({self._print(expr.args[0])})"

    def _print_softplus(self, expr):
        # log(1 + e^a) as max(a, 0) + log1p(e^-|a|): no overflow, as the numpy engine's logaddexp(0, a)
        a = self._print(expr.args[0])
        return f"(max({a}, {self._number(0)}) + np.log1p(np.exp(-abs({a}))))"


NUMPY_CALLS = ("exp", "sign", "softplus")
"""The functions printed as NumPy calls on one number (``_print_exp``, ``_print_sign``,
``_print_softplus``): the blocked kernels' explicit vectors have no form of them, so a convention
whose per-unit work needs one keeps the plain loops (:func:`on_vectors`)."""


def on_vectors(expressions) -> bool:
    """Whether every expression prints to code that also runs on the blocked kernels' vectors."""
    return not any(f.func.__name__ in NUMPY_CALLS for e in expressions for f in e.atoms(sp.Function))


def print_assignments(assignments: list[tuple[sp.Symbol, sp.Expr]], dtype: str, cse_prefix: str
                      ) -> list[str]:
    """Source lines ``v_lhs = rhs`` for assignments in evaluation order, after CSE.

    ``cse_prefix`` names the common subexpressions (``<prefix>0``, ``<prefix>1``, ...); give each
    block of a kernel its own prefix so a temporary never changes type between blocks. No symbol of
    the block may start with it (a temporary would shadow it)."""
    if not assignments:
        return []
    block = CodeBlock(*(Assignment(lhs, sp.sympify(rhs)) for lhs, rhs in assignments))
    taken = sorted(s.name for s in block.free_symbols | {lhs for lhs, _ in assignments}
                   if s.name.startswith(cse_prefix))
    if taken:
        raise ValueError(f"symbol {taken[0]} starts with the temporaries' prefix {cse_prefix!r}")
    reduced = block.cse(symbols=sp.numbered_symbols(cse_prefix, real=True), order="canonical")
    printer = KernelPrinter(dtype)
    return [f"{printer.doprint(a.lhs)} = {printer.doprint(a.rhs)}" for a in reduced.args]

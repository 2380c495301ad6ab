"""Numba kernels from the one derivation: the stage list and the backward records, lowered to strings.

The emitter derives nothing. :mod:`grukit.codegen.kernels.lowering` lowers
:func:`grukit.derive.cell.equations.cell_equations` (the forward stages) and
:func:`grukit.derive.cell.records.backward_records` (the backward records) into packed GEMMs and fused
per-unit loops; this module turns that into the template's strings, writes one header, and keeps
``generated/`` in step (``--check`` / ``--update``).

Everything the template receives is a string or a list of strings (:func:`module_source`), and
user text reaches them in two ways only (docs/kernels.md, "User strings and the kernel cache"): a
name that becomes an identifier is checked to be one (:func:`~grukit.codegen.kernels.names.identifier`);
every other string a convention holds (its name, description, weight names) is written as a Python
literal (:func:`py_literal`), never raw, not even in a comment.
"""
from __future__ import annotations

import ast
import difflib
import re
from pathlib import Path

import sympy as sp

from grukit.codegen.kernels.lowering import (
    BackwardPlan,
    D,
    H,
    Lowering,
    Packing,
    lower_backward,
    lower_forward,
    slice_text,
    zero_literal,
)
from grukit.codegen.kernels.names import DTYPES, identifier, module_name
from grukit.codegen.kernels.printer import LOCAL_PREFIX, on_vectors
from grukit.codegen.output import write_atomic
from grukit.codegen.render import render
from grukit.derive.cell.convention import Convention
from grukit.derive.cell.equations import cell_equations
from grukit.derive.errors import GrukitError

TEMPLATE = "kernel.py.j2"
GENERATED = Path(__file__).resolve().parents[2] / "generated"

JIT = {
    "float32": 'cache=True, nogil=True, error_model="numpy", fastmath={"arcp", "contract", "nsz"}',
    "float64": 'cache=True, nogil=True, error_model="numpy"',
}
PARALLEL = ", parallel=True"
"""Added to the time loops of the blocked kernels (one ``prange`` over unit blocks per segment)."""

ACCUMULATORS = 3
"""Vectors per row of a micro-kernel's tile: a product of ``g`` gate blocks takes ``max(1, 3 // g)``
vectors of each gate's units, so that with 4 rows 8 to 12 vector accumulators stay in registers
(AVX2 has 16, AVX-512 32)."""
"""Numba options per dtype, written into the source (Numba's cache keys on the source, not on the
options). ``nogil``: two directions of a layer may run in two Python threads. ``error_model="numpy"``: a
division never raises, so loops with divisions vectorize. float32 also allows reciprocal approximations,
fused multiply-adds and ignoring the sign of zero (the measured accuracy in docs/kernels.md includes them);
float64 keeps IEEE semantics."""

PRINTED = ("z", "r", "c")
"""Forward values the kernels always keep (the CLI prints them per step), besides what backward needs."""

HELPERS = ("sigmoid", "tanh", "where")
"""The module's helpers the printed code may call (``_sigmoid(`` ...); the template defines only
those called, with what they call in turn."""

VECTOR_PREFIX = "u_"
"""A local holding a quantity for _L units at once in the vector loops (``v_<q>`` holds one unit)."""

LINE_LENGTH = 120
"""Longer lines of a generated module are broken after a comma inside brackets (:func:`_fold`)."""


# --- user text -----------------------------------------------------------------------------------

def py_literal(text: str, quote: str = '"') -> str:
    """``text`` as a Python string literal: its ``repr``, in which every quote, backslash, newline and
    unprintable character is escaped, so that the literal is one token on one line wherever it is
    written, a comment included. ``quote='"'``: double quotes where ``repr`` would use single quotes
    for text without any quote (``w["W_z"]``); ``"'"``: the ``repr`` as it is."""
    if not isinstance(text, str):
        raise TypeError(f"py_literal: expected text, got {type(text).__name__}")
    literal = repr(text)
    if quote == '"' and literal[0] == "'" and "'" not in text and '"' not in text:
        literal = f'"{literal[1:-1]}"'
    if literal.splitlines() != [literal] or ast.literal_eval(literal) != text:  # by construction, never
        raise ValueError(f"py_literal: cannot write {text!r} as one literal")
    return literal


# --- the module ----------------------------------------------------------------------------------

def _pack_lines(pk: Packing) -> list[str]:
    """One copy per piece into the packed matrices, in the weights' own orientation: a column-form
    convention (``W @ x``, the weights ``out x in``) fills ``WT_<operand>`` (out x in) row by row, a
    row-form one ``W_<operand>`` (in x out) column by column; either way each copy reads and writes
    whole rows, never a transposed stride (at H = 512 the transposed copies were 2.5 ms a call)."""
    conv, lines = pk.conv, []
    for g in pk.groups.values():
        for target, piece in g.pieces.items():
            key = py_literal(conv.key(piece.param))
            span = slice_text(*piece.rows, sum((pk.width(o) for o in piece.operands), sp.S.Zero))
            cols = slice_text(g.offsets[target], g.offsets[target] + pk.width(target), g.width)
            if conv.orientation == "column":
                value = f"w[{key}]" if span == ":" else f"w[{key}][:, {span}]"
                lines.append(f"WT_{g.operand}[{cols}, :] = {value}")
            else:
                value = f"w[{key}]" if span == ":" else f"w[{key}][{span}, :]"
                lines.append(f"W_{g.operand}[:, {cols}] = {value}")
    for target, params in pk.biases.items():
        start = pk.bias_offsets[target]
        cols = slice_text(start, start + pk.width(target), pk.bias_width)
        lines.append(f"BIAS[{cols}] = " + " + ".join(f"w[{py_literal(conv.key(p))}]" for p in params))
    return lines


def _unpack_lines(pk: Packing, plan: BackwardPlan) -> list[str]:
    """``g["<key>"] = ...`` for every parameter, from the packed gradients: for a column-form
    convention ``dWT_<operand>`` (out x in, computed so by BLAS), whose row blocks are the
    parameters' gradients as they are stored (no transposed copy); for a row-form one ``dW_<operand>``."""
    conv, lines = pk.conv, []
    column = conv.orientation == "column"
    for p in conv.parameters():
        key = conv.key(p)
        if p in plan.weights:
            target, operands = plan.weights[p]
            blocks = []
            for o in operands:
                g = pk.groups[o]
                cols = slice_text(g.offsets[target], g.offsets[target] + pk.width(target), g.width)
                blocks.append(f"dWT_{o}[{cols}, :]" if column else f"dW_{o}[:, {cols}]")
            if len(blocks) == 1:
                value = blocks[0] if column else f"np.ascontiguousarray({blocks[0]})"
            else:
                value = "np.concatenate((" + ", ".join(blocks) + f"), axis={1 if column else 0})"
        elif p in plan.biases:
            target = plan.biases[p]
            g = pk.groups_of(target)[0]
            cols = slice_text(g.offsets[target], g.offsets[target] + pk.width(target), g.width)
            value = f"db_{g.operand}[{cols}].copy()"
        else:
            raise ValueError(f"no record gives the gradient of {key}")
        lines.append(f"g[{py_literal(key)}] = {value}")
    return lines


def _bias_groups(pk: Packing, plan: BackwardPlan) -> list[str]:
    return [o for o in pk.groups if any(pk.groups_of(t)[0].operand == o for t in plan.biases.values())]


def _tuple_text(items) -> str:
    """``H, D`` or ``H,`` (the inside of a tuple's parentheses)."""
    items = [str(i) for i in items]
    return ", ".join(items) + ("," if len(items) == 1 else "")


def _header(conv: Convention, dtype: str) -> list[str]:
    """The module's first lines. No SymPy version: the committed modules are checked against the
    SymPy that the ``test`` extra pins (docs/kernels.md), so the check never depends on the header."""
    return [
        f"# Generated by {__name__} from codegen/templates/{TEMPLATE}: do not edit.",
        "# Convention " + py_literal(conv.name, quote="'") + f", dtype {dtype}.",
        "# Regenerate with `grukit codegen --update`; `grukit codegen --check` compares byte for byte.",
    ]


def _helpers_called(*segment_lists: list[dict]) -> dict[str, bool]:
    """Which of :data:`HELPERS` the printed loops call."""
    lines = []
    for segments in segment_lists:
        for seg in segments:
            lines += seg["before"]
            for blk in seg["blocks"]:
                lines += blk["pre"] + blk["body"] + blk["post"]
    text = "\n".join(lines)
    return {name: re.search(rf"\b_{name}\(", text) is not None for name in HELPERS}


def _fold(line: str, width: int = LINE_LENGTH) -> list[str]:
    """``line`` as lines of at most ``width`` characters where it can be: broken after a comma inside
    brackets (the outermost brackets first; never in a line with a string literal or a comment),
    each continuation aligned with its opening bracket (PEP 8)."""
    if len(line) <= width or any(ch in line for ch in "'\"#"):
        return [line]
    commas, opens = [], []  # (depth, index of a ", " inside brackets, index of its innermost bracket)
    for i, ch in enumerate(line):
        if ch in "([{":
            opens.append(i)
        elif ch in ")]}":
            if not opens:
                return [line]
            opens.pop()
        elif ch == "," and opens and line[i + 1:i + 2] == " ":
            commas.append((len(opens), i, opens[-1]))
    out, start, indent = [], 0, 0  # the next line is " " * indent + line[start:...]
    column = {}  # bracket index -> its column in the lines already written
    while indent + len(line) - start > width:
        fits = [(-depth, c, o) for depth, c, o in commas if c >= start and indent + c - start + 1 <= width]
        if not fits:
            break
        _, comma, bracket = max(fits)
        column.update((k, indent + k - start) for k in range(start, comma) if line[k] in "([{")
        out.append(" " * indent + line[start:comma + 1])
        start, indent = comma + 2, column[bracket] + 1
    out.append(" " * indent + line[start:])
    return out


def _fold_lines(text: str) -> str:
    return "".join(piece + "\n" for line in text.split("\n")[:-1] for piece in _fold(line))


def _weight_names(conv: Convention) -> list[str]:
    """The weights' names (problem-file keys), one per parameter: text, each its own."""
    keys, seen = [], {}
    for p in conv.parameters():
        key = conv.key(p)
        if not isinstance(key, str) or not key:
            raise GrukitError(f"convention {conv.name!r}: the weight of {p.role} {p.gate} has no name")
        if key in seen:
            raise GrukitError(f"convention {conv.name!r}: {key!r} names two weights ({seen[key].role} {seen[key].gate} "
                              f"and {p.role} {p.gate})")
        seen[key] = p
        keys.append(key)
    return keys


def _products(pk: Packing, segments: list[dict], transposed: bool) -> list[dict | None]:
    """Per segment, its per-step product as the blocked kernels compute it tile by tile: the
    operand array and the flat offset of the step's rows, the packed panels, the output, and the
    micro-kernel (``_tile_<gates>x<vectors>``). Forward: ``operand @ W`` (a row of ``gates`` blocks of H
    units); backward: ``DA @ W.T`` (H units, summed over the group's width)."""
    out = []
    for seg in segments:
        o = seg["product"]
        if o is None:
            out.append(None)
            continue
        width = pk.groups[o].width
        gates = 1 if transposed else _gates(pk, o)
        vectors = max(1, ACCUMULATORS // gates)
        product = {"tile": f"_tile_{gates}x{vectors}", "gates": gates, "vectors": vectors, "block": _block(gates),
                   "guard": ""}
        if transposed:
            product |= {"a": f"DA_{o}", "a0": f"t * B * ({width})", "k": str(width), "p": f"PT_{o}",
                        "c": f"GT_{o}", "ldc": "H"}
        else:
            product |= {"a": "HS" if o == "h_prev" else f"S_{o}", "a0": ("t" if o == "h_prev" else "ts") + " * B * H",
                        "k": str(pk.width(o)), "p": f"PN_{o}", "c": f"G_{o}", "ldc": str(width)}
        out.append(product)
    return out


_ELEMENT = re.compile(r"\b([A-Za-z_]\w*)\[([^\[\]]*)\]")
_STORE = re.compile(r"^([A-Za-z_]\w*)\[([^\[\]]*)\] = (.*)$")


def _index_tuple(index: str) -> str:
    return f"({index})" if "," in index else f"({index},)"


def vector_line(line: str) -> str:
    """A printed per-unit line for _L units at once: every element ``A[..., j]`` read or written
    through ``_vget``/``_vset`` (the units j .. j + _L - 1), and every local ``v_<q>`` renamed
    ``u_<q>`` (Numba types a variable once per function: a vector is another variable)."""
    line = re.sub(rf"\b{LOCAL_PREFIX}", VECTOR_PREFIX, line)
    store = _STORE.match(line)
    if store:
        name, index, value = store.groups()
        return f"_vset({name}, {_index_tuple(index)}, {_ELEMENT.sub(_vget_text, value)})"
    return _ELEMENT.sub(_vget_text, line)


def _vget_text(match: re.Match) -> str:
    return f"_vget({match.group(1)}, {_index_tuple(match.group(2))})"


def _gates(pk: Packing, operand: str) -> int:
    """How many blocks of H columns the product on ``operand`` has (3 for reset-after's h_prev)."""
    return int(pk.groups[operand].width / H)


def _block(gates: int) -> str:
    """The units of one block of a product of ``gates`` gate blocks: its vectors times the lanes."""
    vectors = max(1, ACCUMULATORS // gates)
    return f"{vectors} * _L" if vectors > 1 else "_L"


def _blocked(pk: Packing, *lowerings: Lowering) -> bool:
    """Whether the blocked kernels (micro-kernel products, unit blocks in parallel) fit: every
    quantity has one value per hidden unit, and every per-unit expression runs on vectors. A scalar
    gate (width 1) is shared by every unit block and its records sum over all units; an activation
    printed as a NumPy call (ONNX's Elu, Softsign, Softplus) has no vector form. Such a convention
    keeps the plain loops and BLAS."""
    expressions = [e for low in lowerings for seg in low.segments for blk in seg.blocks for _, e in blk.assigns]
    return all(pk.hidden(s.target) for s in pk.eqs.stages) and on_vectors(expressions)


def module_context(conv: Convention, dtype: str) -> dict:
    """Everything the template needs, as strings and lists of strings."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")
    keys = _weight_names(conv)
    eqs = cell_equations(conv)
    for stage in eqs.stages:  # v_<q>, S_<q>, K_<q>, DA_<q> ...
        identifier(stage.target, "quantity")
    pk = Packing(eqs)
    for operand in pk.groups:  # W_<p>, G_<p>, dW_<p> ...
        identifier(operand, "operand")
    plan = lower_backward(pk, dtype)
    operands = [o for o in pk.groups if o not in ("x", "h_prev")]
    saved = set(plan.lowering.saved_reads) | {q for q in PRINTED if q in {s.target for s in eqs.stages}}
    saved |= set(operands)
    fwd = lower_forward(pk, saved)
    order = [s.target for s in eqs.stages]
    saved_list = [n for n in order if n in saved]
    widths = {n: ("H" if pk.hidden(n) else "1") for n in order}
    bwd_segments = plan.lowering.finish(dtype, "tmp_b")
    fwd_segments = fwd.finish(dtype, "tmp_f")
    recurrent = [{"operand": g.operand, "width": str(g.width), "input": str(pk.width(g.operand)),
                  "array": "HS[0, :T]" if g.operand == "h_prev" else f"S_{g.operand}[0]",
                  "chunk_array": "HS[c, :T]" if g.operand == "h_prev" else f"S_{g.operand}[c]"} for g in pk.recurrent]
    bias_groups = [{"operand": o, "width": str(pk.groups[o].width)} for o in _bias_groups(pk, plan)]
    blocked = _blocked(pk, fwd, plan.lowering)
    column = conv.orientation == "column"  # packed and unpacked as out x in (WT_<p>, dWT_<p>)
    fwd_products, bwd_products, tiles, panels = [], [], [], []
    if blocked:
        for seg in fwd_segments + bwd_segments:
            for blk in seg["blocks"]:
                blk["vector"] = [vector_line(line) for line in blk["body"]]
        fwd_products = _products(pk, fwd_segments, transposed=False)
        carry = {"product": "h_prev" if plan.after else None}
        bwd_products = _products(pk, [dict(bwd_segments[0], product=None), *bwd_segments[1:], carry], transposed=True)
        if plan.after:  # the carry's product of step t + 1 opens step t; after the loop, that of step 0
            last = bwd_products[-1]
            bwd_products[0] = dict(last, a0=f"(t + 1) * B * ({last['k']})", guard="t + 1 < T")
            bwd_products[-1] = dict(last, a0="0")
        tiles = sorted({(p["gates"], p["vectors"]) for p in fwd_products + bwd_products if p})
        panels = [{"operand": g.operand, "gates": _gates(pk, g.operand), "block": _block(_gates(pk, g.operand)),
                   "transposed_block": _block(1)} for g in pk.recurrent]
    for name, _ in fwd.buffers + plan.lowering.buffers:  # K_<name>
        identifier(name, "buffer")
    shapes = [(py_literal(key), _tuple_text(conv.param_shape(p, D, H))) for p, key in zip(conv.parameters(), keys)]
    return {
        "header": _header(conv, dtype),
        "dtype": dtype,
        "jit": JIT[dtype],
        "zero": zero_literal(dtype),
        "convention": py_literal(conv.name, quote="'"),
        "description": py_literal(conv.description, quote="'"),
        "names": repr(tuple(keys)),
        "saved_names": repr(tuple(saved_list)),
        "shapes": shapes,
        "x_width": str(pk.groups["x"].width),
        "bias_width": str(pk.bias_width),
        "recurrent": recurrent,
        "saved": [{"name": n, "width": widths[n]} for n in saved_list],
        "saved_args": ", ".join(f"S_{n}" for n in saved_list) + ("," if len(saved_list) == 1 else ""),
        "saved_params": ", ".join(f"S_{n}" for n in saved_list),
        "column": column,
        "dw": "dWT" if column else "dW",
        "pack": _pack_lines(pk),
        "unpack": _unpack_lines(pk, plan),
        "forward": {"segments": fwd_segments,
                    "buffers": [{"name": n, "width": w} for n, w in fwd.buffers]},
        "backward": {"segments": bwd_segments, "after": plan.after, "carry": plan.carry,
                     "buffers": [{"name": n, "width": w} for n, w in plan.lowering.buffers],
                     "zero_buffers": plan.zero_buffers},
        "bias_groups": bias_groups,
        "printed": [q for q in PRINTED if q in saved],
        "used": _helpers_called(fwd_segments, bwd_segments),
        "blocked": blocked,
        "parallel": PARALLEL,
        "fwd_products": fwd_products,
        "bwd_products": bwd_products,
        "tiles": [{"gates": g, "vectors": v} for g, v in tiles],
        "llvm_scalar": "ir.FloatType()" if dtype == "float32" else "ir.DoubleType()",
        "llvm_suffix": "f32" if dtype == "float32" else "f64",
        "lanes": ("16", "8", "4") if dtype == "float32" else ("8", "4", "2"),
        "panels": panels,
    }


def module_source(conv: Convention, dtype: str) -> str:
    text = render(TEMPLATE, **module_context(conv, dtype))
    if not text.endswith("\n"):
        raise ValueError("the kernel template must end with a newline")
    return _fold_lines(text)


# --- the generated/ folder ------------------------------------------------------------------------

def expected_files(conventions: list[Convention]) -> dict[str, str]:
    """File name -> source, every convention in both dtypes."""
    return {module_name(c, d) + ".py": module_source(c, d) for c in conventions for d in DTYPES}


def check(conventions: list[Convention], folder: Path = GENERATED, complete: bool = False) -> list[str]:
    """Unified diffs of every generated file that differs from what the emitter writes now;
    ``complete``: also of any ``gru_*.py`` in the folder that the emitter would not write."""
    diffs = []
    expected = expected_files(conventions)
    if complete:
        for path in sorted(folder.glob("gru_*.py")):
            if path.name not in expected:
                diffs.append("".join(difflib.unified_diff(
                    _read(path).splitlines(keepends=True), [],
                    fromfile=f"{path} (committed)", tofile=f"{path} (not generated: remove it)")))
    for name, text in expected.items():
        path = folder / name
        old = _read(path)
        if old != text:
            diffs.append("".join(difflib.unified_diff(
                old.splitlines(keepends=True), text.splitlines(keepends=True),
                fromfile=f"{path} (committed)" if old else f"{path} (missing)",
                tofile=f"{path} (generated now)")))
    return diffs


def update(conventions: list[Convention], folder: Path = GENERATED) -> list[Path]:
    """Rewrite the files that differ, each atomically (a one-line error where the folder is not
    writable; never a half-written module); the paths written."""
    written = []
    for name, text in expected_files(conventions).items():
        path = folder / name
        if _read(path) != text:
            write_atomic(path, text.encode("utf-8"))
            written.append(path)
    return written


def _read(path: Path) -> str:
    """A generated file's text ('' where there is none)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as exc:
        raise GrukitError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None

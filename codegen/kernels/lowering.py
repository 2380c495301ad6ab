"""Lowering the stage list and the backward records into the kernels' structure (packed GEMMs and
fused per-unit loops); :mod:`grukit.codegen.kernels.emit` renders what this returns.
* **Packing.** Every affine stage is a sum of weight blocks times operands. The blocks that multiply
  the same operand are packed side by side into one matrix, so one GEMM computes them all: the
  blocks on ``x`` (one GEMM over all T·B rows before the time loop), those on ``h_prev`` (one GEMM
  per step: all three gates for reset-after, z and r for reset-before), those on ``q = r ⊙ h_prev``
  (reset-before: the candidate's, once r is known). Weights are stored ``in x out`` so that a
  step's product is ``operand (B x in) @ W (in x out)``; arrays are time-major for contiguous
  per-step slices.
* **Forward step.** The per-step GEMMs split the stages into *segments*; each segment is one
  fused loop over batch x hidden whose body is the stages' per-unit expressions, printed by
  :mod:`grukit.codegen.kernels.printer`. Values that backward reads are saved per step.
* **Backward step.** The records are walked in order. ``LocalRecord`` contributions and
  ``SumRecord`` adjoints go into the fused loops; ``TransposedRecord`` s on a within-step operand
  become one GEMM per operand (``delta (B x out) @ W^T``); those on ``x``, every ``WeightRecord``
  and every ``BiasRecord`` are deferred to after the time loop, where each is one large GEMM (or a
  column sum) over all T·B rows. ``delta[h_prev]``, the step's carry, is folded into the next
  step's seed.

A scalar gate (one unit shared by all hidden units) is simply a quantity of width 1: its stages
run once per batch row, and a record that ``reduce`` s sums over the hidden units inside the loop.

Everything the template receives is a string or a list of strings (:func:`module_source`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from grukit.codegen.kernels.printer import local_name, print_assignments
from grukit.derive.cell.convention import Param
from grukit.derive.cell.equations import Affine, CellEquations
from grukit.derive.cell.records import (
    BiasRecord,
    LocalRecord,
    SumRecord,
    TransposedRecord,
    WeightRecord,
    backward_records,
)

D, H = sp.Symbol("D", integer=True, positive=True), sp.Symbol("H", integer=True, positive=True)
J = sp.Symbol("j")


# --- the packing ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Piece:
    """The block of ``param`` (column form) that multiplies ``operand``: its ``rows`` of the stacked
    operand vector, and the affine stage ``target`` it feeds."""

    target: str
    param: Param
    operands: tuple[str, ...]
    operand: str
    rows: tuple[sp.Expr, sp.Expr]


@dataclass
class Group:
    """All pieces on one operand, packed into one ``in x out`` matrix ``W_<operand>``."""

    operand: str
    pieces: dict[str, Piece] = field(default_factory=dict)  # target -> piece, in stage order
    offsets: dict[str, sp.Expr] = field(default_factory=dict)  # target -> first column
    width: sp.Expr = sp.S.Zero


class Packing:
    """Which weight block multiplies which operand into which pre-activation, from the stage list."""

    def __init__(self, eqs: CellEquations):
        self.eqs = eqs
        self.conv = eqs.convention
        self.groups: dict[str, Group] = {}
        self.biases: dict[str, tuple[Param, ...]] = {}
        self.bias_offsets: dict[str, sp.Expr] = {}
        self.bias_width = sp.S.Zero
        pieces = []
        for stage in eqs.stages:
            if not isinstance(stage, Affine):
                continue
            for prod in stage.products:
                start = sp.S.Zero
                for operand in prod.operands:
                    stop = start + self.width(operand)
                    pieces.append(Piece(stage.target, prod.param, prod.operands, operand, (start, stop)))
                    start = stop
            if stage.biases:
                self.biases[stage.target] = stage.biases
                self.bias_offsets[stage.target] = self.bias_width
                self.bias_width += self.width(stage.target)
        # the input group first (one GEMM before the time loop), then the others in stage order
        for piece in sorted(pieces, key=lambda p: p.operand != "x"):
            group = self.groups.setdefault(piece.operand, Group(piece.operand))
            if piece.target in group.pieces:
                raise ValueError(f"stage {piece.target} multiplies {piece.operand} twice")
            group.pieces[piece.target] = piece
            group.offsets[piece.target] = group.width
            group.width += self.width(piece.target)
        if "x" not in self.groups:
            raise ValueError("no stage reads the input x")

    def width(self, name: str) -> sp.Expr:
        return self.eqs.width(name, D, H)

    def hidden(self, name: str) -> bool:
        """True for a quantity with one value per hidden unit, False for a scalar (width-1) one."""
        w = self.width(name)
        if w not in (H, sp.S.One):
            raise ValueError(f"quantity {name} has width {w}: not a per-unit value")
        return w == H

    def index(self, name: str) -> str:
        return "j" if self.hidden(name) else "0"

    def column(self, offset: sp.Expr, name: str) -> str:
        return str(offset + (J if self.hidden(name) else 0))

    def groups_of(self, target: str) -> list[Group]:
        return [g for g in self.groups.values() if target in g.pieces]

    @property
    def recurrent(self) -> list[Group]:
        return [g for o, g in self.groups.items() if o != "x"]


def slice_text(start: sp.Expr, stop: sp.Expr, whole: sp.Expr) -> str:
    """A slice ``start:stop`` ('' for all of ``whole``)."""
    if start == 0 and stop == whole:
        return ":"
    return f"{start}:{stop}"


# --- fused loops ---------------------------------------------------------------------------------

@dataclass
class Block:
    """Consecutive per-unit work of one width: ``hidden`` runs in ``for j in range(H)``, a scalar
    block once per batch row. ``pre`` and ``post`` run per batch row around the j loop."""

    hidden: bool
    pre: list[str] = field(default_factory=list)
    loads: dict[str, str] = field(default_factory=dict)  # local -> line, loaded in the block body
    assigns: list[tuple[sp.Symbol, sp.Expr]] = field(default_factory=list)
    stores: list[str] = field(default_factory=list)
    post: list[str] = field(default_factory=list)
    names: set[str] = field(default_factory=set)  # values assigned here


@dataclass
class Segment:
    """Per-step work between two GEMMs: ``before`` (the GEMM lines), then one loop over batch rows.
    ``product``: the operand whose per-step product opens the segment (``None``: none), for the
    blocked kernels, which compute it tile by tile fused with the loop (transposed in backward)."""

    before: list[str] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    product: str | None = None


@dataclass
class Value:
    segment: int
    block: int
    hidden: bool
    accumulated: bool = False  # a sum over units, complete after its block's j loop
    materialized: bool = False  # kept in a per-step buffer K_<name> for later segments


class Lowering:
    """Segments of one time step, and the values that cross from one loop to a later one."""

    def __init__(self, pk: Packing, step: str):
        self.pk = pk
        self.step = step  # the index of saved arrays: "ts" (forward) or "t" (backward)
        self.segments = [Segment()]
        self.values: dict[str, Value] = {}
        self.saved_reads: set[str] = set()  # forward values read from S_<name>
        self.row_loads: dict[int, set[str]] = {}  # segment -> per-row lines already loaded

    def new_segment(self, before: list[str], product: str | None = None) -> None:
        self.segments.append(Segment(list(before), product=product))

    def block(self, hidden: bool) -> Block:
        seg = self.segments[-1]
        if not seg.blocks or seg.blocks[-1].hidden != hidden:
            seg.blocks.append(Block(hidden))
        return seg.blocks[-1]

    @property
    def position(self) -> tuple[int, int]:
        return len(self.segments) - 1, len(self.segments[-1].blocks) - 1

    def define(self, name: str, block: Block, hidden: bool, accumulated: bool = False) -> None:
        s, k = self.position
        self.values[name] = Value(s, k, hidden, accumulated)
        block.names.add(name)

    def load(self, block: Block, local: str, line: str, hidden: bool) -> None:
        """A value read from an array: in the j loop if it has one value per unit, else once per
        batch row (and then once per segment: a per-row local lives until the segment's end)."""
        if local in block.loads or line in block.pre:
            return
        if not hidden:
            row_loaded = self.row_loads.setdefault(len(self.segments) - 1, set())
            if line in row_loaded:
                return
            row_loaded.add(line)
        if hidden or not block.hidden:
            block.loads[local] = line
        else:
            block.pre.append(line)

    def use(self, block: Block, name: str) -> None:
        """Make ``name`` a local of ``block``: defined there, a per-row local of this segment, a
        per-step buffer, or a forward value read from its array."""
        if name in block.names:
            return
        v = self.values.get(name)
        s, _ = self.position
        if v is None:  # a forward value
            idx = self.pk.index(name)
            if name == "h_prev":
                line = f"{local_name(name)} = HS[t, b, {idx}]"
            else:
                self.saved_reads.add(name)
                line = f"{local_name(name)} = S_{name}[{self.step}, b, {idx}]"
            self.load(block, local_name(name), line, self.pk.hidden(name))
            return
        if not v.hidden and v.segment == s:
            return  # a per-row local, assigned earlier in this batch row
        v.materialized = True
        self.load(block, local_name(name), f"{local_name(name)} = K_{name}[b, {'j' if v.hidden else '0'}]",
                  v.hidden)

    def assign(self, block: Block, lhs: str, expr: sp.Expr) -> None:
        for sym in sorted(expr.free_symbols, key=lambda s: s.name):
            self.use(block, sym.name)
        block.assigns.append((sp.Symbol(lhs, real=True), expr))

    def finish(self, dtype: str, prefix: str) -> list[dict]:
        """Stores of the materialized values, then every block printed: strings only. The common
        subexpressions of segment s, block k are named ``<prefix><s>_<k>_<n>`` (printed ``v_...``)."""
        for name, v in self.values.items():
            if v.materialized:
                blk = self.segments[v.segment].blocks[v.block]
                line = f"K_{name}[b, {'j' if v.hidden else '0'}] = {local_name(name)}"
                (blk.post if v.accumulated else blk.stores).append(line)
        out = []
        for s, seg in enumerate(self.segments):
            blocks = []
            for k, blk in enumerate(seg.blocks):
                body = list(blk.loads.values())
                body += print_assignments(blk.assigns, dtype, f"{prefix}{s}_{k}_")
                body += blk.stores
                blocks.append({"extent": "H" if blk.hidden else "", "pre": blk.pre, "body": body,
                               "post": blk.post})
            out.append({"before": seg.before, "blocks": blocks, "product": seg.product})
        return out

    @property
    def buffers(self) -> list[tuple[str, str]]:
        return [(n, "H" if v.hidden else "1") for n, v in self.values.items() if v.materialized]


# --- backward ------------------------------------------------------------------------------------

def _contribution_name(r: LocalRecord) -> str:
    return f"k_{r.target}__{r.operand}"


@dataclass
class BackwardPlan:
    lowering: Lowering
    seed: str  # the line assigning v_d_h
    carry: str  # the expression of delta[h_prev] from the per-step buffers
    after: list[str]  # the step's last GEMMs (the carry's transposed products)
    weights: dict[Param, tuple[str, tuple[str, ...]]]  # param -> (target, operands)
    biases: dict[Param, str]  # param -> target
    zero_buffers: list[str]  # per-step buffers the first (last in time) step reads as zero


def lower_backward(pk: Packing, dtype: str) -> BackwardPlan:
    rec = backward_records(pk.conv)
    low = Lowering(pk, "t")
    seed_block = low.block(True)
    low.define("d_h", seed_block, True)
    emitted: set[str] = set()
    weights: dict[Param, tuple[str, tuple[str, ...]]] = {}
    biases: dict[Param, str] = {}
    carry_paths = None

    def check_group(name: str, transposed: list[TransposedRecord]) -> None:
        group = pk.groups.get(name)
        got = {(r.target, r.param) for r in transposed}
        want = {(p.target, p.param) for p in group.pieces.values()} if group else set()
        if got != want:
            raise ValueError(f"the transposed products into {name} do not match the forward packing")

    for r in rec.records:
        if isinstance(r, SumRecord):
            local = [p.record for p in r.paths if isinstance(p.record, LocalRecord)]
            transposed = [p.record for p in r.paths if isinstance(p.record, TransposedRecord)]
            if len(local) + len(transposed) != len(r.paths):
                raise ValueError(f"unknown path kind in the sum of {r.name}")
            if r.name == "x":  # after the time loop: one GEMM over all T·B rows
                if local:
                    raise ValueError("a pointwise stage reads x: not supported by the kernels")
                check_group("x", transposed)
                continue
            if transposed:
                check_group(r.name, transposed)
            if r.name == "h_prev":  # the carry, folded into the next step's seed
                carry_paths = (local, bool(transposed))
                continue
            if transposed and r.name not in emitted:
                low.new_segment([f"np.dot(DA_{r.name}[t], W_{r.name}.T, GT_{r.name})"], r.name)
                emitted.add(r.name)
            hidden = pk.hidden(r.name)
            blk = low.block(hidden)
            terms = [sp.Symbol(_contribution_name(c), real=True) for c in local]
            if transposed:
                gt = f"gt_{r.name}"
                low.load(blk, local_name(gt), f"{local_name(gt)} = GT_{r.name}[b, {pk.index(r.name)}]", hidden)
                blk.names.add(gt)
                terms.append(sp.Symbol(gt, real=True))
            low.assign(blk, "d_" + r.name, sp.Add(*terms))
            low.define("d_" + r.name, blk, hidden)
            for g in pk.groups_of(r.name):
                blk.stores.append(f"DA_{g.operand}[t, b, {pk.column(g.offsets[r.name], r.name)}] = "
                                  f"{local_name('d_' + r.name)}")
        elif isinstance(r, LocalRecord):
            hidden = pk.hidden(r.target)
            blk = low.block(hidden)
            name = _contribution_name(r)
            if r.reduce:
                if not hidden or pk.hidden(r.operand):
                    raise ValueError(f"record {name}: a sum over units needs a hidden target and a scalar operand")
                term = "e_" + name[2:]
                low.assign(blk, term, r.contribution)
                blk.names.add(term)
                blk.pre.append(f"{local_name(name)} = {zero_literal(dtype)}")
                blk.stores.append(f"{local_name(name)} += {local_name(term)}")
                low.define(name, blk, False, accumulated=True)
            else:
                low.assign(blk, name, r.contribution)
                low.define(name, blk, hidden)
        elif isinstance(r, TransposedRecord):
            if r.operand not in pk.groups or r.target not in pk.groups[r.operand].pieces:
                raise ValueError(f"transposed product {r.target} -> {r.operand} has no packed block")
        elif isinstance(r, WeightRecord):
            if r.param in weights:
                raise ValueError(f"{r.param} appears in two products")
            weights[r.param] = (r.target, r.operands)
        elif isinstance(r, BiasRecord):
            biases[r.param] = r.target
        else:
            raise ValueError(f"unknown record {r!r}")
    if carry_paths is None:
        raise ValueError("the records never complete delta[h_prev]")
    if low.segments[0].blocks[0] is not seed_block:
        raise ValueError("the first backward block must read the seed")
    local, has_gemm = carry_paths
    terms, zero = [], []
    for c in local:
        name = _contribution_name(c)
        low.values[name].materialized = True
        if not low.values[name].hidden:
            raise ValueError(f"{name}: a scalar contribution to delta[h_prev]")
        terms.append(f"K_{name}[b, j]")
        zero.append(f"K_{name}")
    after = []
    if has_gemm:
        after.append("np.dot(DA_h_prev[t], W_h_prev.T, GT_h_prev)")
        terms.append("GT_h_prev[b, j]")
        zero.append("GT_h_prev")
    carry = " + ".join(terms) if terms else zero_literal(dtype)
    seed = f"{local_name('d_h')} = dh[b, t, j] + {carry}"
    seed_block.loads = {local_name("d_h"): seed, **seed_block.loads}
    return BackwardPlan(low, seed, carry, after, weights, biases, zero)


def zero_literal(dtype: str) -> str:
    return "np.float32(0.0)" if dtype == "float32" else "0.0"


# --- forward -------------------------------------------------------------------------------------

def lower_forward(pk: Packing, saved: set[str]) -> Lowering:
    low = Lowering(pk, "ts")
    emitted = {"x"}
    if "h_prev" in pk.groups:
        low.segments[0].before.append("np.dot(HS[t], W_h_prev, G_h_prev)")
        low.segments[0].product = "h_prev"
        emitted.add("h_prev")
    for stage in pk.eqs.stages:
        hidden = pk.hidden(stage.target)
        if isinstance(stage, Affine):
            operands = {o for prod in stage.products for o in prod.operands}
            for o in sorted(operands - emitted):
                low.new_segment([f"np.dot(S_{o}[ts], W_{o}, G_{o})"], o)
                emitted.add(o)
            blk = low.block(hidden)
            terms = []
            for g in pk.groups_of(stage.target):
                col = pk.column(g.offsets[stage.target], stage.target)
                terms.append(f"P_x[t, b, {col}]" if g.operand == "x" else f"G_{g.operand}[b, {col}]")
            if stage.target in pk.bias_offsets:
                terms.append(f"BIAS[{pk.column(pk.bias_offsets[stage.target], stage.target)}]")
            low.load(blk, local_name(stage.target), f"{local_name(stage.target)} = {' + '.join(terms)}", hidden)
        else:
            blk = low.block(hidden)
            low.assign(blk, stage.target, stage.expr)
        low.define(stage.target, blk, hidden)
        idx = pk.index(stage.target)
        if stage.target in saved:
            blk.stores.append(f"S_{stage.target}[ts, b, {idx}] = {local_name(stage.target)}")
        if stage.target == "h":
            blk.stores.append(f"HS[t + 1, b, j] = {local_name('h')}")
    if "h" not in low.values:
        raise ValueError("the stages never assign h")
    return low

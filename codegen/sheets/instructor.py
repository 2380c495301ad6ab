"""Instructor mode: random GRU problems with short decimals, each with a question and a solution sheet.

``grukit problem --convention X --dims DxH --steps T --seed N [--variants K] [-o DIR]`` writes, for
each variant k = 1..K, ``X-seedN-vk.yaml`` (the problem), ``X-seedN-vk-questions.tex`` and
``X-seedN-vk-solution.tex`` (or ``.md`` / ``.pdf``). The numbers come from a generator seeded by
the settings and the variant number, so the same command writes the same bytes on any machine, and
variant k is the same whatever K is. X is a preset name or a convention .yaml file; a file's
mapping is copied into each problem, which therefore stands alone.

Every number has one decimal place: weights in [-0.5, 0.5] without 0, biases in [-0.3, 0.3],
inputs in [-0.9, 0.9] without 0 and the initial state in [-0.5, 0.5]. The loss is softmax
cross-entropy of a two-class output layer at the last step, and the learning rate is 0.1.
"""
from __future__ import annotations

import json
import random
import re
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

from grukit.codegen.output import require_tex, write_atomic
from grukit.codegen.sheets.options import PROBLEM_FORMATS
from grukit.codegen.sheets.sheet import build_sheet
from grukit.derive.cell.convention import Convention
from grukit.derive.cell.presets import PRESETS
from grukit.derive.errors import GrukitError
from grukit.derive.files.convention_file import named_convention
from grukit.derive.files.problem_file import load_problem
from grukit.derive.files.yaml_values import load_yaml

MAX_SIZE = 8
MAX_STEPS = 8
MAX_VARIANTS = 100
OUTPUTS = 2
LEARNING_RATE = "0.1"



def parse_dims(text: str) -> tuple[int, int]:
    """``"2x3"`` -> (D, H) = (2, 3)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
    if not m:
        raise GrukitError(f"--dims: expected DxH such as 2x3, got {text!r}")
    D, H = int(m.group(1)), int(m.group(2))
    for name, value in (("D", D), ("H", H)):
        if not 1 <= value <= MAX_SIZE:
            raise GrukitError(f"--dims: {name} = {value} outside 1..{MAX_SIZE} (a sheet is worked by hand)")
    return D, H


def resolve(convention: str) -> tuple[Convention, str]:
    """The convention ``--convention`` names, and how a problem file names it: a preset by its name,
    a convention file by its mapping written inline (as JSON, which YAML reads)."""

    conv = named_convention(convention, "--convention")
    if convention in PRESETS:
        return conv, conv.name
    return conv, json.dumps({"name": conv.name, **load_yaml(Path(convention))}, default=str)


def file_stem(conv: Convention, seed: int, variant: int) -> str:
    """``NAME-seedN-vK``, the convention's name made safe for a file name."""
    safe = re.sub(r"[^\w.-]+", "-", conv.name)
    return f"{safe}-seed{seed}-v{variant}"


def _check(steps: int, seed: int, variants: int = 1) -> None:
    if not 1 <= steps <= MAX_STEPS:
        raise GrukitError(f"--steps: {steps} outside 1..{MAX_STEPS}")
    if seed < 0:
        raise GrukitError(f"--seed: expected a whole number >= 0, got {seed}")
    if not 1 <= variants <= MAX_VARIANTS:
        raise GrukitError(f"--variants: {variants} outside 1..{MAX_VARIANTS}")


def _tenths(rng: random.Random, low: int, high: int, nonzero: bool) -> Fraction:
    choices = [k for k in range(low, high + 1) if k or not nonzero]
    return Fraction(rng.choice(choices), 10)


def _matrix(rng, shape, low, high, nonzero):
    if len(shape) == 1:
        return [_tenths(rng, low, high, nonzero) for _ in range(shape[0])]
    return [[_tenths(rng, low, high, nonzero) for _ in range(shape[1])] for _ in range(shape[0])]


def random_problem(conv: Convention, D: int, H: int, T: int, seed: int, variant: int) -> dict:
    """The problem as a mapping of plain values (fractions with one decimal place)."""
    rng = random.Random(f"grukit problem|{conv.name}|{D}x{H}|{T}|{seed}|{variant}")
    inputs = [_matrix(rng, (D,), -9, 9, True) for _ in range(T)]
    h0 = _matrix(rng, (H,), -5, 5, False)
    weights = {}
    for p in conv.parameters():
        shape = conv.param_shape(p, D, H)
        weights[conv.key(p)] = _matrix(rng, shape, -3, 3, False) if p.is_bias else _matrix(rng, shape, -5, 5, True)
    while True:  # two output units with the same weights would pass no gradient back at all
        W_o = _matrix(rng, (OUTPUTS, H), -5, 5, True)
        if W_o[0] != W_o[1]:
            break
    if conv.orientation == "row":
        W_o = [list(col) for col in zip(*W_o)]
    b_o = _matrix(rng, (OUTPUTS,), -3, 3, False)
    target = rng.randrange(OUTPUTS)
    return {"inputs": inputs, "h0": h0, "weights": weights,
            "loss": {"W_o": W_o, "b_o": b_o, "target": target}}


def _num(v) -> str:
    """One decimal place, as the YAML reader reads it back exactly (``-0.3``, ``0.0``)."""
    f = Fraction(v)
    return format((Decimal(f.numerator) / Decimal(f.denominator)).quantize(Decimal("0.1")), "f")


def _flow(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return _num(value)


def command_line(convention: str, dims: str, steps: int, seed: int) -> str:
    return f"grukit problem --convention {convention} --dims {dims} --steps {steps} --seed {seed}"


def problem_text(convention: str, dims: str, steps: int, seed: int, variant: int = 1) -> str:
    """The problem YAML of one variant, byte for byte the same for the same settings."""
    conv, spec = resolve(convention)
    D, H = parse_dims(dims)
    _check(steps, seed)
    data = random_problem(conv, D, H, steps, seed, variant)
    title = f"GRU practice problem ({conv.name}, D={D}, H={H}, T={steps}, seed {seed}, variant {variant})"
    out = [
        f"# Generated by: {command_line(convention, f'{D}x{H}', steps, seed)} (variant {variant}).",
        "# Every number has one decimal place; regenerate rather than edit.",
        f"title: {json.dumps(title)}",
        f"convention: {spec}",
        "inputs:",
        *(f"  - {_flow(x)}" for x in data["inputs"]),
        f"h0: {_flow(data['h0'])}",
        "weights:",
        *(f"  {key}: {_flow(value)}" for key, value in data["weights"].items()),
        "loss:",
        "  type: softmax_cross_entropy",
        f"  W_o: {_flow(data['loss']['W_o'])}",
        f"  b_o: {_flow(data['loss']['b_o'])}",
        f"  target: {data['loss']['target']}",
        f"learning_rate: {LEARNING_RATE}",
    ]
    return "\n".join(out) + "\n"


def write_variants(convention: str, dims: str, steps: int, seed: int, variants: int = 1,
                   out_dir: str | Path = ".", fmt: str = "tex", decimals: int = 4) -> list[Path]:
    """Write K variants (problem YAML, question sheet, solution sheet); return the paths written."""

    conv, _ = resolve(convention)
    parse_dims(dims)
    _check(steps, seed, variants)
    if fmt not in PROBLEM_FORMATS:
        raise GrukitError(f"--format: unknown value {fmt!r} (choose {', '.join(PROBLEM_FORMATS)})")
    out_dir = Path(out_dir)
    if fmt == "pdf":
        require_tex(out_dir / "problem.pdf")
    written = []
    for k in range(1, variants + 1):
        stem = file_stem(conv, seed, k)
        path = out_dir / f"{stem}.yaml"
        write_atomic(path, problem_text(convention, dims, steps, seed, k).encode())
        written.append(path)
        problem = load_problem(path)
        for kind, questions in (("questions", True), ("solution", False)):
            sheet = build_sheet(problem, decimals=decimals, questions_only=questions)
            target = out_dir / f"{stem}-{kind}.{fmt}"
            sheet.write(target)
            written.append(target)
    return written

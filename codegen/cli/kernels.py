"""``grukit codegen``, ``bench`` and ``docs``: what is generated from the registry, and how fast it runs.

``grukit codegen [--convention NAME | --all] [--check] [--update]`` renders the Numba kernels of
the presets into ``generated/`` (one module per convention and dtype). ``--check`` regenerates in
memory and fails (exit status 1) with a unified diff on any byte difference; ``--update`` (the
default) rewrites the files that differ.

``grukit bench [--json] [--quick]`` times the kernels against PyTorch, ONNX Runtime and the NumPy
engine in one process and writes ``docs/benchmarks.md`` (see :mod:`grukit.codegen.bench.run`).

``grukit docs [--check]`` rewrites ``docs/conventions.md`` from the preset registry.
"""
from __future__ import annotations

import sys
from pathlib import Path

from grukit.codegen import docs
from grukit.codegen.bench import run as bench
from grukit.codegen.kernels import emit as kernel_emit
from grukit.derive.cell.presets import PRESETS
from grukit.derive.errors import GrukitError


def cmd_codegen(args) -> int:
    if args.convention is not None:
        if args.convention not in PRESETS:
            raise GrukitError(f"codegen: unknown convention {args.convention!r} (presets: {', '.join(PRESETS)})")
        conventions = [PRESETS[args.convention]]
    else:
        conventions = list(PRESETS.values())
    folder = Path(args.output) if args.output else kernel_emit.GENERATED
    if args.check:
        diffs = kernel_emit.check(conventions, folder, complete=args.convention is None)
        if diffs:
            sys.stdout.write("".join(diffs))
            print(f"codegen --check: {len(diffs)} generated file(s) differ from what the emitter writes now; "
                  f"run `grukit codegen --update`", file=sys.stderr)
            return 1
        print(f"codegen --check: {2 * len(conventions)} generated modules match, byte for byte")
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    written = kernel_emit.update(conventions, folder)
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(f"codegen: {2 * len(conventions)} generated modules already up to date")
    return 0


# --- bench -----------------------------------------------------------------------------------------

def cmd_bench(args) -> int:
    return bench.main(quick=args.quick, as_json=args.json, output=args.output, plot=not args.no_plot,
                      render=args.render)


# --- docs ------------------------------------------------------------------------------------------

def cmd_docs(args) -> int:
    output = Path(args.output) if args.output else docs.OUTPUT
    if args.check:
        stale = docs.stale(output)
        if stale is None:
            return 0
        sys.stdout.write(stale)
        print(f"{output} is stale: run `grukit docs`", file=sys.stderr)
        return 1
    if docs.write(output):
        print(f"wrote {output}")
    return 0

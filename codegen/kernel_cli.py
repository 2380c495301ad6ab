"""The `codegen` and `bench` subcommands, and the `numba` engine of `forward` and `grad`.

``grukit codegen [--convention NAME | --all] [--check] [--update]`` renders the Numba kernels of
the presets into ``generated/`` (one module per convention and dtype). ``--check`` regenerates in
memory and fails (exit status 1) with a unified diff on any byte difference; ``--update`` (the
default) rewrites the files that differ.

``grukit bench [--json] [--quick]`` times the kernels against PyTorch, ONNX Runtime and the NumPy
engine in one process and writes ``docs/benchmarks.md`` (see :mod:`grukit.codegen.bench`).

``grukit forward|grad PROBLEM --engine numba`` runs the problem through the float64 kernels (batch
of one) and prints what the ``numpy`` engine prints.

Nothing here imports Numba, PyTorch or ONNX Runtime until a command runs.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


# --- codegen ---------------------------------------------------------------------------------------

def cmd_codegen(args) -> int:
    from grukit.codegen import kernel_emit
    from grukit.derive.errors import GrukitError
    from grukit.derive.presets import PRESETS

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
    from grukit.codegen import bench

    return bench.main(quick=args.quick, as_json=args.json, output=args.output, plot=not args.no_plot)


# --- the numba engine of forward and grad ----------------------------------------------------------

def _kernel_weights(problem) -> dict:
    import numpy as np

    conv = problem.convention
    return {conv.key(p): np.asarray(v, dtype=np.float64) for p, v in problem.params.items()}


def _run_forward(problem):
    import numpy as np

    from grukit.codegen import kernels

    k = kernels.load(problem.convention, "float64")
    x = np.ascontiguousarray(np.asarray(problem.inputs, dtype=np.float64)[None])
    h0 = np.ascontiguousarray(np.asarray(problem.h0, dtype=np.float64)[None])
    return k, k.forward(x, h0, _kernel_weights(problem))


def _step_values(fwd) -> list[dict]:
    """Per step, the values the CLI prints (z, r, c, h), batch row 0."""
    from grukit.codegen.text_output import STEP_KEYS

    steps = []
    for t in range(fwd.h.shape[1]):
        steps.append({name: (fwd.h[0, t] if name == "h" else fwd.value(name)[0, t]) for _, name in STEP_KEYS})
    return steps


def _cell_problem(path: str):
    """The problem of ``--engine numba``: one sequence through one layer (the kernels' API takes
    batches, but the command prints one cell's values), or a one-line error saying what to run."""
    from grukit.derive.errors import GrukitError
    from grukit.derive.layer_problem import LayerProblem, load_any

    problem = load_any(path)
    if isinstance(problem, LayerProblem):
        raise GrukitError(f"{path}: --engine numba: this problem uses batches, lengths, directions or layers; "
                          "the command runs the kernels on one sequence through one layer (use --engine "
                          "numpy, or grukit.kernels from Python for batches)")
    return problem


def numba_forward(args) -> int:
    from grukit.codegen.text_output import STEP_KEYS, format_row
    from grukit.derive.solve import as_floats

    problem = _cell_problem(args.problem)
    _, fwd = _run_forward(problem)
    steps = _step_values(fwd)
    if args.json:
        out = [{key: as_floats(s[name]) for key, name in STEP_KEYS} for s in steps]
        states = [as_floats(s["h"]) for s in steps]  # outputs (B x T x H) and h_n, as `forward --json` gives
        print(json.dumps({"convention": problem.convention.name, "steps": out,
                          "outputs": [states], "h_n": [[states[-1]]]}))
        return 0
    print(f"{problem.path}: convention {problem.convention.name}, T={problem.steps}, "
          f"D={problem.input_size}, H={problem.hidden_size}, engine numba")
    for t, s in enumerate(steps, start=1):
        print(f"t = {t}")
        for key, name in STEP_KEYS:
            print(f"  {key:<10} {format_row(s[name])}")
    return 0


def numba_grad(args) -> int:
    import numpy as np

    from grukit.codegen.text_output import format_row
    from grukit.derive.backward import loss_values
    from grukit.derive.errors import GrukitError
    from grukit.derive.evaluate import StepTrace, engine
    from grukit.derive.layouts import named_arrays
    from grukit.derive.losses import LossHead
    from grukit.derive.solve import as_floats

    if args.check:
        raise GrukitError("grad: --check compares the exact or numpy engine with the expanded derivative; "
                          "run it without --engine numba")
    problem = _cell_problem(args.problem)
    if problem.loss is None:
        raise GrukitError(f"{problem.path}: loss: missing (gradients need a loss head)")
    conv = problem.convention
    k, fwd = _run_forward(problem)
    eng = engine("numpy")
    head = problem.loss
    head = LossHead(head.kind, head.steps, tuple(eng.array(t) for t in head.targets),
                    None if head.W_o is None else eng.array(head.W_o),
                    None if head.b_o is None else eng.array(head.b_o))
    traces = [StepTrace({"h": fwd.h[0, t].copy()}) for t in range(problem.steps)]
    values = loss_values(head, traces, eng, conv.orientation)
    dh = np.zeros(fwd.h.shape)
    for t, d in values.d_h().items():
        dh[0, t] = d
    grads = k.backward(fwd, dh)
    params = {p: grads[conv.key(p)] for p in conv.parameters()}
    named = named_arrays(conv, params, problem.layout, problem.input_size, problem.hidden_size)
    if values.d_W_o is not None:
        named["W_o"] = values.d_W_o
    if values.d_b_o is not None:
        named["b_o"] = values.d_b_o
    named = {name: as_floats(v) for name, v in named.items()}
    inputs, h0 = as_floats(grads["inputs"][0]), as_floats(grads["h0"][0])
    if args.json:
        print(json.dumps({"loss": float(values.loss), "grads": named, "inputs": inputs, "h0": h0}))
        return 0
    print(f"{problem.path}: convention {conv.name}, loss {problem.loss.kind} = {float(values.loss):.10g} "
          f"(engine numba)")
    for name, value in list(named.items()) + [("inputs", inputs), ("h0", h0)]:
        arr = np.asarray(value)
        print(f"dL/d{name} {arr.shape}:")
        for row in np.atleast_2d(arr):
            print("   " + format_row(row, 8))
    return 0


def _with_numba_engine(func, numba_func):
    def run(args):
        return numba_func(args) if getattr(args, "engine", None) == "numba" else func(args)

    run.__doc__ = func.__doc__
    return run


def add_commands(sub) -> None:
    """Register `codegen` and `bench`, and route `forward`/`grad --engine numba` to the kernels."""
    for name, numba_func in (("forward", numba_forward), ("grad", numba_grad)):
        parser = sub.choices.get(name)
        if parser is not None:
            parser.set_defaults(func=_with_numba_engine(parser.get_default("func"), numba_func))

    p = sub.add_parser("codegen", help="render the Numba kernels of the presets into generated/",
                       description="Render one kernel module per convention and dtype from the stage list and "
                                   "the backward records, through codegen/templates/kernel.py.j2.")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--convention", help="one preset (default: all)")
    which.add_argument("--all", action="store_true", help="every preset (the default)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="regenerate in memory; exit 1 with a unified diff if any file differs")
    mode.add_argument("--update", action="store_true", help="rewrite the files that differ (the default)")
    p.add_argument("--output", help="folder to write or check (default: the package's generated/)")
    p.set_defaults(func=cmd_codegen)

    p = sub.add_parser("bench", help="time the kernels against PyTorch, ONNX Runtime and NumPy",
                       description="Time the generated kernels against PyTorch (nn.GRU), ONNX Runtime (GRU) and "
                                   "the NumPy engine in one process, in interleaved rounds, float32 and float64; "
                                   "write docs/benchmarks.md and its plot.")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.add_argument("--quick", action="store_true",
                   help="two small sizes, few rounds (a smoke test; writes no report unless --output)")
    p.add_argument("--output", help="the Markdown report to write, with its .json and .png beside it "
                                    "(default: docs/benchmarks.md; '-' for none)")
    p.add_argument("--no-plot", action="store_true", help="skip the plot (matplotlib)")
    p.set_defaults(func=cmd_bench)

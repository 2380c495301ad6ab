"""``grukit forward`` and ``grukit grad`` for layer problems (batches, directions, stacked layers,
lengths and masks, model files).

``forward --json`` prints ``outputs`` (what the framework returns: B x T x H*directions for PyTorch
and Keras -- or its merge --, ONNX's Y in the node's layout), ``h_n`` (cells x B x H in PyTorch's
h_n order: layer by layer, forward before reverse) and the network it read; a problem of one
sequence through one forward cell with every step also keeps ``steps``. ``grad --json`` prints the
loss, every parameter gradient under the file's own names, and dL/d(inputs) and dL/d(h0) shaped as
the problem gave them. Both name the axes of what they print (``axes``: the inputs' as given,
``time_major`` or ``batch_major``).
"""
from __future__ import annotations

import numpy as np

from grukit.codegen.cli.text import STEP_KEYS, format_row, print_json
from grukit.derive.errors import GrukitError
from grukit.derive.layers.problem import solve_layers


def floats(values):
    """Nested lists of Python floats; a list of arrays stays a list."""
    if isinstance(values, list):
        return [floats(v) for v in values]
    return np.asarray(values, dtype=float).tolist()


def _header(problem, engine: str) -> str:
    net = problem.network
    layers = "; ".join(f"layer {d['layer']}{' ' + d['name'] if d['name'] else ''}: {d['direction']}"
                       f"{', merge ' + d['merge'] if d['direction'] == 'bidirectional' else ''}, "
                       f"D={d['input_size']}, H={d['hidden_size']}, {'/'.join(d['conventions'])}"
                       for d in net.describe())
    return (f"{problem.path}: {net.framework} network, B={problem.batch}, T={problem.steps}, engine {engine}\n"
            f"  {layers}")


def steps_of(sol) -> list[dict]:
    """Every gate and state of the one cell, step by step (a single-sequence single-layer problem)."""
    cr = sol.run.cells[0]
    return [{key: floats(np.asarray(cr.traces[t].values[name])[:, 0]) for key, name in STEP_KEYS}
            for t in range(len(cr.traces))]


def forward_layers(problem, args) -> int:
    engine = args.engine
    sol = solve_layers(problem, engine)
    if args.json:
        axes = problem.axes()
        out = {"convention": [c.convention.name for _, c in problem.network.cells],
               "network": problem.network.describe(), "outputs": floats(sol.outputs), "h_n": floats(sol.h_n),
               "axes": {k: axes[k] for k in ("inputs", "outputs", "h_n")}}
        if problem.single_cell:
            out["convention"] = out["convention"][0]
            out["steps"] = steps_of(sol)
        print_json(out, problem.path)
        return 0
    print(_header(problem, engine))
    print(f"outputs {'x'.join(map(str, np.shape(sol.outputs)))}:")
    for index, row in np.ndenumerate(np.zeros(np.shape(sol.outputs)[:-1])):
        print(f"  {list(index)} {format_row(np.asarray(sol.outputs)[index])}")
    print("h_n (cells x B x H, PyTorch's order):")
    for i, h in enumerate(sol.h_n):
        for b, row in enumerate(h):
            print(f"  [{i}, {b}] {format_row(row)}   {problem.cell_label(i)}")
    return 0


def grad_layers(problem, args) -> int:
    if getattr(args, "check", False):
        raise GrukitError(f"{problem.path}: --check compares one cell with its fully expanded loss; this is a "
                          f"layer problem (the layer tests compare with the frameworks and finite differences)")
    engine = args.engine
    sol = solve_layers(problem, engine, gradients=True)
    grads = {name: floats(v) for name, v in sol.grads.items()}
    if args.json:
        axes = problem.axes()
        print_json({"loss": float(sol.loss), "grads": grads, "inputs": floats(sol.d_inputs),
                    "h0": floats(sol.d_h0), "axes": {k: axes[k] for k in ("inputs", "h0")}}, problem.path)
        return 0
    print(_header(problem, engine))
    print(f"loss {problem.loss.kind} = {float(sol.loss):.10g}")
    for name, value in list(grads.items()) + [("inputs", floats(sol.d_inputs)), ("h0", floats(sol.d_h0))]:
        arr = np.asarray(value)
        print(f"dL/d{name} {arr.shape}:")
        for row in arr.reshape(-1, arr.shape[-1]) if arr.ndim > 1 else [arr]:
            print("   " + format_row(row, 8))
    return 0



"""``grukit convert IN OUT`` for model files and ``grukit diff A B``: read the networks
(:mod:`grukit.derive.files.networks`), write them (:mod:`grukit.codegen.models.write`) or compare them
(:mod:`grukit.derive.audit.diff`); this module only prints."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from grukit.codegen.cli.text import format_row, print_json
from grukit.codegen.models.write import write_model
from grukit.derive.files.networks import PROBLEM_SUFFIXES, NetworkFile, file_attribute, read_network
from grukit.derive.layers.diff import AXIS_GROUPS, TOLERANCE, Repair, diff
from grukit.derive.layers.network import Network


def _layers(net: Network) -> str:
    return "; ".join(f"layer {d['layer']}: {d['direction']}, D={d['input_size']}, H={d['hidden_size']}, "
                     f"{'/'.join(d['conventions'])}" for d in net.describe())


def _origin(read: NetworkFile) -> str:
    return read.framework if read.framework != "none" else "a convention's weights"


def convert_model(source: Path, out: Path) -> int:
    read = read_network(source)
    written = write_model(read.network, source, out)
    print(f"wrote {out}: {written.framework} from {source} ({_origin(read)})")
    print(f"  {_layers(written)}")
    if read.lengths:
        print(f"  {source} runs sequences of their own lengths (ONNX sequence_lens, a Keras Masking layer, a "
              f"problem's lengths or mask): {out} holds the network; give it lengths or masks as "
              f"{written.framework} takes them")
    return 0


def cmd_diff(args) -> int:
    """Exit status 1 when the two files compute different GRUs, 0 when the same."""
    a, b = read_network(args.a), read_network(args.b)
    result = diff(a.network, b.network, a.lengths or b.lengths)
    t = result.trial
    data = {"a": str(a.path), "b": str(b.path), "same": result.same, "tolerance": TOLERANCE,
            "largest_difference": None if result.structure else result.largest, "where": result.where or None,
            "structure": result.structure or None,
            "counterexample": None if t is None or result.same else {
                "trial": t.name, "sequence": result.sequence, "inputs": np.asarray(t.inputs).tolist(),
                "h0": [h.tolist() for h in t.h0], "lengths": t.lengths},
            "axis": result.repair.axis if result.repair else None,
            "explanation": result.repair.explanation if result.repair else None,
            "fix": _fix(result.repair, a, b) if result.repair else None}
    if args.json:
        print_json(data, args.a)
    else:
        _print_diff(data, a, b)
    return 0 if result.same else 1


def _fix(repair: Repair, a: NetworkFile, b: NetworkFile) -> str:
    """The attribute of B's file that sets the axis, to A's value; and, for a model file B, writing it
    again from A (a problem file B: its convention's axis, as A's)."""
    group = AXIS_GROUPS.get(repair.axis, ())
    if b.path.suffix.lower() in PROBLEM_SUFFIXES:
        ours = a.network.layers[0].cells[0].convention
        if not group:
            return f"correct the weights of {b.path} as the explanation says"
        return f"give the convention of {b.path} A's {', '.join(f'{x}: {getattr(ours, x)}' for x in group)}"
    again = f"write B again from A: grukit convert {a.path} {b.path}"
    attribute = group and file_attribute(b.framework, group[0],
                                         [[c.convention for c in layer.cells] for layer in a.network.layers])
    if not attribute:
        return again
    name, value = attribute
    setting = f"remove {name} from {b.path}" if value is None else f"set {name}={value} in {b.path}"
    return f"{setting} (as A computes), or {again}"


def _print_diff(data: dict, a, b) -> None:
    print(f"A = {a.path} ({_origin(a)}): {_layers(a.network)}")
    print(f"B = {b.path} ({_origin(b)}): {_layers(b.network)}")
    if data["structure"]:
        print(f"different networks: {data['structure']}")
        return
    if data["same"]:
        print(f"the same GRU: largest difference {data['largest_difference']:.3g} (at most {TOLERANCE:g}) on "
              f"random, saturating{' and length-limited' if a.lengths or b.lengths else ''} inputs")
        return
    example = data["counterexample"]
    seq = example["sequence"]
    print(f"they differ: largest difference {data['largest_difference']:.6g} at {data['where']}")
    length = f", length {example['lengths'][seq]}" if example["lengths"] else ""
    print(f"  counterexample ({example['trial']}), sequence {seq}{length} (--json: the whole batch):")
    for t, row in enumerate(example["inputs"][seq]):
        print(f"    x[{t}] = {format_row(row, 4)}")
    for i, h in enumerate(example["h0"]):
        print(f"    h0 of cell {i} = {format_row(h[seq], 4)}")
    if data["axis"] is None:
        print("  no single convention axis explains it (gate order, reset position, bias merge, activations, "
              "clip, direction, update rule were tried)")
        return
    print(f"  explained by the {data['axis']}: {data['explanation']}")
    print(f"  fix: {data['fix']}")

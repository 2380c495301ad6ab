"""The audit subcommands: ``verify``, ``names``, ``identify``, ``compare`` and ``convert``.

They answer "is this right?" about worked examples, observed outputs and weight files from the same
equations and records as everything else (``derive/verify.py``, ``derive/identify.py``,
``derive/compare.py``, ``derive/convert.py``); this module only parses arguments and prints.
Registering them imports nothing heavy: each command imports what it needs when it runs.
"""
from __future__ import annotations

import io
import json
from pathlib import Path


def cmd_verify(args) -> int:
    """Exit status 1 when a claim is wrong, else 0."""
    from grukit.codegen.audit_print import print_audit
    from grukit.derive.audit import audit
    from grukit.derive.claims import load_claims
    from grukit.derive.verify import as_data

    data = as_data(audit(load_claims(args.claims)))
    if args.json:
        print(json.dumps(data))
    else:
        print_audit(data)
    return 1 if data["wrong"] else 0


def cmd_names(args) -> int:
    from grukit.codegen.audit_print import print_names
    from grukit.derive.claims import load_literal
    from grukit.derive.evaluate import engine
    from grukit.derive.names import NameTable
    from grukit.derive.problem import load_problem
    from grukit.derive.replay import Walk

    path = Path(args.file)
    data = load_literal(path.read_text() if path.is_file() else "", str(path))
    if isinstance(data, dict) and "claims" in data:
        from grukit.derive.claims import load_claims

        problem = load_claims(path).problem
    else:
        problem = load_problem(path)
    rows = NameTable(Walk(problem, engine("numpy"))).rows()
    if args.json:
        print(json.dumps([{"name": r.name, "shape": list(r.shape), "what": r.what, "inputs": list(r.inputs),
                           "spellings": list(r.spellings)} for r in rows]))
    else:
        print_names(problem, rows)
    return 0


def cmd_identify(args) -> int:
    from grukit.codegen.audit_print import print_identification
    from grukit.derive.identify import as_data, identify

    data = as_data(identify(args.file))
    if args.json:
        print(json.dumps(data))
    else:
        print_identification(args.file, data, args.top)
    return 0


def cmd_compare(args) -> int:
    from grukit.codegen.audit_print import print_comparison
    from grukit.derive.compare import compare
    from grukit.derive.problem import named_convention

    a = named_convention(args.a, "compare: A")
    b = named_convention(args.b, "compare: B")
    result = compare(a, b)
    if args.write:
        _write_counterexample(Path(args.write), result.counterexample)
    if args.json:
        print(json.dumps({"a": a.name, "b": b.name, "equivalent": result.equivalent, "relation": result.relation,
                          "reparameterization": result.reparameterization, "weights": result.weights or None,
                          "proof": result.proof, "counterexample": result.counterexample,
                          "final_states": list(result.states) if result.states else None}))
    else:
        print_comparison(result)
    return 0


def _write_counterexample(folder: Path, example) -> None:
    import yaml
    from grukit.codegen.output import write_atomic
    from grukit.derive.errors import GrukitError

    if example is None:
        raise GrukitError(f"--write {folder}: the conventions are equivalent, there is no counterexample to write")
    for side in ("a", "b"):
        text = yaml.safe_dump(example[side], sort_keys=False, default_flow_style=None)
        write_atomic(folder / f"{side}.yaml", text.encode())
        print(f"wrote {folder / f'{side}.yaml'}")


def cmd_convert(args) -> int:
    import numpy as np
    from grukit.codegen.output import write_atomic
    from grukit.derive.convert import convert
    from grukit.derive.errors import GrukitError
    from grukit.derive.problem import named_convention

    out = Path(args.output)
    if out.suffix != ".npz":
        raise GrukitError(f"{out}: the output must be an .npz file")
    source = named_convention(args.source, "convert: --from")
    target = named_convention(args.target, "convert: --to")
    result = convert(source, target, Path(args.input))
    buffer = io.BytesIO()
    np.savez(buffer, **result.arrays)
    write_atomic(out, buffer.getvalue())
    D, H = result.sizes
    print(f"wrote {out}: {source.name} -> {target.name}, D = {D}, H = {H}; {result.rep.text()}")
    print("  arrays: " + ", ".join(f"{n} {'x'.join(map(str, a.shape))} {a.dtype}" for n, a in result.arrays.items()))
    for note in result.notes:
        print(f"  {note}")
    return 0


def add_commands(sub) -> None:
    """Register the audit commands on the CLI's subparsers."""
    p = sub.add_parser("verify", help="check every number a worked example claims, and diagnose the wrong ones",
                       description="Check a claims file (problem + the numbers a worked example prints) number by "
                                   "number: ok, rounding, propagated or wrong, and what explains each wrong one. "
                                   "Exit status 1 if any claim is wrong.")
    p.add_argument("claims", help="claims YAML file")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("names", help="the names a claims file may use for a problem's numbers, with shapes")
    p.add_argument("file", help="problem or claims YAML file")
    p.add_argument("--json", action="store_true", help="one JSON list on stdout")
    p.set_defaults(func=cmd_names)

    p = sub.add_parser("identify", help="rank every convention (and misreading) of the weights by how well it "
                                        "reproduces observed outputs")
    p.add_argument("file", help="problem file with observed: {h: ...} or {h_last: ...}, or a claims file")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--top", type=int, default=10, help="how many readings to list (default 10)")
    p.set_defaults(func=cmd_identify)

    p = sub.add_parser("compare", help="prove two conventions equal (maybe under a reparameterization) or give "
                                       "a counterexample")
    p.add_argument("a", help="a preset name or a convention .yaml file")
    p.add_argument("b", help="a preset name or a convention .yaml file")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--write", metavar="DIR", help="write the counterexample's two problems as DIR/a.yaml, DIR/b.yaml")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("convert", help="convert weights between conventions and framework layouts (.npz)")
    p.add_argument("--from", dest="source", required=True, help="the weights' convention (preset or .yaml)")
    p.add_argument("--to", dest="target", required=True, help="the convention to write (preset or .yaml)")
    p.add_argument("input", help="input .npz (the framework's arrays, or one array per parameter key)")
    p.add_argument("output", help="output .npz")
    p.set_defaults(func=cmd_convert)

"""The audit subcommands: ``verify``, ``names``, ``identify``, ``compare`` and ``convert``.

They answer "is this right?" about worked examples, observed outputs and weight files from the same
equations and records as everything else (``derive/audit/verify.py``, ``derive/audit/identify.py``,
``derive/audit/compare.py``, ``derive/audit/convert.py``); this module only parses arguments and prints.
Registering them imports nothing heavy: each command imports what it needs when it runs.
"""
from __future__ import annotations

import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from grukit.codegen.cli.audit_text import print_audit, print_comparison, print_identification, print_names
from grukit.codegen.cli.models import convert_model
from grukit.codegen.cli.text import print_json
from grukit.codegen.grading.processes import SUFFIXES, Limits, grade_all, submissions, terminal_progress
from grukit.codegen.grading.table import csv_text, markdown_text, table
from grukit.codegen.output import write_atomic
from grukit.derive.audit.audit import audit, sample_problem, warm_up
from grukit.derive.audit.claims import load_claims, load_literal_file
from grukit.derive.audit.compare import compare
from grukit.derive.audit.convert import convert
from grukit.derive.audit.identify import as_data as identification_data
from grukit.derive.audit.identify import identify
from grukit.derive.audit.names import NameTable
from grukit.derive.audit.replay import Walk
from grukit.derive.audit.verify import as_data as audit_data
from grukit.derive.cell.presets import PRESETS
from grukit.derive.errors import GrukitError
from grukit.derive.files.convention_file import named_convention
from grukit.derive.files.problem_file import load_problem
from grukit.derive.numeric.evaluate import engine


def cmd_verify(args) -> int:
    """Exit status 1 when a claim is wrong, else 0. A folder is a class's submissions: one table
    (:func:`cmd_grade`)."""
    if Path(args.claims).is_dir():
        return cmd_grade(args)
    for option, value in (("--problem", args.problem), ("--output", args.output)):
        if value is not None:
            raise GrukitError(f"{option}: grades a folder of claims files; {args.claims} is not a folder")
    data = audit_data(audit(load_claims(args.claims)))
    if args.json:
        print_json(data, args.claims)
    else:
        print_audit(data)
    return 1 if data["wrong"] else 0


def cmd_names(args) -> int:
    path = Path(args.file)
    data = load_literal_file(path)
    if isinstance(data, dict) and "claims" in data:
        problem = load_claims(path).problem
    else:
        problem = load_problem(path)
    rows = NameTable(Walk(problem, engine("numpy"))).rows()
    if args.json:
        print_json([{"name": r.name, "shape": list(r.shape), "what": r.what, "inputs": list(r.inputs),
                           "spellings": list(r.spellings)} for r in rows], path)
    else:
        print_names(problem, rows)
    return 0


def cmd_identify(args) -> int:
    data = identification_data(identify(args.file))
    if args.json:
        print_json(data, args.file)
    else:
        print_identification(args.file, data, args.top)
    return 0


def cmd_compare(args) -> int:
    a = named_convention(args.a, "compare: A")
    b = named_convention(args.b, "compare: B")
    result = compare(a, b)
    if args.write:
        _write_counterexample(Path(args.write), result.counterexample)
    if args.json:
        print_json({"a": a.name, "b": b.name, "equivalent": result.equivalent, "relation": result.relation,
                          "reparameterization": result.reparameterization, "weights": result.weights or None,
                          "proof": result.proof, "counterexample": result.counterexample,
                          "final_states": list(result.states) if result.states else None}, "compare")
    else:
        print_comparison(result)
    return 0


def _write_counterexample(folder: Path, example) -> None:


    if example is None:
        raise GrukitError(f"--write {folder}: the conventions are equivalent, there is no counterexample to write")
    for side in ("a", "b"):
        text = yaml.safe_dump(example[side], sort_keys=False, default_flow_style=None)
        write_atomic(folder / f"{side}.yaml", text.encode())
        print(f"wrote {folder / f'{side}.yaml'}")


def cmd_convert(args) -> int:
    out = Path(args.output)
    if args.source is None and args.target is None:
        return convert_model(Path(args.input), out)
    if args.source is None or args.target is None:
        raise GrukitError(f"convert: {'--to' if args.source else '--from'} missing: --from and --to convert one "
                          f"cell's .npz weights (a model file to a model file needs neither)")
    if out.suffix != ".npz":
        raise GrukitError(f"{out}: the output must be an .npz file with --from and --to (a model file to a model "
                          f"file needs neither option)")
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


def _warming():
    """After each row of a class whose files name their own problems: the built-in convention it used,
    derived here once (on a problem of grukit's own, never a submitted one), so that the processes
    forked for later files start with it."""
    seen = set()

    def learn(row: dict) -> None:
        name = row.get("convention")
        if name in PRESETS and name not in seen:
            seen.add(name)
            warm_up(sample_problem(PRESETS[name]))

    return learn


def cmd_grade(args) -> int:
    """``grukit verify FOLDER``: every claims file graded (:mod:`grukit.codegen.grading.processes`), the table
    written as OUTPUT.csv, OUTPUT.md and OUTPUT.json (atomically); exit status the worst row's."""
    folder = Path(args.claims)
    stem = Path(args.output or "grades")
    outputs = {suffix: stem.with_name(stem.name + suffix) for suffix in (".csv", ".md", ".json")}
    problem = load_problem(args.problem) if args.problem else None
    if problem is not None:
        warm_up(problem)  # once here, not in every forked child
    skip = {p.resolve() for p in [*outputs.values(), *([Path(args.problem)] if args.problem else [])]}
    files = [f for f in submissions(folder) if f.resolve() not in skip]
    if not files:
        raise GrukitError(f"{folder}: a folder with no claims files ({', '.join(SUFFIXES)}) to grade")
    limits = Limits(args.jobs or len(os.sched_getaffinity(0)), float(args.timeout), args.memory)
    start = time.monotonic()
    rows = grade_all(files, problem, limits, terminal_progress(), None if problem is not None else _warming())
    data = table(folder, None if problem is None else Path(args.problem), files, rows)
    write_atomic(outputs[".json"], (json.dumps(data, indent=1, allow_nan=False) + "\n").encode())
    write_atomic(outputs[".csv"], csv_text(data).encode())
    write_atomic(outputs[".md"], markdown_text(data).encode())
    s = data["summary"]
    print(f"grukit: graded {s['files']} files in {time.monotonic() - start:.1f} s ({limits.jobs} processes)",
          file=sys.stderr)
    if args.json:
        print_json(data, folder)
    else:
        print(f"{folder}: {s['files']} files: {s['right']} without a wrong claim, {s['with_wrong_claims']} with a "
              f"wrong claim, {s['not_graded']} not graded; wrote {', '.join(map(str, outputs.values()))}")
    return max((r["status"] for r in data["files"]), default=0)

"""Plain-text reports of the audit commands, printed from the same data their ``--json`` gives."""
from __future__ import annotations


def _number(v: float, decimals: int) -> str:
    return f"{v:.{decimals}f}"


def _values(values, decimals: int) -> str:
    """A number, a vector [a, b] or a matrix [a, b; c, d], each to ``decimals`` places."""
    if not isinstance(values, list):
        return _number(values, decimals)
    if values and isinstance(values[0], list):
        return "[" + "; ".join(", ".join(_number(v, decimals) for v in row) for row in values) + "]"
    return "[" + ", ".join(_number(v, decimals) for v in values) + "]"


def _flat(values) -> list:
    """The numbers of a nested list (a number alone: itself)."""
    if isinstance(values, list):
        return [x for v in values for x in _flat(v)]
    return [values]


def _intervals(pairs, decimals: int) -> str:
    """Intervals [lo, hi], one per element."""
    flat = _flat(pairs)
    return " ".join(f"[{_number(lo, decimals)}, {_number(hi, decimals)}]" for lo, hi in zip(flat[::2], flat[1::2]))


def print_audit(data: dict) -> None:
    claims = data["claims"]
    counts = {v: sum(c["verdict"] == v for c in claims) for v in ("wrong", "propagated", "rounding", "ok")}
    print(f"{data['file']}: {len(claims)} claims on {data['problem']} (convention {data['convention']}): "
          + ", ".join(f"{n} {v}" for v, n in counts.items()))
    for c in claims:
        if c["verdict"] == "wrong":
            _print_wrong(c)
    rows = [("verdict", "claim", "claimed", "exact")]
    for c in claims:
        if c["verdict"] != "wrong":
            rows.append((c["verdict"], c["name"], c["printed"], _exact_text(c)))
    if len(rows) == 1:
        return
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    print()
    for r in rows:
        print("  ".join(f"{cell:<{w}}" for cell, w in zip(r, widths)) + "  " + r[3])


def _exact_text(c: dict) -> str:
    if c["interval"] is None:
        return c["exact"]
    return _values(c["exact"], max(_flat(c["decimals"])) + 1)


def _print_wrong(c: dict) -> None:
    print(f"\nWRONG  {c['name']}")
    print(f"  claimed    {c['printed']}")
    if c["interval"] is None:  # a formula
        print(f"  grukit     {c['exact']}")
        print(f"  difference claimed - grukit: {c['difference']}")
        if c["missing_paths"]:
            print("  the claim lacks the paths: " + "; ".join(c["missing_paths"]))
        return
    digits = max(_flat(c["decimals"])) + 1
    print(f"  exact      {_values(c['exact'], digits)}")
    start = "its inputs, each between its exact and its claimed value" if c["inputs"] else "the exact inputs"
    print(f"  rounding to the printed decimals reaches {_intervals(c['interval'], digits)} from {start}")
    if c["inputs"]:
        print(f"  and {_intervals(c['from_claimed_inputs'], digits)} from its claimed inputs as printed "
              f"({', '.join(c['inputs'])})")
    for d in c["diagnosis"]:
        print(f"  diagnosis: {d}")
    for d in c["also"]:
        print(f"  also fits within rounding: {d}")


def print_names(problem, rows) -> None:
    print(f"{problem.path}: convention {problem.convention.name}, T={problem.steps}, D={problem.input_size}, "
          f"H={problem.hidden_size}; the names a claims file may use (element: NAME[i] or NAME[i][j])")
    table = [("name", "shape", "what", "also written")]
    for r in rows:
        shape = "x".join(map(str, r.shape)) if r.shape != (1,) else "1"
        table.append((r.name, shape, r.what, ", ".join(r.spellings)))
    widths = [max(len(t[i]) for t in table) for i in range(3)]
    for t in table:
        print("  ".join(f"{cell:<{w}}" for cell, w in zip(t, widths)) + "  " + t[3])


def print_identification(file, data: dict, top: int) -> None:
    observed = ", ".join(f"{k} = {v!r}" for k, v in data["observed"].items())
    ranking = data["ranking"]
    print(f"{file}: observed {observed}; {len(ranking)} different results from the readings of the weights")
    if data["ignored"]:
        print(f"  (claims not used to identify: {', '.join(data['ignored'])})")
    print()
    print(f"{'residual':>12}  {'same':>4}  predicted / reading")
    for c in ranking[:top]:
        predicted = ", ".join(f"{v:.7g}" for v in c["predicted"].values())
        print(f"{c['residual']:>12.6g}  {c['same_numbers']:>4}  [{predicted}]  {c['convention']}")
    best = ranking[0] if ranking else None
    print()
    if data["fits"]:
        print(f"fits: {best['convention']} reproduces every observed number within {data['tolerance']:.2g}")
    else:
        print(f"NO convention fits: the closest reading, {best['convention']}, is off by {best['residual']:.4g} "
              f"(a fit would be within {data['tolerance']:.2g}); these weights do not produce these outputs")


def print_comparison(result) -> None:
    a, b = result.a.name, result.b.name
    print(f"{a} vs {b}: {result.relation}")
    if result.reparameterization:
        print(f"reparameterization ({a} -> {b}): {result.reparameterization}")
    if result.proof:
        print("proof:")
        for line in result.proof:
            print(f"  {line}")
    if result.counterexample:
        print(f"counterexample: the same inputs and h0, {a}'s weights and the same weights laid out for {b} "
              f"(`grukit compare {a} {b} --write DIR` writes both problems; `grukit forward DIR/a.yaml`):")
        for side, name, state in (("a", a, result.states[0]), ("b", b, result.states[1])):
            print(f"  {name}: last state {[round(v, 6) for v in state]}")
            print(f"    {result.counterexample[side]}")

"""``grukit conventions``: the built-in conventions, one line each (plain data: no SymPy), or one
convention's equations (:func:`grukit.codegen.cli.cell.show_convention`)."""
from __future__ import annotations

from grukit.derive.cell.presets import PRESETS

# --- conventions ------------------------------------------------------------------------------

def cmd_conventions(args) -> int:
    if args.name is None:
        print_presets()
        return 0
    # The one deferred import of the command line: the list above is plain data and starts as fast as
    # NumPy; one convention's equations need SymPy (tests/test_layering.py lists this exception).
    from grukit.codegen.cli.cell import show_convention

    return show_convention(args)


def print_presets() -> None:
    """One line per preset: the registry is plain data, so this needs no SymPy."""
    rows = [("name", "update rule", "reset", "biases", "gate act.", "orient.", "description")]
    for c in PRESETS.values():
        rows.append((c.name, c.update_rule, c.reset, c.biases, c.gate_activation, c.orientation, c.description))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(f"{cell:<{w}}" for cell, w in zip(r, widths)) + "  " + r[-1])
    print("\n`grukit conventions NAME` shows one convention's equations (NAME may be a convention .yaml "
          "file); add --latex for LaTeX.")

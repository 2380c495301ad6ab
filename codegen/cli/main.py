"""The ``grukit`` command: parse the arguments, run the command, and turn every failure into one line.

Bad input ends in one line on stderr naming the file and field, exit status 2, and no traceback.
The command's module is imported here, when it runs (see :mod:`grukit.codegen.cli.parser`).
"""
from __future__ import annotations

import importlib
import sys

from grukit.codegen.cli.parser import build_parser
from grukit.derive.errors import GrukitError


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module, _, function = args.run.partition(":")
    run = getattr(importlib.import_module(f"grukit.codegen.cli.{module}"), function)
    try:
        return run(args)
    except GrukitError as exc:
        print(f"grukit: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())

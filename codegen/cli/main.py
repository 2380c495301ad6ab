"""The ``grukit`` command: parse the arguments, run the command, and turn every failure into one line.

Bad input ends in one line on stderr naming the file and field, exit status 2, and no traceback
(docs/security.md): a :class:`GrukitError` says what is wrong; an ``OSError`` or a
``UnicodeDecodeError`` that no reader turned into one still names its file; Ctrl-C ends with
status 130. Anything else is a bug in grukit: one line asking for a report, status 70 (set
``GRUKIT_TRACEBACK=1`` to see the traceback). The command's module is imported here, when it runs
(see :mod:`grukit.codegen.cli.parser`).
"""
from __future__ import annotations

import importlib
import os
import re
import sys
from contextlib import contextmanager

from grukit.codegen.cli.parser import build_parser
from grukit.derive.errors import GrukitError

INTERRUPTED = 130
"""The shell's status for a command ended by Ctrl-C (128 + SIGINT)."""
INTERNAL = 70
"""sysexits' EX_SOFTWARE: grukit itself failed."""


def main(argv: list[str] | None = None) -> int:
    with _printable(sys.stdout, sys.stderr):
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
        module, _, function = args.run.partition(":")
        run = getattr(importlib.import_module(f"grukit.codegen.cli.{module}"), function)
        return run(args)
    except GrukitError as exc:
        return _fail(str(exc), 2)
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return _fail("interrupted", INTERRUPTED)
    except UnicodeDecodeError as exc:
        return _fail(f"{getattr(exc, 'filename', None) or 'input'}: not UTF-8 text "
                     f"(byte {exc.object[exc.start:exc.start + 1]!r} at offset {exc.start})", 2)
    except OSError as exc:
        where = exc.filename if exc.filename is not None else "grukit"
        return _fail(f"{where}: {exc.strerror or exc}", 2)
    except Exception as exc:
        if os.environ.get("GRUKIT_TRACEBACK"):
            raise
        return _fail(f"internal error ({type(exc).__name__}: {_one_line(str(exc))}); please report it with the "
                     f"command and its input files", INTERNAL)


class _Printable:
    """A text stream that drops control and format characters (terminal escape sequences, bidi
    overrides) from what it writes, newlines and tabs kept: a file's strings reach the terminal as
    text. JSON is unaffected (``json.dumps`` escapes every control character)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(_UNPRINTED.sub("", text))
        return len(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


_UNPRINTED = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


@contextmanager
def _printable(out, err):
    sys.stdout, sys.stderr = _Printable(out), _Printable(err)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err


def _one_line(text: str) -> str:
    return " ".join(text.split())[:2000]


def _fail(message: str, status: int) -> int:
    try:
        print(f"grukit: error: {_one_line(message)}", file=sys.stderr)
    except (OSError, ValueError):
        pass
    return status


if __name__ == "__main__":
    sys.exit(main())

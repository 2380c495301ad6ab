"""The hostile-input harness: run grukit on a file someone else wrote and check what it promises
(docs/security.md): no traceback, one clear line naming the file and field, exit status 2, bounded
time, no marker file written by injected code, no foreign file's content in any output.

Two ways to run a command: :func:`run` in this process (fast; a time limit by SIGALRM) and
:func:`run_process` in a child process group (for hangs that only a kill ends, Ctrl-C, and
anything that must not touch this process).
"""
from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SECRET = "grukit-foreign-content-5f0c1e"
"""A token planted in a file that grukit must never read into its output."""

MARKER = "grukit-owned-marker"
"""The name of the file injected code would write (``touch <tmp>/grukit-owned-marker``)."""


@dataclass
class Outcome:
    status: int
    out: str
    err: str
    seconds: float


class TimeLimit(Exception):
    pass


def _alarm(signum, frame):
    raise TimeLimit()


def run(argv: list[str], cwd: Path | None = None, limit: float = 60) -> Outcome:
    """``grukit ARGV`` in this process; an exception escaping ``main`` fails the test (it would be a
    traceback), and so does running past ``limit`` seconds."""
    from grukit.codegen.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    old_cwd = os.getcwd()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    start = time.perf_counter()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main([str(a) for a in argv])
            except SystemExit as exc:  # argparse
                status = exc.code if isinstance(exc.code, int) else 2
    except TimeLimit:
        raise AssertionError(f"grukit {' '.join(map(str, argv))}: still running after {limit} s") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        os.chdir(old_cwd)
    return Outcome(status, out.getvalue(), err.getvalue(), time.perf_counter() - start)


def run_process(argv: list[str], cwd: Path | None = None, limit: float = 60, env: dict | None = None,
                interrupt_after: float | None = None) -> Outcome:
    """``python -m grukit ARGV`` in a new process group, killed whole past ``limit`` seconds (a test
    failure); ``interrupt_after``: send SIGINT (Ctrl-C) to the group after that many seconds."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "grukit", *map(str, argv)], cwd=cwd, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        if interrupt_after is not None:
            try:
                proc.wait(interrupt_after)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"grukit {' '.join(map(str, argv))}: still running after {limit} s") from None
    return Outcome(proc.returncode, out, err, time.perf_counter() - start)


def refused(o: Outcome, *words: str, status: int = 2) -> str:
    """The command failed as promised: ``status``, nothing but one ``grukit: error:`` line on stderr
    (no traceback), every one of ``words`` in it. Returns the line."""
    assert "Traceback" not in o.err and "Traceback" not in o.out, o.err
    lines = o.err.splitlines()
    assert o.status == status and len(lines) == 1 and lines[0].startswith("grukit: error: "), (o.status, o.err)
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def clean(o: Outcome) -> None:
    """No traceback anywhere, whatever the status."""
    assert "Traceback" not in o.err and "Traceback" not in o.out, o.err


def plant_secret(folder: Path, name: str = "secret.txt") -> Path:
    """A file whose content grukit must never copy into an output."""
    path = folder / name
    path.write_text("\n".join(f"{SECRET} line {i}" for i in range(20)) + "\n")
    return path


def assert_nothing_leaked(o: Outcome, *folders: Path) -> None:
    """Neither the output streams nor any file under ``folders`` (other than the planted one) holds
    the secret, and no injected code wrote the marker file."""
    assert SECRET not in o.out and SECRET not in o.err
    for folder in folders:
        for path in Path(folder).rglob("*"):
            assert path.name != MARKER, f"injected code ran: {path}"
            if path.is_file() and path.name != "secret.txt":
                assert SECRET.encode() not in path.read_bytes(), f"foreign content in {path}"

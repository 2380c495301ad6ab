"""``grukit verify DIR``: a class's submissions graded in parallel, each file in its own bounded process.

Every claims file runs in a forked child (:func:`grukit.derive.audit.audit.graded`), which first
limits itself: its address space to what it holds at the fork plus ``memory`` MiB
(``RLIMIT_AS``), its CPU time to the wall-clock limit (``RLIMIT_CPU``), no core file. The parent
kills it past ``timeout`` seconds. Its row comes back through a pipe as JSON (never pickled).
Whatever goes wrong in a child -- a file grukit refuses, a memory or time limit, a crash -- becomes
that file's row's one-line error; no other row is touched, and the parent never reads a submission.
Children run ``jobs`` at a time; a progress line on stderr (a terminal) counts them done.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import select
import signal
import stat
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from grukit.derive.audit.audit import graded
from grukit.derive.errors import GrukitError
from grukit.derive.numeric.problem import Problem

SUFFIXES = (".yaml", ".yml", ".json")
"""The files of a folder that are graded (the claims formats)."""
MAX_ROW_BYTES = 16 * 2 ** 20
"""The most bytes one child's row may take (2000 claims with long diagnoses take well under 1 MiB)."""
ERROR = 2
"""A row's status when its file could not be graded (``grukit verify FILE`` exits 2 on it)."""


@dataclass(frozen=True)
class Limits:
    """What one file may take: wall-clock seconds, memory beyond the forked process's own (MiB)."""

    jobs: int = 2
    timeout: float = 60.0
    memory: int = 2048


@dataclass
class _Child:
    index: int
    path: Path
    pid: int
    fd: int
    deadline: float
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0


def submissions(folder: Path) -> list[Path]:
    """The folder's claims files (:data:`SUFFIXES`), by name; not its subfolders."""
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        raise GrukitError(f"{folder}: cannot list the folder ({exc.strerror or exc})") from None
    return [folder / n for n in names if Path(n).suffix.lower() in SUFFIXES]


def grade_all(files: list[Path], problem: Problem | None, limits: Limits, progress=None, learn=None) -> list[dict]:
    """Each file's row, in the order given: the child's result, or ``{"status": 2, "error": ...}``.
    ``progress(done, total)`` after each row; ``learn(row)`` after each graded row, before the next
    children are forked (to derive here what they would each derive again)."""
    rows: list[dict | None] = [None] * len(files)
    waiting = list(enumerate(files))
    running: dict[int, _Child] = {}
    try:
        while waiting or running:
            while waiting and len(running) < limits.jobs:
                index, path = waiting.pop(0)
                refusal = _unreadable(path)
                if refusal is not None:
                    rows[index] = {"status": ERROR, "error": refusal}
                    _tell(progress, rows, len(files))
                    continue
                child = _start(index, path, problem, limits)
                running[child.fd] = child
            if not running:
                continue
            wait = max(0.0, min(c.deadline for c in running.values()) - time.monotonic())
            ready, _, _ = select.select(list(running), [], [], min(wait, 1.0))
            for fd in ready:
                child = running[fd]
                chunk = os.read(fd, 1 << 20)
                child.chunks.append(chunk)
                child.size += len(chunk)
                if not chunk or child.size > MAX_ROW_BYTES:
                    del running[fd]
                    rows[child.index] = _finish(child, limits, timed_out=False)
                    _tell(progress, rows, len(files))
                    if learn is not None and "error" not in rows[child.index]:
                        learn(rows[child.index])
            now = time.monotonic()
            for fd, child in list(running.items()):
                if now >= child.deadline:
                    del running[fd]
                    rows[child.index] = _finish(child, limits, timed_out=True)
                    _tell(progress, rows, len(files))
    finally:
        for child in running.values():  # Ctrl-C or a failure here: stop every child this call started
            _stop(child)
    return rows


def _tell(progress, rows: list, total: int) -> None:
    if progress is not None:
        progress(sum(r is not None for r in rows), total)


def _unreadable(path: Path) -> str | None:
    """Why a folder entry is not read (a link, a folder, a FIFO...), or None for a regular file. A link
    is not followed: the teacher named the folder, not where its links lead."""
    try:
        mode = os.lstat(path).st_mode
    except OSError as exc:
        return f"{path}: cannot read ({exc.strerror or exc})"
    if stat.S_ISLNK(mode):
        return f"{path}: a symbolic link, not read (grading reads the folder's own files)"
    if not stat.S_ISREG(mode):
        return f"{path}: not a regular file"
    return None


def _start(index: int, path: Path, problem: Problem | None, limits: Limits) -> _Child:
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():  # Python 3.12 warns when a process with threads forks; the child needs none
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: grade, write the row, exit at once (no cleanup of the parent's)
        try:
            os.close(read_end)
            _child(path, problem, limits, write_end)
        finally:
            os._exit(0)
    os.close(write_end)
    return _Child(index, path, pid, read_end, time.monotonic() + limits.timeout)


def _child(path: Path, problem: Problem | None, limits: Limits, fd: int) -> None:
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C stops the child; the parent answers for the row
    warnings.simplefilter("ignore")
    try:
        _limit(limits)
        row = graded(path, problem)
    except GrukitError as exc:
        row = {"status": ERROR, "error": str(exc)}
    except MemoryError:
        row = {"status": ERROR, "error": f"{path}: needs more than the memory limit ({limits.memory} MiB): stopped"}
    except RecursionError:
        row = {"status": ERROR, "error": f"{path}: nested too deeply to grade: stopped"}
    except Exception as exc:  # noqa: BLE001 - a bug in grukit, on this file only: its row says so
        row = {"status": ERROR, "error": f"{path}: internal error ({type(exc).__name__}: "
                                          f"{' '.join(str(exc).split())[:300]}); please report it with this file"}
    try:
        data = json.dumps(row, allow_nan=False).encode()
    except ValueError:
        data = json.dumps({"status": ERROR, "error": f"{path}: its result holds NaN or infinity"}).encode()
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _limit(limits: Limits) -> None:
    """This process's own bounds: address space (what it has now plus the memory limit), CPU time, no core."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/statm") as fh:
            now = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        cap = now + limits.memory * 2 ** 20
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    seconds = math.ceil(limits.timeout) + 1
    with contextlib.suppress(OSError, ValueError):
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))
    with contextlib.suppress(OSError, ValueError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _stop(child: _Child) -> int:
    """Kill the child (this call's own, by its pid), reap it, close its pipe; its wait status."""
    with contextlib.suppress(OSError):
        os.kill(child.pid, signal.SIGKILL)
    return _reap(child)


def _reap(child: _Child) -> int:
    with contextlib.suppress(OSError):
        os.close(child.fd)
    try:
        return os.waitpid(child.pid, 0)[1]
    except ChildProcessError:
        return 0


def _finish(child: _Child, limits: Limits, timed_out: bool) -> dict:
    """The child's row, or the one-line error saying how it ended."""
    if timed_out:
        _stop(child)
        return {"status": ERROR, "error": f"{child.path}: not graded within the time limit ({limits.timeout:g} s): "
                                          f"stopped"}
    if child.size > MAX_ROW_BYTES:
        _stop(child)
        return {"status": ERROR, "error": f"{child.path}: its result is larger than grukit reports ({MAX_ROW_BYTES} "
                                          f"bytes)"}
    status = _reap(child)
    data = b"".join(child.chunks)
    if data:
        try:
            row = json.loads(data)
        except ValueError:
            row = None
        if isinstance(row, dict):
            return row
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        why = {signal.SIGXCPU: f"the CPU time limit ({math.ceil(limits.timeout) + 1} s)",
               signal.SIGKILL: f"a kill (the system's memory limit?; grukit's is {limits.memory} MiB)",
               signal.SIGSEGV: "a crash (segmentation fault)"}.get(sig, f"signal {sig}")
        return {"status": ERROR, "error": f"{child.path}: stopped by {why}"}
    return {"status": ERROR, "error": f"{child.path}: the grading process ended without a result"}


def terminal_progress(stream=None):
    """A progress callback that rewrites one line on ``stream`` (stderr) when it is a terminal, else None."""
    stream = stream or sys.stderr
    if not stream.isatty():
        return None

    def show(done: int, total: int) -> None:
        stream.write(f"\rgrukit: graded {done}/{total} files" + ("\n" if done == total else ""))
        stream.flush()

    return show

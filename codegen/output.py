"""Writing files: atomically (no half-written output on error), and PDFs through latexmk/pdflatex."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from grukit.derive.errors import GrukitError


def _named(path: Path) -> str:
    """A path as an error line names it: a very long one cut in the middle (the line stays readable)."""
    text = str(path)
    return text if len(text) <= 160 else text[:80] + "..." + text[-60:]


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` (permissions ``mode``) through a temporary file in the same directory
    and os.replace: a reader sees the old file or the whole new one, and a link at ``path`` is
    replaced, not followed.

    Any failure -- a folder that cannot be made or written, a name too long, a directory in the way,
    a full disk, Ctrl-C -- leaves ``path`` as it was (byte for byte) and no temporary file behind;
    an ``OSError`` becomes the one-line error naming the output."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GrukitError(f"{_named(path)}: cannot create directory {_named(parent)} ({exc.strerror or exc})") from None
    tmp = None
    try:
        # the temporary name stays short whatever the output's: a name of 255 bytes may still be written
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name[:40]}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        tmp = None
    except BaseException as exc:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if isinstance(exc, OSError):
            raise GrukitError(f"{_named(path)}: cannot write ({exc.strerror or exc})") from None
        raise


TEX_HELP = "install TeX Live (e.g. apt-get install latexmk texlive-latex-base texlive-latex-recommended)"

TEX_TIMEOUT = 120
"""Seconds a sheet's TeX run may take before it is stopped (every process it started with it): the
longest gallery-size sheets take a second or two, a 70-page sheet of 5000 steps about 20 s; a TeX
loop would otherwise spin for ever."""

TEX_ENVIRONMENT = {
    "openin_any": "p",  # read only under the working folder (the scratch folder) and TeX's own trees
    "openout_any": "p",  # write only there
    "shell_escape": "f",  # \write18 runs nothing (the command line says -no-shell-escape too)
    "SOURCE_DATE_EPOCH": "0", "FORCE_SOURCE_DATE": "1",  # the same bytes on every run
    "max_print_line": "1000",  # the log's lines unwrapped: an error line is read whole
}
"""What a TeX run's environment sets (TeX Live reads texmf.cnf variables from the environment).
``TEXMFOUTPUT`` (where ``openin_any=p`` would allow absolute paths) and ``TEXINPUTS`` (more folders
to read from) are removed: a sheet needs only TeX's own files."""
TEX_UNSET = ("TEXMFOUTPUT", "TEXINPUTS")


def require_tex(out: Path) -> tuple[str | None, str]:
    """(latexmk or None, pdflatex); without pdflatex, the one-line error naming what is missing.

    Called before any work is done, so a PDF request fails at once rather than after solving."""
    latexmk, pdflatex = shutil.which("latexmk"), shutil.which("pdflatex")
    if pdflatex is None:
        missing = "pdflatex" + (" and latexmk" if latexmk is None else "")
        raise GrukitError(f"{out}: making a PDF needs {missing}, not found on PATH; {TEX_HELP}, "
                          f"or write .tex or .md instead")
    return latexmk, pdflatex


def tex_command(latexmk: str | None, pdflatex: str, source: str) -> list[str]:
    """The command that compiles ``source`` (in the working folder) with shell escape off and no rc
    file of latexmk's read (one could turn it back on)."""
    if latexmk is not None:
        return [latexmk, "-norc", "-pdf", "-latexoption=-no-shell-escape",
                "-interaction=nonstopmode", "-halt-on-error", "-silent", source]
    return [pdflatex, "-no-shell-escape", "-interaction=nonstopmode", "-halt-on-error", source]


def tex_error(log: str, output: str) -> str:
    """What went wrong, in one line, from the LaTeX log (or the program's output without one): the
    first ``!`` line and the ``l.<n>`` line that says where."""
    lines = log.splitlines()
    bang = next((k for k, line in enumerate(lines) if line.startswith("!")), None)
    if bang is not None:
        what = " ".join(lines[bang].lstrip("! ").split())
        where = next((line for line in lines[bang + 1:bang + 40] if re.match(r"l\.\d+", line)), None)
        if where is not None:
            what += f" (at {' '.join(where.split())[:80]})"
        return what[:200]
    for text in (output, log):
        last = [line.strip() for line in text.splitlines() if line.strip()]
        if last:
            return f"no PDF; its last words: {' '.join(last[-1].split())[:160]}"
    return "no PDF and no log"


def _stop(proc: subprocess.Popen) -> None:
    """Kill the TeX run's whole process group (latexmk and the pdflatex it started) and reap it."""
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def compile_pdf(tex: str, out: Path, timeout: float = TEX_TIMEOUT) -> bytes:
    """Compile ``tex`` with latexmk (or pdflatex alone) in a scratch folder, its working folder; return
    the PDF bytes.

    The run cannot shell out (``-no-shell-escape``) nor read or write a file outside that folder
    other than TeX's own (:data:`TEX_ENVIRONMENT`). It runs in its own process group, all of which is
    killed past ``timeout`` seconds or on Ctrl-C. A failure is one line: the LaTeX error and where."""
    latexmk, pdflatex = require_tex(out)
    env = {k: v for k, v in os.environ.items() if k not in TEX_UNSET} | TEX_ENVIRONMENT
    cmd = tex_command(latexmk, pdflatex, "sheet.tex")
    program = Path(cmd[0]).name
    with tempfile.TemporaryDirectory(prefix="grukit-sheet-") as tmp:
        folder = Path(tmp)
        (folder / "sheet.tex").write_text(tex)
        with open(folder / "run.out", "wb") as output:
            proc = subprocess.Popen(cmd, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=output,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _stop(proc)
                raise GrukitError(f"{out}: {program} took longer than {timeout:g} s and was stopped "
                                  f"(write -o .tex to inspect the source)") from None
            except BaseException:
                _stop(proc)
                raise
        pdf = folder / "sheet.pdf"
        if proc.returncode != 0 or not pdf.exists():
            log = folder / "sheet.log"
            what = tex_error(log.read_text(errors="replace") if log.exists() else "",
                             (folder / "run.out").read_text(errors="replace"))
            raise GrukitError(f"{out}: {program} failed: {what} (write -o .tex to inspect the source)")
        return pdf.read_bytes()

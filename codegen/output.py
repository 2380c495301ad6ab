"""Writing files: atomically (no half-written output on error), and PDFs through latexmk/pdflatex."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from grukit.derive.errors import GrukitError


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and os.replace."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GrukitError(f"{path}: cannot create directory {parent} ({exc.strerror})") from None
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise GrukitError(f"{path}: cannot write ({exc.strerror})") from None
        raise


TEX_HELP = "install TeX Live (e.g. apt-get install latexmk texlive-latex-base texlive-latex-recommended)"


def require_tex(out: Path) -> tuple[str | None, str]:
    """(latexmk or None, pdflatex); without pdflatex, the one-line error naming what is missing.

    Called before any work is done, so a PDF request fails at once rather than after solving."""
    latexmk, pdflatex = shutil.which("latexmk"), shutil.which("pdflatex")
    if pdflatex is None:
        missing = "pdflatex" + (" and latexmk" if latexmk is None else "")
        raise GrukitError(f"{out}: making a PDF needs {missing}, not found on PATH; {TEX_HELP}, "
                          f"or write .tex or .md instead")
    return latexmk, pdflatex


def compile_pdf(tex: str, out: Path, timeout: int = 300) -> bytes:
    """Compile ``tex`` with latexmk (or pdflatex alone) in a scratch folder; return the PDF bytes."""
    latexmk, pdflatex = require_tex(out)
    env = dict(os.environ, SOURCE_DATE_EPOCH="0", FORCE_SOURCE_DATE="1")
    with tempfile.TemporaryDirectory(prefix="grukit-sheet-") as tmp:
        src = Path(tmp) / "sheet.tex"
        src.write_text(tex)
        if latexmk is not None:
            cmd = [latexmk, "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-silent", src.name]
        else:
            cmd = [pdflatex, "-interaction=nonstopmode", "-halt-on-error", src.name]
        try:
            run = subprocess.run(cmd, cwd=tmp, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                                 timeout=timeout)
        except subprocess.TimeoutExpired:
            raise GrukitError(f"{out}: {Path(cmd[0]).name} took longer than {timeout} s") from None
        pdf = Path(tmp) / "sheet.pdf"
        if run.returncode != 0 or not pdf.exists():
            log = Path(tmp) / "sheet.log"
            text = log.read_text(errors="replace") if log.exists() else run.stdout.decode(errors="replace")
            first = next((line for line in text.splitlines() if line.startswith("!")), "see the LaTeX log")
            raise GrukitError(f"{out}: {Path(cmd[0]).name} failed: {first.lstrip('! ').strip()} "
                              f"(write -o .tex to inspect the source)")
        return pdf.read_bytes()

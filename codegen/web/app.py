"""The Flask application of ``grukit serve``: its pages, downloads and error lines.

Pages: ``/`` chooses an exercise (the built-in example, a problem file uploaded or pasted, or one
generated), ``/example`` opens the built-in one, ``/exercise`` opens the chosen one, ``/check`` judges
the typed numbers, ``/download/<what>`` gives the entries as a claims file, the checked calculation
as a report, or the worked sheet, and ``/conventions`` shows two conventions side by side.

Every request may be hostile (docs/security.md): its size is bounded (:data:`MAX_REQUEST_BYTES`,
:data:`MAX_FORM_PARTS`), a problem is read by grukit's bounded readers, a failure is one line in the
page (never a traceback: debug is off and every exception ends in :func:`_failed`), user text reaches
the page only through Jinja's autoescape, and the only files served are the package's own static
files, looked up by name in a table made at start (no request names a path on disk).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from flask import Blueprint, Flask, Response, abort, current_app, render_template, request, send_file
from jinja2 import StrictUndefined
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge, SecurityError

from grukit.codegen.output import compile_pdf
from grukit.codegen.render import escape_md, escape_md_code
from grukit.codegen.web.entries import Checked, check, claims_of, claims_text, exact_text, intervals_text, typed_values
from grukit.codegen.web.exercise import (
    MAX_SEED,
    MAX_SIZE,
    MAX_STEPS,
    Exercise,
    Exercises,
    builtin,
    generated,
    label_of,
)
from grukit.codegen.web.worked import WorkedSheet, comparison, equations_tex
from grukit.derive.cell.presets import PRESETS
from grukit.derive.errors import GrukitError
from grukit.derive.files.yaml_values import shown

MAX_REQUEST_BYTES = 2 * 2 ** 20
"""The largest request body (an upload, or a form with its problem and every typed number)."""
MAX_FORM_PARTS = 20_000
"""The most fields one form may send (an 8x8 problem of 8 steps has about 5000 numbers)."""
STATIC = Path(__file__).resolve().parent / "static"
COMPARE_DEFAULT = ("colah", "cho2014")
SHEET_TYPES = {"md": "text/markdown", "tex": "application/x-tex", "pdf": "application/pdf"}

pages = Blueprint("pages", __name__)


def static_files() -> dict[str, Path]:
    """The files ``/static/<name>`` serves: the package's own, by relative name."""
    return {p.relative_to(STATIC).as_posix(): p for p in sorted(STATIC.rglob("*")) if p.is_file()}


def create_app() -> Flask:
    app = Flask(__name__, static_folder=None)
    app.config.update(MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES, MAX_FORM_MEMORY_SIZE=MAX_REQUEST_BYTES,
                      MAX_FORM_PARTS=MAX_FORM_PARTS, DEBUG=False, PROPAGATE_EXCEPTIONS=False)
    app.jinja_env.undefined = StrictUndefined
    app.jinja_env.trim_blocks = app.jinja_env.lstrip_blocks = True
    app.jinja_env.filters["md"] = escape_md
    app.jinja_env.filters["md_code"] = escape_md_code
    app.extensions["grukit"] = {"exercises": Exercises(), "static": static_files()}
    app.register_blueprint(pages)
    app.register_error_handler(Exception, _failed)
    app.after_request(_headers)
    return app


def _headers(response: Response) -> Response:
    """No script, style, font or frame from anywhere but the page's own server."""
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; font-src 'self'; "
        "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _failed(exc: Exception):
    """Every failure as one line in a page: an HTTP error by its name, anything else as grukit's own."""
    if isinstance(exc, SecurityError):  # a Host this server does not answer to: no page, which would name it
        return Response("400 Bad Request: this page answers only to its own host names\n", 400, mimetype="text/plain")
    if isinstance(exc, RequestEntityTooLarge):
        return _message(f"the request is larger than a page takes ({MAX_REQUEST_BYTES // 2 ** 20} MiB, "
                        f"{MAX_FORM_PARTS} fields; a problem file is a few hundred bytes)", 413)
    if isinstance(exc, HTTPException):
        return _message(f"{exc.code} {exc.name}", exc.code or 500)
    if isinstance(exc, GrukitError):
        return _message(str(exc), 400)
    return _message(f"internal error ({type(exc).__name__}); please report it with the problem file", 500)


def _message(text: str, status: int):
    return render_template("message.html", error=" ".join(str(text).split())), status


def _state() -> dict:
    return current_app.extensions["grukit"]


def _choices() -> dict:
    """What the choosing page offers: the built-in conventions and the generator's bounds."""
    return {"presets": list(PRESETS), "max_seed": MAX_SEED, "max_size": MAX_SIZE, "max_steps": MAX_STEPS}


# --- choosing an exercise -----------------------------------------------------------------------

@pages.get("/")
def choose():
    return render_template("choose.html", error=None, **_choices())


@pages.get("/example")
def example():
    return _exercise_page(_state()["exercises"].get(*builtin()))


@pages.post("/exercise")
def open_exercise():
    form = request.form
    try:
        source = form.get("source", "")
        if source == "example":
            data, label = builtin()
        elif source == "upload":
            upload = request.files.get("problem_file")
            if upload is None or not upload.filename:
                raise GrukitError("upload: choose a problem file (.yaml) first")
            data, label = upload.read(), label_of(upload.filename)
        elif source == "paste":
            text = form.get("problem_text", "")
            if not text.strip():
                raise GrukitError("paste: the problem text is empty")
            data, label = text.encode(), "pasted-problem.yaml"
        elif source == "generate":
            data, label = generated(form.get("convention"), form.get("inputs"), form.get("hidden"),
                                    form.get("steps"), form.get("seed"))
        else:
            raise GrukitError(f"source: {shown(source, 30)}: choose the example, an upload, a pasted problem or "
                              f"a generated one")
        exercise = _state()["exercises"].get(data, label)
    except GrukitError as exc:
        return render_template("choose.html", error=" ".join(str(exc).split()), **_choices()), 400
    return _exercise_page(exercise)


def _posted_exercise() -> Exercise:
    """The exercise a form carries (its problem's text and name, as the page was given them)."""
    text = request.form.get("problem", "")
    if not text.strip():
        raise GrukitError("problem: the form carries no problem; choose an exercise first")
    return _state()["exercises"].get(text.encode(), label_of(request.form.get("label")))


def _exercise_page(exercise: Exercise, checked: Checked | None = None, values: dict | None = None,
                   error: str | None = None, status: int = 200):
    worked = {}
    if checked is not None and checked.wrong():
        sheet = exercise.kept("worked", lambda: WorkedSheet(exercise.sheet(), exercise.problem.convention))
        worked = {name: sheet.step(entry.name, exercise.consumers) for entry, name, _ in checked.wrong()}
    return render_template("exercise.html", exercise=exercise, checked=checked, worked=worked,
                           values=values if values is not None else (checked.values if checked else {}),
                           error=error, pdf=shutil.which("pdflatex") is not None,
                           exact_text=exact_text, intervals_text=intervals_text), status


@pages.post("/check")
def check_page():
    try:
        exercise = _posted_exercise()
    except GrukitError as exc:
        return _message(str(exc), 400)
    try:
        checked = check(exercise, request.form)
    except GrukitError as exc:
        values = {k: str(v)[:60] for k, v in request.form.items() if k.startswith("e")}
        return _exercise_page(exercise, values=values, error=" ".join(str(exc).split()), status=400)
    return _exercise_page(exercise, checked)


# --- taking it away -----------------------------------------------------------------------------

def _download(body: bytes | str, name: str, mimetype: str) -> Response:
    data = body.encode() if isinstance(body, str) else body
    response = Response(data, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{label_of(name)}"'
    return response


def _stem(exercise: Exercise) -> str:
    return exercise.label.removesuffix(".yaml").removesuffix(".yml")


@pages.post("/download/claims")
def download_claims():
    exercise = _posted_exercise()
    claims = claims_of(exercise, typed_values(exercise, request.form))
    if not claims:
        raise GrukitError("nothing to download: type at least one number")
    return _download(claims_text(exercise, claims, inline=True), f"{_stem(exercise)}-claims.yaml", "application/yaml")


@pages.post("/download/report")
def download_report():
    exercise = _posted_exercise()
    checked = check(exercise, request.form)
    text = render_template("report.md.j2", exercise=exercise, checked=checked, exact_text=exact_text,
                           intervals_text=intervals_text)
    return _download(text, f"{_stem(exercise)}-checked.md", "text/markdown")


@pages.post("/download/sheet")
def download_sheet():
    exercise = _posted_exercise()
    kind = request.form.get("format", "")
    if kind not in SHEET_TYPES:
        raise GrukitError(f"format: {shown(kind, 20)}: choose md, tex or pdf")
    name = f"{_stem(exercise)}-sheet.{kind}"
    sheet = exercise.sheet()
    if kind == "md":
        body = sheet.markdown()
    elif kind == "tex":
        body = sheet.tex()
    else:
        body = exercise.kept("pdf", lambda: compile_pdf(sheet.tex(), Path(name)))
    return _download(body, name, SHEET_TYPES[kind])


# --- conventions side by side -------------------------------------------------------------------

@pages.get("/conventions")
def conventions():
    a, b = request.args.get("a", COMPARE_DEFAULT[0]), request.args.get("b", COMPARE_DEFAULT[1])
    for field, name in (("a", a), ("b", b)):
        if name not in PRESETS:
            raise GrukitError(f"{field}: {shown(name, 40)} is not a built-in convention (one of {', '.join(PRESETS)})")
    sides = [(PRESETS[n], equations_tex(PRESETS[n])) for n in (a, b)]
    return render_template("conventions.html", a=a, b=b, sides=sides, result=comparison(a, b),
                           presets=list(PRESETS), error=None)


# --- the package's own files --------------------------------------------------------------------

@pages.get("/static/<path:name>")
def static(name: str):
    path = _state()["static"].get(name)
    if path is None:
        abort(404)
    return send_file(path, max_age=3600)

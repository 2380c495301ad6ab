"""Sheets are safe by construction (docs/security.md): what a user's file says reaches LaTeX and
Markdown only escaped (text) or checked against a small TeX subset (a convention's notation); the
TeX run reads and writes only its scratch folder, runs no shell command, stops in bounded time with
every process it started, and says what failed in one line; wide matrices compile; no failure
leaves a half-written output or changes the one that was there.

Each test names the promise it keeps. The hostile corpus (:data:`HOSTILE`) goes into every user
field that reaches a sheet.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from helpers.hostile import MARKER, SECRET, assert_nothing_leaked, plant_secret, refused, run

from grukit.codegen import output as output_module
from grukit.codegen.output import TEX_ENVIRONMENT, compile_pdf, tex_command, write_atomic
from grukit.codegen.render import escape_tex, plain_text
from grukit.codegen.sheets.gallery import write_gallery
from grukit.codegen.sheets.instructor import random_problem
from grukit.codegen.sheets.sheet import build_sheet, matrix_columns
from grukit.derive.cell.convention import ConventionError, Notation
from grukit.derive.cell.presets import PRESETS
from grukit.derive.errors import GrukitError
from grukit.derive.files.problem_file import problem_from_mapping

needs_tex = pytest.mark.skipif(shutil.which("pdflatex") is None or shutil.which("pdftotext") is None,
                               reason="needs pdflatex and pdftotext")

HOSTILE = [
    # TeX: reading files, running commands, redefining the language, escaping the escaping
    r"\input{/etc/passwd}", r"\include{secret}", r"\openin5=secret.txt \read5 to \x \x", r"\read16 to \x",
    r"\immediate\write18{touch grukit-owned-marker}", r"\write18{rm -rf ~}", r"\catcode`\%=11 %",
    r"\def\x{\x}\x", r"\csname input\endcsname{/etc/passwd}", r"^^5cinput{/etc/passwd}", "^^5c^^5c^^7b",
    "{unbalanced", "unbalanced}}", "% a comment eats the rest", r"a \\ b", "\\", r"$x^2$ and $$\int$$",
    "& # ~ _ ^ { }", r"\immediate\openout1=/tmp/x \immediate\closeout1", r"\expandafter\input\string",
    r"\makeatletter\@@input{x}", r"\begin{verbatim}", r"\end{document}", r"\usepackage{shellesc}",
    r"\\input{x}", "A" * 3000, r"\relax" * 500,
    # Markdown and HTML
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "[click](javascript:alert(1))",
    "![img](http://evil.example/x.png)", "`code` and ``` fence", "```\n<script>alert(1)</script>\n```",
    "a\n\nb <img src=x onerror=alert(1)>", "a | b | c", "$ breakout $ <b>x</b>", "<!-- comment --> <!--",
    "-->", "&lt;script&gt; &amp; &#60;", "# heading\n---\n* item", "> quote\n1. item",
    "<https://evil.example>", "[link](http://evil.example)\n\n[ref]: http://x", "*bold* _em_ ~~strike~~",
    "<style>body{display:none}</style>", '" onmouseover="alert(1)', r"\(x\) \[y\]",
    # Unicode and control characters
    "\u202egnp.exe", "zero\u200bwidth\u200djoiner\ufeff", "\x00\x01\x02\x07\x1b[31mred\x1b[0m",
    "\x0199999v\x02", "line\rfeed\x0bvt\x0cff", "lone \udcff surrogate", "中文 😀 Ω",
]
"""Hostile strings for every user field a sheet shows (each field gets each string)."""

NOTATION_TEX_FIELDS = ("state_tex", "candidate_tex", "input_tex", "input_weight_tex", "recurrent_weight_tex",
                       "input_bias_tex", "recurrent_bias_tex")
NOTATION_NAME_FIELDS = ("state", "input_weight_key", "recurrent_weight_key", "input_bias_key", "recurrent_bias_key")
DANGEROUS_TEX = ("\\input", "\\include", "\\openin", "\\openout", "\\read", "\\write", "\\immediate", "\\catcode",
                 "\\def", "\\csname", "\\makeatletter", "\\expandafter", "\\usepackage", "\\end{document}",
                 "\\begin{verbatim}", "^^", "\\relax", "\\@")
WEIGHTS_1x1 = {**{k: [[0.5]] for k in ("W_z", "U_z", "W_r", "U_r", "W_h", "U_h")},
               **{k: [0.1] for k in ("b_z", "b_r", "b_h")}}


def problem_mapping(title="A title", description="A description", name="my-gru", conv_description="Mine",
                    source="My notes", notation=None) -> dict:
    convention = {"preset": "course-notes", "name": name, "description": conv_description, "source": source}
    if notation is not None:
        convention["notation"] = notation
    return {"title": title, "description": description, "convention": convention, "inputs": [[0.5]],
            "h0": [0.1], "weights": WEIGHTS_1x1, "loss": {"type": "squared_error", "targets": [[0.2]]}}


def sheet_of(tmp_path: Path, file_name: str = "p.yaml", letters: dict | None = None, **fields):
    """The sheet of a one-unit problem; ``letters``: the notation's gate letters (the weights' names follow)."""
    data = problem_mapping(**fields)
    if letters:
        data["weights"] = {k[:-1] + letters[k[-1]]: v for k, v in data["weights"].items()}
    return build_sheet(problem_from_mapping(data, tmp_path / file_name))


def pdf_text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


def squeeze(text: str) -> str:
    """Text without the spaces and line breaks pdflatex adds (or pdftotext removes, with a hyphen)."""
    return "".join(text.split()).replace("-", "")


# --- Markdown: no HTML of the user's ---------------------------------------------------------------------

def markdown_tokens(md: str):
    markdown_it = pytest.importorskip("markdown_it")
    tokens = markdown_it.MarkdownIt("commonmark").enable("table").parse(md)

    def walk(ts):
        for t in ts:
            yield t
            yield from walk(t.children or [])
    return list(walk(tokens))


def assert_no_user_html(md: str, links=()) -> None:
    """The only HTML in the Markdown is the generator's comment on line 1; no ``<`` elsewhere is bare
    (every one is backslash-escaped); no image; a link only to one of ``links``."""
    first, _, rest = md.partition("\n")
    assert first.startswith("<!-- Generated by") and first.endswith("-->") and first.count("-->") == 1, first
    bare = re.findall(r"(?<!\\)<.{0,30}", rest)
    assert not bare, bare
    for t in markdown_tokens(md):
        assert t.type not in ("html_inline", "image") and (t.type != "html_block" or t.content == first + "\n"), t
        if t.type == "link_open":
            assert t.attrs["href"] in links, t.attrs


# --- TeX: the user's text is text ------------------------------------------------------------------------

def tex_depth_ok(tex: str) -> bool:
    """Braces balance (an escaped ``\\{``, a control symbol and a comment skipped)."""
    depth, i = 0, 0
    while i < len(tex):
        ch = tex[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "%":
            i = tex.find("\n", i) if "\n" in tex[i:] else len(tex)
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
        i += 1
    return depth == 0


def assert_tex_escaped(tex: str, baseline: str, *texts: str) -> None:
    """The sheet's TeX holds no more of any dangerous primitive, unescaped ``%``/``$``/``#``/``&`` than
    the same sheet with harmless text, its braces balance, and each user text is there escaped."""
    for word in DANGEROUS_TEX:
        assert tex.count(word) == baseline.count(word), word
    for special in ("%", "$", "#", "&"):
        pattern = r"(?<!\\)" + re.escape(special)
        assert len(re.findall(pattern, tex)) == len(re.findall(pattern, baseline)), special
    assert tex_depth_ok(tex)
    for text in texts:
        assert escape_tex(text) in tex


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    sheet = sheet_of(tmp_path_factory.mktemp("baseline"))
    return sheet.tex(), sheet.markdown()


@pytest.mark.parametrize("k", range(len(HOSTILE)), ids=lambda k: f"hostile{k:02d}")
def test_hostile_text_in_every_field_is_escaped_in_tex_and_markdown(tmp_path, baseline, k):
    """Title, description, convention name, description and source holding a hostile string: the .tex
    has no TeX of the user's (only escaped text), the .md no HTML of the user's, and no secret."""
    s = HOSTILE[k]
    sheet = sheet_of(tmp_path, title=s, description=s, name=s, conv_description=s, source=s)
    tex, md = sheet.tex(), sheet.markdown()
    assert_tex_escaped(tex, baseline[0], s)
    assert_no_user_html(md)
    for out in (tex, md):
        assert SECRET not in out and "\x01" not in out and "\u202e" not in out
        out.encode()  # writable as UTF-8 (a lone surrogate is dropped)


FILE_NAMES = ["a---><img src=x onerror=alert(1)>.yaml", "x\n\n<script>alert(1).yaml",
              "%\\input{x}$#&.yaml", "`y` [l](javascript:x) |.yaml", "\u202eevil.yaml"]


@pytest.mark.parametrize("name", FILE_NAMES, ids=range(len(FILE_NAMES)))
def test_hostile_problem_file_names_are_escaped_in_tex_and_markdown(tmp_path, baseline, name):
    """The problem file's name (in the sheets' generator comment): still a comment, in TeX and Markdown."""
    path = tmp_path / name
    path.write_text(json.dumps(problem_mapping()))
    o = run(["sheet", path, "-o", tmp_path / "s.md"], cwd=tmp_path)
    assert o.status == 0, o.err
    assert_no_user_html((tmp_path / "s.md").read_text())
    o = run(["sheet", path, "-o", tmp_path / "s.tex"], cwd=tmp_path)
    assert o.status == 0, o.err
    tex = (tmp_path / "s.tex").read_text()
    assert tex.splitlines()[0].startswith("%% Generated by grukit") and escape_tex(name) in tex.splitlines()[0]
    assert_tex_escaped(tex, baseline[0])


def test_gallery_page_escapes_example_names_and_titles(tmp_path):
    """`grukit sheet --gallery DOCS` over an examples folder with hostile file names and titles:
    gallery.md links only to its own sheets (percent-encoded) and holds no HTML of the user's."""
    examples = tmp_path / "docs" / "examples"
    examples.mkdir(parents=True)
    names = ["x)<img src=x onerror=alert(1)>", "y `z` | w"]
    for name in names:
        (examples / f"{name}.yaml").write_text(json.dumps(problem_mapping(title="<script>alert(1)</script> |")))
    write_gallery(tmp_path / "docs", examples)
    md = (tmp_path / "docs" / "gallery.md").read_text()
    from urllib.parse import quote
    links = {f"sheets/{quote(n, safe='')}{suffix}" for n in names + ["keras-3-steps"] for suffix in (".tex", ".md")}
    links |= {"examples/", "sheets/keras-3-steps.yaml"}
    assert_no_user_html(md, links)
    for name in names:
        assert_no_user_html((tmp_path / "docs" / "sheets" / f"{name}.md").read_text())


def test_markdown_code_spans_cannot_be_closed_or_left_by_a_convention_name(tmp_path):
    """The finding: a blank line in a convention's name ended the code span's paragraph and the rest
    was raw HTML; a backtick closed the span."""
    md = sheet_of(tmp_path, name="n\n\n<img src=x onerror=alert(1)>").markdown()
    assert "\n<img" not in md and "\\<img src=x onerror=alert(1)\\>" in md
    md = sheet_of(tmp_path, name="a`<b>`c").markdown()
    assert_no_user_html(md)
    assert "**Convention** `plain-name`:" in sheet_of(tmp_path, name="plain-name").markdown()


# --- notation: a TeX subset, refused in one line naming the field ----------------------------------------

@pytest.mark.parametrize("field", NOTATION_TEX_FIELDS + NOTATION_NAME_FIELDS + ("gate_letters",))
@pytest.mark.parametrize("k", range(len(HOSTILE)), ids=lambda k: f"hostile{k:02d}")
def test_hostile_notation_is_refused_naming_the_field(field, k):
    """Every hostile string in every notation field that reaches a sheet: a ConventionError on one line
    naming the field (the convention-file reader puts the file in front)."""
    value = HOSTILE[k]
    kwargs = {field: (("z", value), ("r", "r"), ("h", "h"))} if field == "gate_letters" else {field: value}
    with pytest.raises(ConventionError) as info:
        Notation(**kwargs)
    message = str(info.value)
    assert message.startswith(f"notation.{field}"), message
    assert "\n" not in message and "\r" not in message and len(message) < 300, message


def _convention_file(tmp_path: Path, notation: dict) -> Path:
    path = tmp_path / "hostile-gru.yaml"
    path.write_text(json.dumps({"preset": "course-notes", "notation": notation}))
    return path


@pytest.mark.parametrize("notation, words", [
    ({"state_tex": r"\input{/etc/passwd}"}, ["notation.state_tex", r"\input is not an allowed command"]),
    ({"candidate_tex": "h^^5cinput{x}"}, ["notation.candidate_tex", "^^"]),
    ({"input_tex": "x$</b>"}, ["notation.input_tex", "'$'"]),
    ({"input_weight_tex": "W_{0}"}, ["notation.input_weight_tex", "'{0}' is not a placeholder", "{g}"]),
    ({"input_weight_tex": "W_{{{g}}"}, ["notation.input_weight_tex", "Single '}'"]),
    ({"recurrent_bias_tex": "b_{{h{g!r}}}"}, ["notation.recurrent_bias_tex", "not a placeholder"]),
    ({"input_weight_key": "W_{x}"}, ["notation.input_weight_key", "'{x}' is not a placeholder"]),
    ({"input_weight_key": "W"}, ["notation.input_weight_key", "same name 'W'"]),
    ({"gate_letters": {"z": "z", "r": "z", "h": "h"}}, ["notation.gate_letters", "gates z and r", "'z'"]),
    ({"state": "h\\"}, ["notation.state"]),
    ({"state_tex": "h}{"}, ["notation.state_tex", "closes no {"]),
    ({"state_tex": "h" * 65}, ["notation.state_tex", "longer than 64"]),
], ids=lambda v: str(v)[:30] if isinstance(v, dict) else "")
def test_bad_notation_in_a_convention_file_is_one_line_naming_file_and_field(tmp_path, notation, words):
    """Through the command line, for a sheet and for instructor mode: status 2, one line with the file
    and the field, nothing written."""
    conv = _convention_file(tmp_path, notation)
    problem = tmp_path / "p.yaml"
    problem.write_text(json.dumps({**problem_mapping(), "convention": conv.name}))
    refused(run(["sheet", problem, "-o", tmp_path / "s.tex"], cwd=tmp_path), "hostile-gru.yaml", *words)
    refused(run(["problem", "--convention", conv, "--dims", "2x2", "--steps", "1", "--seed", "1",
                 "-o", tmp_path / "out"], cwd=tmp_path), "hostile-gru.yaml", *words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hostile-gru.yaml", "p.yaml"]


LETTERS = {"z": "u", "r": "r", "h": "c"}


def test_the_documented_tex_subset_is_accepted_and_printed_as_written(tmp_path):
    """Accents, fonts, Greek letters, primes, sub- and superscripts: accepted, and in the equations."""
    notation = {"state_tex": r"\mathbf{h}", "candidate_tex": r"\tilde{\boldsymbol{h}}'", "input_tex": r"\xi",
                "input_weight_tex": r"W^{{({g})}}_{{\mathrm{{in}}}}", "gate_letters": LETTERS}
    tex = sheet_of(tmp_path, letters=LETTERS, notation=notation).tex()
    for piece in (r"\mathbf{h}_{t-1}", r"{\tilde{\boldsymbol{h}}'{}}_{t}", r"\xi_{t}", r"W^{(u)}_{\mathrm{in}}"):
        assert piece in tex, piece


@needs_tex
def test_the_subset_compiles_even_with_scripts_and_primes_in_a_symbol(tmp_path):
    """The subset's symbols in a real PDF: a state with its own subscript, a candidate with a prime
    (squared in its derivative), a weight with a superscript."""
    notation = {"state_tex": r"h_{\mathrm{enc}}", "candidate_tex": r"\hat{\boldsymbol{h}}'",
                "input_tex": r"\mathcal{X}", "input_weight_tex": r"W^{{({g})}}_{{\mathrm{{in}}}}",
                "gate_letters": LETTERS}
    out = sheet_of(tmp_path, letters=LETTERS, notation=notation).write(tmp_path / "s.pdf")
    assert "Forward pass" in pdf_text(out)


# --- the TeX run: its folder only, no shell, bounded, one line ---------------------------------------------

@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """compile_pdf's scratch folders under tmp_path/scratch (to find its processes and files)."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder
    for pid in _live_tex_processes(folder):  # never leave a spinning TeX behind, even on failure
        os.kill(pid, signal.SIGKILL)


def _live_tex_processes(folder: Path) -> list[int]:
    """Processes (not zombies) whose working folder is under ``folder``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if cwd.startswith(str(folder)) and state != "Z":
            pids.append(int(proc.name))
    return pids


def _document(body: str) -> str:
    return "\\documentclass{article}\n\\begin{document}\nstart\n" + body + "\nend\n\\end{document}\n"


def _compile_outcome(tex: str, out: Path, **kwargs) -> str:
    """The PDF's text, or the error line."""
    try:
        out.write_bytes(compile_pdf(tex, out, **kwargs))
    except GrukitError as exc:
        message = str(exc)
        assert "\n" not in message and SECRET not in message
        return "error: " + message
    return pdf_text(out)


def test_tex_runs_without_shell_escape_and_with_paranoid_file_access():
    """The command says -no-shell-escape (latexmk passes it on and reads no rc file that could undo it);
    the environment sets openin_any=p, openout_any=p, shell_escape=f."""
    assert "-no-shell-escape" in tex_command(None, "pdflatex", "sheet.tex")
    latexmk = tex_command("latexmk", "pdflatex", "sheet.tex")
    assert "-latexoption=-no-shell-escape" in latexmk and "-norc" in latexmk
    assert TEX_ENVIRONMENT["openin_any"] == "p" and TEX_ENVIRONMENT["openout_any"] == "p"
    assert TEX_ENVIRONMENT["shell_escape"] == "f"


@needs_tex
@pytest.mark.parametrize("body", [
    r"\input{SECRET}", r"\input{../secret.txt}", r"\newread\r \openin\r=SECRET \read\r to\x \x",
    r"\newread\r \immediate\openin\r=../secret.txt \ifeof\r no \else\read\r to\x \x\fi",
    r"\include{../secret}",
], ids=["input-absolute", "input-parent", "openin-absolute", "openin-parent", "include-parent"])
def test_tex_reads_no_file_outside_its_scratch_folder(tmp_path, scratch, body):
    """A .tex that asks for a planted secret by absolute path or through the parent folder: the PDF
    (if any) and the error line hold none of it."""
    secret = plant_secret(scratch)  # the scratch folder's parent of each run: ../secret.txt
    plant_secret(scratch, "secret.tex")
    text = _compile_outcome(_document(body.replace("SECRET", str(secret))), tmp_path / "o.pdf")
    assert SECRET not in text and "grukit-foreign" not in squeeze(text)


@needs_tex
def test_write18_and_openout_do_nothing_outside_the_scratch_folder(tmp_path, scratch):
    """\\write18 runs no command; \\openout writes no file outside the scratch folder."""
    body = (r"\immediate\write18{touch %s}\write18{touch %s}" % (tmp_path / MARKER, tmp_path / MARKER)
            + r" \immediate\openout1=%s \immediate\write1{x}\immediate\closeout1" % (tmp_path / "owned.tex"))
    _compile_outcome(_document(body), tmp_path / "o.pdf")
    _compile_outcome(_document(r"\immediate\write18{touch %s} shell" % (tmp_path / MARKER)), tmp_path / "p.pdf")
    assert not (tmp_path / MARKER).exists() and not (tmp_path / "owned.tex").exists()
    assert list(scratch.iterdir()) == []  # the scratch folders are gone


@needs_tex
def test_a_tex_loop_is_stopped_with_every_process_it_started(tmp_path, scratch):
    """\\def\\loop{\\loop}\\loop: stopped at the time limit, in one line, and no pdflatex left spinning."""
    start = time.perf_counter()
    text = _compile_outcome(_document(r"\def\loop{\loop}\loop"), tmp_path / "o.pdf", timeout=1)
    assert time.perf_counter() - start < 15
    assert text.startswith("error: ") and "took longer than 1 s" in text, text
    time.sleep(0.2)
    assert _live_tex_processes(scratch) == []
    assert output_module.TEX_TIMEOUT <= 120


@needs_tex
def test_ctrl_c_during_a_tex_run_stops_every_process_it_started(tmp_path, scratch):
    """KeyboardInterrupt while TeX runs: it propagates (the CLI turns it into status 130) and the whole
    process group is gone."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        with pytest.raises(KeyboardInterrupt):
            compile_pdf(_document(r"\def\loop{\loop}\loop"), tmp_path / "o.pdf", timeout=30)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    time.sleep(0.2)
    assert _live_tex_processes(scratch) == []


@needs_tex
def test_a_latex_error_is_one_line_with_the_error_and_where(tmp_path, scratch):
    """The `!` line and the `l.<n>` line of the log, read before the scratch folder goes."""
    text = _compile_outcome(_document(r"some text \undefinedcommand here"), tmp_path / "o.pdf")
    assert "Undefined control sequence" in text and "l.4" in text and "undefinedcommand" in text, text
    assert "see the LaTeX log" not in text


def test_a_tex_program_failing_without_a_log_says_what_it_said(tmp_path, scratch, monkeypatch):
    """No log at all (the program died at once): its last words, never "see the LaTeX log"."""
    fake = tmp_path / "pdflatex"
    fake.write_text("#!/bin/sh\necho 'fatal: the format file is broken'\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(output_module.shutil, "which", lambda name: str(fake) if name == "pdflatex" else None)
    text = _compile_outcome(_document("x"), tmp_path / "o.pdf")
    assert "fatal: the format file is broken" in text and "see the LaTeX log" not in text, text


@needs_tex
@pytest.mark.parametrize("k", range(3), ids=["tex", "html", "unicode"])
def test_hostile_text_compiles_and_reads_back_as_written(tmp_path, k):
    """A few hostile strings through pdflatex: the PDF compiles, title, description and convention name
    read back as written (control and format characters dropped), and no secret is in it."""
    secret = plant_secret(tmp_path)
    sets = [
        (r"\input{%s} %% ^^5c" % secret, r"\def\x{\x}\x {oops", r"$\catcode`\%=11$ & # ~"),
        ("<img src=x onerror=alert(1)>", "a\n\nb [l](javascript:x) `c` | d", "x\x00\x1b[31m`y`</b>"),
        ("\u202eabc zero\u200bwidth", "\x0199999v\x02 tokens", "中文 😀"),
    ]
    title, description, name = sets[k]
    out = sheet_of(tmp_path, title=title, description=description, name=name).write(tmp_path / "s.pdf")
    text = pdf_text(out)
    assert SECRET not in text
    for s in (title, description, name):
        expected = squeeze(plain_text(s))
        if k == 2:
            expected = expected.replace("中文", "[U+4E2D][U+6587]").replace("😀", "[U+1F600]")
        assert expected in squeeze(text), (expected, text[:600])


# --- wide matrices ----------------------------------------------------------------------------------------

def _wide_problem(folder: Path, convention: str, D: int, H: int) -> Path:
    data = random_problem(PRESETS[convention], D, H, 1, 1, 1)

    def plain(v):
        return [plain(x) for x in v] if isinstance(v, list) else (
            {k: plain(x) for k, x in v.items()} if isinstance(v, dict) else (v if isinstance(v, int) else float(v)))

    path = folder / f"wide-{convention}.yaml"
    data = plain(data)
    data["loss"]["type"] = "softmax_cross_entropy"
    path.write_text(json.dumps({**data, "convention": convention}))
    return path


def test_matrix_columns_cover_the_widest_matrix(tmp_path):
    """MaxMatrixCols is set from the sheet's widest matrix (amsmath stops at 10 otherwise)."""
    from grukit.derive.files.problem_file import load_problem
    sheet = build_sheet(load_problem(_wide_problem(tmp_path, "course-notes", 12, 11)), forward_only=True)
    assert matrix_columns(sheet.model) >= 12
    assert "\\setcounter{MaxMatrixCols}{%d}" % sheet.model["matrix_columns"] in sheet.tex()


@needs_tex
def test_a_sheet_with_d_12_and_h_11_compiles(tmp_path):
    """The finding: every PDF sheet with D or H > 10 failed with "Extra alignment tab"."""
    problem = _wide_problem(tmp_path, "keras", 12, 11)
    o = run(["sheet", problem, "-o", tmp_path / "wide.pdf"], cwd=tmp_path)
    assert o.status == 0, o.err
    assert "Summary of the gradients" in pdf_text(tmp_path / "wide.pdf")


# --- outputs: one line, and the old output untouched -------------------------------------------------------

def _folder_state(folder: Path) -> dict:
    return {p.name: p.read_bytes() if p.is_file() else None for p in folder.iterdir()}


def test_write_atomic_read_only_folder_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    """mkstemp failing (a read-only folder; as root, simulated): one line naming the output."""
    target = tmp_path / "sheet.tex"
    target.write_bytes(b"old sheet")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(output_module.tempfile, "mkstemp", denied)
    with pytest.raises(GrukitError, match=r"sheet.tex: cannot write \(Permission denied\)"):
        write_atomic(target, b"new")
    assert _folder_state(tmp_path) == {"sheet.tex": b"old sheet"}


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_write_atomic_really_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "sheet.md").write_bytes(b"old")
    folder.chmod(0o555)
    try:
        refused(run(["sheet", "-o", folder / "sheet.md"], cwd=tmp_path), "sheet.md", "cannot write")
        assert _folder_state(folder) == {"sheet.md": b"old"}
    finally:
        folder.chmod(0o755)


def test_write_atomic_long_names(tmp_path):
    """A name of 250 bytes is written (the temporary name stays short); one of 300 is one line."""
    ok = tmp_path / ("a" * 246 + ".tex")
    write_atomic(ok, b"x")
    assert ok.read_bytes() == b"x"
    o = run(["sheet", "-o", tmp_path / ("b" * 300 + ".md")], cwd=tmp_path)
    refused(o, "b" * 20, "cannot write (File name too long)")
    assert _folder_state(tmp_path) == {ok.name: b"x"}


def test_write_atomic_directory_in_the_way_or_as_parent(tmp_path):
    """The output is a directory, or its parent is a file: one line; both untouched."""
    (tmp_path / "sheet.md").mkdir()
    (tmp_path / "sheet.md" / "keep").write_bytes(b"k")
    (tmp_path / "file").write_bytes(b"f")
    refused(run(["sheet", "-o", tmp_path / "sheet.md"], cwd=tmp_path), "sheet.md", "cannot write")
    refused(run(["sheet", "-o", tmp_path / "file" / "s.tex"], cwd=tmp_path), "s.tex", "cannot create directory")
    assert (tmp_path / "sheet.md" / "keep").read_bytes() == b"k" and (tmp_path / "file").read_bytes() == b"f"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "sheet.md"]


_FDOPEN = os.fdopen


class _Exploding:
    def __init__(self, fd, exc):
        self.fh = _FDOPEN(fd, "wb")
        self.exc = exc

    def __enter__(self):
        return self

    def __exit__(self, *args):
        self.fh.close()

    def write(self, data):
        self.fh.write(data[:10])
        raise self.exc


@pytest.mark.parametrize("exc, expected", [(OSError(28, "No space left on device"), GrukitError),
                                           (KeyboardInterrupt(), KeyboardInterrupt)], ids=["disk-full", "ctrl-c"])
def test_write_atomic_failure_mid_write_leaves_the_old_output_byte_identical(tmp_path, monkeypatch, exc, expected):
    """A full disk or Ctrl-C halfway through: the old output as it was, no temporary file left."""
    target = tmp_path / "sheet.tex"
    target.write_bytes(b"old sheet \x00\xff")
    monkeypatch.setattr(output_module.os, "fdopen", lambda fd, mode: _Exploding(fd, exc))
    with pytest.raises(expected):
        write_atomic(target, b"new sheet " * 100)
    assert _folder_state(tmp_path) == {"sheet.tex": b"old sheet \x00\xff"}


@needs_tex
def test_a_failed_compile_leaves_the_old_pdf(tmp_path, scratch, monkeypatch):
    """A PDF that fails to compile (a TeX loop) leaves the previous PDF byte-identical."""
    out = tmp_path / "sheet.pdf"
    out.write_bytes(b"%PDF old")
    from grukit.codegen.sheets import sheet as sheet_module
    monkeypatch.setattr(sheet_module, "compile_pdf", lambda tex, o: compile_pdf(
        tex.replace("\\end{document}", "\\def\\loop{\\loop}\\loop\\end{document}"), o, 1))
    o = run(["sheet", "-o", out], cwd=tmp_path)
    refused(o, "sheet.pdf", "took longer than 1 s")
    assert out.read_bytes() == b"%PDF old"
    assert_nothing_leaked(o, tmp_path)

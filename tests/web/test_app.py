"""Every route of ``grukit serve`` through Flask's test client, and every hostile request answered with
one line in the page (never a traceback), as docs/security.md promises.

The course notes' numbers come from docs/examples/course-notes-claims.yaml as printed; what the
page must say of them is docs/course-notes-errata.md's finding (dL/dh[0] alone is wrong: the paths
through U_z and through the reset product are missing). A propagated entry is made here: a wrong
a_z[1] and the sigmoid of it computed with ``math.exp``.
"""
from __future__ import annotations

import html
import io
import json
import math
import re
import shutil
import time
from html.parser import HTMLParser

import numpy as np
import pytest
import yaml
from helpers import EXAMPLES, ROOT

pytest.importorskip("flask")

from grukit.codegen.cli.main import main  # noqa: E402
from grukit.codegen.web.app import MAX_FORM_PARTS, MAX_REQUEST_BYTES, create_app  # noqa: E402
from grukit.derive.audit.claims import load_claims  # noqa: E402


@pytest.fixture(scope="module")
def client():
    return create_app().test_client()


class Page(HTMLParser):
    """A page's fields, labels, links and error line."""

    def __init__(self, text: str):
        super().__init__()
        self.fields: dict[str, dict] = {}  # id -> attributes of input/select/textarea
        self.labels: set[str] = set()
        self.urls: list[str] = []
        self.hidden: dict[str, str] = {}
        self.entries: dict[str, dict] = {}  # data-name -> attributes
        self._in_error = False
        self.error = ""
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("input", "select", "textarea"):
            if a.get("type") == "hidden":
                self.hidden[a["name"]] = a.get("value", "")
            else:
                self.fields[a.get("id", "")] = a
        if tag == "label" and "for" in a:
            self.labels.add(a["for"])
        for key in ("src", "href", "action", "formaction"):
            if key in a:
                self.urls.append(a[key])
        if "data-name" in a and "entry" in a.get("class", ""):
            self.entries[a["data-name"]] = a
        if a.get("id") == "error":
            self._in_error = True

    def handle_endtag(self, tag):
        if tag == "p":
            self._in_error = False

    def handle_data(self, data):
        if self._in_error:
            self.error += data

    def verdicts(self) -> dict[str, str]:
        return {name: a["data-verdict"] for name, a in self.entries.items() if "data-verdict" in a}


def one_line_error(response, status: int, *words: str) -> str:
    """The response is a page with one error line holding ``words`` and no traceback."""
    text = response.get_data(as_text=True)
    assert response.status_code == status, text[-2000:]
    assert "Traceback" not in text and 'File "' not in text
    error = " ".join(Page(text).error.split())
    assert error and error == Page(text).error.strip(), text
    for word in words:
        assert word in error, error
    return error


def notes_form(client) -> tuple[dict, Page]:
    """The course-notes page and a form with the notes' printed numbers typed in."""
    page = Page(client.get("/example").get_data(as_text=True))
    fields = {}
    names = {a["data-name"]: a for a in page.entries.values()}
    typed_by_element = {f["data-element"]: k for k, f in page.fields.items() if "data-element" in f}
    for claim in load_claims(EXAMPLES / "course-notes-claims.yaml").claims:
        assert claim.node in names, claim.node
        elements = [claim.node] if claim.numbers.size == 1 else [
            claim.node + "".join(f"[{i}]" for i in index) for index in np.ndindex(claim.numbers.shape)]
        for element, printed in zip(elements, claim.numbers.ravel()):
            fields[typed_by_element[element]] = printed.text
    return {**page.hidden, **fields}, page


# --- the pages ------------------------------------------------------------------------------------

def test_every_page_labels_every_field_and_loads_only_its_own_files(client):
    pages = [client.get("/"), client.get("/example"), client.get("/conventions?a=colah&b=cho2014"),
             client.post("/exercise", data={"source": "generate", "convention": "keras", "inputs": "2",
                                            "hidden": "2", "steps": "2", "seed": "3"})]
    for response in pages:
        assert response.status_code == 200
        page = Page(response.get_data(as_text=True))
        assert page.fields
        assert [k for k in page.fields if k not in page.labels] == []
        assert all(u.startswith("/") and not u.startswith("//") or u.startswith("#") for u in page.urls), page.urls
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    for name in ("katex/katex.min.js", "katex/katex.min.css", "katex/auto-render.min.js",
                 "katex/fonts/KaTeX_Main-Regular.woff2", "page.js", "style.css", "katex/LICENSE"):
        assert client.get("/static/" + name).status_code == 200, name


def test_the_course_notes_numbers_find_the_notes_one_mistake(client):
    form, page = notes_form(client)
    response = client.post("/check", data=form)
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    found = Page(text).verdicts()
    assert [n for n, v in found.items() if v == "wrong"] == ["dL/dh[0]"]
    assert set(found.values()) <= {"ok", "rounding", "wrong"}
    wrong = text[text.index('data-name="dL/dh[0]"'):]
    lines = re.findall(r'<li class="diagnosis-line">(.*?)</li>', wrong)
    assert any("through U_z (update gate)" in html.unescape(d) and "through the reset product r ⊙ h"
               in html.unescape(d) for d in lines), lines
    assert "All paths into $h_{0}$ added up:" in html.unescape(wrong)  # the sheet's worked step, beside it
    assert "-0.0968" in wrong


def test_a_check_answers_warm_in_under_a_second(client):
    form, _ = notes_form(client)
    client.post("/check", data=form)
    seconds = []
    for _ in range(3):
        start = time.perf_counter()
        assert client.post("/check", data=form).status_code == 200
        seconds.append(time.perf_counter() - start)
    assert min(seconds) < 1.0, seconds


def test_an_entry_computed_from_a_wrong_one_is_propagated(client):
    page = Page(client.get("/example").get_data(as_text=True))
    a_z = [0.74, -0.09, 0.33]  # the notes' a_z[1] is [0.64, -0.09, 0.33]: the first is wrong
    z = [f"{1 / (1 + math.exp(-a)):.3f}" for a in a_z]
    fields = {f"{page.entries['a_z[1]']['id'].replace('entry-', 'e')}_{k}": str(v) for k, v in enumerate(a_z)}
    fields |= {f"{page.entries['z[1]']['id'].replace('entry-', 'e')}_{k}": v for k, v in enumerate(z)}
    found = Page(client.post("/check", data={**page.hidden, **fields}).get_data(as_text=True)).verdicts()
    assert found == {"a_z[1]": "wrong", "z[1]": "propagated"}


def test_part_of_an_entry_is_checked_element_by_element(client):
    page = Page(client.get("/example").get_data(as_text=True))
    z = page.entries["z[1]"]["id"].replace("entry-", "e")
    text = client.post("/check", data={**page.hidden, f"{z}_0": "0.655", f"{z}_2": "0.500"}).get_data(as_text=True)
    assert Page(text).verdicts() == {"z[1]": "wrong"}  # z[1][2] is 0.5818
    assert re.search(rf'id="{z}_0"[^>]*class="v-ok"', text) and re.search(rf'id="{z}_2"[^>]*class="v-wrong"', text)


def test_a_typed_number_is_taken_as_typed_and_a_non_number_is_one_line(client):
    page = Page(client.get("/example").get_data(as_text=True))
    z = page.entries["z[1]"]["id"].replace("entry-", "e")
    for typed, words in (("0x1F", ["z[1][0]", "is not a number"]), ("nan", ["is not a number"]),
                         ("1e999", ["out of range"]), ("<script>alert(1)</script>", ["is not a number"]),
                         ("007", ["is not a number"])):
        response = client.post("/check", data={**page.hidden, f"{z}_0": typed})
        one_line_error(response, 400, *words)
        assert "<script>alert" not in response.get_data(as_text=True)
    one_line_error(client.post("/check", data=page.hidden), 400, "nothing to check")
    # 0.70 and 0.7 are different claims: two decimals allow less rounding than one
    r = page.entries["r[1]"]["id"].replace("entry-", "e")
    assert Page(client.post("/check", data={**page.hidden, f"{r}_0": "0.6"}).get_data(as_text=True)).verdicts() \
        == {"r[1]": "ok"}
    assert Page(client.post("/check", data={**page.hidden, f"{r}_0": "0.600"}).get_data(as_text=True)).verdicts() \
        == {"r[1]": "wrong"}


# --- choosing an exercise -------------------------------------------------------------------------

def test_the_generated_exercise_is_the_instructor_generators(client, tmp_path):
    response = client.post("/exercise", data={"source": "generate", "convention": "keras", "inputs": "2",
                                              "hidden": "3", "steps": "2", "seed": "1"})
    assert response.status_code == 200
    text = Page(response.get_data(as_text=True)).hidden["problem"]
    assert main(["problem", "--convention", "keras", "--dims", "2x3", "--steps", "2", "--seed", "1",
                 "-o", str(tmp_path), "--format", "md"]) == 0
    assert text == (tmp_path / "keras-seed1-v1.yaml").read_text()


def test_an_uploaded_or_pasted_problem_opens(client):
    data = (EXAMPLES / "homework.yaml").read_bytes()
    upload = client.post("/exercise", data={"source": "upload", "problem_file": (io.BytesIO(data),
                                                                                 "homework.yaml")},
                         content_type="multipart/form-data")
    pasted = client.post("/exercise", data={"source": "paste", "problem_text": data.decode()})
    title = yaml.safe_load(data)["title"]
    for response in (upload, pasted):
        assert response.status_code == 200
        assert f"<h1>{html.escape(title)}</h1>" in response.get_data(as_text=True)


@pytest.mark.parametrize("form, words", [
    ({"source": "generate", "convention": "../../docs/examples/conventions/keras-z-admits.yaml", "inputs": "2",
      "hidden": "3", "steps": "2", "seed": "1"}, ["convention:", "not a built-in convention"]),
    ({"source": "generate", "convention": "keras", "inputs": "9", "hidden": "3", "steps": "2", "seed": "1"},
     ["input size D", "1 to 8"]),
    ({"source": "generate", "convention": "keras", "inputs": "2", "hidden": "3", "steps": "-1", "seed": "1"},
     ["steps T"]),
    ({"source": "generate", "convention": "keras", "inputs": "2", "hidden": "3", "steps": "2", "seed": "1e9"},
     ["seed"]),
    ({"source": "paste", "problem_text": "   "}, ["empty"]),
    ({"source": "upload"}, ["choose a problem file"]),
    ({"source": "elsewhere"}, ["source:"]),
], ids=["convention-file", "size", "steps", "seed", "empty-paste", "no-file", "source"])
def test_a_bad_choice_is_one_line(client, form, words):
    one_line_error(client.post("/exercise", data=form), 400, *words)


HOSTILE = {
    "laughs": ('a: &a ["lol", "lol", "lol"]\nb: &b [*a, *a, *a, *a]\nc: [*b, *b, *b, *b]\n', ["anchor"]),
    "python-tag": ('!!python/object/apply:os.system ["touch grukit-owned-marker"]\n', ["tag"]),
    "weights-outside": ("convention: keras\ninputs: [[1, 2]]\nweights: {layout: keras, file: ../../../etc/passwd}\n",
                        ["weights", "outside"]),
    "weights-absolute": ("convention: keras\ninputs: [[1, 2]]\nweights: {layout: keras, file: /etc/passwd}\n",
                         ["absolute path"]),
    "convention-file": ("convention: /etc/passwd\ninputs: [[1, 2]]\nweights: {}\n", ["convention"]),
    "not-yaml": ("convention: [\n", ["not valid YAML"]),
    "too-many-steps": ("convention: course-notes\ninputs: " + str([[0.1, 0.2]] * 9) + "\nh0: [0, 0]\nweights:\n"
                       + "".join(f"  {k}: [[0.1, 0.2], [0.3, 0.4]]\n" for k in ("W_z", "U_z", "W_r", "U_r", "W_h",
                                                                                   "U_h"))
                       + "".join(f"  {k}: [0.1, 0.2]\n" for k in ("b_z", "b_r", "b_h")), ["at most 8 steps"]),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_problem_file_is_one_line_naming_it(client, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text, words = HOSTILE[name]
    response = client.post("/exercise", data={"source": "upload", "problem_file": (
        io.BytesIO(text.encode()), f"{name}.yaml")}, content_type="multipart/form-data")
    error = one_line_error(response, 400, f"{name}.yaml", *words)
    assert "grukit-web-" not in error and "/tmp" not in error  # the scratch folder is never named
    assert not (tmp_path / "grukit-owned-marker").exists()


def test_an_oversize_or_undecodable_upload_is_one_line(client):
    big = b"# " + b"x" * (300 * 1024) + b"\n"
    one_line_error(client.post("/exercise", data={"source": "upload", "problem_file": (
        io.BytesIO(big), "big.yaml")}, content_type="multipart/form-data"), 400, "big.yaml", "256 KiB")
    huge = b"x" * (MAX_REQUEST_BYTES + 1)
    one_line_error(client.post("/exercise", data={"source": "upload", "problem_file": (
        io.BytesIO(huge), "huge.yaml")}, content_type="multipart/form-data"), 413, "larger than")
    one_line_error(client.post("/exercise", data={"source": "upload", "problem_file": (
        io.BytesIO(b"title: caf\xe9\n"), "latin1.yaml")}, content_type="multipart/form-data"), 400,
        "latin1.yaml", "not UTF-8")
    fields = {f"e{k}": "1" for k in range(MAX_FORM_PARTS + 1)}  # a multipart form of too many parts
    one_line_error(client.post("/check", data=fields, content_type="multipart/form-data"), 413, "larger than")


def test_a_forged_form_is_one_line(client):
    one_line_error(client.post("/check", data={"e0_0": "1"}), 400, "no problem")
    one_line_error(client.post("/check", data={"problem": HOSTILE["laughs"][0], "label": "../../etc/passwd"}), 400,
                   "etc-passwd", "anchor")


def test_user_text_reaches_the_page_escaped(client):
    text = (EXAMPLES / "course-notes.yaml").read_text().replace(
        "title: GRU forward and backward pass (course notes example)", 'title: "<script>alert(1)</script>"')
    response = client.post("/exercise", data={"source": "upload", "problem_file": (
        io.BytesIO(text.encode()), '<img src=x onerror=alert(1)>.yaml')},
        content_type="multipart/form-data")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<img src=x" not in body and re.fullmatch(r"[A-Za-z0-9._-]+", Page(body).hidden["label"])


# --- paths, methods, failures ---------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/static/../app.py", "/static/%2e%2e/app.py", "/static/katex/../../app.py",
                                  "/static//etc/passwd", "/static/katex", "/static/katex/", "/static/app.py",
                                  "/static/..%2fapp.py", "/nowhere", "/static/"])
def test_the_server_serves_only_its_own_files(client, path):
    one_line_error(client.get(path, follow_redirects=True), 404, "404 Not Found")


def test_a_wrong_method_and_an_internal_failure_are_one_line(client, monkeypatch):
    one_line_error(client.get("/check"), 405, "405 Method Not Allowed")
    form, _ = notes_form(client)

    def broken(*args, **kwargs):
        raise RuntimeError("/secret/path/inside")

    monkeypatch.setattr("grukit.codegen.web.app.check", broken)
    error = one_line_error(client.post("/check", data=form), 500, "internal error (RuntimeError)")
    assert "/secret/path" not in error


# --- taking it away -------------------------------------------------------------------------------

def test_the_downloaded_claims_file_gives_grukit_verify_the_same_verdicts(client, tmp_path, capsys):
    form, _ = notes_form(client)
    page = Page(client.post("/check", data=form).get_data(as_text=True)).verdicts()
    response = client.post("/download/claims", data=form)
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="course-notes-claims.yaml"'
    claims = tmp_path / "claims.yaml"
    claims.write_bytes(response.data)  # it stands alone: the problem is written into it
    assert main(["verify", str(claims), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert {c["name"]: c["verdict"] for c in data["claims"]} == page


def test_the_report_and_the_worked_sheet_download(client):
    form, _ = notes_form(client)
    report = client.post("/download/report", data=form).get_data(as_text=True)
    assert "## Wrong: `dL/dh[0]`" in report and r"through U\_z (update gate)" in report
    assert "| `z[1]` | `[0.655, 0.478, 0.582]` | ok |" in report
    for kind in ("md", "tex"):  # the same bytes as the gallery's sheet of the same problem
        response = client.post("/download/sheet", data={**form, "format": kind})
        assert response.status_code == 200
        assert response.data == (ROOT / "docs" / "sheets" / f"course-notes.{kind}").read_bytes()
    one_line_error(client.post("/download/sheet", data={**form, "format": "../x"}), 400, "format")
    one_line_error(client.post("/download/claims", data={"problem": form["problem"]}), 400, "nothing to download")


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no pdflatex")
def test_the_worked_sheet_downloads_as_pdf(client):
    form, _ = notes_form(client)
    response = client.post("/download/sheet", data={**form, "format": "pdf"})
    assert response.status_code == 200 and response.data.startswith(b"%PDF")


# --- conventions side by side ---------------------------------------------------------------------

def test_colah_and_cho_side_by_side(client):
    """docs/are-these-the-same.md: Colah's and Cho's GRUs are the same function once z is negated;
    Cho's (reset before U) and PyTorch's (reset after) are not."""
    same = client.get("/conventions?a=colah&b=cho2014").get_data(as_text=True)
    assert "the same up to a reparameterization" in same and "negate every term of the z pre-activation" in same
    assert same.count('<div class="math">$$\\begin{aligned}') == 2
    different = client.get("/conventions?a=cho2014&b=pytorch").get_data(as_text=True)
    assert "different functions" in different and "Counterexample" in different
    one_line_error(client.get("/conventions?a=colah&b=../../etc/passwd"), 400, "b:", "not a built-in convention")

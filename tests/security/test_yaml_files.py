"""Hostile YAML: problem, claims, convention and layer-problem files someone else wrote
(docs/security.md). Whatever the file holds, grukit runs no code from it, reads no file it does not
name, answers in bounded time and memory, and refuses in one line naming the file and the field
(and the line, where the YAML reader finds it) -- or, for an input that is fine, gives its normal
result.

The findings each test keeps: aliases and anchors (a recursive alias, the "billion laughs"), nesting
depth, numbers beyond what every engine reads, text that is not UTF-8, duplicate keys, formula
claims that outgrow SymPy, files named by files resolved beside them; then a corpus of hostile and
careless inputs run through the command line.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import EXAMPLES
from helpers.hostile import MARKER, SECRET, assert_nothing_leaked, clean, plant_secret, refused, run, run_process

from grukit.derive.audit import claims as claims_module
from grukit.derive.files import arrays, yaml_values
from grukit.derive.files import convention_file as convention_module

COURSE = (EXAMPLES / "course-notes.yaml").read_text()
WEIGHTS = COURSE[COURSE.index("weights:"):COURSE.index("loss:")]
LAYER = ("convention: course-notes\ninputs: [[[0.8, 0.6], [0.1, 0.2]], [[0.3, 0.4], [0.5, 0.6]]]\n"
         "lengths: [2, 1]\nframework: pytorch\n" + WEIGHTS +
         "loss: {type: weighted_sum, G: [[[1, 0, 0], [0, 1, 0]], [[0, 0, 1], [1, 1, 1]]]}\n")
CLAIMS = "problem: p.yaml\nclaims:\n  z[1]: [0.655, 0.478, 0.582]\n"
CONVENTION = "name: mine\npreset: course-notes\nupdate_rule: z_keeps_old\n"
FAST = 20  # seconds: every refusal here takes well under one


def course(old: str = "", new: str = "", extra: str = "") -> str:
    """The course notes' problem with ``old`` replaced by ``new`` (``old`` must occur) and ``extra`` added."""
    assert old in COURSE
    return (COURSE.replace(old, new, 1) if old else COURSE) + extra


def line_of(text: str, needle: str) -> int:
    """The line (from 1) where ``needle`` first occurs in ``text``."""
    return text[:text.index(needle)].count("\n") + 1


def folder(tmp_path: Path, **files) -> Path:
    """A working folder holding the course notes' problem (p.yaml), claims on it (c.yaml), a convention
    file (conv.yaml) and a planted secret, with ``files`` (name -> text or bytes) written over them."""
    work = tmp_path / "work"
    work.mkdir()
    defaults = {"p.yaml": COURSE, "c.yaml": CLAIMS, "conv.yaml": CONVENTION}
    for name, content in {**defaults, **files}.items():
        path = work / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    plant_secret(work)
    return work


# --- 1. anchors and aliases ----------------------------------------------------------------------

RECURSIVE = "h0: &r [*r, 1]"


def laughs(levels: int = 6) -> str:
    """Nested aliases (the "billion laughs"): each level names the one before nine times."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for k in range(1, levels):
        lines.append(f"a{k}: &a{k} [" + ", ".join([f"*a{k - 1}"] * 9) + "]")
    return "\n".join(lines) + f"\ntitle: *a{levels - 1}\n"


@pytest.mark.parametrize("argv, file", [
    (["forward", "p.yaml"], "p.yaml"),
    (["grad", "p.yaml"], "p.yaml"),
    (["sheet", "p.yaml", "-o", "x.md"], "p.yaml"),
    (["names", "p.yaml"], "p.yaml"),
    (["identify", "p.yaml"], "p.yaml"),
    (["verify", "c.yaml"], "p.yaml"),
], ids=["forward", "grad", "sheet", "names", "identify", "verify"])
def test_a_recursive_alias_is_refused_by_every_command(tmp_path, argv, file):
    """A recursive alias (``h0: &r [*r, 1]``) looped forever: now one line naming the file, the
    field and the line, in every command, at once, and no output written."""
    text = course("h0: [0.5, -0.2, 0.3]", RECURSIVE)
    work = folder(tmp_path, **{"p.yaml": text})
    o = run(argv, work, limit=FAST)
    refused(o, file, "h0", "anchor", f"line {line_of(text, RECURSIVE)}")
    assert not (work / "x.md").exists()


@pytest.mark.parametrize("where", ["claims", "convention"])
def test_aliases_are_refused_in_claims_and_convention_files(tmp_path, where):
    """Claims and convention files are read by the same loader: an alias is refused there too."""
    if where == "claims":
        work = folder(tmp_path, **{"c.yaml": "problem: p.yaml\nclaims:\n  z[1]: &v [*v]\n"})
        refused(run(["verify", "c.yaml"], work, limit=FAST), "c.yaml", "claims.z[1]", "anchor", "line 3")
        refused(run(["names", "c.yaml"], work, limit=FAST), "c.yaml", "anchor")
        refused(run(["identify", "c.yaml"], work, limit=FAST), "c.yaml", "anchor")
    else:
        work = folder(tmp_path, **{"conv.yaml": "name: &n mine\ndescription: *n\npreset: keras\n",
                                   "p.yaml": course("convention: course-notes", "convention: {file: conv.yaml}")})
        refused(run(["conventions", "conv.yaml"], work, limit=FAST), "conv.yaml", "name", "anchor", "line 1")
        refused(run(["forward", "p.yaml"], work, limit=FAST), "conv.yaml", "anchor")


def test_the_billion_laughs_are_refused_before_they_grow(tmp_path):
    """A title made of nested aliases (1.3 KB of YAML naming 9^9 strings took 6 GB): refused at the
    first anchor, in a fraction of a second."""
    work = folder(tmp_path, **{"p.yaml": laughs() + course("title: GRU forward and backward pass "
                                                              "(course notes example)\n", "")})
    o = run(["forward", "p.yaml"], work, limit=FAST)
    refused(o, "p.yaml", "a0", "anchor", "line 1")
    assert o.seconds < 2


def test_an_alias_alone_is_refused(tmp_path):
    """A plain alias to a shared value (no recursion) is refused too: grukit reads no aliases."""
    work = folder(tmp_path, **{"p.yaml": course("b_z: [0.1, 0.0, -0.1]", "b_z: &b [0.1, 0.0, -0.1]")})
    refused(run(["forward", "p.yaml"], work, limit=FAST), "p.yaml", "weights.b_z", "anchor")


# --- 2. nesting ----------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, name, text", [
    (["forward", "p.yaml"], "p.yaml", course("inputs:\n  - [0.8, 0.6]", "inputs: " + "[" * 10000 + "]" * 10000)),
    (["forward", "p.yaml"], "p.yaml", course("", "", "observed: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n")),
    (["forward", "p.yaml"], "p.yaml", course("", "", "observed:\n" + "".join(" " * k + "-\n" for k in range(2000)))),
    (["verify", "c.yaml"], "c.yaml", "problem: p.yaml\nclaims:\n  z[1]: " + "[" * 10000 + "]" * 10000 + "\n"),
    (["conventions", "conv.yaml"], "conv.yaml", "notation: " + "[" * 10000 + "]" * 10000 + "\n"),
], ids=["flow-lists", "flow-mappings", "block-lists", "claims", "convention"])
def test_deep_nesting_is_one_line(tmp_path, argv, name, text):
    """10,000 nested lists or mappings (flow or block style) hit Python's recursion limit: now the
    loader stops at MAX_DEPTH levels with one line naming the file, the field and the line."""
    work = folder(tmp_path, **{name: text})
    refused(run(argv, work, limit=FAST), name, f"nested more than {yaml_values.MAX_DEPTH} levels", "line")


# --- 3. numbers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, name, text, field", [
    (["forward", "p.yaml"], "p.yaml", course("learning_rate: 0.01", "learning_rate: 1e400"), "learning_rate"),
    (["forward", "p.yaml"], "p.yaml", course("h0: [0.5, -0.2, 0.3]", "h0: [0.5, -1e-999999999, 0.3]"), "h0[1]"),
    (["forward", "p.yaml"], "p.yaml", course("h0: [0.5, -0.2, 0.3]", "h0: [0.5, 0e999999999, 0.3]"), "h0[1]"),
    (["forward", "p.yaml"], "p.yaml", course("h0: [0.5, -0.2, 0.3]", f"h0: [{'7' * 5000}, 0, 0]"), "h0[0]"),
    (["forward", "p.yaml"], "p.yaml", course("h0: [0.5, -0.2, 0.3]", f"h0: [0.{'7' * 5000}, 0, 0]"), "h0[0]"),
    (["forward", "p.yaml"], "p.yaml", course("h0: [0.5, -0.2, 0.3]", f"h0: [0x{'f' * 90}, 0, 0]"), "h0[0]"),
    (["forward", "p.yaml", "--engine", "numpy"], "p.yaml",
     course("- [0.8, 0.6]", "- [1e400, 0.6]"), "inputs[0][0]"),
    (["grad", "p.yaml", "--engine", "numba"], "p.yaml",
     course("W_z: [[0.1, 0.3],", "W_z: [[1e400, 0.3],"), "weights.W_z[0][0]"),
    (["conventions", "conv.yaml"], "conv.yaml", "preset: onnx\nclip: 1e999999999\n", "clip"),
    (["verify", "c.yaml"], "c.yaml", "problem: p.yaml\nclaims:\n  z[1]: [1e999999999, 0.478, 0.582]\n",
     "claims.z[1][0]"),
    (["verify", "c.yaml"], "c.yaml", "problem: p.yaml\ndecimals: 1e-999999999\nclaims:\n  z[1]: 0.5\n", "decimals"),
    (["verify", "c.yaml"], "c.yaml", f"problem: p.yaml\nclaims:\n  z[1]: [{'9' * 5000}, 0, 0]\n", "claims.z[1][0]"),
], ids=["1e400", "tiny-exponent", "zero-huge-exponent", "5000-digit-int", "5000-digit-decimal", "hex-90-digits",
        "1e400-numpy", "1e400-numba", "convention-clip", "claim", "claims-decimals", "claim-5000-digits"])
def test_numbers_beyond_the_range_are_refused_naming_the_field(tmp_path, argv, name, text, field):
    """1e999999999 hung the exact reader (a fraction with a billion-digit denominator), a 5000-digit
    integer hit Python's int/str limit, 1e400 broke the float engines: numbers have at most 100 digits
    and lie within 1e-300..1e100 (or are 0), and the error says so, naming the field and the line."""
    work = folder(tmp_path, **{name: text})
    o = run(argv, work, limit=FAST)
    line = refused(o, name, field, "out of range", "at most 100 digits", "1e100", "line")
    assert o.seconds < 5, line


def test_an_exponent_of_a_billion_is_refused_in_a_killable_process(tmp_path):
    """The worst case of the exact reader (10**999999999 is computed in C, beyond SIGALRM's reach)
    runs in a child process group that a hang would get killed."""
    work = folder(tmp_path, **{"p.yaml": course("learning_rate: 0.01", "learning_rate: 1e999999999")})
    refused(run_process(["forward", "p.yaml"], work, limit=60), "p.yaml", "learning_rate", "out of range")


@pytest.mark.parametrize("text, field, words", [
    ("problem: p.yaml\nclaims:\n  z[1]: [0x1F, 0, 0]\n", "claims.z[1]", "expected numbers"),
    ("problem: p.yaml\nclaims:\n  z[1]: [0b101, 0, 0]\n", "claims.z[1]", "expected numbers"),
    ("problem: p.yaml\nclaims:\n  z[1]: [!!float sNaN, 0, 0]\n", "claims.z[1]", "expected numbers"),
    ("problem: p.yaml\nclaims:\n  z[1]: [!!int '', 0, 0]\n", "claims.z[1][0]", "not a whole number"),
], ids=["hex", "binary", "signalling-nan", "empty-int"])
def test_numbers_python_cannot_read_as_written_are_refused(tmp_path, text, field, words):
    """Hex and binary integers and a signalling NaN were tracebacks in a claims file (the printed
    reader fell back to float()): now refused naming the claim."""
    work = folder(tmp_path, **{"c.yaml": text})
    refused(run(["verify", "c.yaml"], work, limit=FAST), "c.yaml", field, words)


def test_numbers_at_the_edge_of_the_range_are_read(tmp_path):
    """The range is generous for real inputs: a 100-digit decimal, 1e-300 and 0e5 are read."""
    work = folder(tmp_path, **{"p.yaml": course("h0: [0.5, -0.2, 0.3]", f"h0: [0.{'3' * 99}, 1e-300, 0e5]")})
    o = run(["forward", "p.yaml"], work, limit=FAST)
    assert o.status == 0, o.err
    clean(o)


# --- 4. text that is not UTF-8 -------------------------------------------------------------------

LATIN1 = "title: caf\xe9\n".encode("latin-1")


@pytest.mark.parametrize("argv, name, content", [
    (["forward", "p.yaml"], "p.yaml", LATIN1 + COURSE.encode()),
    (["sheet", "p.yaml", "-o", "x.md"], "p.yaml", LATIN1 + COURSE.encode()),
    (["identify", "p.yaml"], "p.yaml", LATIN1 + COURSE.encode()),
    (["verify", "c.yaml"], "c.yaml", LATIN1 + CLAIMS.encode()),
    (["identify", "c.yaml"], "c.yaml", LATIN1 + CLAIMS.encode()),
    (["verify", "c.yaml"], "p.yaml", LATIN1 + COURSE.encode()),
    (["conventions", "conv.yaml"], "conv.yaml", b"name: \xff\xfe\n"),
    (["forward", "p.yaml"], "conv.yaml", b"name: \xff\xfe\n"),
    (["forward", "p.yaml"], "p.yaml", bytes(range(256)) * 4),
], ids=["problem", "problem-sheet", "problem-identify", "claims", "claims-identify", "claims-problem", "convention",
        "convention-of-problem", "binary"])
def test_text_that_is_not_utf8_is_one_line_naming_the_file(tmp_path, argv, name, content):
    """A Latin-1 file, binary data: one line naming the file, the byte and its line (before: a
    UnicodeDecodeError, or a line naming no file)."""
    files = {name: content}
    if name == "conv.yaml" and argv[0] == "forward":
        files["p.yaml"] = course("convention: course-notes", "convention: {file: conv.yaml}")
    work = folder(tmp_path, **files)
    refused(run(argv, work, limit=FAST), name, "not UTF-8", "line")
    assert not (work / "x.md").exists()


def test_names_names_a_file_that_is_not_utf8(tmp_path):
    work = folder(tmp_path, **{"c.yaml": LATIN1 + CLAIMS.encode()})
    refused(run(["names", "c.yaml"], work, limit=FAST), "c.yaml", "not UTF-8")


# --- 5. duplicate keys ---------------------------------------------------------------------------

@pytest.mark.parametrize("argv, name, text, key, second", [
    (["forward", "p.yaml"], "p.yaml", course("", "", "title: again\n"), "'title'", "title: again"),
    (["forward", "p.yaml"], "p.yaml", course("  b_h: [0.1, 0.0, -0.1]", "  b_h: [0.1, 0.0, -0.1]\n  W_z: [[1, 1]]"),
     "'W_z'", "W_z: [[1, 1]]"),
    (["verify", "c.yaml"], "c.yaml", CLAIMS + "  z[1]: [0.1, 0.2, 0.3]\n", "'z[1]'", "z[1]: [0.1"),
    (["conventions", "conv.yaml"], "conv.yaml", CONVENTION + "update_rule: z_admits_new\n", "'update_rule'",
     "update_rule: z_admits"),
    (["forward", "p.yaml"], "p.yaml", course("", "", "observed: {1: a, 1: b}\n"), "'1'", "observed:"),
], ids=["top-level", "weights", "claims", "convention", "numbers-as-keys"])
def test_duplicate_keys_are_refused(tmp_path, argv, name, text, key, second):
    """YAML lets the last of two equal keys win, hiding a typo (two W_z, the second silently used):
    now refused naming the key and its line."""
    work = folder(tmp_path, **{name: text})
    refused(run(argv, work, limit=FAST), name, key, "appears twice", f"line {line_of(text, second)}")


# --- 6. formula claims ---------------------------------------------------------------------------

@pytest.mark.parametrize("formula, words", [
    ("exp(exp(exp(exp(exp(exp(h))))))", "exp inside exp"),
    ("tanh(exp(1000000000*1000000000*h))", "exp inside tanh"),
    ("sigmoid(sigmoid(sigmoid(sigmoid(z))))", "functions nested more than 3"),
    ("(" * 5000 + "z" + ")" * 5000, "longer than 400"),
    ("(" * 100 + "z" + ")" * 100, "nested more than 16"),
    ("-" * 100 + "z", "nested more than 16"),
    (" + ".join(["z"] * 3000), "longer than 400"),
    (" * ".join(["(z + r + h)"] * 12), "terms once multiplied out"),
    (" ".join(["U_z"] * 40) + " z", "terms once multiplied out"),
    ("7" * 5000 + " * z", "longer than 400"),
    ("7" * 30 + " * z", "longer than 20"),
    ("W_z W_z", "matrix product of shapes"),
], ids=["exp-of-exp", "exp-in-tanh", "functions-deep", "parentheses-5000", "parentheses-100", "signs-100",
        "long-sum", "product-of-sums", "matrix-chain", "number-5000-digits", "number-30-digits", "matrix-shapes"])
def test_formula_claims_are_bounded(tmp_path, formula, words):
    """A formula claim is bounded before SymPy works on it: exp(exp(...)) took minutes (its values
    outgrow any number), deep parentheses recursed, a product of sums multiplied out without end,
    a mismatched matrix product was a traceback: now one line naming the claims file and the claim."""
    work = folder(tmp_path, **{"c.yaml": f'problem: p.yaml\nclaims:\n  z[t]: "{formula}"\n'})
    o = run(["verify", "c.yaml"], work, limit=FAST)
    refused(o, "c.yaml", "claims.z[t]", words)
    assert o.seconds < 5


def test_formula_claims_on_a_large_problem_are_refused(tmp_path):
    """The step's derivation grows with the sizes: formula claims need H, D <= MAX_SIZE."""
    h = 17
    row = "[" + ", ".join(["0.1"] * h) + "]"
    matrix = "[" + ", ".join([row] * h) + "]"
    weights = "".join(f"  {k}: {matrix}\n" for k in ("W_z", "W_r", "W_h", "U_z", "U_r", "U_h")) + \
        "".join(f"  {k}: {row}\n" for k in ("b_z", "b_r", "b_h"))
    big = f"convention: course-notes\ninputs: [{row}]\nweights:\n{weights}"
    work = folder(tmp_path, **{"p.yaml": big, "c.yaml": 'problem: p.yaml\nclaims:\n  z[t]: "sigmoid(a_z)"\n'})
    o = run(["verify", "c.yaml"], work, limit=FAST)
    refused(o, "c.yaml", "claims.z[t]", "at most 16 hidden units")


def test_a_formula_dividing_by_zero_is_wrong_not_a_traceback(tmp_path):
    """An undefined formula (z / (z - z)) is not grukit's: verdict wrong (exit 1), no traceback."""
    work = folder(tmp_path, **{"c.yaml": 'problem: p.yaml\nclaims:\n  z[t]: "z / (z - z) + 0 * log(z - z)"\n'})
    o = run(["verify", "c.yaml"], work, limit=FAST)
    assert o.status == 1, o.err
    clean(o)


# --- 7. files named by files ---------------------------------------------------------------------

def test_references_resolve_through_referenced_file(tmp_path, monkeypatch):
    """A convention file named by a problem and a problem named by a claims file are resolved by
    arrays.referenced_file (the one place that keeps them beside the naming file)."""
    calls = []

    def spy(naming_file, name, where):
        calls.append((Path(naming_file).name, name))
        return arrays.referenced_file(naming_file, name, where)

    monkeypatch.setattr(convention_module, "referenced_file", spy)
    monkeypatch.setattr(claims_module, "referenced_file", spy)
    work = folder(tmp_path, **{"p.yaml": course("convention: course-notes", "convention: {file: conv.yaml}"),
                               "q.yaml": course("convention: course-notes", "convention: conv.yaml")})
    assert run(["forward", "p.yaml"], work, limit=FAST).status == 0
    assert run(["forward", "q.yaml"], work, limit=FAST).status == 0
    run(["verify", "c.yaml"], work, limit=FAST)
    assert calls[:3] == [("p.yaml", "conv.yaml"), ("q.yaml", "conv.yaml"), ("c.yaml", "p.yaml")]
    assert set(calls[3:]) <= {("p.yaml", "conv.yaml")}  # the problem the claims name, naming its convention


def test_references_resolve_beside_the_naming_file_not_the_current_folder(tmp_path):
    """Run from another folder holding decoys of the same names: the files beside the problem and
    the claims file are the ones read."""
    work = folder(tmp_path, **{"p.yaml": course("convention: course-notes", "convention: {file: conv.yaml}")})
    (tmp_path / "conv.yaml").write_text("preset: pytorch\n")
    (tmp_path / "p.yaml").write_text("decoy: 1\n")
    o = run(["forward", work / "p.yaml"], tmp_path, limit=FAST)
    assert o.status == 0 and "convention mine" in o.out, o.err
    o = run(["verify", work / "c.yaml"], tmp_path, limit=FAST)
    assert o.status in (0, 1) and "decoy" not in o.err, o.err


@pytest.mark.parametrize("argv, name, text", [
    (["forward", "p.yaml"], "p.yaml", course("convention: course-notes", "convention: {file: ../outside/secret.txt}")),
    (["forward", "p.yaml"], "p.yaml", course("convention: course-notes", "convention: ../outside/leak.yaml")),
    (["forward", "p.yaml"], "p.yaml", course("convention: course-notes", "convention: {file: /etc/passwd}")),
    (["verify", "c.yaml"], "c.yaml", "problem: ../outside/secret.txt\nclaims:\n  z[1]: 0.5\n"),
    (["verify", "c.yaml"], "c.yaml", "problem: /etc/passwd\nclaims:\n  z[1]: 0.5\n"),
    (["forward", "p.yaml"], "p.yaml", course("convention: course-notes", "convention: {file: link.yaml}")),
], ids=["dot-dot", "dot-dot-link", "absolute", "claims-dot-dot", "claims-absolute", "link-out"])
def test_references_outside_the_naming_files_folder_are_refused(tmp_path, argv, name, text):
    """A problem or claims file naming a file outside its folder (.., an absolute path, a link out)
    is refused naming the field; nothing of the foreign file reaches the output."""
    outside = tmp_path / "outside"
    outside.mkdir()
    plant_secret(outside)
    (outside / "leak.yaml").symlink_to(outside / "secret.txt")
    work = folder(tmp_path, **{name: text})
    (work / "link.yaml").symlink_to(outside / "secret.txt")
    o = run(argv, work, limit=FAST)
    refused(o, name, "convention" if name == "p.yaml" else "problem")
    assert SECRET not in o.out + o.err


# --- 8. a corpus of hostile and careless inputs --------------------------------------------------

FIFO, FOLDER, MISSING, LINK_SECRET, LINK_PASSWD, HUGE = (object() for _ in range(6))
OK = ()
"""``words`` of a case whose input is fine: the command succeeds (status 0, or 1 for verify's wrong claims)."""

W3x2 = "[[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]"
SOFTMAX = "  type: softmax_cross_entropy\n  W_o: [[0.4, -0.2, 0.3], [-0.1, 0.5, 0.2]]\n  b_o: [0.1, -0.1]\n"
LOSS = COURSE[COURSE.index("loss:"):COURSE.index("learning_rate:")]

CORPUS = [
    # (id, file name, content, command, words the one line holds; OK for a normal result)
    # --- problem files: the whole file
    ("empty", "p.yaml", "", "forward", ("p.yaml", "expected a mapping")),
    ("comment-only", "p.yaml", "# nothing\n", "forward", ("p.yaml", "expected a mapping")),
    ("a-list", "p.yaml", "- 1\n- 2\n", "forward", ("p.yaml", "expected a mapping")),
    ("a-string", "p.yaml", "just text\n", "grad", ("p.yaml", "expected a mapping")),
    ("two-documents", "p.yaml", COURSE + "---\n" + COURSE, "forward", ("p.yaml", "single document")),
    ("unclosed-list", "p.yaml", course("h0: [0.5, -0.2, 0.3]", "h0: [0.5, -0.2"), "forward",
     ("p.yaml", "not valid YAML", "line")),
    ("tab-indent", "p.yaml", course("  W_r:", "\tW_r:"), "forward", ("p.yaml", "not valid YAML", "line")),
    ("nul-byte", "p.yaml", course("", "", "title: a\x00b\n"), "forward", ("p.yaml", "#x0000", "line")),
    ("binary", "p.yaml", bytes([0x89, 0x50, 0x4E, 0x47]) + bytes(range(256)), "grad",
     ("p.yaml", "not UTF-8")),
    ("folder", "p.yaml", FOLDER, "forward", ("p.yaml", "folder")),
    ("missing", "p.yaml", MISSING, "forward", ("p.yaml", "cannot read")),
    ("fifo", "p.yaml", FIFO, "forward", ("p.yaml", "not a regular file")),
    ("link-to-secret", "p.yaml", LINK_SECRET, "forward", ("p.yaml", "expected a mapping")),
    ("link-to-passwd", "p.yaml", LINK_PASSWD, "names", ("p.yaml", "expected a mapping")),
    ("too-large", "p.yaml", HUGE, "forward", ("p.yaml", "larger than")),
    ("unknown-key", "p.yaml", course("", "", "colour: red\n"), "forward", ("p.yaml", "colour", "unknown key")),
    ("key-with-newline", "p.yaml", course("", "", '"a\\nb": 1\n'), "forward", ("p.yaml", "key", "one line")),
    ("long-key", "p.yaml", course("", "", "k" * 300 + ": 1\n"), "forward", ("p.yaml", "at most 200")),
    ("list-as-key", "p.yaml", course("", "", "? [1, 2]\n: 3\n"), "forward", ("p.yaml", "as a key")),
    ("merge-key", "p.yaml", course("", "", "<<: {title: x}\n"), "forward", ("p.yaml", "<<", "unknown key")),
    # --- tags: no code runs, no object is built
    ("python-apply", "p.yaml", course("title: GRU", f'title: !!python/object/apply:os.system ["touch {MARKER}"]\n'
                                      "description: GRU"), "forward", ("p.yaml", "title", "tag")),
    ("python-name", "p.yaml", course("title: GRU", "title: !!python/name:os.system\ndescription: GRU"),
     "grad", ("p.yaml", "title", "tag")),
    ("python-object-new", "p.yaml", course("", "", f"observed: !!python/object/new:os.system [touch {MARKER}]\n"),
     "identify", ("p.yaml", "observed", "tag")),
    ("binary-tag", "p.yaml", course("- [0.8, 0.6]", "- !!binary aGVsbG8="), "forward", ("p.yaml", "inputs[0]", "tag")),
    ("set-tag", "p.yaml", course("h0: [0.5, -0.2, 0.3]", "h0: !!set {a, b}"), "forward", ("p.yaml", "h0", "tag")),
    ("timestamp-tag", "p.yaml", course("title: GRU", "title: !!timestamp 2001-12-14\ndescription: GRU"),
     "forward", ("p.yaml", "title", "tag")),
    ("local-tag", "p.yaml", course("h0: [0.5, -0.2, 0.3]", "h0: !mine [0.5, -0.2, 0.3]"), "forward",
     ("p.yaml", "h0", "tag")),
    ("bad-bool-tag", "p.yaml", course("", "", "observed: !!bool maybe\n"), "forward", ("p.yaml", "true or false")),
    # --- convention
    ("convention-number", "p.yaml", course("convention: course-notes", "convention: 5"), "forward",
     ("p.yaml", "convention")),
    ("convention-null", "p.yaml", course("convention: course-notes", "convention: null"), "forward",
     ("p.yaml", "convention")),
    ("convention-list", "p.yaml", course("convention: course-notes", "convention: [course-notes]"), "forward",
     ("p.yaml", "convention")),
    ("convention-file-number", "p.yaml", course("convention: course-notes", "convention: {file: 7}"), "forward",
     ("p.yaml", "convention.file")),
    ("convention-unknown", "p.yaml", course("convention: course-notes", "convention: nonesuch"), "forward",
     ("p.yaml", "convention", "unknown convention")),
    ("convention-preset-list", "p.yaml", course("convention: course-notes", "convention: {preset: [1]}"),
     "forward", ("p.yaml", "convention.preset")),
    ("convention-axis-list", "p.yaml", course("convention: course-notes", "convention: {update_rule: [1]}"),
     "forward", ("p.yaml", "convention.update_rule")),
    ("convention-gate-order-numbers", "p.yaml",
     course("convention: course-notes", "convention: {preset: course-notes, gate_order: [1, 2, 3]}"), "forward",
     ("p.yaml", "gate_order")),
    # --- inputs
    ("inputs-null", "p.yaml", course("inputs:\n  - [0.8, 0.6]", "inputs: null"), "forward", ("p.yaml", "inputs")),
    ("inputs-empty", "p.yaml", course("inputs:\n  - [0.8, 0.6]", "inputs: []"), "forward", ("p.yaml", "inputs")),
    ("inputs-text", "p.yaml", course("inputs:\n  - [0.8, 0.6]", 'inputs: "0.8, 0.6"'), "forward",
     ("p.yaml", "inputs")),
    ("inputs-booleans", "p.yaml", course("- [0.8, 0.6]", "- [true, false]"), "forward",
     ("p.yaml", "inputs", "expected a number")),
    ("inputs-strings", "p.yaml", course("- [0.8, 0.6]", '- ["0.8", "0.6"]'), "grad",
     ("p.yaml", "inputs", "expected a number")),
    ("inputs-nan", "p.yaml", course("- [0.8, 0.6]", "- [.nan, 0.6]"), "forward", ("p.yaml", "inputs", "finite")),
    ("inputs-inf", "p.yaml", course("- [0.8, 0.6]", "- [-.inf, 0.6]"), "forward", ("p.yaml", "inputs", "finite")),
    ("inputs-wide", "p.yaml", course("- [0.8, 0.6]", "- [0.8, 0.6, 0.1]"), "forward", ("p.yaml", "inputs", "D = 2")),
    ("inputs-ragged", "p.yaml", course("- [0.8, 0.6]", "- [0.8]\n  - [0.6, 0.1]"), "forward",
     ("p.yaml", "inputs", "unequal")),
    ("inputs-mapping", "p.yaml", course("inputs:\n  - [0.8, 0.6]", "inputs: {a: 1}"), "forward",
     ("p.yaml", "inputs")),
    ("inputs-nested-deep", "p.yaml", course("- [0.8, 0.6]", "- " + "[" * 30 + "1" + "]" * 30), "forward",
     ("p.yaml", "inputs")),
    # --- h0
    ("h0-short", "p.yaml", course("h0: [0.5, -0.2, 0.3]", "h0: [0.5, -0.2]"), "forward", ("p.yaml", "h0")),
    ("h0-nan", "p.yaml", course("h0: [0.5, -0.2, 0.3]", "h0: [.NaN, 0, 0]"), "forward", ("p.yaml", "h0", "finite")),
    ("h0-text", "p.yaml", course("h0: [0.5, -0.2, 0.3]", "h0: zero"), "forward", ("p.yaml", "h0")),
    ("h0-mapping", "p.yaml", course("h0: [0.5, -0.2, 0.3]", "h0: {a: 1}"), "forward", ("p.yaml", "h0")),
    ("h0-null", "p.yaml", course("h0: [0.5, -0.2, 0.3]", "h0: null"), "forward", OK),
    # --- weights
    ("weights-null", "p.yaml", course(WEIGHTS, "weights: null\n"), "forward", ("p.yaml", "weights")),
    ("weights-list", "p.yaml", course(WEIGHTS, "weights: [1, 2]\n"), "forward", ("p.yaml", "weights")),
    ("weight-null", "p.yaml", course("W_z: [[0.1, 0.3], [-0.2, 0.1], [0.2, 0.4]]", "W_z: null"), "forward",
     ("p.yaml", "weights.W_z")),
    ("weight-empty", "p.yaml", course("W_h: [[0.3, -0.1], [0.1, 0.2], [0.2, -0.3]]", "W_h: []"), "forward",
     ("p.yaml", "weights.W_h", "matrix")),
    ("weight-empty-rows", "p.yaml", course("W_h: [[0.3, -0.1], [0.1, 0.2], [0.2, -0.3]]", "W_h: [[]]"),
     "forward", ("p.yaml",)),
    ("weight-inf", "p.yaml", course("b_z: [0.1, 0.0, -0.1]", "b_z: [.inf, 0.0, -0.1]"), "grad",
     ("p.yaml", "weights.b_z", "finite")),
    ("weight-unknown", "p.yaml", course("  b_h: [0.1, 0.0, -0.1]", "  b_h: [0.1, 0.0, -0.1]\n  W_q: [[1]]"),
     "forward", ("p.yaml", "weights.W_q", "unknown weight")),
    ("weight-missing", "p.yaml", course("  b_h: [0.1, 0.0, -0.1]\n", ""), "forward", ("p.yaml", "weights.b_h")),
    ("weight-wrong-shape", "p.yaml", course("W_z: [[0.1, 0.3], [-0.2, 0.1], [0.2, 0.4]]", f"W_z: {W3x2[:-1]}, "
                                            "[0.7, 0.8]]"), "forward", ("p.yaml", "weights.W_z", "shape")),
    ("layout-list", "p.yaml", course(WEIGHTS, "weights: {layout: [1], file: w.npz}\n"), "forward",
     ("p.yaml", "weights.layout")),
    ("layout-file-null", "p.yaml", course(WEIGHTS, "weights: {layout: keras, file: null}\n"), "forward",
     ("p.yaml", "weights.file")),
    ("layout-file-missing", "p.yaml", course(WEIGHTS, "weights: {layout: keras, file: nowhere.npz}\n"), "forward",
     ("p.yaml", "weights.file")),
    ("layout-file-passwd", "p.yaml", course(WEIGHTS, "weights: {layout: keras, file: /etc/passwd}\n"), "forward",
     ("p.yaml", "weights.file")),
    ("layout-mixed-keys", "p.yaml", course(WEIGHTS, "weights: {layout: keras, file: w.npz, 1: 2, zz: 3}\n"),
     "forward", ("p.yaml", "weights.1", "unknown key")),
    # --- loss and learning rate
    ("loss-number", "p.yaml", course(LOSS, "loss: 5\n"), "grad", ("p.yaml", "loss")),
    ("loss-type-list", "p.yaml", course("  type: softmax_cross_entropy", "  type: [1]"), "grad",
     ("p.yaml", "loss.type")),
    ("loss-mixed-keys", "p.yaml", course("  type: softmax_cross_entropy", "  type: softmax_cross_entropy\n  1: 2\n"
                                         "  zz: 3"), "grad", ("p.yaml", "loss.1", "unknown key")),
    ("loss-w-o-null", "p.yaml", course("  W_o: [[0.4, -0.2, 0.3], [-0.1, 0.5, 0.2]]", "  W_o: null"), "grad",
     ("p.yaml", "loss.W_o")),
    ("loss-target-far", "p.yaml", course("  target: [1, 0]", "  target: 99"), "grad", ("p.yaml", "loss.target")),
    ("loss-target-negative", "p.yaml", course("  target: [1, 0]", "  target: -1"), "grad",
     ("p.yaml", "loss.target")),
    ("loss-target-bool", "p.yaml", course("  target: [1, 0]", "  target: true"), "grad", ("p.yaml", "loss.target")),
    ("loss-targets-short", "p.yaml", course("  target: [1, 0]", "  targets: []"), "grad",
     ("p.yaml", "loss.targets")),
    ("learning-rate-text", "p.yaml", course("learning_rate: 0.01", 'learning_rate: "0.01"'), "sheet",
     ("p.yaml", "learning_rate", "expected a number")),
    ("learning-rate-nan", "p.yaml", course("learning_rate: 0.01", "learning_rate: .nan"), "sheet",
     ("p.yaml", "learning_rate", "finite")),
    ("learning-rate-bool", "p.yaml", course("learning_rate: 0.01", "learning_rate: yes"), "forward",
     ("p.yaml", "learning_rate", "expected a number")),
    # --- inputs that are fine
    ("title-date", "p.yaml", course("title: GRU forward and backward pass (course notes example)",
                                    "title: 2024-01-01"), "forward", OK),
    ("title-equals", "p.yaml", course("title: GRU forward and backward pass (course notes example)", "title: ="),
     "sheet", OK),
    ("title-unicode", "p.yaml", course("title: GRU", "title: GRU – ünïcødé ⊙ σ"), "sheet", OK),
    ("byte-order-mark", "p.yaml", "\ufeff" + COURSE, "forward", OK),
    ("crlf", "p.yaml", COURSE.replace("\n", "\r\n").encode(), "grad", OK),
    ("exponents", "p.yaml", course("- [0.8, 0.6]", "- [8e-1, 6E-1]"), "forward", OK),
    # --- layer problems
    ("layer-fine", "p.yaml", LAYER, "grad", OK),
    ("layer-lengths-huge", "p.yaml", LAYER.replace("lengths: [2, 1]", "lengths: [2, 1e999]"), "forward",
     ("p.yaml", "lengths[1]", "out of range")),
    ("layer-lengths-negative", "p.yaml", LAYER.replace("lengths: [2, 1]", "lengths: [2, -1]"), "forward",
     ("p.yaml", "lengths")),
    ("layer-lengths-bool", "p.yaml", LAYER.replace("lengths: [2, 1]", "lengths: [true, 1]"), "forward",
     ("p.yaml", "lengths")),
    ("layer-lengths-text", "p.yaml", LAYER.replace("lengths: [2, 1]", 'lengths: "2"'), "forward",
     ("p.yaml", "lengths")),
    ("layer-lengths-mask", "p.yaml", LAYER.replace("lengths: [2, 1]", "lengths: [2, 1]\nmask: [[1, 1], [1, 0]]"),
     "forward", ("p.yaml", "lengths or mask")),
    ("layer-mask-two", "p.yaml", LAYER.replace("lengths: [2, 1]", "mask: [[1, 2], [1, 1]]"), "forward",
     ("p.yaml", "mask")),
    ("layer-direction-list", "p.yaml", LAYER + "direction: [1]\n", "forward", ("p.yaml", "direction")),
    ("layer-merge-number", "p.yaml", LAYER + "merge: 5\n", "forward", ("p.yaml", "merge")),
    ("layer-framework-mapping", "p.yaml", LAYER.replace("framework: pytorch", "framework: {a: 1}"), "forward",
     ("p.yaml", "framework")),
    ("layer-inputs-ragged", "p.yaml", LAYER.replace("[[0.3, 0.4], [0.5, 0.6]]", "[[0.3, 0.4]]"), "forward",
     ("p.yaml", "inputs")),
    ("layer-inputs-file-outside", "p.yaml", LAYER.replace(
        "inputs: [[[0.8, 0.6], [0.1, 0.2]], [[0.3, 0.4], [0.5, 0.6]]]", "inputs: {file: ../x.npy}"), "forward",
     ("p.yaml", "inputs.file")),
    ("layer-inputs-file-list", "p.yaml", LAYER.replace(
        "inputs: [[[0.8, 0.6], [0.1, 0.2]], [[0.3, 0.4], [0.5, 0.6]]]", "inputs: {file: [1]}"), "forward",
     ("p.yaml", "inputs.file")),
    ("layer-loss-type-list", "p.yaml", LAYER.replace("type: weighted_sum", "type: [1]"), "grad", ("p.yaml", "loss")),
    ("layer-loss-mixed-keys", "p.yaml", LAYER.replace("type: weighted_sum", "type: weighted_sum, 1: 2, zz: 3"),
     "grad", ("p.yaml", "loss.1", "unknown key")),
    ("layer-g-file-missing", "p.yaml", LAYER.replace("G: [[[1, 0, 0], [0, 1, 0]], [[0, 0, 1], [1, 1, 1]]]",
                                                     "G: {file: nowhere.npy}"), "grad", ("p.yaml", "loss.G.file")),
    ("layer-h0-deep", "p.yaml", LAYER + "h0: [[[[0.1]]]]\n", "forward", ("p.yaml", "h0")),
    # --- claims files
    ("claims-empty", "c.yaml", "", "verify", ("c.yaml", "claims file")),
    ("claims-problem-number", "c.yaml", "problem: 5\nclaims:\n  z[1]: 0.5\n", "verify", ("c.yaml", "problem")),
    ("claims-problem-null", "c.yaml", "problem: null\nclaims:\n  z[1]: 0.5\n", "verify", ("c.yaml", "problem")),
    ("claims-problem-list", "c.yaml", "problem: [p.yaml]\nclaims:\n  z[1]: 0.5\n", "verify", ("c.yaml", "problem")),
    ("claims-problem-itself", "c.yaml", "problem: c.yaml\nclaims:\n  z[1]: 0.5\n", "verify",
     ("c.yaml", "unknown key")),
    ("claims-list", "c.yaml", "problem: p.yaml\nclaims: [1, 2]\n", "verify", ("c.yaml", "claims")),
    ("claim-null", "c.yaml", "problem: p.yaml\nclaims:\n  z[1]: null\n", "verify", ("c.yaml", "claims.z[1]")),
    ("claim-bool", "c.yaml", "problem: p.yaml\nclaims:\n  z[1]: [true, 0, 0]\n", "verify",
     ("c.yaml", "claims.z[1]", "expected numbers")),
    ("claim-mapping", "c.yaml", "problem: p.yaml\nclaims:\n  z[1]: {a: 1}\n", "verify", ("c.yaml", "claims.z[1]")),
    ("claim-ragged", "c.yaml", "problem: p.yaml\nclaims:\n  z[1]: [[0.1], [0.2, 0.3]]\n", "verify",
     ("c.yaml", "claims.z[1]")),
    ("claim-nan", "c.yaml", "problem: p.yaml\nclaims:\n  z[1]: [.nan, 0, 0]\n", "verify", ("c.yaml", "claims.z[1]")),
    ("claim-30-decimals", "c.yaml",
     "problem: p.yaml\nclaims:\n  z[1]: [0.6547534606063192000000000000001, 0.478, 0.582]\n", "verify",
     ("c.yaml", "claims.z[1]", "31 decimals")),
    ("claim-tiny", "c.yaml", "problem: p.yaml\nclaims:\n  z[1]: [0.655, 1e-300, 0.582]\n", "verify",
     ("c.yaml", "claims.z[1]", "300 decimals")),
    ("claim-24-decimals", "c.yaml",
     "problem: p.yaml\nclaims:\n  z[1]: [6.547534606063192e-1, 4.77515175208e-13, 0.58]\n", "verify", OK),
    ("claim-number-name", "c.yaml", "problem: p.yaml\nclaims:\n  5: 0.5\n", "verify", ("c.yaml", "claims.5")),
    ("claim-index-huge", "c.yaml", "problem: p.yaml\nclaims:\n  z[1][99999999999999999999999]: 0.5\n", "verify",
     ("c.yaml", "outside")),
    ("claim-name-long", "c.yaml", "problem: p.yaml\nclaims:\n  " + "z" * 300 + ": 0.5\n", "verify",
     ("c.yaml", "at most 200")),
    ("claims-too-many", "c.yaml", "problem: p.yaml\nclaims:\n" + "".join(f"  h[1][{k}]: 0.5\n" for k in range(2001)),
     "verify", ("c.yaml", "more than the 2000")),
    ("claim-tag", "c.yaml", f'problem: p.yaml\nclaims:\n  z[1]: !!python/object/apply:os.system ["touch {MARKER}"]\n',
     "verify", ("c.yaml", "claims.z[1]", "tag")),
    ("claim-hex-text", "c.yaml", 'problem: p.yaml\nclaims:\n  z[1]: "0x1F"\n', "verify", ("c.yaml", "claims.z[1]")),
    ("claims-decimals-negative", "c.yaml", CLAIMS + "decimals: -1\n", "verify", ("c.yaml", "decimals")),
    ("claims-decimals-fraction", "c.yaml", CLAIMS + "decimals: 0.5\n", "verify", ("c.yaml", "decimals")),
    ("claims-decimals-text", "c.yaml", CLAIMS + 'decimals: "2"\n', "verify", ("c.yaml", "decimals")),
    ("claims-folder", "c.yaml", FOLDER, "verify", ("c.yaml", "folder")),
    ("claims-fifo", "c.yaml", FIFO, "identify", ("c.yaml", "not a regular file")),
    ("claims-missing", "c.yaml", MISSING, "identify", ("c.yaml", "cannot read")),
    ("claims-fine", "c.yaml", CLAIMS, "verify", OK),
    ("claims-names-fine", "c.yaml", CLAIMS, "names", OK),
    ("claims-inline-problem-bad", "c.yaml", "problem: {convention: 5, inputs: [[1]], weights: {}}\nclaims:\n"
     "  z[1]: 0.5\n", "verify",
     ("c.yaml", "convention")),
    # --- identify's observed numbers
    ("observed-text", "p.yaml", course("", "", "observed: {h: x}\n"), "identify", ("p.yaml", "observed.h")),
    ("observed-list", "p.yaml", course("", "", "observed: [1]\n"), "identify", ("p.yaml", "observed")),
    ("observed-nan", "p.yaml", course("", "", "observed: {h_last: [.nan, 0, 0]}\n"), "identify",
     ("p.yaml", "observed.h_last")),
    ("observed-ragged", "p.yaml", course("", "", "observed: {h: [[0.1], [0.2, [0.3]]]}\n"), "identify",
     ("p.yaml", "observed.h")),
    ("observed-fine", "p.yaml", course("", "", "observed: {h_last: [0.361, -0.017, 0.131]}\n"), "identify", OK),
    ("identify-folder", "p.yaml", FOLDER, "identify", ("p.yaml", "folder")),
    # --- convention files
    ("conv-list", "conv.yaml", "[]\n", "conventions", ("conv.yaml", "mapping")),
    ("conv-preset-number", "conv.yaml", "preset: 5\n", "conventions", ("conv.yaml", "preset")),
    ("conv-axis-number", "conv.yaml", "update_rule: 1\n", "conventions", ("conv.yaml", "update_rule")),
    ("conv-clip-inf", "conv.yaml", "preset: onnx\nclip: .inf\n", "conventions", ("conv.yaml", "clip", "finite")),
    ("conv-clip-text", "conv.yaml", 'preset: onnx\nclip: "1"\n', "conventions", ("conv.yaml", "clip")),
    ("conv-clip-negative", "conv.yaml", "preset: onnx\nclip: -1\n", "conventions", ("conv.yaml", "clip")),
    ("conv-alpha-bool", "conv.yaml", "preset: onnx\ngate_activation_alpha: true\n", "conventions",
     ("conv.yaml", "gate_activation_alpha")),
    ("conv-notation-number", "conv.yaml", "preset: keras\nnotation: 5\n", "conventions", ("conv.yaml", "notation")),
    ("conv-unknown-key", "conv.yaml", "preset: keras\ncolour: red\n", "conventions", ("conv.yaml", "colour")),
    ("conv-layout-list", "conv.yaml", "preset: keras\nlayout: [1]\n", "conventions", ("conv.yaml", "layout")),
    ("conv-gate-order-text", "conv.yaml", "preset: keras\ngate_order: zrh\n", "conventions",
     ("conv.yaml", "gate_order")),
    ("conv-folder", "conv.yaml", FOLDER, "conventions", ("conv.yaml", "folder")),
    ("conv-fine", "conv.yaml", CONVENTION, "conventions", OK),
    ("conv-named-by-problem-bad", "conv.yaml", "update_rule: sideways\n", "forward-conv",
     ("conv.yaml", "update_rule")),
]

COMMANDS = {
    "forward": ["forward", "FILE"], "grad": ["grad", "FILE", "--json"], "names": ["names", "FILE"],
    "sheet": ["sheet", "FILE", "-o", "x.md", "--decimals", "3"], "identify": ["identify", "FILE"],
    "verify": ["verify", "c.yaml"], "conventions": ["conventions", "conv.yaml"], "forward-conv": ["forward", "q.yaml"],
}
"""Each command of the corpus; FILE is the case's file."""


def _place(work: Path, name: str, content) -> None:
    path = work / name
    if path.exists() or path.is_symlink():
        path.unlink()
    if content is FOLDER:
        path.mkdir()
    elif content is MISSING:
        pass
    elif content is FIFO:
        os.mkfifo(path)
    elif content is LINK_SECRET:
        path.symlink_to(work / "secret.txt")
    elif content is LINK_PASSWD:
        path.symlink_to("/etc/passwd")
    elif content is HUGE:
        path.write_text("title: x\n" + "# padding\n" * (yaml_values.MAX_FILE_BYTES // 10 + 1))
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")


@pytest.mark.parametrize("case", CORPUS, ids=[c[0] for c in CORPUS])
def test_hostile_corpus(tmp_path, case):
    """Each hostile or careless input: refused in one line naming the file and the field, or (an
    input that is fine) a normal result; never a traceback, no marker file, no foreign content,
    no output written on a refusal, well within the time limit."""
    _, name, content, command, words = case
    work = folder(tmp_path, **{"q.yaml": course("convention: course-notes", "convention: {file: conv.yaml}")})
    _place(work, name, content)
    o = run([a.replace("FILE", name) for a in COMMANDS[command]], work, limit=FAST)
    if words == OK:
        assert o.status in ((0, 1) if command == "verify" else (0,)), o.err
        clean(o)
    else:
        refused(o, *words)
        assert not (work / "x.md").exists()
    assert o.seconds < 10, o.seconds
    if content in (LINK_SECRET, LINK_PASSWD):
        assert SECRET not in o.out + o.err and "root:" not in o.out + o.err
        (work / name).unlink()
    assert_nothing_leaked(o, work)
    assert not any(p.name == MARKER for p in tmp_path.rglob("*"))


def test_limits_on_values_and_file_size_are_refusals(tmp_path, monkeypatch):
    """A file with more values than MAX_NODES, or larger than MAX_FILE_BYTES, is refused in one line
    (the limits lowered here so that the test is fast)."""
    monkeypatch.setattr(yaml_values, "MAX_NODES", 50)
    work = folder(tmp_path)
    refused(run(["forward", "p.yaml"], work, limit=FAST), "p.yaml", "more than 50 values", "line")
    monkeypatch.setattr(yaml_values, "MAX_FILE_BYTES", 100)
    refused(run(["verify", "c.yaml"], work, limit=FAST), "p.yaml", "larger than")

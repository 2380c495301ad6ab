"""Code generation treats every user string as data (docs/kernels.md, "User strings and the kernel cache").

Promise kept: grukit runs no code from a file it is handed. A convention's text -- name, description,
source, the notation's weight names, gate letters, TeX symbols and overrides -- reaches a rendered
kernel module only as Python string literals; so whatever the text, the module's syntax tree is the
benign module's with only string constants changed, and ``grukit grad --engine numba`` on such a
problem file writes no marker. The kernel cache: a module's file name is the SHA-256 of its
source, a planted or swapped file is never run, a link is replaced rather than followed, and a
folder that cannot be used is one error line (as is ``grukit codegen --update`` into one).

The conventions here are built past the file readers' own checks (an unchecked notation, fields
set after validation): the emitter must be safe on its own, whatever reaches it.
"""
from __future__ import annotations

import ast
import dataclasses
import os
import stat
from pathlib import Path

import pytest
import sympy as sp
import yaml
from helpers import ROOT
from helpers.hostile import MARKER, clean, refused, run

from grukit import kernels
from grukit.codegen.kernels import api, emit
from grukit.codegen.kernels.names import identifier
from grukit.codegen.kernels.printer import print_assignments
from grukit.derive.cell.convention import GATES, Notation
from grukit.derive.cell.presets import PRESETS
from grukit.derive.errors import GrukitError

COURSE_NOTES = yaml.safe_load((ROOT / "docs" / "examples" / "course-notes.yaml").read_text())
ROLES = ("input_weight", "recurrent_weight", "input_bias", "recurrent_bias")
ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0


def payloads(marker: str) -> dict[str, str]:
    """Hostile text, each trying another way out of a string literal or a comment into code that
    would write ``marker``."""
    act = f"open({marker!r}, 'w').close()"
    return {
        "newline": f"x\n{act}\n#",
        "newline-import": "x\nimport os; os.system('touch " + marker + "')\n#",
        "double-quote": f'x"; {act}; "',
        "single-quote": f"x'; {act}; '",
        "triple-double": f'"""\n{act}\n"""',
        "triple-single": f"'''\n{act}\n'''",
        "backslash-end": "x\\",
        "backslash-quote": f'x\\"; {act}; "\\',
        "carriage-return": f"x\r{act}\r#",
        "crlf": f"x\r\n{act}\r\n#",
        "line-separator": f"x\u2028{act}\u2029#",
        "form-feed-vtab": f"x\x0c\x0b{act}",
        "nul": f"x\x00{act}",
        "dict-breakout": f'x": 0, "y": {act}, "z',
        "subscript-breakout": f'x"] if {act} else w["x',
        "paren-breakout": f'x")\n{act}\n("',
        "jinja": "{{ header }}{% for x in names %}{{ x }}{% endfor %}{# c #}",
        "comment": f"# {act}",
        "bidi": f"x\u202e{act}\u202c",
        "unicode": "W\u00e9\u4e2d\U0001f600",
        "lone-surrogate": "x\ud800",
        "long": "A" * 5000 + f"\n{act}",
    }


PAYLOAD_IDS = list(payloads("m"))


@dataclasses.dataclass(frozen=True)
class UncheckedNotation(Notation):
    """A notation that skips every check a reader makes: what reaches the emitter is anything."""

    def __post_init__(self):
        pass


def hostile_convention(base, name="benign", description="benign", source="benign", **notation):
    """``base`` with these texts, set past every check (a frozen dataclass's fields, written)."""
    conv = base.with_changes(name="benign-base")
    fields = {f.name: getattr(base.notation, f.name) for f in dataclasses.fields(Notation)}
    object.__setattr__(conv, "notation", UncheckedNotation(**(fields | notation)))
    for field, value in (("name", name), ("description", description), ("source", source)):
        object.__setattr__(conv, field, value)
    return conv


def every_field(text: str) -> dict:
    """``text`` in every text field of a convention, weight names kept distinct per role and gate."""
    braced = text.replace("{", "{{").replace("}", "}}")
    fields = {"name": text, "description": text, "source": text, "state": text, "state_tex": text,
              "candidate_tex": text, "input_tex": text}
    for role in ROLES:
        fields[f"{role}_key"] = f"{braced}{role}{{g}}"
        fields[f"{role}_tex"] = f"{braced}{role}{{g}}"
    return fields


def one_field(field: str, text: str) -> dict:
    braced = text.replace("{", "{{").replace("}", "}}")
    if field.endswith(("_key", "_tex")) and field.split("_key")[0].split("_tex")[0] in ROLES:
        return {field: f"{braced}{{g}}"}
    if field == "gate_letters":
        return {"gate_letters": tuple((g, text + g) for g in GATES)}
    if field == "overrides":
        return {"overrides": (("input_weight", "z", text, text), ("recurrent_bias", "h", text + "b", text))}
    return {field: text}


class _BlankStrings(ast.NodeTransformer):
    def visit_Constant(self, node):
        return ast.Constant("") if isinstance(node.value, str) else node


def skeleton(source: str) -> str:
    """The module's syntax tree with every string constant blanked: its statements, expressions and
    names -- everything a string could have smuggled code into."""
    return ast.dump(_BlankStrings().visit(ast.parse(source)))


def assigned(source: str, name: str):
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == [name]:
            return ast.literal_eval(node.value)
    raise AssertionError(f"no {name} = ...")


def assert_data_only(conv, benign, dtypes=("float64",)):
    """The hostile module parses to the benign module's tree, save string constants, and holds the
    texts as data: its CONVENTION, DESCRIPTION and NAMES are the convention's own strings."""
    for dtype in dtypes:
        source = emit.module_source(conv, dtype)
        reference = emit.module_source(benign, dtype)
        assert skeleton(source) == skeleton(reference)
        top = [type(n).__name__ for n in ast.parse(source).body]
        assert top == [type(n).__name__ for n in ast.parse(reference).body]
        assert assigned(source, "CONVENTION") == conv.name
        assert assigned(source, "DESCRIPTION") == conv.description
        assert assigned(source, "NAMES") == tuple(conv.key(p) for p in conv.parameters())
        assert source.splitlines()[1].startswith("# Convention ") and source.count("\n") == reference.count("\n")


# --- 1. every field, every payload: the module's tree is the template's ------------------------------

@pytest.mark.parametrize("payload", PAYLOAD_IDS)
def test_hostile_text_in_every_field_stays_a_string(payload, tmp_path):
    """No code from a file: the payload in every text field at once, both dtypes (pytorch: all four
    weight roles)."""
    text = payloads(str(tmp_path / MARKER))[payload]
    base = PRESETS["pytorch"]
    conv = hostile_convention(base, **every_field(text))
    benign = hostile_convention(base, **every_field("benign"))
    assert_data_only(conv, benign, dtypes=("float64", "float32"))


FIELDS = ["name", "description", "source", *(f"{r}_{k}" for r in ROLES for k in ("key", "tex")), "state",
          "state_tex", "candidate_tex", "input_tex", "gate_letters", "overrides"]


@pytest.mark.parametrize("field", FIELDS)
def test_hostile_text_in_one_field_stays_a_string(field, tmp_path):
    """No code from a file: each field alone (a newline, then code, then a quote breakout)."""
    for payload in ("newline", "dict-breakout"):
        text = payloads(str(tmp_path / MARKER))[payload]
        base = PRESETS["pytorch"]
        benign_text = "benign"
        conv = hostile_convention(base, **one_field(field, text))
        benign = hostile_convention(base, **one_field(field, benign_text))
        assert_data_only(conv, benign)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_shape_keeps_hostile_text_as_strings(preset, tmp_path):
    """No code from a file, whatever the convention's structure (row weights, [h, x], scalar gates)."""
    text = payloads(str(tmp_path / MARKER))["newline-import"]
    base = PRESETS[preset]
    fields = every_field(text)
    benign_fields = every_field("benign")
    if base.notation.overrides:  # Cho's W and U: keep them distinct from the patterns
        fields["overrides"] = tuple((r, g, text + k, t) for r, g, k, t in base.notation.overrides)
        benign_fields["overrides"] = tuple((r, g, "benign" + k, t) for r, g, k, t in base.notation.overrides)
    assert_data_only(hostile_convention(base, **fields), hostile_convention(base, **benign_fields))


def test_two_weights_of_one_name_are_refused():
    """Honest numbers: a notation giving two weights one name would pack one array twice."""
    conv = hostile_convention(PRESETS["pytorch"], input_weight_key="W")
    with pytest.raises(GrukitError, match="names two weights"):
        emit.module_source(conv, "float64")


@pytest.mark.parametrize("name", ["a b", "x; import os", "1x", "class", "z\n", "\u00e9", "a-b", "", "x\u2028y"])
def test_a_name_that_is_no_identifier_is_refused(name):
    """Names that become variables are checked to be identifiers: one error line, no code."""
    with pytest.raises(GrukitError, match="cannot name a variable"):
        identifier(name, "quantity")


@pytest.mark.parametrize("name", ["a b", "x; import os", "z\n", "\u00e9", "a-b", "x)\nimport os\n(y"])
def test_the_printer_refuses_a_quantity_that_is_no_identifier(name):
    """The printer writes a symbol only as a checked variable name."""
    with pytest.raises(GrukitError, match="cannot name a variable"):
        print_assignments([(sp.Symbol("out", real=True), sp.Symbol(name, real=True) + 1)], "float64", "tmp_")


# --- 2. the command line: a problem file's convention never runs -------------------------------------

def problem(tmp_path: Path, convention: dict) -> Path:
    data = dict(COURSE_NOTES, convention=convention)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=False))
    return path


def test_grad_numba_runs_no_code_from_the_convention_name(tmp_path, monkeypatch):
    """The finding: a convention name with a newline went raw into the module's header comment and
    ran. Now it is a literal: exit 0, the numbers, no marker."""
    monkeypatch.setenv("GRUKIT_KERNEL_CACHE", str(tmp_path / "cache"))
    marker = tmp_path / MARKER
    text = "x\nimport os; os.system('touch " + str(marker) + "')\n#"
    path = problem(tmp_path, {"preset": "course-notes", "name": text, "description": text, "source": text})
    out = run(["grad", path, "--engine", "numba", "--json"], cwd=tmp_path)
    if out.status != 0:  # a reader that refuses such a name keeps the promise too
        refused(out, "p.yaml")
    else:
        assert '"grads"' in out.out
    clean(out)
    assert not marker.exists()
    # the same module through the API (run in this process already): the text is its data
    conv = PRESETS["course-notes"].with_changes(name=text, description=text, source=text)
    k = kernels.load(conv, "float64")
    assert (k.module.CONVENTION, k.module.DESCRIPTION) == (text, text) and not marker.exists()


@pytest.mark.parametrize("notation", [
    {"input_weight_key": 'W_{g}"] + 0 * __import__("os").system("touch MARKER") + w["'},
    {"input_weight_key": 'W_{g}": 0, "y": __import__("os").system("touch MARKER"), "z'},
    {"recurrent_bias_key": "b\n__import__('os').system('touch MARKER')\n#{g}"},
    {"state": "h\nimport os"},
    {"input_weight_tex": "W_{{{g}}}\"\nimport os\n"},
    {"gate_letters": {"z": "z\nimport os", "r": "r", "h": "h"}},
], ids=["subscript", "dict", "newline-key", "state", "tex", "gate-letter"])
def test_grad_numba_runs_no_code_from_the_notation(notation, tmp_path, monkeypatch):
    """A notation's names reach the module as literals or are refused by the reader: either way
    one clean outcome (exit 0, or one error line) and no marker."""
    monkeypatch.setenv("GRUKIT_KERNEL_CACHE", str(tmp_path / "cache"))
    notation = {k: (v.replace("MARKER", str(tmp_path / MARKER)) if isinstance(v, str) else v)
                for k, v in notation.items()}
    data = dict(COURSE_NOTES, convention={"preset": "course-notes", "notation": notation})
    if "input_weight_key" in notation:  # the weights under the hostile names
        data["weights"] = {(notation["input_weight_key"].replace("{g}", k[-1]) if k.startswith("W_") else k): v
                           for k, v in COURSE_NOTES["weights"].items()}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    out = run(["grad", path, "--engine", "numba", "--json"], cwd=tmp_path)
    if out.status != 0:
        refused(out, "p.yaml")
    clean(out)
    assert not (tmp_path / MARKER).exists()


# --- 3. the kernel cache ------------------------------------------------------------------------------

def fresh(tmp_path: Path, base="pytorch"):
    """A convention no other test renders (its description names this test's folder)."""
    return PRESETS[base].with_changes(name="cache-test", description=f"cache test {tmp_path.name}")


def test_a_planted_module_with_the_right_name_is_rewritten_not_run(tmp_path, monkeypatch):
    """The cache is keyed by content: a file found under the module's name with other content is
    replaced atomically and never run."""
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    monkeypatch.setenv("GRUKIT_KERNEL_CACHE", str(cache))
    conv = fresh(tmp_path)
    source = emit.module_source(conv, "float64")
    path = cache / f"{api.rendered_name(source)}.py"
    path.write_text(f"open({str(tmp_path / MARKER)!r}, 'w').close()\n" + source)
    k = kernels.load(conv, "float64")
    assert not (tmp_path / MARKER).exists()
    assert path.read_text(encoding="utf-8") == source and k.module.CONVENTION == "cache-test"
    assert k.module.__name__ == path.stem and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in cache.iterdir() if p.suffix == ".tmp") == []


def test_a_file_swapped_while_written_is_never_run(tmp_path, monkeypatch):
    """Content verified after the path is chosen: a file that differs once written (another process
    swapped it) is an error, and what would run is never the file's bytes."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("GRUKIT_KERNEL_CACHE", str(cache))
    conv = fresh(tmp_path, "keras")

    def swapped(folder, path, data):
        path.write_bytes(f"open({str(tmp_path / MARKER)!r}, 'w').close()\n".encode() + data)

    monkeypatch.setattr(api, "_write_module", swapped)
    with pytest.raises(GrukitError, match="changed while it was written"):
        kernels.load(conv, "float64")
    assert not (tmp_path / MARKER).exists()


def test_a_link_at_the_module_path_is_replaced_not_followed(tmp_path, monkeypatch):
    """Writes only its own output: a symlink planted under the module's name is replaced; the file
    it points to is untouched."""
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    monkeypatch.setenv("GRUKIT_KERNEL_CACHE", str(cache))
    victim = tmp_path / "victim.py"
    victim.write_text("keep me\n")
    conv = fresh(tmp_path, "onnx")
    path = cache / f"{api.rendered_name(emit.module_source(conv, 'float32'))}.py"
    path.symlink_to(victim)
    kernels.load(conv, "float32")
    assert victim.read_text() == "keep me\n"
    assert not path.is_symlink() and path.read_text(encoding="utf-8").startswith("# Generated by")


def test_a_cache_folder_that_cannot_be_made_is_one_line(tmp_path, monkeypatch):
    """One line, no traceback: the cache folder's place is a file."""
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("GRUKIT_KERNEL_CACHE", str(tmp_path / "file" / "cache"))
    with pytest.raises(GrukitError, match="GRUKIT_KERNEL_CACHE") as info:
        kernels.load(fresh(tmp_path, "d2l"), "float64")
    assert "\n" not in str(info.value) and "kernel cache" in str(info.value)
    path = problem(tmp_path, {"preset": "course-notes", "name": "cache-cli"})
    refused(run(["grad", path, "--engine", "numba", "--json"], cwd=tmp_path), "kernel cache", "GRUKIT_KERNEL_CACHE")


def test_a_cache_folder_others_can_write_is_refused(tmp_path, monkeypatch):
    """Runs no code from others: Numba keeps compiled code (pickles) in the cache folder, so one
    that every user may write into is refused."""
    cache = tmp_path / "shared"
    cache.mkdir()
    cache.chmod(0o777)
    monkeypatch.setenv("GRUKIT_KERNEL_CACHE", str(cache))
    with pytest.raises(GrukitError, match="writable by every user"):
        kernels.load(fresh(tmp_path, "haiku"), "float64")
    assert list(cache.iterdir()) == []


@pytest.mark.skipif(ROOT_USER, reason="root writes into read-only folders")
def test_a_read_only_cache_folder_is_one_line(tmp_path, monkeypatch):
    """One line, no traceback: a cache folder without write permission."""
    cache = tmp_path / "ro"
    cache.mkdir()
    cache.chmod(0o500)
    monkeypatch.setenv("GRUKIT_KERNEL_CACHE", str(cache))
    try:
        with pytest.raises(GrukitError, match="cannot write"):
            kernels.load(fresh(tmp_path, "chung2014"), "float64")
    finally:
        cache.chmod(0o700)


def test_codegen_update_into_a_folder_it_cannot_write_is_one_line(tmp_path):
    """One line, no traceback, nothing half-written: ``grukit codegen --update`` where the output
    folder cannot be made, or a module's place is taken by a folder."""
    (tmp_path / "file").write_text("")
    refused(run(["codegen", "--convention", "pytorch", "--update", "--output", tmp_path / "file" / "out"]))
    out = tmp_path / "out"
    (out / "gru_pytorch_float32.py").mkdir(parents=True)
    refused(run(["codegen", "--convention", "pytorch", "--update", "--output", out]), "gru_pytorch_float32.py")
    assert sorted(p.name for p in out.iterdir()) in (["gru_pytorch_float32.py"],
                                                     ["gru_pytorch_float32.py", "gru_pytorch_float64.py"])
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.skipif(ROOT_USER, reason="root writes into read-only folders")
def test_codegen_update_into_a_read_only_folder_is_one_line(tmp_path):
    """One line, no traceback: ``grukit codegen --update`` into a folder without write permission."""
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        refused(run(["codegen", "--convention", "pytorch", "--update", "--output", out]), "cannot write")
    finally:
        out.chmod(0o700)

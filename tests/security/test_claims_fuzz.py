"""Fuzzing the YAML readers (docs/security.md): random YAML-ish text, and random values put into a
real problem or claims file, read by grukit's readers. Every outcome is a normal result or one
GrukitError on one line -- never another exception -- within a time limit per example.

Each test draws a modest number of examples (hypothesis' ``max_examples``) with a ``deadline``,
so that the file runs in a few seconds; the readers are called in this process, without the
command line, so that any other exception fails the test with its traceback.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import yaml
from helpers import EXAMPLES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grukit.derive.audit.claims import load_claims
from grukit.derive.audit.formula import check_formula
from grukit.derive.errors import GrukitError
from grukit.derive.files.convention_file import convention_file
from grukit.derive.files.layer_file import load_any

COURSE = (EXAMPLES / "course-notes.yaml").read_text()
BASE = yaml.safe_load(COURSE)
LIMIT = 5.0  # seconds one example may take, whatever it holds (the deadline below is per example too)
FUZZ = settings(max_examples=120, deadline=5000, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

TOKENS = list("abcxyzhW019.-+eE_:[]{},&*!|>'\"#%@` \n\t?~<=") + [
    "\x00", "\x85", "é", "\ufeff", "0x1F", "0b1", "017", "1:30", ".inf", "-.inf", ".nan", "null", "~", "true", "yes",
    "- ", ": ", "!!python/object/apply:os.system", "!!binary", "!!set", "!!float", "!!int", "!mine", "&a ", "*a",
    "<<: ", "---\n", "...\n", "1e999999999", "1e-400", "9" * 120, "\n  ", "\n    - ", "? ", "%YAML 1.1\n",
    "convention: ", "course-notes", "inputs: ", "weights: ", "h0: ", "loss: ", "type: ", "claims: ", "problem: ",
    "p.yaml", "z[1]: ", "W_z: ", "[[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]", "lengths: ", "mask: ", "file: ",
]
YAMLISH = st.lists(st.sampled_from(TOKENS), max_size=60).map("".join)

NAMES = ["title", "description", "convention", "inputs", "h0", "weights", "loss", "learning_rate", "observed",
         "lengths", "mask", "direction", "merge", "framework", "type", "file", "layout", "W_z", "U_z", "b_z",
         "W_o", "b_o", "target", "targets", "G", "preset", "update_rule", "gate_order", "clip", "notation"]
SCALARS = (st.none() | st.booleans() | st.integers(-10 ** 120, 10 ** 120) | st.integers(-3, 3)
           | st.floats(allow_nan=True, allow_infinity=True) | st.floats(-2, 2) | st.text(max_size=12)
           | st.sampled_from(["course-notes", "keras", "pytorch", "onnx", "p.yaml", "conv.yaml", "../secret.txt",
                              "/etc/passwd", "weighted_sum", "softmax_cross_entropy", "squared_error", "forward",
                              "bidirectional", "z_keeps_old", "sigmoid(a_z)", "delta_z x^T"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=6), inner, max_size=4),
                      max_leaves=16)


def _outcome(read, *args):
    """Run a reader: its result, or the message of a GrukitError (one line); anything else fails."""
    start = time.perf_counter()
    try:
        result = read(*args)
    except GrukitError as exc:
        message = str(exc)
        assert "\n" not in message and "\r" not in message and message, repr(message)
        result = None
    assert time.perf_counter() - start < LIMIT
    return result


def _write(path: Path, data) -> None:
    """``data`` as YAML; values YAML cannot write (none here) would be a test error, not grukit's."""
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


@FUZZ
@given(text=YAMLISH)
def test_any_text_as_a_problem_is_a_result_or_one_line(tmp_path, text):
    """Random YAML-ish text (anchors, tags, odd numbers, control characters, half a document) read
    as a problem file, a claims file and a convention file."""
    (tmp_path / "p.yaml").write_text(COURSE)
    path = tmp_path / "x.yaml"
    path.write_text(text, encoding="utf-8")
    _outcome(load_any, path)
    _outcome(load_claims, path)
    _outcome(convention_file, path)


@FUZZ
@given(raw=st.binary(max_size=200))
def test_any_bytes_as_a_problem_are_a_result_or_one_line(tmp_path, raw):
    """Arbitrary bytes (not UTF-8, NUL, a BOM) read as a problem file."""
    path = tmp_path / "x.yaml"
    path.write_bytes(raw)
    _outcome(load_any, path)


@FUZZ
@given(changes=st.dictionaries(st.sampled_from(NAMES), VALUES | st.just("<delete>"), min_size=1, max_size=3),
       field=st.sampled_from(["", "weights", "loss"]))
def test_random_values_in_a_real_problem_are_a_result_or_one_line(tmp_path, changes, field):
    """The course notes' problem with random values put at random keys (at the top, or inside its
    weights or loss): every field read with a wrong type, shape, size or number."""
    (tmp_path / "conv.yaml").write_text("preset: course-notes\n")
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE.items()}
    target = data if not field else data[field]
    for key, value in changes.items():
        if value == "<delete>":
            target.pop(key, None)
        else:
            target[key] = value
    path = tmp_path / "p.yaml"
    _write(path, data)
    _outcome(load_any, path)


CLAIM_NAMES = ["z[1]", "h[1]", "h[0]", "r[1]", "candidate[1]", "a_z[1]", "dL/dh[0]", "dL/dW_z", "dL/db_o", "loss",
               "p[1]", "h[1][0]", "dL/dh[0]|h[1]", "W_z x[1]", "z[t]", "dL/dh[t-1]", "dL/dW_z[2][1]", "nonesuch"]
FORMULA_TOKENS = ["z", "r", "h", "c", "x", "h_prev", "h[t-1]", "W_z", "U_z", "U_r", "b_z", "a_z", "delta_z",
                  "delta_r", "dL/dh", "dL/dc", "(", ")", " + ", " - ", " * ", " / ", "^T", "^2", "'", " @ ", " ⊙ ",
                  "sigmoid(", "tanh(", "exp(", "log(", "σ(", "1", "0.5", "2", " ", "-"]
FORMULAS = st.lists(st.sampled_from(FORMULA_TOKENS), min_size=1, max_size=30).map("".join)


@FUZZ
@given(claims=st.dictionaries(st.sampled_from(CLAIM_NAMES) | st.text(max_size=10), VALUES | FORMULAS,
                              min_size=1, max_size=4),
       extra=st.dictionaries(st.sampled_from(["decimals", "title", "problem", "notes"]), VALUES, max_size=2))
def test_random_claims_are_a_result_or_one_line(tmp_path, claims, extra):
    """A claims file on the course notes with random names and values (numbers, lists, mappings,
    text, formulas) and random other keys."""
    (tmp_path / "p.yaml").write_text(COURSE)
    path = tmp_path / "c.yaml"
    _write(path, {"problem": "p.yaml", "claims": claims, **extra})
    _outcome(load_claims, path)


@settings(max_examples=100, deadline=5000, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(name=st.sampled_from(["z[t]", "h[t]", "dL/dh[t-1]", "dL/dW_z", "dL/da_h[t]", "dL/dz[t]"]), formula=FORMULAS)
def test_random_formulas_are_checked_or_refused_in_one_line(tmp_path, name, formula):
    """A random formula claim checked against grukit's derivation: equal, not equal, or refused in
    one line (unknown names, shapes, bounds) -- never another exception, never past the limit."""
    (tmp_path / "p.yaml").write_text(COURSE)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"problem": "p.yaml", "claims": {name: formula}}, allow_unicode=True))
    cf = _outcome(load_claims, path)
    if cf is not None and cf.claims[0].formula is not None:
        _outcome(check_formula, cf, cf.claims[0])


JSONISH = st.lists(st.sampled_from(list('{}[]",:0123456789.-+eE \n') + [
    '"z[1]"', '"claims"', '"problem"', '"p.yaml"', '"0.850"', "NaN", "-Infinity", "true", "null", "1e999999999",
    "9" * 120, '"\\u0000"', '"\\ud800"', '"\\""', '"a\\u2028b"', "\ufeff", "[" * 40, "]" * 40]),
    max_size=60).map("".join)


@FUZZ
@given(text=JSONISH)
def test_any_text_as_a_json_claims_file_is_a_result_or_one_line(tmp_path, text):
    """Random JSON-ish text (NaN, huge numbers, lone surrogates, deep brackets, half an object) read
    as a JSON claims file."""
    (tmp_path / "p.yaml").write_text(COURSE)
    path = tmp_path / "c.json"
    path.write_text(text, encoding="utf-8")
    _outcome(load_claims, path)


@FUZZ
@given(claims=st.dictionaries(st.sampled_from(CLAIM_NAMES) | st.text(max_size=10), VALUES | FORMULAS,
                              min_size=1, max_size=4),
       extra=st.dictionaries(st.sampled_from(["decimals", "title", "problem", "notes"]), VALUES, max_size=2))
def test_random_claims_as_json_are_a_result_or_one_line(tmp_path, claims, extra):
    """The random claims above written as JSON (NaN and Infinity as Python's json writes them)."""
    (tmp_path / "p.yaml").write_text(COURSE)
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"problem": "p.yaml", "claims": claims, **extra}))
    _outcome(load_claims, path)

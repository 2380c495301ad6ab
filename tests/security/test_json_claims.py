"""Hostile JSON claims files (docs/security.md): the JSON reader (derive/files/json_values.py) holds a
file to the YAML reader's bounds -- size, nesting, number of values, keys, numbers, no duplicate
keys, no NaN or Infinity -- and refuses in one line naming the file and the field, status 2, before
anything grows; a file it names must sit beside it. A well-formed JSON file gives the YAML file's
result.
"""
from __future__ import annotations

import json

import pytest
from helpers import EXAMPLES
from helpers.hostile import SECRET, assert_nothing_leaked, plant_secret, refused, run

from grukit.derive.files import yaml_values

COURSE = (EXAMPLES / "course-notes.yaml").read_text()
FAST = 20  # seconds: every refusal here takes well under one


def claims(z1: str = '["0.655", "0.478", "0.582"]', extra: str = "") -> str:
    return '{"problem": "p.yaml", ' + extra + '"claims": {"z[1]": ' + z1 + "}}"


def work(tmp_path, text: str | bytes):
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "p.yaml").write_text(COURSE)
    path = folder / "c.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    plant_secret(folder)
    return folder


def test_a_json_claims_file_verifies_as_its_yaml_twin(tmp_path):
    folder = work(tmp_path, claims())
    (folder / "c.yaml").write_text('problem: p.yaml\nclaims:\n  z[1]: [0.655, 0.478, 0.582]\n')
    as_json, as_yaml = run(["verify", "c.json", "--json"], folder), run(["verify", "c.yaml", "--json"], folder)
    assert as_json.status == as_yaml.status == 0
    assert json.loads(as_json.out)["claims"] == json.loads(as_yaml.out)["claims"]


@pytest.mark.parametrize("text, words", [
    ("[" * 100_000 + "]" * 100_000, [f"nested more than {yaml_values.MAX_DEPTH} levels", "line 1"]),
    ('{"a": ' * 50_000 + "1" + "}" * 50_000, [f"nested more than {yaml_values.MAX_DEPTH} levels"]),
    (claims('[0.655, NaN, 0.582]'), ["claims.z[1][1]", "NaN"]),
    (claims('[0.655, -Infinity, 0.582]'), ["claims.z[1][1]", "-Infinity"]),
    (claims('[1e999999999, 0.478, 0.582]'), ["claims.z[1][0]", "out of range"]),
    (claims(f'[{"9" * 5000}, 0.478, 0.582]'), ["claims.z[1][0]", "out of range"]),
    (claims('[0.655, "1e999999999", 0.582]'), ["claims.z[1]", "out of range"]),
    (claims(extra='"claims": {}, '), ["claims", "appears twice"]),
    ('{"problem": "p.yaml", "claims": {"z[1]": 0.6, "z[1]": 0.7}}', ["claims", "z[1]", "appears twice"]),
    (claims(extra='"' + "k" * 300 + '": 1, '), ["keys are names of at most"]),
    (claims(extra='"a\\u2028b": 1, '), ["keys are names of at most"]),
    ('{"problem": "p.yaml", "claims": {"z[1]": [0.655, 0.478, 0.582]', ["not valid JSON (line 1)"]),
    ('{"problem": "p.yaml",\n "claims": {"z[1]": [0.655 0.478]}}', ["not valid JSON (line 2)"]),
    ("[" + "0," * 250_000 + "0]", [f"more than {yaml_values.MAX_NODES} values"]),
    (b'{"problem": "p.yaml", "claims": {"z[1]": "\xff"}}', ["not UTF-8"]),
    ('{"problem": "../secret.txt", "claims": {"z[1]": 0.5}}', ["problem"]),
    ('{"problem": "/etc/passwd", "claims": {"z[1]": 0.5}}', ["problem"]),
    ('{"problem": "p.yaml", "claims": {"z[1]": ["0.655", "yes", "0.582"]}}', ["claims.z[1]", "expected numbers"]),
    ('{"problem": "p.yaml", "claims": {"z[1]": [0.655, [0.478], 0.582]}}', ["claims.z[1]"]),
    ('{"problem": "p.yaml", "claims": {"z[1]": {"a": 1}}}', ["claims.z[1]", "mapping"]),
], ids=["deep-lists", "deep-objects", "nan", "infinity", "huge-exponent", "5000-digits", "quoted-huge-exponent",
        "duplicate-top-key", "duplicate-claim", "long-key", "line-separator-key", "unclosed", "missing-comma",
        "too-many-values", "not-utf8", "problem-outside", "problem-absolute",
        "quoted-word", "ragged", "mapping"])
def test_hostile_json_claims_are_refused_in_one_line_naming_the_file_and_field(tmp_path, text, words):
    folder = work(tmp_path, text)
    outcome = run(["verify", "c.json"], folder, limit=FAST)
    refused(outcome, "c.json", *words)
    assert_nothing_leaked(outcome, folder)
    assert SECRET not in outcome.err


def test_a_json_file_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path):
    text = claims(extra='"title": "' + "x" * (yaml_values.MAX_FILE_BYTES + 10) + '", ')
    refused(run(["verify", "c.json"], work(tmp_path, text), limit=FAST), "c.json", "larger than 4 MiB")


def test_brackets_inside_json_strings_do_not_count_as_nesting(tmp_path):
    text = claims(extra='"title": "' + "[{" * 1000 + '\\"]", ')
    outcome = run(["verify", "c.json"], work(tmp_path, text), limit=FAST)
    assert outcome.status == 0, outcome.err

"""A claims file verifies the same whichever way its numbers are written: bare, quoted, or as JSON.

People quote numbers to keep their trailing zeros (``"0.850"`` is three decimals), inside a list as
well as alone, and some write claims as JSON with the numbers as strings. Each claims file of
docs/examples is rewritten three ways -- read with PyYAML's ``BaseLoader``, which keeps every
scalar as its text, so the rewriting does not go through grukit -- and ``grukit verify --json``
must give every claim the same verdict, decimals and diagnosis in all three.
"""
from __future__ import annotations

import json
import re

import pytest
import yaml
from helpers import EXAMPLES

from grukit.codegen.cli.main import main
from grukit.derive.audit.claims import load_claims

FILES = sorted(p.name for p in EXAMPLES.glob("*.yaml") if re.search(r"^claims:", p.read_text(), re.M))
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _value(value, numbers: str):
    """A BaseLoader value with its numbers marked: ``numbers`` is "bare" (a JSON number keeping its
    text) or "quoted" (a string)."""
    if isinstance(value, dict):
        return {k: _value(v, numbers) for k, v in value.items()}
    if isinstance(value, list):
        return [_value(v, numbers) for v in value]
    if numbers == "bare" and NUMBER.fullmatch(value):
        return _Bare(value)
    return value


class _Bare(str):
    pass


def _dump(value) -> str:
    """JSON text (which YAML reads too), a bare number as its own text."""
    if isinstance(value, _Bare):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {_dump(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_dump(v) for v in value) + "]"
    return json.dumps(value)


def rewrite(text: str, form: str) -> str:
    """The claims file with its claims' numbers bare, quoted one by one, or as a JSON file (claims
    quoted, the inline problem's numbers bare)."""
    data = yaml.load(text, Loader=yaml.BaseLoader)
    claims = {k: _value(v, "quoted" if form != "bare" else "bare") for k, v in data.pop("claims").items()}
    rest = {k: _value(v, "bare") for k, v in data.items()}
    if form == "json":
        return _dump(rest | {"claims": claims})
    lines = [f"{k}: {_dump(v)}" for k, v in rest.items()] + ["claims:"]
    lines += [f"  {json.dumps(k)}: {_dump(v)}" for k, v in claims.items()]
    return "\n".join(lines) + "\n"


def _verdicts(path, capsys) -> tuple[int, dict]:
    code = main(["verify", str(path), "--json"])
    data = json.loads(capsys.readouterr().out)
    return code, {c["name"]: (c["verdict"], c.get("decimals"), c["diagnosis"]) for c in data["claims"]}


@pytest.mark.parametrize("file", FILES)
def test_a_claims_file_verifies_the_same_bare_quoted_and_as_json(tmp_path, capsys, file):
    for other in EXAMPLES.iterdir():
        if other.is_file():
            (tmp_path / other.name).write_bytes(other.read_bytes())
    text = (EXAMPLES / file).read_text()
    expected = _verdicts(tmp_path / file, capsys)
    assert expected[1]
    for form, suffix in (("bare", ".yaml"), ("quoted", ".yaml"), ("json", ".json")):
        path = tmp_path / f"rewritten-{form}{suffix}"
        path.write_text(rewrite(text, form))
        assert _verdicts(path, capsys) == expected, form


def test_a_quoted_number_in_a_list_keeps_its_printed_digits(tmp_path):
    (tmp_path / "course-notes.yaml").write_bytes((EXAMPLES / "course-notes.yaml").read_bytes())
    (tmp_path / "c.yaml").write_text('problem: course-notes.yaml\nclaims:\n  h[1]: ["0.010", 0.50, "1.0e-1"]\n')
    (tmp_path / "c.json").write_text('{"problem": "course-notes.yaml", "claims": {"h[1]": ["0.010", 0.50, 1.0e-1]}}')
    for name in ("c.yaml", "c.json"):
        claim = load_claims(tmp_path / name).claims[0]
        assert claim.decimals.tolist() == [3, 2, 2] and claim.text == "[0.010, 0.50, 1.0e-1]"

"""The claims files that plant one known mistake each (docs/examples/*-claims.yaml).

Each file was written from an independent NumPy hand calculation that makes its mistake
(tests/helpers/audit_mistakes.py, tests/helpers/audit_examples.py); the files must still be exactly that, and
``grukit verify`` must call exactly the planted numbers wrong and name the mistake.
"""
from __future__ import annotations

import json

import pytest
from helpers import EXAMPLES
from helpers.audit_examples import PLANTED, render

from grukit.codegen.cli.main import main


@pytest.mark.parametrize("planted", PLANTED, ids=lambda p: p.file)
def test_the_file_is_the_mistaken_hand_calculation(planted):
    assert (EXAMPLES / planted.file).read_text() == render(planted)


@pytest.mark.parametrize("planted", PLANTED, ids=lambda p: p.file)
def test_verify_names_the_planted_mistake(capsys, planted):
    code = main(["verify", str(EXAMPLES / planted.file), "--json"])
    data = json.loads(capsys.readouterr().out)
    verdicts = {c["name"]: c["verdict"] for c in data["claims"]}
    assert code == 1
    assert {n for n, v in verdicts.items() if v == "wrong"} == planted.wrong
    assert all(verdicts[n] == "propagated" for n in planted.propagated)
    for c in data["claims"]:
        if c["verdict"] == "wrong":
            assert any(planted.diagnosis in d for d in c["diagnosis"]), (c["name"], c["diagnosis"])


def test_the_catalogue_is_covered_across_conventions():
    """One file per kind of mistake, in as many conventions (row and column, [h, x] and [x, h],
    scalar gates, reset before and after, both update rules)."""
    kinds = {p.mistake for p in PLANTED}
    assert kinds == {"drop-U_z-path", "update-rule", "reset-placement", "transposed-U_r", "swapped-z-r",
                     "missing-sigma-z", "sign-dz", "tanh-misread", "never-carried"}
    assert len({str(p.convention) for p in PLANTED}) == len(PLANTED)

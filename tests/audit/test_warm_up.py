"""The warm-up ``grukit verify FOLDER`` runs in its parent process before forking: every built-in
convention's sample problem audits, so the parent never fails where a submission would not.
(That warming changes no row is kept by tests/grading/test_grade.py, whose classes are graded warm and
checked against independent NumPy hand calculations.)"""
from __future__ import annotations

import pytest

from grukit.derive.audit.audit import sample_problem, warm_up
from grukit.derive.cell.presets import PRESETS


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_presets_sample_problem_warms_up(name):
    problem = sample_problem(PRESETS[name])
    assert problem.steps == 2 and problem.hidden_size == 2 and problem.loss is not None
    warm_up(problem)

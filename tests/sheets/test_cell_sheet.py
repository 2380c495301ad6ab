"""The sheet of one cell of a network: its loss stands in for the network's, and says so in math.

The cell's loss is the weighted sum of its states with G_t = dL/dh_t from the rest of the network
(``derive/layers/cells.py``); the sheet prints that as math in both formats, never as raw text.
"""
from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest
from helpers import EXAMPLES

from grukit.codegen.cli.main import main
from grukit.codegen.sheets.sheet import build_sheet
from grukit.derive.cell.losses import LossHead
from grukit.derive.files.problem_file import load_problem

NETWORK = EXAMPLES / "layers" / "pytorch-2x-bidirectional.yaml"
STAND_IN = r"$G_{t} = \partial \mathcal{L} / \partial h_{t}$"


@pytest.mark.parametrize("suffix", [".md", ".tex"])
def test_a_cells_stand_in_loss_is_math(tmp_path, capsys, suffix):
    out = tmp_path / f"cell{suffix}"
    assert main(["sheet", str(NETWORK), "--cell", "1,reverse", "--sequence", "1", "-o", str(out)]) == 0
    capsys.readouterr()
    text = out.read_text()
    assert STAND_IN in text and r"$\mathcal{L}$ being the network" in text
    assert r"$L = \sum_{t=1}^{" in text
    assert "dL/dh" not in text and "G_t" not in text and "stand-in's" not in text


def test_masked_steps_before_the_first_send_their_share_to_h0_in_math():
    problem = load_problem(EXAMPLES / "course-notes.yaml")
    G = tuple(np.array([1, -1, 2], dtype=object) for _ in range(problem.steps))
    for stand_in, says in (("network", False), ("network_after_h0", True)):
        head = LossHead("weighted_sum", tuple(range(problem.steps)), G, stand_in=stand_in)
        text = build_sheet(replace(problem, loss=head)).markdown()
        assert STAND_IN in text
        assert (r"goes to $\partial \mathcal{L} / \partial h_{0}$ directly" in text) is says


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="needs pdflatex")
def test_the_cell_sheet_compiles(tmp_path, capsys):
    out = tmp_path / "cell.pdf"
    assert main(["sheet", str(NETWORK), "--cell", "1,reverse", "--sequence", "1", "-o", str(out)]) == 0
    assert out.read_bytes().startswith(b"%PDF")

"""A problem: one convention's cell, its inputs, initial state, weights and optional loss head, as
exact numbers. Reading one from a file is :mod:`grukit.derive.files.problem_file`'s job."""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from grukit.derive.cell.convention import (
    Convention,
    Param,
)
from grukit.derive.cell.losses import LossHead


@dataclass
class Problem:
    """A validated problem: exact numbers as numpy object arrays of Fractions."""

    path: Path
    convention: Convention
    inputs: np.ndarray  # T x D
    h0: np.ndarray  # H
    params: dict[Param, np.ndarray]
    title: str = ""
    description: str = ""
    layout: str | None = None  # the framework layout the weights came in, if any
    loss: LossHead | None = None
    learning_rate: Fraction | None = None
    observed: object = None  # the ``observed`` mapping as written; derive/audit/identify.py checks and reads it
    stated_convention: Convention | None = None
    """The convention the file states, when its weights were read under another bias axis (what they
    hold: ``load_problem(..., fit_weights=True)``, for identify's search); None when they are its own."""

    @property
    def steps(self) -> int:
        return self.inputs.shape[0]

    @property
    def input_size(self) -> int:
        return self.inputs.shape[1]

    @property
    def hidden_size(self) -> int:
        return self.h0.shape[0]

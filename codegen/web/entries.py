"""The numbers a student typed, as a claims file, and that file's audit.

A number is taken as typed: ``0.070`` keeps its three decimals (a hand calculation rounded there), as
a claims file keeps a printed number. A typed number is checked to be a plain decimal (optionally
with an exponent) before it is written into the claims file, so no text of the student's becomes
YAML syntax; the file is then read by :func:`~grukit.derive.audit.claims.load_claims` and judged by
:func:`~grukit.derive.audit.audit.audit`, exactly as ``grukit verify`` reads and judges a file
(:func:`~grukit.derive.audit.verify.as_data` gives the verdicts as plain data).

An entry typed in full is one claim (``z[1]: [0.655, 0.478, 0.582]``); an entry typed in part claims
each typed element (``z[1][0]: 0.655``).
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from grukit.codegen.web.exercise import PROBLEM_FILE, Entry, Exercise, scratch
from grukit.derive.audit.audit import audit
from grukit.derive.audit.claims import load_claims, load_literal
from grukit.derive.audit.verify import VERDICTS, as_data
from grukit.derive.errors import GrukitError
from grukit.derive.files.yaml_values import shown

NUMBER = re.compile(r"[+-]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")
"""A number as a student types it: a decimal, optionally with an exponent (no leading zeros, which
YAML would read as octal)."""
MAX_TYPED = 40
"""The most characters of one typed number."""
CLAIMS_FILE = "entries.yaml"


def typed(text, where: str) -> str | None:
    """One field's number as typed (None when empty), or the one-line error naming the element.
    A minus sign copied from a typeset page (U+2212) is read as ``-``."""
    value = str(text or "").strip().replace("\u2212", "-")
    if not value:
        return None
    if len(value) > MAX_TYPED or not NUMBER.fullmatch(value):
        raise GrukitError(f"{where}: {shown(value, 40)} is not a number (type it as printed, e.g. -0.070)")
    return value


def typed_values(exercise: Exercise, form: Mapping) -> dict[str, str]:
    """Every typed field (field -> number as typed), each checked."""
    out = {}
    for entry in exercise.entries:
        for name, element in entry.cells():
            value = typed(form.get(name, ""), element)
            if value is not None:
                out[name] = value
    return out


def _flow(values: list[str], shape: tuple[int, ...]) -> str:
    """Numbers as a YAML flow value in ``shape``: a number, a list, or a list of rows."""
    if shape == (1,):
        return values[0]
    if len(shape) == 1:
        return "[" + ", ".join(values) + "]"
    width = shape[-1]
    return "[" + ", ".join(_flow(values[k:k + width], (width,)) for k in range(0, len(values), width)) + "]"


def claims_of(exercise: Exercise, values: Mapping[str, str]) -> dict[str, tuple[Entry, str]]:
    """Claim name -> (its entry, the YAML value): a whole entry where every element is typed, else
    one claim per typed element."""
    out = {}
    for entry in exercise.entries:
        cells = entry.cells()
        given = [values.get(name) for name, _ in cells]
        if all(v is not None for v in given):
            out[entry.name] = (entry, _flow(given, entry.shape))
        else:
            for (name, element), v in zip(cells, given):
                if v is not None:
                    out[element] = (entry, v)
    return out


def _indented(text: str) -> str:
    lines = text.splitlines()
    while lines and lines[0].strip() in ("---", ""):
        lines.pop(0)
    return "\n".join("  " + line if line.strip() else "" for line in lines)


def claims_text(exercise: Exercise, claims: Mapping[str, tuple[Entry, str]], inline: bool) -> str:
    """The claims file: the problem named beside it (``problem.yaml``) or, with ``inline``, written
    into it (so that the downloaded file stands alone), then the claims."""
    head = [f"# {len(claims)} entr{'y' if len(claims) == 1 else 'ies'} of a hand calculation typed into "
            f"`grukit serve`; `grukit verify` this file for the same verdicts.",
            f"title: {json.dumps('Hand calculation: ' + exercise.title)}"]
    problem = f"problem: {PROBLEM_FILE}"
    if inline:
        candidate = "problem:\n" + _indented(exercise.text)
        try:  # a problem file whose text cannot be indented (a YAML directive) is named instead
            if isinstance(load_literal(candidate, exercise.label), dict):
                problem = candidate
        except GrukitError:
            problem = f"problem: {json.dumps(exercise.label)}  # the problem file, saved beside this one"
    body = [f"  {json.dumps(name)}: {value}" for name, (_, value) in claims.items()]
    return "\n".join(head + [problem, "claims:"] + body) + "\n"


@dataclass
class Checked:
    """A check's answer: the verdicts as ``grukit verify --json`` gives them, by claim, and each
    entry's worst."""

    values: dict[str, str]
    claims: dict[str, tuple[Entry, str]]
    rows: dict[str, dict] = field(default_factory=dict)  # claim name -> verify's row
    verdicts: dict[int, str] = field(default_factory=dict)  # entry number -> its worst verdict

    def counts(self) -> dict[str, int]:
        return {v: sum(r["verdict"] == v for r in self.rows.values()) for v in reversed(VERDICTS)}

    def entry_rows(self, entry: Entry) -> list[tuple[str, dict]]:
        return [(name, self.rows[name]) for name, (e, _) in self.claims.items() if e is entry and name in self.rows]

    def wrong(self) -> list[tuple[Entry, str, dict]]:
        return [(e, name, self.rows[name]) for name, (e, _) in self.claims.items()
                if self.rows.get(name, {}).get("verdict") == "wrong"]


def check(exercise: Exercise, form: Mapping) -> Checked:
    """Judge every typed number (one-line errors for a number that is not one, or nothing typed)."""
    values = typed_values(exercise, form)
    claims = claims_of(exercise, values)
    if not claims:
        raise GrukitError("nothing to check: type at least one number")
    with scratch(exercise.label) as folder:
        (folder / PROBLEM_FILE).write_text(exercise.text)
        (folder / CLAIMS_FILE).write_text(claims_text(exercise, claims, inline=False))
        data = as_data(audit(load_claims(folder / CLAIMS_FILE)))
    result = Checked(values, claims, {row["name"]: row for row in data["claims"]})
    for name, (entry, _) in claims.items():
        verdict = result.rows[name]["verdict"]
        worst = result.verdicts.get(entry.number, VERDICTS[0])
        result.verdicts[entry.number] = max(worst, verdict, key=VERDICTS.index)
    return result


def exact_text(row: dict) -> str:
    """A claim's exact value to two more decimals than it was typed with."""
    digits = int(np.max(row["decimals"])) + 2
    return _numbers(row["exact"], digits)


def _numbers(values, digits: int) -> str:
    if isinstance(values, list):
        return "[" + ", ".join(_numbers(v, digits) for v in values) + "]"
    return f"{values:.{digits}f}"


def intervals_text(pairs, decimals) -> str:
    """Per element, the interval ``[lo, hi]`` rounding reaches."""
    digits = int(np.max(decimals)) + 1
    flat = np.reshape(np.asarray(pairs, dtype=float), (-1, 2))
    return " ".join(f"[{lo:.{digits}f}, {hi:.{digits}f}]" for lo, hi in flat)

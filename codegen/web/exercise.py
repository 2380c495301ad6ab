"""An exercise: the problem a page works on, read once through grukit's bounded readers and kept with
its form -- one entry for every number a claims file may name (``grukit names``), in the order the
sheet works them: the forward pass step by step, the loss, the backward pass from the last step, the
parameters' gradients.

Every problem comes from a browser and may be hostile: its bytes are written to a private scratch
folder and read by :func:`~grukit.derive.files.problem_file.load_problem` (size, YAML, numbers and
files bounded as for any problem file, docs/security.md); the name it came with is shown, never
opened. A page is for a hand calculation, so a problem is at most :data:`MAX_STEPS` steps of sizes at
most :data:`MAX_SIZE`, as the instructor generator makes them.
"""
from __future__ import annotations

import hashlib
import re
import tempfile
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from grukit.codegen.sheets.instructor import MAX_SIZE, MAX_STEPS, file_stem, problem_text
from grukit.codegen.sheets.sheet import Sheet, build_sheet, builtin_example
from grukit.derive.audit.replay import Walk
from grukit.derive.cell.presets import PRESETS
from grukit.derive.errors import GrukitError
from grukit.derive.files.problem_file import load_problem
from grukit.derive.files.yaml_values import shown
from grukit.derive.numeric.evaluate import engine

MAX_PROBLEM_BYTES = 256 * 1024
"""The largest problem file a page reads (a hand calculation's is well under 2 KiB)."""
MAX_SEED = 10 ** 9
CACHE = 32
"""How many exercises the server keeps read and solved (the most recently used)."""
PROBLEM_FILE = "problem.yaml"
"""The name a problem gets in its scratch folder (and in the claims file that names it there)."""
BUILTIN_LABEL = "course-notes.yaml"


def label_of(name) -> str:
    """A file name as the page shows it and offers it for download: letters, digits, ``.``, ``-`` and
    ``_`` only, at most 80 of them. It is never used to open a file."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", str(name or "")).strip(".-")[:80]
    return text or PROBLEM_FILE


@contextmanager
def scratch(label: str):
    """A private temporary folder for a request's files; a :class:`GrukitError` raised inside names
    the problem by ``label`` and the other files by their names alone (never the folder)."""
    with tempfile.TemporaryDirectory(prefix="grukit-web-") as folder:
        try:
            yield Path(folder)
        except GrukitError as exc:
            text = str(exc).replace(f"{folder}/{PROBLEM_FILE}", label).replace(f"{folder}/", "").replace(folder, ".")
            raise GrukitError(text) from None


@dataclass(frozen=True)
class Entry:
    """One number of the calculation the student may type: a node of the walk, one field per element."""

    number: int  # its place in the form; its fields are e<number>_<k>
    name: str
    what: str
    shape: tuple[int, ...]

    def element(self, index: tuple[int, ...]) -> str:
        """The claims-file name of one element (``h[1][0]``; a single number is the entry itself)."""
        return self.name if self.shape == (1,) else self.name + "".join(f"[{i}]" for i in index)

    def cells(self) -> list[tuple[str, str]]:
        """(field, element name) of every element, in row-major order."""
        return [(f"e{self.number}_{k}", self.element(index)) for k, index in enumerate(np.ndindex(self.shape))]

    def rows(self) -> list[list[tuple[str, str]]]:
        """The cells as the entry is printed: a matrix by its rows, a vector on one line."""
        cells = self.cells()
        width = self.shape[-1]
        return [cells[k:k + width] for k in range(0, len(cells), width)]


@dataclass(frozen=True)
class Section:
    title: str
    entries: tuple[Entry, ...]


_STEPS = re.compile(r"\[(\d+)\]|\|t=(\d+)$")
_OUTPUT_LAYER = re.compile(r"(loss|loss\[\d+\]|[op]\[\d+\]|W_o h\[\d+\]|h\[\d+\] W_o"
                           r"|dL/do\[\d+\]|dL/dh\[\d+\]\|L|dL/dW_o\|t=\d+)")
"""The loss head's numbers (:class:`~grukit.derive.audit.replay.Walk` names them so): the output layer,
softmax, the loss, and the gradients the head starts the backward pass with."""
_LOSS, _LOSS_BACKWARD, _GRADIENTS = (1, 0, "Loss"), (2, 0, "Loss, backward"), (4, 0, "Gradients of the parameters")


def _section(name: str) -> tuple[int, int, str]:
    """Where the sheet works a number, from its name (``z[2]``, ``dL/dh[0]|q[1]``, ``dL/dW_z|t=2``):
    (part, place within it, title), the parts in the sheet's order. A gradient with no step in its
    name is a parameter's (the sum over the steps); ``dL/dh[0]`` ends the backward pass of step 1."""
    backward = name.startswith("dL/d")
    if _OUTPUT_LAYER.fullmatch(name):
        return _LOSS_BACKWARD if backward else _LOSS
    steps = [int(a or b) for a, b in _STEPS.findall(name)]
    if not backward:
        return (0, max(steps), f"Forward pass, step {max(steps)}")
    if not steps:
        return _GRADIENTS
    t = max(max(steps), 1)
    return (3, -t, f"Backward pass, step {t}")


def consumers(walk: Walk) -> dict[str, str]:
    """Each node -> the first node computed from it."""
    out: dict[str, str] = {}
    for name, info in walk.info.items():
        for i in info.inputs:
            out.setdefault(i, name)
    return out


def form_sections(walk: Walk, consumer: dict[str, str]) -> tuple[Section, ...]:
    """Every number but the given data (inputs, initial state), grouped as the sheet works them; a
    product belongs where the stage that adds it up is worked (``U_z h[0]`` to step 1)."""
    groups: dict[tuple, list[tuple[str, str, tuple]]] = {}
    for name, info in walk.info.items():
        if not info.inputs and not name.startswith("dL/d"):
            continue
        where = consumer.get(name, name) if info.what.startswith("the product") else name
        shape = tuple(np.shape(walk.values[name])) or (1,)
        groups.setdefault(_section(where), []).append((name, info.what, shape))
    sections, number = [], 0
    for key in sorted(groups):
        entries = []
        for name, what, shape in groups[key]:
            entries.append(Entry(number, name, what, shape))
            number += 1
        sections.append(Section(key[2], tuple(entries)))
    return tuple(sections)


class Exercise:
    """A problem read, its form, and what pages derive from it once (:meth:`kept`)."""

    def __init__(self, text: str, label: str, problem):
        self.text, self.label, self.problem = text, label, problem
        walk = Walk(problem, engine("numpy"))
        self.consumers = consumers(walk)
        self.sections = form_sections(walk, self.consumers)
        self.entries = tuple(e for s in self.sections for e in s.entries)
        self._kept: dict[str, object] = {}
        self._lock = threading.RLock()  # one kept thing may be made of another (the worked sheet of the sheet)

    @property
    def title(self) -> str:
        return self.problem.title or self.label

    def kept(self, key: str, make):
        """``make()``, made once per exercise (the worked sheet: a second or so)."""
        with self._lock:
            if key not in self._kept:
                self._kept[key] = make()
            return self._kept[key]

    def sheet(self) -> Sheet:
        """The exact worked sheet (4 decimals)."""
        return self.kept("sheet", lambda: build_sheet(self.problem))


def read_problem(data: bytes, label: str) -> Exercise:
    """A problem file's bytes read as ``grukit`` reads a file, within the page's bounds."""
    if len(data) > MAX_PROBLEM_BYTES:
        raise GrukitError(f"{label}: larger than {MAX_PROBLEM_BYTES // 1024} KiB (a hand calculation's problem "
                          f"file is a few hundred bytes)")
    with scratch(label) as folder:
        path = folder / PROBLEM_FILE
        path.write_bytes(data)
        problem = load_problem(path)
    problem = replace(problem, path=Path(label))
    T, D, H = problem.steps, problem.input_size, problem.hidden_size
    if T > MAX_STEPS or D > MAX_SIZE or H > MAX_SIZE:
        raise GrukitError(f"{label}: T={T}, D={D}, H={H}: the page checks hand calculations of at most "
                          f"{MAX_STEPS} steps and sizes up to {MAX_SIZE} (`grukit verify` takes any size)")
    return Exercise(data.decode("utf-8"), label, problem)


def builtin() -> tuple[bytes, str]:
    """The built-in example (the course notes' problem, seed 001) and its name."""
    return builtin_example().read_bytes(), BUILTIN_LABEL


def whole(text, field: str, low: int, high: int) -> int:
    """A form's whole number within [low, high], or the one-line error naming the field."""
    value = str(text or "").strip()
    if not re.fullmatch(r"\d{1,10}", value) or not low <= int(value) <= high:
        raise GrukitError(f"{field}: expected a whole number from {low} to {high}, got {shown(value, 30)}")
    return int(value)


def generated(convention, inputs, hidden, steps, seed) -> tuple[bytes, str]:
    """A fresh exercise from the instructor generator (built-in conventions only: a page names no file)."""
    name = str(convention or "")
    if name not in PRESETS:
        raise GrukitError(f"convention: {shown(name, 40)} is not a built-in convention (one of {', '.join(PRESETS)})")
    D, H = whole(inputs, "input size D", 1, MAX_SIZE), whole(hidden, "hidden size H", 1, MAX_SIZE)
    T, k = whole(steps, "steps T", 1, MAX_STEPS), whole(seed, "seed", 0, MAX_SEED)
    text = problem_text(name, f"{D}x{H}", T, k)
    return text.encode(), f"{file_stem(PRESETS[name], k, 1)}.yaml"


class Exercises:
    """The exercises read so far, by their bytes and name (the :data:`CACHE` most recently used):
    a page's checks reuse the problem read and its names, and its worked sheet once built."""

    def __init__(self, size: int = CACHE):
        self._size = size
        self._kept: OrderedDict[str, Exercise] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, data: bytes, label: str) -> Exercise:
        key = hashlib.sha256(label.encode() + b"\0" + data).hexdigest()
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key]
        exercise = read_problem(data, label)
        with self._lock:
            self._kept[key] = exercise
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)
        return exercise

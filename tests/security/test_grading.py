"""Grading a class (``grukit verify FOLDER``) keeps every promise per file: the hostile claims files of
the YAML corpus (tests/security/test_yaml_files.py), all in one folder beside a real problem, each
become their own row -- a result where the file is fine, else that file's one-line error naming it
and the field -- while the class is graded; nothing foreign is read into the table, no code runs.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.hostile import MARKER, SECRET, clean, run

from grukit.codegen.grading.processes import SUFFIXES

_SPEC = importlib.util.spec_from_file_location("yaml_corpus", Path(__file__).with_name("test_yaml_files.py"))
corpus = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(corpus)

SPECIAL_WORDS = {id(corpus.FIFO): "not a regular file", id(corpus.FOLDER): "not a regular file",
                 id(corpus.LINK_SECRET): "symbolic link", id(corpus.LINK_PASSWD): "symbolic link"}
"""What grading says of a folder entry it does not read (the corpus's special files, as submissions)."""


def test_the_hostile_claims_corpus_graded_as_one_class(tmp_path):
    cases = [c for c in corpus.CORPUS if c[3] == "verify" and c[1] == "c.yaml" and c[2] is not corpus.MISSING]
    assert len(cases) > 25
    work = corpus.folder(tmp_path)
    for case_id, _, content, _, _ in cases:
        corpus._place(work, f"{case_id}.yaml", content)
    o = run(["verify", work, "-o", tmp_path / "grades", "--timeout", "20", "--json"], limit=300)
    clean(o)
    rows = {r["file"]: r for r in json.loads(o.out)["files"]}
    graded = sorted(p.name for p in work.iterdir() if p.suffix in SUFFIXES and p.name != "p.yaml")
    assert sorted(rows) == graded
    for case_id, _, content, _, words in cases:
        row = rows[f"{case_id}.yaml"]
        if words == corpus.OK:
            assert row["status"] in (0, 1) and row["error"] is None, (case_id, row)
            continue
        assert row["status"] == 2 and len(row["error"].splitlines()) == 1, (case_id, row)
        expected = [SPECIAL_WORDS[id(content)]] if id(content) in SPECIAL_WORDS else \
            [w for w in words if w != "c.yaml"]
        assert all(w in row["error"] for w in expected), (case_id, row["error"])
        assert row["error"].startswith(str(work)), (case_id, row["error"])
    assert rows["c.yaml"]["status"] == 0 and "expected a claims file" in rows["conv.yaml"]["error"]
    table = "".join(p.read_text() for p in tmp_path.glob("grades.*"))
    assert SECRET not in table + o.out + o.err and "root:" not in table
    assert not any(p.name == MARKER for p in tmp_path.rglob("*"))


def test_ctrl_c_stops_every_grading_process_and_leaves_the_old_table(tmp_path):
    """SIGINT to the process group while a class is graded: status 130, one line, the table that was
    there before byte-identical, no temporary file, and no grading process left behind."""
    work = corpus.folder(tmp_path)
    claims = (work / "c.yaml").read_text().replace("[0.655, 0.478, 0.582]", "[0.955, 0.478, 0.582]")
    for k in range(400):
        (work / f"s{k:03d}.yaml").write_text(claims)
    (tmp_path / "grades.csv").write_bytes(b"the previous table\n")
    proc = subprocess.Popen([sys.executable, "-m", "grukit", "verify", str(work), "-o", str(tmp_path / "grades")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        time.sleep(4)
        assert proc.poll() is None, proc.communicate()
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130 and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("grukit: error")] == ["grukit: error: interrupted"]
    assert (tmp_path / "grades.csv").read_bytes() == b"the previous table\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["grades.csv"]
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):  # nothing of the group is left: every child was stopped
        os.killpg(proc.pid, 0)

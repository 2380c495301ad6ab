"""docs/security.md names, for each promise, the test that keeps it: every test it names exists."""
from __future__ import annotations

import ast
import re

from helpers import ROOT


def test_every_test_the_threat_model_names_exists():
    text = (ROOT / "docs" / "security.md").read_text()
    cited = []
    for cell in re.findall(r"`([^`]*::[^`]*)`", text):
        match = re.fullmatch(r"((?:[\w/]+/)?test_\w+\.py)?::(test_\w+)", cell)
        assert match, cell
        cited.append((match.group(1), match.group(2)))
    assert len(cited) > 60
    current = None
    for file, name in cited:
        current = file or current
        tree = ast.parse((ROOT / "tests" / current).read_text())
        names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert name in names, f"docs/security.md cites {current}::{name}, which does not exist"


def test_every_security_test_file_is_cited():
    text = (ROOT / "docs" / "security.md").read_text()
    for path in sorted((ROOT / "tests" / "security").glob("test_*.py")):
        if path.name != "test_promises.py":
            assert f"security/{path.name}::" in text, path.name

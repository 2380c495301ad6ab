"""The committed gallery (docs/sheets/, docs/gallery.md) is what `grukit sheet --gallery docs` makes now.

Regenerates everything into a temporary folder and fails with a unified diff on any drift. To update
the committed files: `grukit sheet --gallery docs`.
"""
from __future__ import annotations

import difflib

from helpers import ROOT

from grukit.codegen.sheets.gallery import write_gallery

DOCS = ROOT / "docs"


def test_gallery_has_not_drifted(tmp_path):
    written = write_gallery(tmp_path, examples=DOCS / "examples")
    fresh = {p.relative_to(tmp_path).as_posix() for p in written}
    committed = {p.relative_to(DOCS).as_posix() for p in (DOCS / "sheets").iterdir()} | {"gallery.md"}
    assert fresh == committed, (
        f"docs/sheets differs in its files: missing {sorted(fresh - committed)}, "
        f"stale {sorted(committed - fresh)}; run `grukit sheet --gallery docs`")
    problems = []
    for name in sorted(fresh):
        new = (tmp_path / name).read_text()
        old = (DOCS / name).read_text()
        if new != old:
            diff = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        f"docs/{name} (committed)", f"docs/{name} (regenerated)", n=2)
            problems.append("".join(list(diff)[:60]))
    assert not problems, "the gallery has drifted; run `grukit sheet --gallery docs`\n" + "\n".join(problems)


def test_gallery_lists_every_example_and_its_sheets():
    page = (DOCS / "gallery.md").read_text()
    for example in sorted(p for p in (DOCS / "examples").glob("*.yaml") if not p.name.endswith("-claims.yaml")):
        assert f"[tex](sheets/{example.stem}.tex)" in page
        assert (DOCS / "sheets" / f"{example.stem}.tex").exists()
    assert "grukit sheet --gallery docs" in page

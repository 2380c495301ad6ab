"""What the tests share: independent references (a NumPy GRU, the real frameworks' harness), random
problems and planted mistakes, and where the repository is. ``pyproject.toml`` puts ``tests/`` on
the path, so a test writes ``from helpers.numpy_gru import gru_reference``."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository (the ``grukit`` package's root)."""
EXAMPLES = ROOT / "docs" / "examples"


def copy_examples(folder: Path, *names: str) -> None:
    """Copy example files beside a test's own file: a file names only files beside it (docs/security.md)."""
    for name in names:
        (folder / Path(name).name).write_bytes((EXAMPLES / name).read_bytes())

"""The README's first screen holds exactly two set-up commands, and CI runs the second verbatim."""
import re

from helpers import ROOT


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_first_screen_has_two_setup_commands():
    head = "\n".join((ROOT / "README.md").read_text().splitlines()[:25])
    assert "```bash" in head
    commands = readme_commands()
    assert len(commands) == 2
    assert commands[0].startswith("pip install .") and "grukit sheet" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert readme_commands()[1] in ci

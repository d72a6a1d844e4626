"""README's code is run, so that it stays true."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_starts_with_the_two_commands():
    first = _blocks("bash")[0].strip().splitlines()
    assert [line.split("#")[0].strip() for line in first] == [
        "bash scripts/setup.sh && loco demo",
        "bash scripts/setup.sh && python -m pytest",
    ]
    ci = (README.parent / ".ci" / "run").read_text()
    assert "bash scripts/setup.sh && python -m pytest" in ci


def test_readme_python_example_runs():
    for block in _blocks("python"):
        exec(compile(block, str(README), "exec"), {})

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


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation but - and _ dropped,
    spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_relative_links_in_the_docs_resolve():
    root = README.parent
    documents = [README, *root.glob("docs/*.md"), *root.glob("saved_models/**/*.md")]
    checked = 0
    for document in documents:
        text = document.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            path, _, anchor = target.partition("#")
            resolved = (document.parent / path).resolve() if path else document
            assert resolved.exists(), f"{document.relative_to(root)}: {target} does not exist"
            if anchor and resolved.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", resolved.read_text(), flags=re.M)
                anchors = {_anchor(heading) for heading in headings}
                assert anchor in anchors, f"{document.relative_to(root)}: no heading #{anchor}"
            checked += 1
    assert checked >= 10  # the README's own links to cards and docs at least

"""The README and docs/: a short front door whose links resolve, the test command CI runs,
and docs/ARCHITECTURE.md naming every module of the code."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import REPO

README = REPO / "README.md"
ARCHITECTURE = REPO / "docs" / "ARCHITECTURE.md"
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)|src=\"([^\"]+)\"")


def links(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    found = [a or b for a, b in LINK.findall(text)]
    return [link for link in found if not re.match(r"[a-z]+:", link)]


def test_readme_is_a_short_front_door():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250
    assert not any(line.startswith("## Layout") for line in lines)  # the map is ARCHITECTURE


def test_readme_and_docs_links_resolve():
    pages = [README, *sorted((REPO / "docs").glob("*.md"))]
    missing = [
        f"{page.relative_to(REPO)}: {link}"
        for page in pages
        for link in links(page)
        if not (page.parent / link).exists()
    ]
    assert not missing


def test_readme_test_command_is_what_ci_runs():
    """The README's first lines name .ci/test, .ci/run ends in it, and the README documents
    its two pytest lines (fast tier first, fail fast) as they are."""
    readme = README.read_text(encoding="utf-8")
    first = readme.split("```", 2)[1]
    assert "&& .ci/test" in first
    ci_run = (REPO / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci_run[-1] == ".ci/test"
    commands = [
        line
        for line in (REPO / ".ci" / "test").read_text(encoding="utf-8").splitlines()
        if line.startswith(".venv/bin/python -m pytest")
    ]
    assert commands == [
        '.venv/bin/python -m pytest -q -m "not slow" -x -n 2 --dist loadfile',
        ".venv/bin/python -m pytest -q -m slow -n 2 --dist loadfile",
    ]
    for command in commands:
        assert command in readme


def test_architecture_names_every_module():
    text = ARCHITECTURE.read_text(encoding="utf-8")
    modules = sorted(
        path.relative_to(REPO).as_posix()
        for folder in ("seq2seq", "apps")
        for path in (REPO / folder).rglob("*.py")
        if not (path.name == "__init__.py" and path.stat().st_size == 0)
    )
    assert modules
    assert [module for module in modules if f"`{module}`" not in text] == []

"""The docs stay navigable: relative links resolve, and every ``docs/algorithm.md (A3)`` the code cites exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
LABEL = r"\(([A-Z]\d+'?)\)"


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+\s+(.*)$", page.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):  # http(s), mailto: not checked here
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists() or (anchor and resolved.suffix == ".md" and anchor not in anchors(resolved)):
            broken.append(target)
    assert not broken, broken


def test_cited_equations_exist():
    defined = set(re.findall(r"\*\*" + LABEL, (REPO / "docs" / "algorithm.md").read_text()))
    cite = re.compile(r"algorithm\.md(?:\]\([^)]*\))?`?((?:[\s,\-]*(?:and\s+)?" + LABEL + r")+)")
    files = [*PAGES, *(p for d in ("src", "tests", "examples") for p in (REPO / d).rglob("*.py"))]
    files += list((REPO / "conf").rglob("*.yaml"))
    cited = {
        (str(f.relative_to(REPO)), label)
        for f in files
        for m in cite.finditer(f.read_text())
        for label in re.findall(LABEL, m.group(1))
    }
    assert cited, "nothing cites docs/algorithm.md"
    assert not {c for c in cited if c[1] not in defined}, sorted(c for c in cited if c[1] not in defined)


def test_the_code_cites_only_documents_in_the_repository():
    """The algorithm is cited as ``docs/algorithm.md``; no file cites a spec that is not in the repository."""
    files = [p for d in ("src", "tests", "examples", "conf", "benchmarks") for p in (REPO / d).rglob("*.*")]
    outside = "RQL_" + "SPEC"  # spelled apart so this file does not cite it either
    assert not [str(f.relative_to(REPO)) for f in files if f.is_file() and outside in f.read_text(errors="ignore")]

"""Comments cite pages of this repository: every `docs/<page>.md, "<section>"` names a section that
exists, and nothing cites the specification files kept outside the repository."""

from __future__ import annotations

import re

from conftest import REPO

SOURCES = sorted([*(REPO / "src").rglob("*.py"), *(REPO / "tests").rglob("*.py")])
CITATION = re.compile(r'docs/([\w-]+\.md),?\s*"([^"]+)"')
OUTSIDE = re.compile(r"§|/work/shared|(?<![\w/])(augmix|corruptions|metrics|pipeline|performance|paper_numbers|"
                     r"house_style|beyond)\.md")


def _sections(page: str) -> set[str]:
    text = (REPO / "docs" / page).read_text()
    return {line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")}


def _flat(text: str) -> str:
    """Comment and docstring text with line breaks (and a comment's leading #) as single spaces."""
    return re.sub(r"\s*\n\s*#?\s*", " ", text)


def test_cited_sections_exist():
    cited = [(path, page, title) for path in SOURCES for page, title in CITATION.findall(_flat(path.read_text()))]
    assert len(cited) >= 20
    for path, page, title in cited:
        assert (REPO / "docs" / page).is_file(), f"{path.relative_to(REPO)} cites docs/{page}"
        assert title in _sections(page), f"{path.relative_to(REPO)} cites docs/{page}, \"{title}\""


def test_no_citation_points_outside_the_repository():
    found = [f"{path.relative_to(REPO)}: {line.strip()}" for path in SOURCES if path.name != "test_docs.py"
             for line in path.read_text().splitlines() if OUTSIDE.search(line)]
    assert found == [], "\n".join(found)

"""The documents the code cites ship with the repository, and the citations lead somewhere.

Whoever inherits the code follows the why of the subtle parts through citations such as
"docs/models.md §2.3, eq. (11)" or 'docs/tracking.md, pitfall P2'. These tests read every source,
test, benchmark, recipe and document of the checkout and require that:
- every cited `docs/X.md` exists, and a cited section (§N.M), equation (eq. (N)), quoted heading or
  `#anchor` exists in it;
- nothing cites a document outside the repository (`../shared/...`) or a reference note by its bare
  name (models.md, generators.md, ...), which a reader of the repository cannot open;
- every relative link in README.md, BENCHMARKS.md and docs/*.md resolves to a file of the checkout.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SCANNED_DIRS = ("suite", "models", "tasks", "sweeps", "benchmarks", "tests", "docs", "results")
SCANNED_FILES = ("README.md", "BENCHMARKS.md", "Makefile", "pyproject.toml")
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".sh", ".toml"}
# Names of reference notes that never shipped; citing them bare (not as docs/X.md) leads nowhere.
UNSHIPPED = ("models.md", "generators.md", "ecosystem.md", "liquid-math.md", "style.md", "data-sources.md",
             "tracking.md")

CITATION = re.compile(r"docs/([\w-]+\.md)(?:#([\w-]+))?")
SECTION = re.compile(r"^,?\s*§\s*(\d+(?:\.\d+)*)")
EQUATION = re.compile(r"^,?\s*(?:§\s*[\d.]+,?\s*)?eqs?\.\s*\((\d+)\)")
QUOTED = re.compile(r'^,?\s*"([^"\n]+)"')
LINK = re.compile(r"\]\(([^)\s]+)\)")


def scanned() -> list[Path]:
    files = [ROOT / name for name in SCANNED_FILES if (ROOT / name).exists()]
    for folder in SCANNED_DIRS:
        files += [p for p in sorted((ROOT / folder).rglob("*")) if p.is_file() and p.suffix in SUFFIXES
                  and "__pycache__" not in p.parts]
    return files


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def headings(doc: Path) -> list[str]:
    return [line.lstrip("#").strip() for line in doc.read_text().splitlines() if line.startswith("#")]


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def equations(doc: Path) -> set[str]:
    """Equation numbers: a '(N)' at the end of a line of an indented formula."""
    return set(re.findall(r"^ {4}.*\((\d+)\)\s*$", doc.read_text(), flags=re.M))


def citations() -> list[tuple[str, int, str, str, str]]:
    """(file, line, cited document, anchor, the text after the citation) for every docs/X.md citation."""
    out = []
    for path in scanned():
        if path == Path(__file__).resolve():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for m in CITATION.finditer(line):
                out.append((rel(path), number, m.group(1), m.group(2) or "", line[m.end():]))
    return out


def test_the_code_cites_documents():
    """A guard on the scanner itself: the model code's citations are found (a broken regex would pass all)."""
    cited = {doc for _, _, doc, _, _ in citations()}
    assert {"models.md", "generators.md", "tracking.md", "data-sources.md", "liquid.md"} <= cited


def test_every_cited_document_exists():
    missing = [f"{f}:{n}: docs/{doc}" for f, n, doc, _, _ in citations() if not (DOCS / doc).is_file()]
    assert not missing, "cited documents that do not ship:\n" + "\n".join(missing)


def test_every_cited_section_equation_heading_and_anchor_exists():
    wrong = []
    for f, n, doc, anchor, after in citations():
        path = DOCS / doc
        if not path.is_file():
            continue  # reported by the test above
        titles = headings(path)
        if anchor and anchor not in {slug(t) for t in titles}:
            wrong.append(f"{f}:{n}: docs/{doc}#{anchor}: no such heading")
        if m := SECTION.match(after):
            number = m.group(1)
            if not any(re.match(rf"{re.escape(number)}[.\s]", t + " ") for t in titles):
                wrong.append(f"{f}:{n}: docs/{doc} §{number}: no such section")
        if m := EQUATION.match(after):
            if m.group(1) not in equations(path):
                wrong.append(f"{f}:{n}: docs/{doc} eq. ({m.group(1)}): no such equation")
        if m := QUOTED.match(after):
            quoted = m.group(1)
            if not any(quoted.lower() in t.lower() for t in titles):
                wrong.append(f'{f}:{n}: docs/{doc}, "{quoted}": no such heading')
    assert not wrong, "\n".join(wrong)


def test_nothing_cites_documents_outside_the_repository():
    found = []
    for path in scanned():
        if path == Path(__file__).resolve():
            continue
        text = path.read_text(errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if "../shared" in line or "shared/reference" in line:
                found.append(f"{rel(path)}:{number}: {line.strip()}")
            in_docs = path.parent == DOCS
            for name in UNSHIPPED:
                for m in re.finditer(rf"(?<![\w/.-]){re.escape(name)}", line):
                    # inside docs/ a bare name is a sibling document; elsewhere it must be docs/NAME
                    if not (in_docs and (DOCS / name).is_file()):
                        found.append(f"{rel(path)}:{number}: bare {name!r}: {line.strip()}")
    assert not found, "citations a reader of the repository cannot follow:\n" + "\n".join(found)


def documents() -> list[Path]:
    return [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted(DOCS.glob("*.md"))]


@pytest.mark.parametrize("doc", documents(), ids=rel)
def test_every_relative_link_resolves(doc):
    broken = []
    for target in LINK.findall(doc.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a URL, or an anchor of the same page
        path, _, anchor = target.partition("#")
        resolved = (doc.parent / path).resolve()
        if not resolved.exists():
            broken.append(f"{target}: no {resolved}")
        elif anchor and resolved.suffix == ".md" and anchor not in {slug(t) for t in headings(resolved)}:
            broken.append(f"{target}: no heading with anchor #{anchor}")
    assert not broken, f"{rel(doc)}:\n" + "\n".join(broken)

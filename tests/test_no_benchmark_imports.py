"""No test depends on a benchmark script: benchmarks/ are GPU scripts that may change or go at any time, and
what a test and a script share (the float64 checks of the fast paths) lives in the package (models/checks.py).
Checked on the import statements of every test module and on the Python source the tests hand to
subprocesses (strings), since `python -c "from benchmarks..."` would be the same dependency."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
IMPORT_IN_TEXT = re.compile(r"^\s*(from\s+benchmarks[\s.]|import\s+benchmarks\b)", re.M)


def benchmark_imports(source: str) -> list[str]:
    """The import statements of `source`, and of the string constants in it, that reach into benchmarks/."""
    found = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name == "benchmarks" or a.name.startswith("benchmarks.")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "benchmarks" or node.module.startswith("benchmarks."):
                found.append(node.module)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and IMPORT_IN_TEXT.search(node.value):
            found.append(f"in a string: {IMPORT_IN_TEXT.search(node.value).group(0).strip()}")
    return found


def test_the_detector_sees_both_kinds_of_import():
    source = 'import os\nfrom benchmarks.x import y\nCODE = """\nimport benchmarks.z\n"""\n'
    assert benchmark_imports(source) == ["benchmarks.x", "in a string: import benchmarks"]
    assert benchmark_imports("from models.checks import within\nimport benchmarking_tools\n") == []


# every test module but this one, whose own examples above name benchmarks/ on purpose
MODULES = [p for p in sorted(TESTS.rglob("*.py")) if p != Path(__file__).resolve()]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(TESTS)))
def test_no_test_imports_a_benchmark_script(path):
    assert benchmark_imports(path.read_text()) == [], f"{path.name} imports from benchmarks/"

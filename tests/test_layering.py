"""Dependencies point one way: suite -> models, tasks. Models and tasks import neither suite nor the
tracking and sweep libraries. Inside suite/report/ the modules import one way too (its __init__ says how)."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.conftest import ROOT


def imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return set(out.stdout.split())


def test_models_and_tasks_stand_alone():
    mods = imported_after("import models.network, models.s4d, tasks.listops")
    for forbidden in ("suite", "mlflow", "optuna", "lightning", "pytorch_lightning"):
        assert forbidden not in mods, forbidden


# suite/report/: what each module may import of the package (suite/report/__init__.py): the runs, the columns, the
# bundles and the plots stand alone; the published rows know runs and columns; a table is made of those; the
# formats and the page sit on top.
REPORT_IMPORTS = {
    "runs": set(), "columns": set(), "bundled": set(), "plots": set(),
    "published": {"runs", "columns"},
    "tables": {"runs", "columns", "published", "bundled"},
    "render": {"tables", "columns", "bundled"},
    "page": {"runs", "columns", "published", "tables", "render", "bundled", "plots"},
}


def report_imports(source: str) -> set[str]:
    """The modules of suite.report that `source` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == "suite.report":
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("suite.report."):
            found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[2] for a in node.names if a.name.startswith("suite.report.")}
    return found


def test_the_report_package_imports_one_way():
    example = ("from suite.report import bundled, tables\nimport suite.report.runs\n"
               "def f():\n    from suite.report.plots import P\n")
    assert report_imports(example) == {"bundled", "tables", "runs", "plots"}
    package = ROOT / "suite" / "report"
    modules = {p.stem: p for p in package.glob("*.py") if p.stem != "__init__"}
    assert set(modules) == set(REPORT_IMPORTS)  # a new module gets its place here
    for name, path in modules.items():
        extra = report_imports(path.read_text()) - REPORT_IMPORTS[name]
        assert not extra, f"suite/report/{name}.py imports {sorted(extra)}: against the one-way order"

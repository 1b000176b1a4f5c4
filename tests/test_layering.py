"""Dependencies point one way: suite -> models, tasks. Models and tasks import neither suite nor the
tracking and sweep libraries. Inside suite/report/ and suite/train/ the modules import one way too (their
__init__ says how)."""

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


def package_imports(source: str, package: str) -> set[str]:
    """The modules of `package` (e.g. suite.report) that `source` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == package:
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(f"{package}."):
            found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[2] for a in node.names if a.name.startswith(f"{package}.")}
    return found


def report_imports(source: str) -> set[str]:
    """The modules of suite.report that `source` imports."""
    return package_imports(source, "suite.report")


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


# suite/train/: what each module may import of the package (suite/train/__init__.py). The pieces stand alone or
# lean on lower ones (the LightningModule on the optimizer and the graphs; the guards on the time limit and the
# throughput rule); trainer.py assembles the callbacks; run.py sits on top of build, record, trainer and failures;
# resume.py and evaluate.py are the other entry points. Nothing below run.py imports it.
TRAIN_IMPORTS = {
    "build": set(), "failures": set(), "timelimit": set(), "optim": set(), "datamodule": set(),
    "cuda_graphs": set(), "throughput": set(), "progress": set(), "epoch_metrics": set(),
    "eval_graphs": {"cuda_graphs"}, "step_graphs": {"cuda_graphs"},
    "lightning_module": {"optim", "cuda_graphs", "eval_graphs", "step_graphs", "epoch_metrics", "throughput"},
    "guards": {"timelimit", "throughput"},
    "record": {"timelimit", "epoch_metrics"},
    "trainer": {"timelimit", "record", "guards", "progress", "throughput", "datamodule", "lightning_module"},
    "run": {"build", "record", "trainer", "failures", "timelimit"},
    "resume": {"run", "record"},
    "evaluate": {"build", "record", "datamodule", "lightning_module"},
}


def test_the_train_package_imports_one_way():
    assert package_imports("from suite.train import record, timelimit\nimport suite.train.build\n"
                           "def f():\n    from suite.train.trainer import make_fit\n", "suite.train") == {
        "record", "timelimit", "build", "trainer"}
    package = ROOT / "suite" / "train"
    modules = {p.stem: p for p in package.glob("*.py") if p.stem != "__init__"}
    assert set(modules) == set(TRAIN_IMPORTS)  # a new module gets its place here
    for name, path in modules.items():
        extra = package_imports(path.read_text(), "suite.train") - TRAIN_IMPORTS[name]
        assert not extra, f"suite/train/{name}.py imports {sorted(extra)}: against the one-way order"


def test_the_train_package_init_stays_light():
    """`suite.train` re-exports nothing: the CLI imports suite.train.timelimit for --time-limit without torch."""
    mods = imported_after("import suite.train.timelimit")
    for heavy in ("torch", "lightning", "mlflow"):
        assert heavy not in mods, heavy


def top_level_imports(source: str) -> set[str]:
    """The top-level packages `source` imports, at the top or inside a function (relative imports left out)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
    return found


def code_modules():
    for package in ("suite", "models", "tasks"):
        yield from sorted((ROOT / package).rglob("*.py"))


def test_only_suite_tracking_imports_mlflow_and_only_suite_sweep_imports_optuna():
    assert top_level_imports("import mlflow.tracking\ndef f():\n    from optuna import trial\n") == {"mlflow", "optuna"}
    owners = {"mlflow": "suite/tracking/", "optuna": "suite/sweep/", "optuna_integration": "suite/sweep/"}
    for path in code_modules():
        where = path.relative_to(ROOT).as_posix()
        for library in top_level_imports(path.read_text()) & set(owners):
            assert where.startswith(owners[library]), f"{where} imports {library}: only {owners[library]} may"


def test_no_function_is_longer_than_80_lines():
    """A function that needs more has more than one job (the reshaping issue's rule for suite/, models/, tasks/)."""
    long = []
    for path in code_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})")
    assert not long, long

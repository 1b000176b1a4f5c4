"""What a user sees in `suite ui`, checked in a real browser (headless Chromium, tests/browser.py).

A real store gets two tiny `suite run --preset smoke` runs on generated ListOps and a two-trial sweep; `suite ui`
starts on a free port; Chromium opens the links the commands printed, as a user would paste them: the
experiment's run table (model-training pages, not MLflow's GenAI dashboard, with the headline metric columns),
a run's page (its description with the result), the sweep's view (trials by objective) and MLflow's comparison of
the trial runs (the objective plotted first). Without Chromium the test is skipped, unless
SUITE_REQUIRE_CHROMIUM=1 (CI, `.ci/run` installs the Debian package `chromium`), where it fails instead.

The screenshots in docs/ come from this test: `SUITE_UI_SCREENSHOTS=docs pytest tests/e2e/test_ui_browser.py`
writes them there (elsewhere they go to the test's temporary folder).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.browser import Browser, find_chromium
from tests.conftest import ROOT, run_suite, stop_group
from tests.suite.test_postgres import _free_port

TINY = ["--set", "data.generator.n_train=64", "--set", "data.generator.n_val=32", "--set",
        "data.generator.n_test=32", "--set", "trainer.batch_size=16", "--max-epochs", "2"]


@pytest.fixture()
def chromium() -> str:
    found = find_chromium()
    if found is None:
        if os.environ.get("SUITE_REQUIRE_CHROMIUM") == "1":
            pytest.fail("SUITE_REQUIRE_CHROMIUM=1 but no Chromium was found (Debian: apt-get install chromium)")
        pytest.skip("no Chromium (Debian package `chromium`); SUITE_REQUIRE_CHROMIUM=1 makes this a failure")
    return found


def _link(stderr: str, prefix: str) -> str:
    """The URL printed on the last line starting with `prefix`."""
    for line in reversed(stderr.splitlines()):
        if line.strip().startswith(prefix):
            found = re.search(r"https?://\S+", line)
            if found:
                return found.group(0)
    raise AssertionError(f"no line '{prefix} … URL' in:\n{stderr[-3000:]}")


def _start_ui(port: int, log: Path) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("suite")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "suite.cli"]
    return subprocess.Popen([*cmd, "ui", "--port", str(port)], stdout=log.open("w"), stderr=subprocess.STDOUT,
                            cwd=ROOT, start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _wait_healthy(proc: subprocess.Popen, port: int, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"suite ui ended with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read() == b"OK":
                return
        except OSError:
            pass
        time.sleep(1)
    pytest.fail(f"suite ui did not answer within {timeout:g} s:\n{log.read_text()[-3000:]}")


def _shot(browser: Browser, name: str, tmp_path: Path) -> Path:
    """A screenshot of the page, with MLflow's assistant panel (opened on a first visit) closed first."""
    if browser.click('[data-component-id="mlflow.assistant.chat_panel.close"]'):
        time.sleep(1)
    folder = Path(os.environ.get("SUITE_UI_SCREENSHOTS") or tmp_path)
    folder = folder if folder.is_absolute() else ROOT / folder
    path = browser.screenshot(folder / name)
    from PIL import Image  # 256 colours: a UI screenshot stays legible at a fraction of the size

    Image.open(path).convert("RGB").quantize(colors=256, dither=Image.Dither.NONE).save(path, optimize=True)
    return path


def test_the_ui_opens_on_the_run_table_with_metrics_and_the_sweep_by_its_objective(chromium, tmp_path):
    runs = {}
    for model in ("s4d", "s4"):
        r = run_suite("run", "--task", "listops", "--model", model, "--preset", "smoke", *TINY)
        assert r.returncode == 0, r.stderr[-3000:]
        runs[model] = re.search(r"done: run (\w+)", r.stderr).group(1)
    assert "look: suite ui, then open http://127.0.0.1:5000/#/experiments/" in r.stderr

    spec = yaml.safe_load((ROOT / "sweeps" / "smoke.yaml").read_text())
    spec["fixed"].update({"trainer.max_epochs": 2, "trainer.batch_size": 16, "data.generator.n_train": 64,
                          "data.generator.n_val": 32, "data.generator.n_test": 32})
    spec.update(study="ui-sweep", trials=2, pruner={"name": "none"}, sampler={"name": "random", "seed": 0})
    sweep_file = tmp_path / "ui-sweep.yaml"
    sweep_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    r = run_suite("sweep", str(sweep_file))
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stderr.count("look: ") == 1  # the sweep's own link; its trials print none
    sweep_link = _link(r.stderr, "look:")

    port = _free_port()
    log = tmp_path / "ui.log"
    ui = _start_ui(port, log)
    try:
        _wait_healthy(ui, port, log)
        base = f"http://127.0.0.1:{port}"
        experiment_link = _link(log.read_text(), "experiment 'lra':")
        assert experiment_link.startswith(f"{base}/#/experiments/")
        sweep_link = sweep_link.replace("http://127.0.0.1:5000", base)

        with Browser(chromium, width=1600, height=900) as browser:
            # the experiment: the run table of the model-training pages, with the headline metrics as columns
            browser.goto(experiment_link)
            text = browser.wait_for_text("best/test/accuracy", "best/val/accuracy", "listops-s4d-smoke-s",
                                         "listops-s4-smoke-s", "suite: results", timeout=120)
            assert "Model training" in text and "Detect Issues" not in text and "Token Usage" not in text
            assert re.search(r"\b0\.\d+", text)  # metric values in the table, not only the headers
            _shot(browser, "mlflow-runs.png", tmp_path)

            # a run: its description says what was trained and the result
            exp_id = re.search(r"#/experiments/(\d+)/", experiment_link).group(1)
            browser.goto(f"{base}/#/experiments/{exp_id}/runs/{runs['s4d']}?workflowType=machine_learning")
            text = browser.wait_for_text("s4d on listops, smoke preset", "Result (test metrics at the epoch of the "
                                         "best validation metric)", "best/test/accuracy", timeout=120)
            _shot(browser, "mlflow-run.png", tmp_path)

            # the sweep's view: its trials only, best objective first, the objective and sampled values as columns
            browser.goto(sweep_link)
            text = browser.wait_for_text("sweep: ui-sweep", "sweep/objective", "trial.optim.lr", "ui-sweep-t0",
                                         "ui-sweep-t1", timeout=120)
            assert "listops-s4d-smoke-s" not in text  # the filter keeps the study's trials
            _shot(browser, "mlflow-sweep.png", tmp_path)

            # MLflow's comparison of the trial runs (select them, "Compare"): the objective is the plotted metric
            from mlflow.tracking import MlflowClient

            client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
            trials = [t.info.run_id for t in client.search_runs([exp_id], "tags.`suite.sweep.study` = 'ui-sweep' "
                                                                          "and tags.`suite.sweep.trial` != ''")]
            assert len(trials) == 2
            browser.goto(f"{base}/#/compare-runs?runs={json.dumps(trials)}&experiments={json.dumps([exp_id])}")
            text = browser.wait_for_text("Parallel Coordinates Plot", "Metrics:", timeout=120)
            chosen = text.split("Metrics:", 1)[1].split("Clear All", 1)[0].split()
            assert chosen == ["sweep/objective"], text[:2000]
            browser.wait_for("document.querySelector('.js-plotly-plot .main-svg')", 120, "the plot")
            time.sleep(2)  # the plot's lines are drawn after its frame
            _shot(browser, "mlflow-sweep-compare.png", tmp_path)
    finally:
        stop_group(ui)

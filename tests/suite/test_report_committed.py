"""Committed runs in `suite table` and `suite report` (issue 13: results/reproduction/<task>/<run name>/).

Real runs, exported with the real `suite export` into a bundles folder, then shown from the bundles' files with no
store at all: a finished smoke run, a run stopped with Ctrl-C in its second epoch (1 of 2 epochs done, resumable),
a run stopped at a 1-s time limit before its first validation, and a tiny run of the `paper` preset on generated
data (the reproduction's kind of run, which is compared with its published row).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from suite import cli
from tests.conftest import ROOT, run_suite
from tests.suite.test_resume import stop_at_checkpoint
from tests.suite.test_tables import table_of

SMOKE = ["run", "--task", "listops", "--model", "s4d", "--preset", "smoke", "--set", "trainer.batch_size=16",
         "--set", "trainer.progress_bar=false"]  # 640 training samples: 40 steps per epoch, 2 epochs
# The `paper` preset (S4D-LegS recipe) on generated ListOps, shrunk to seconds on a CPU.
TINY_PAPER = ["run", "--task", "listops", "--model", "s4d", "--preset", "paper", "--max-epochs", "1",
              *(x for kv in ("data.source=generated", "data.generator.n_train=64", "data.generator.n_val=32",
                             "data.generator.n_test=32", "data.generator.min_length=10",
                             "data.generator.max_length=100", "data.l_max=128", "model.d_model=16",
                             "model.n_layers=1", "trainer.batch_size=16", "trainer.progress_bar=false")
                for x in ("--set", kv))]
SMOKE_ROW = "s4d (s4 recipe, smoke preset, generated data; trainer.batch_size=16)"


class Committed:
    def __init__(self, root: Path):
        self.root = root
        self.uri = f"sqlite:///{root / 'store' / 'mlflow.db'}"
        self.bundles = root / "reproduction"
        # module scope: the per-test environment of conftest is not set up yet, so every command gets its own
        self.env = {"MLFLOW_TRACKING_URI": self.uri, "SUITE_DATA": str(root / "data"),
                    "SUITE_CHECKPOINTS": str(root / "checkpoints"), "SUITE_BUNDLES": str(root / "none")}

    def suite(self, *args: str, code: int = 0, env: dict | None = None) -> subprocess.CompletedProcess:
        r = run_suite(*args, env={**self.env, **(env or {})})
        assert r.returncode == code, r.stderr[-3000:]
        return r

    def export(self, name: str, uri: str | None = None) -> dict:
        from mlflow.tracking import MlflowClient

        uri = uri or self.uri
        client = MlflowClient(uri)
        (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                    filter_string=f"attributes.run_name = '{name}'")
        self.suite("export", run.info.run_id, str(self.bundles / "listops" / name), env={"MLFLOW_TRACKING_URI": uri})
        return self.summary(name)

    def summary(self, name: str) -> dict:
        return json.loads((self.bundles / "listops" / name / "summary.json").read_text())


@pytest.fixture(scope="module")
def committed(tmp_path_factory) -> Committed:
    c = Committed(tmp_path_factory.mktemp("committed"))
    c.suite(*SMOKE, "--seed", "3", "--run-name", "s4d-s3")
    c.export("s4d-s3")

    # Ctrl-C in the second epoch, just after a periodic checkpoint (tests/suite/test_resume.py): 1 of 2 epochs done.
    # A store of its own: its checkpoint folder holds this run's only.
    interrupted = f"sqlite:///{c.root / 'interrupted' / 'mlflow.db'}"
    ckpt_root = c.root / "interrupted" / "checkpoints"
    exe = Path(sys.executable).with_name("suite")
    proc = subprocess.Popen([str(exe), *SMOKE, "--seed", "5", "--run-name", "s4d-s5", "--set",
                             "trainer.checkpoint_every_n_steps=5", "--set", "trainer.log_every_n_steps=1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, **c.env, "MLFLOW_TRACKING_URI": interrupted, "PYTHONUNBUFFERED": "1"})
    try:
        stop_at_checkpoint(proc, ckpt_root, lambda step: 45 <= step <= 70)
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGCONT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err[-3000:]
    c.export("s4d-s5", interrupted)

    c.suite(*SMOKE, "--seed", "6", "--run-name", "s4d-s6", "--time-limit", "1s", code=75)  # before any validation
    c.export("s4d-s6")

    c.suite(*TINY_PAPER, "--seed", "7", "--run-name", "s4d-paper-s7")
    c.export("s4d-paper-s7")
    return c


def test_the_bundles_are_what_a_reproduction_commits(committed):
    s3, s5, s6 = (committed.summary(n) for n in ("s4d-s3", "s4d-s5", "s4d-s6"))
    assert (s3["finished"], s3["epochs_done"], s3["max_epochs"]) == (True, 2, 2)
    assert (s5["finished"], s5["epochs_done"], s5["max_epochs"]) == (False, 1, 2)
    assert (s6["finished"], s6["epochs_done"], s6["best"]) == (False, 0, {})
    assert (committed.bundles / "listops" / "s4d-s5" / "last.ckpt").is_file()


def test_the_table_shows_committed_runs_from_their_files_without_a_store(committed, tmp_path):
    db = tmp_path / "nothing" / "mlflow.db"
    r = run_suite("table", "lra", "--bundles", str(committed.bundles), "--tracking-uri", f"sqlite:///{db}")
    assert r.returncode == 0, r.stderr[-3000:]
    assert not db.parent.exists()  # nothing was created
    out = r.stdout
    t = table_of(out)
    s3, s5, paper = (committed.summary(n) for n in ("s4d-s3", "s4d-s5", "s4d-paper-s7"))
    labels = list(t)
    # after the published rows, a block of its own, titled
    heading = f"Committed runs ({committed.bundles})"
    assert heading in labels and labels.index(heading) == labels.index("S4 repo, approx. final (V3 configs)") + 1
    assert f"4 committed run(s) from `{committed.bundles}`" in out
    # test accuracy at the best validation epoch (summary.json), test-set size, epochs done of the recipe's
    acc = s3["best"]["test/accuracy"] * 100
    assert t[SMOKE_ROW][0] == f"{acc:.2f} (n=1, test 128, smoke-sized, 2/2 epochs)"
    # an unfinished run: a row of its own, never pooled with the finished one of the same configuration
    acc5 = s5["best"]["test/accuracy"] * 100
    assert t[f"{SMOKE_ROW} [s4d-s5, unfinished]"][0] == \
        f"{acc5:.2f} (n=1, test 128, smoke-sized, 1/2 epochs, unfinished)"
    assert t[f"{SMOKE_ROW} [s4d-s6, unfinished]"][0] == "– (0/2 epochs, unfinished)"
    # the paper preset on generated data: compared with its published row (S4D-LegS), never bold
    row = next(label for label in labels if label.startswith("s4d (s4 recipe, generated data; data.generator."))
    acc7 = paper["best"]["test/accuracy"] * 100
    assert t[row][0] == f"{acc7:.2f} (n=1, test 32, smoke-sized, 1/1 epochs)"
    assert labels[labels.index(row) + 1] == "Δ to S4D-LegS (paper)"
    assert t["Δ to S4D-LegS (paper)"][0] == f"{acc7 - 60.47:+.2f}"
    assert not any(c.startswith("**") for label in labels[labels.index(heading):] for c in t[label])
    # the notes: each run's progress, its draw of the data, its best epoch (from 0) and its bundle
    assert (f"committed run s4d-s3 (listops, seed 3): 2/2 epochs; generated data, generator seed 0, 640/128/128 "
            f"train/val/test, lengths 10–100 (exclusive); best validation at epoch {int(s3['best']['epoch'])} "
            "(counted from 0);") in out
    assert "committed run s4d-s6 (listops, seed 6): 0/2 epochs, unfinished; generated data" in out
    assert "no validation yet" in out
    assert f"bundle {committed.bundles / 'listops' / 's4d-s5'}" in out


def test_csv_and_latex_carry_the_committed_runs(committed, capsys):
    assert cli.main(["table", "lra", "--format", "csv", "--bundles", str(committed.bundles),
                     "--tracking-uri", committed.uri]) == 0
    rows = [x for x in csv.DictReader(io.StringIO(capsys.readouterr().out)) if x["bundles"]]
    by_bundle = {Path(x["bundles"]).name: x for x in rows}
    assert set(by_bundle) == {"s4d-s3", "s4d-s5", "s4d-s6", "s4d-paper-s7"}
    assert (by_bundle["s4d-s3"]["epochs"], by_bundle["s4d-s3"]["finished"]) == ("2/2", "True")
    assert (by_bundle["s4d-s5"]["epochs"], by_bundle["s4d-s5"]["finished"]) == ("1/2", "False")
    assert by_bundle["s4d-s6"]["mean"] == "" and by_bundle["s4d-s6"]["epochs"] == "0/2"
    assert by_bundle["s4d-s3"]["data_draw"].startswith("generated data, generator seed 0, 640/128/128")
    assert by_bundle["s4d-s3"]["smoke_sized"] == "True" and by_bundle["s4d-s3"]["test_n"] == "128"
    paper = by_bundle["s4d-paper-s7"]
    assert paper["paper_row"] == "S4D-LegS (paper)" and float(paper["paper"]) == 60.47

    assert cli.main(["table", "lra", "--format", "latex", "--bundles", str(committed.bundles),
                     "--tracking-uri", committed.uri]) == 0
    body = capsys.readouterr().out
    lines = body.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Committed runs ("))
    assert lines[start - 1] == "\\midrule"  # a block of its own
    assert "2/2 epochs" in body and "1/2 epochs, unfinished" in body
    assert re.search(r"(?<!\\)[%_&#]", lines[start].split(" & ")[0]) is None  # escaped


def test_where_the_bundles_are_read_from(committed, monkeypatch, capsys):
    monkeypatch.setenv("SUITE_BUNDLES", str(committed.bundles))  # what results/reproduction is in a checkout
    assert cli.main(["table", "lra", "--tracking-uri", committed.uri]) == 0
    assert f"{SMOKE_ROW} [s4d-s5, unfinished]" in table_of(capsys.readouterr().out)
    assert cli.main(["table", "lra", "--no-bundles", "--tracking-uri", committed.uri]) == 0
    out = capsys.readouterr().out
    assert "Committed runs" not in out and "[s4d-s5, unfinished]" not in out
    assert cli.main(["table", "lra", "--bundles", str(committed.root / "nowhere")]) == 10
    err = capsys.readouterr().err
    assert "--bundles" in err and "no such folder" in err and "fix:" in err


def test_a_committed_run_imported_into_the_store_is_shown_once(committed, tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    r = run_suite("import", str(committed.bundles / "listops" / "s4d-s3"), "--tracking-uri", uri)
    assert r.returncode == 0, r.stderr[-3000:]
    assert cli.main(["table", "lra", "--bundles", str(committed.bundles), "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert SMOKE_ROW in table_of(out) and "0 run(s); 4 committed run(s)" in out
    assert "1 run(s) of the store are committed runs too (imported bundles): shown once" in out
    assert cli.main(["table", "lra", "--no-bundles", "--tracking-uri", uri]) == 0
    t = table_of(capsys.readouterr().out)
    assert t[SMOKE_ROW][0].endswith("(n=1, test 128, smoke-sized)")  # the store's copy, when bundles are left out


@pytest.mark.parametrize("fmt", ["markdown", "html"])
def test_the_report_draws_a_panel_per_committed_run(committed, tmp_path, fmt):
    out = tmp_path / ("report.md" if fmt == "markdown" else "report.html")
    assert cli.main(["report", "--format", fmt, "--out", str(out), "--bundles", str(committed.bundles),
                     "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}"]) == 0
    page = out.read_text()
    image = out.parent / "img" / "lra" / "committed--listops.png"
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "img/lra/committed--listops.png" in page
    assert "Committed runs: learning curves" in page
    s3 = committed.summary("s4d-s3")
    code = ("`{}`" if fmt == "markdown" else "<code>{}</code>")
    assert f"{code.format('s4d-s3')} (seed 3): 2/2 epochs; best validation " \
           f"{s3['best']['val/accuracy'] * 100:.2f} % at epoch {int(s3['best']['epoch'])}, test " \
           f"{s3['best']['test/accuracy'] * 100:.2f} % on 128 test samples, smoke-sized" in page
    assert f"{code.format('s4d-s5')} (seed 5): 1/2 epochs, unfinished;" in page
    assert f"{code.format('s4d-s6')} (seed 6): 0/2 epochs, unfinished; no epoch validated yet" in page
    assert "There are no runs in the store yet" in page and "4 committed run(s)" in page
    if fmt == "html":
        assert "`" not in page  # every code span of the captions and notes rendered as code

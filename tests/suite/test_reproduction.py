"""The reproduction workflow end to end, through the real `suite` command (docs/reproduction.md):

run with a time limit -> exit 75, run KILLED and resumable -> `suite export` -> `suite import` into a fresh store
-> `suite run --resume` there finishes -> `suite export` of the finished run -> `suite table` shows it, `suite eval`
of its best.ckpt gives the run's best/test numbers exactly. And the bad inputs of these commands: each a clean
error with the exit code of the README's table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from suite import bundle
from suite.tracking import store as tracking_store
from suite.tracking import uris
from suite.cli import main
from tests.conftest import ROOT, run_suite

SMOKE = ["run", "--task", "listops", "--model", "s4d", "--preset", "smoke", "--set", "trainer.progress_bar=false",
         "--set", "trainer.batch_size=16"]  # 640 training samples: 40 steps per epoch, 2 epochs
EPOCH_METRICS = ("train/loss", "train/accuracy", "val/loss", "val/accuracy", "test/loss", "test/accuracy")


def store(tmp_path: Path, name: str) -> str:
    return f"sqlite:///{tmp_path / name / 'mlflow.db'}"


def only_run(uri: str):
    client = MlflowClient(uri)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    return client, run


def histories(client: MlflowClient, run_id: str, prefix: str = "") -> dict[str, list[tuple[int, float]]]:
    keys = [k for k in client.get_run(run_id).data.metrics if k.startswith(prefix)]
    return {k: sorted((m.step, m.value) for m in client.get_metric_history(run_id, k)) for k in keys}


def test_time_limited_run_moves_through_a_bundle_to_another_store_and_finishes_there(tmp_path):
    # What an uninterrupted run logs: the reference for the metric count and the learning-rate schedule.
    reference = store(tmp_path, "reference")
    r = run_suite(*SMOKE, "--tracking-uri", reference)
    assert r.returncode == 0, r.stderr[-3000:]
    ref_client, ref_run = only_run(reference)

    # 1 s is over before training starts: the run stops at its first step boundary, saved and resumable.
    first = store(tmp_path, "first")
    r = run_suite(*SMOKE, "--tracking-uri", first, "--time-limit", "1s")
    assert r.returncode == 75, r.stderr[-3000:]
    client, run = only_run(first)
    run_id = run.info.run_id
    assert run.info.status == "KILLED" and "Traceback" not in r.stderr and "error:" not in r.stderr
    assert f"time limit 1s reached: run {run_id} stopped at step 1, checkpoint saved" in r.stderr
    assert f"continue it with: suite run --resume {run_id} --tracking-uri {first} --time-limit 1s" in r.stderr
    assert (tmp_path / "first" / "checkpoints" / run_id / "last.ckpt").is_file()

    # The unfinished run's bundle carries its resume point.
    moving = tmp_path / "bundles" / "moving"
    r = run_suite("export", run_id, str(moving), "--tracking-uri", first)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((moving / "summary.json").read_text())
    assert (summary["finished"], summary["status"], summary["epochs_done"]) == (False, "KILLED", 0)
    assert (moving / "last.ckpt").is_file() and (moving / "best.ckpt").exists() is False  # no validation yet

    # Imported into a fresh store: a new run with the same history; importing it again is refused.
    second = store(tmp_path, "second")
    r = run_suite("import", str(moving), "--tracking-uri", second)
    assert r.returncode == 0, r.stderr[-3000:]
    new_id = r.stdout.strip().splitlines()[-1]
    assert f"continue it with: suite run --resume {new_id} --tracking-uri {second}" in r.stderr
    client2, imported = only_run(second)
    assert imported.info.run_id == new_id and imported.info.status == "KILLED"
    assert imported.data.params == run.data.params
    assert imported.data.tags["suite.origin_run_id"] == run_id
    assert histories(client2, new_id) == histories(client, run_id)
    r = run_suite("import", str(moving), "--tracking-uri", second)
    assert r.returncode == 10 and f"run {run_id} is already in" in r.stderr and "Traceback" not in r.stderr

    # Resumed there, it finishes with every epoch once: the metric count and the learning rates of the
    # uninterrupted run (the scheduler continued at the saved step).
    r = run_suite("run", "--resume", new_id, "--tracking-uri", second)
    assert r.returncode == 0, r.stderr[-3000:]
    client2, finished = only_run(second)
    assert finished.info.status == "FINISHED"
    done = histories(client2, new_id)
    ref = histories(ref_client, ref_run.info.run_id)
    for key in EPOCH_METRICS:
        assert [s for s, _ in done[key]] == [s for s, _ in ref[key]], key
    assert {k: v for k, v in done.items() if k.startswith("lr-")} == {k: v for k, v in ref.items() if k.startswith("lr-")}

    # The finished run's bundle: no last.ckpt; its best.ckpt scores the run's best/test numbers exactly.
    final = tmp_path / "bundles" / "final"
    r = run_suite("export", new_id, str(final), "--tracking-uri", second)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((final / "summary.json").read_text())
    assert (summary["finished"], summary["epochs_done"], summary["origin_run_id"]) == (True, 2, run_id)
    assert not (final / "last.ckpt").exists()
    assert summary["best"]["test/accuracy"] == finished.data.metrics["best/test/accuracy"]
    assert summary["gpu_hours"] == 0.0 and summary["wall_hours"] > 0
    assert summary["git_commits"] == [summary["git_commit"]]  # two commands, one version of the code
    rows = (final / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("epoch,step,train/accuracy,train/loss,val/accuracy")
    assert torch.load(final / "best.ckpt", weights_only=True)["optimizer_states"] == []

    r = run_suite("table", "lra", "--tracking-uri", second)
    assert r.returncode == 0 and "s4d (s4 recipe, smoke preset, generated data" in r.stdout, r.stdout

    r = run_suite("eval", str(final), "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    scored = json.loads(r.stdout.strip().splitlines()[-1])
    assert scored["split"] == "test" and scored["test/n_samples"] == 128
    assert scored["test/accuracy"] == finished.data.metrics["best/test/accuracy"]
    assert scored["test/loss"] == finished.data.metrics["best/test/loss"]


def test_bad_inputs_are_clean_errors_with_their_exit_codes(tmp_path, capsys):
    r = run_suite("import", str(tmp_path / "nowhere"))
    assert r.returncode == 10 and "no bundle at" in r.stderr and "fix:" in r.stderr and "Traceback" not in r.stderr

    assert main(["export", "0123456789abcdef", str(tmp_path / "out")]) == 5  # unknown run id
    assert "no MLflow run '0123456789abcdef'" in capsys.readouterr().err

    # A bundle whose file changed after the export (size and checksum are recorded) is refused, naming the file.
    folder = tmp_path / "corrupt"
    folder.mkdir()
    for name, text in (("config.yaml", "task: listops\n"), ("metrics.jsonl", ""), ("params.json", "{}"),
                       ("tags.json", "{}")):
        (folder / name).write_text(text)
    files = {p.name: {"bytes": p.stat().st_size, "sha256": bundle._sha256(p)} for p in folder.iterdir()}
    (folder / "summary.json").write_text(json.dumps({"format": bundle.FORMAT, "run_id": "r1", "files": files}))
    (folder / "params.json").write_text('{"optim.lr": "9"}')
    assert main(["import", str(folder)]) == 10
    assert "params.json is not the file that was exported" in capsys.readouterr().err
    (folder / "summary.json").write_text("{not json")
    assert main(["import", str(folder)]) == 10
    assert "unreadable summary.json" in capsys.readouterr().err

    assert main(["eval", str(tmp_path / "missing.ckpt")]) == 10
    assert "no checkpoint at" in capsys.readouterr().err
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    assert main(["eval", str(tmp_path / "text.ckpt")]) == 10
    assert "is not a readable checkpoint" in capsys.readouterr().err
    # A checkpoint holding an object (here an argparse.Namespace) needs pickle: refused, never unpickled.
    import argparse

    torch.save({"state_dict": {}, "hyper_parameters": argparse.Namespace(lr=0.1)}, tmp_path / "pickled.ckpt")
    assert main(["eval", str(tmp_path / "pickled.ckpt")]) == 10
    err = capsys.readouterr().err
    assert "needs pickle" in err and "argparse.Namespace" in err and "fix:" in err

    assert main(["eval", str(folder)]) == 10  # a folder without best.ckpt
    assert "without best.ckpt" in capsys.readouterr().err
    # A committed bundle scored with --set changing the network: refused, naming the first tensor that does not fit.
    small = [f"data.generator.n_{split}=8" for split in ("train", "val", "test")]
    committed = ROOT / "results" / "reproduction" / "listops" / "liquid_s4_pb-s2222"
    assert main(["eval", str(committed), "--data-dir", str(tmp_path / "data"), "--set", "model.d_model=64",
                 *[a for kv in small for a in ("--set", kv)]]) == 10
    err = capsys.readouterr().err
    assert "does not fit the network its configuration describes" in err and "size mismatch for" in err
    assert "--set only data options" in err

    # An export into a folder that holds something else is refused; nothing there is touched.
    uri = uris.resolve_uri(None)
    run_id = tracking_store.start_run(uri, tracking_store.ensure_experiment(uri, "lra"), "stopped", {})
    tracking_store.set_terminated(uri, run_id, "KILLED")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert main(["export", run_id, str(folder)]) == 10
    assert "holds no bundle of run" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


@pytest.mark.parametrize("flag", ["--time-limit=8 minutes", "--time-limit=0s"])
def test_a_bad_time_limit_is_a_config_error(flag, capsys):
    assert main(["run", "--task", "listops", "--model", "s4d", "--preset", "smoke", flag, "--print-config"]) == 2
    assert "trainer.time_limit" in capsys.readouterr().err

"""Multi-process training through Lightning DDP: two CPU processes (gloo) through the real CLI make one MLflow
run, written by rank 0 only, with epoch metrics once per epoch and half the steps of a single process."""

from __future__ import annotations

import torch
from mlflow.tracking import MlflowClient

from suite.ranks import is_distributed, process_rank
from suite.config import TrainerConfig
from tests.conftest import run_suite

# ListOps smoke: 640 training samples, batch 32 -> 20 steps per epoch on one process, 10 per rank on two.
STEPS_PER_EPOCH_PER_RANK = 640 // 32 // 2


def test_ddp_on_two_cpu_processes_makes_one_run_written_by_rank_0(tmp_path):
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    r = run_suite("run", "--task", "listops", "--model", "s4d", "--preset", "smoke", "--accelerator", "cpu",
                  "--devices", "2", "--strategy", "ddp", "--set", "trainer.progress_bar=false", "--tracking-uri", uri,
                  timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    client = MlflowClient(uri)
    experiments = client.search_experiments()
    runs = client.search_runs([e.experiment_id for e in experiments])
    assert len(runs) == 1, [x.info.run_name for x in runs]  # rank 1 created no run of its own
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert r.stderr.count(f"run {run.info.run_id} (") == 1  # rank 1 printed no run line either
    run_id = run.info.run_id
    for key in ("train/loss", "train/accuracy", "val/loss", "val/accuracy", "test/loss", "test/accuracy"):
        steps = [m.step for m in client.get_metric_history(run_id, key)]
        assert len(steps) == 2 and steps == sorted(set(steps)), (key, steps)  # once per epoch, not once per rank
    step_losses = [m.step for m in client.get_metric_history(run_id, "train/loss_step")]
    assert len(step_losses) == len(set(step_losses))  # one writer
    last = torch.load(tmp_path / "store" / "checkpoints" / run_id / "last.ckpt", map_location="cpu",
                      weights_only=False)
    assert last["global_step"] == 2 * STEPS_PER_EPOCH_PER_RANK  # each rank saw half of every epoch
    assert "best/test/accuracy" in run.data.metrics


def test_rank_detection(monkeypatch):
    for var in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(var, raising=False)
    single, ddp = TrainerConfig(devices=1), TrainerConfig(devices=2, strategy="ddp")
    assert process_rank(single) == 0 and not is_distributed(single) and is_distributed(ddp)
    monkeypatch.setenv("LOCAL_RANK", "1")  # a rank Lightning started on this machine
    assert process_rank(ddp) == 1
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("NODE_RANK", "1")  # local rank 0 of the second machine
    assert process_rank(ddp) != 0
    monkeypatch.delenv("NODE_RANK")
    monkeypatch.setenv("SLURM_PROCID", "3")  # independent sweep workers under `srun -n 4` each own their runs
    assert process_rank(single) == 0 and process_rank(ddp) == 3
    # the default devices (auto) is one GPU (suite/gpus.py): a default run under srun owns its run too
    assert process_rank(TrainerConfig()) == 0 and not is_distributed(TrainerConfig())
    assert [is_distributed(TrainerConfig(devices=d)) for d in ("2", "0,3", "1,", -1, "-1")] == [True, True, False,
                                                                                                   True, True]

"""Time limits as a user writes them, the stop decision at a step boundary, the resume command a stopped run prints,
and checkpoints that load without pickle and stay small (docs/reproduction.md)."""

from __future__ import annotations

import pytest
import torch

from suite.train import timelimit
from suite.tracking import uris
from suite.config import resolve
from suite.errors import ConfigError
from suite.paths import RESULTS_DIR


@pytest.mark.parametrize("text, seconds", [("8m", 480), ("1h30m", 5400), ("90s", 90), ("1.5h", 5400), ("2h", 7200),
                                           ("45", 45), (600, 600), (12.5, 12.5), (" 1h 5s ", 3605)])
def test_durations_read_as_a_user_writes_them(text, seconds):
    assert timelimit.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "8x", "m", "-5m", "0s", "1h-2m", True, "1d"])
def test_a_bad_duration_is_refused_with_the_value(text):
    with pytest.raises(ValueError, match="trainer.time_limit"):
        timelimit.parse_duration(text)


def test_format_reads_back_as_the_same_duration():
    for seconds in (90, 480, 5400, 3605, 7200):
        assert timelimit.parse_duration(timelimit.format_duration(seconds)) == seconds
    assert timelimit.format_duration(5400) == "1h30m"


def test_the_config_field_is_validated_at_the_edge():
    cfg = resolve("listops", "s4d", "smoke", overrides=["trainer.time_limit=8m"])
    assert cfg.trainer.time_limit == "8m"
    assert resolve("listops", "s4d", "smoke", overrides=["trainer.time_limit=90"]).trainer.time_limit == 90
    with pytest.raises(ConfigError, match=r"trainer.time_limit = '8 minutes' is not a duration(.|\n)*fix: e.g. "
                                          r"--time-limit 8m"):
        resolve("listops", "s4d", "smoke", overrides=["trainer.time_limit=8 minutes"])


def test_the_run_stops_when_the_way_to_the_next_stop_would_eat_into_the_reserve():
    # 1 s steps, 0.5 s checkpoints, 20 s validation, 5 s reserve: going on needs 1.5 x 1.5 s + 5 s = 7.25 s ...
    assert not timelimit.stop_now(7.3, 1.0, 0.5, 20.0, next_is_last=False, reserve_s=5.0)
    assert timelimit.stop_now(7.2, 1.0, 0.5, 20.0, next_is_last=False, reserve_s=5.0)
    # ... and before an epoch's last step, that step, the validation and the epoch-end checkpoint: 37.25 s
    assert timelimit.stop_now(37.0, 1.0, 0.5, 20.0, next_is_last=True, reserve_s=5.0)
    assert not timelimit.stop_now(37.5, 1.0, 0.5, 20.0, next_is_last=True, reserve_s=5.0)
    assert timelimit.stop_now(-1.0, 0.0, 0.0, 0.0, next_is_last=False, reserve_s=0.0)  # past the limit


def test_the_reserve_grows_with_the_limit():
    assert timelimit.reserve(60) == timelimit.MIN_RESERVE_S
    assert timelimit.reserve(3600) == pytest.approx(72.0)


def test_the_deadline_counts_from_the_start_of_the_process():
    import time

    started = timelimit.process_started()
    assert started <= time.time()
    left = timelimit.deadline(3600) - time.monotonic()
    assert left <= 3600 - (time.time() - started) + 1.0


def test_the_resume_command_is_complete(tmp_path):
    other = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert timelimit.resume_command("abc", other) == f"suite run --resume abc --tracking-uri {other}"
    assert timelimit.resume_command("abc", other, "90m") == f"suite run --resume abc --tracking-uri {other} " \
                                                            "--time-limit 1h30m"
    default = f"sqlite:///{RESULTS_DIR / 'mlflow.db'}"
    assert timelimit.resume_command("abc", default) == "suite run --resume abc"
    server = "http://user:secret@trackhost:5000"
    assert "secret" not in timelimit.resume_command("abc", server) and "user:***@" in \
        timelimit.resume_command("abc", server)


@pytest.mark.parametrize("model", ["s4d", "s4"])  # the largest ListOps paper networks (816k parameters)
def test_a_listops_paper_checkpoint_loads_without_pickle_and_stays_under_16_mib(model, tmp_path):
    """The paper network, trained one step on a tiny generated set (short sequences, the paper's l_max) by
    `suite.train.run.train`: both checkpoints it writes load with weights_only=True and are under 16 MiB, last.ckpt
    with the optimizer state a resume needs."""
    from suite.train.record import run_checkpoint_dir
    from suite.train.run import train

    small_data = ["data.source=generated", "data.generator.n_train=4", "data.generator.n_val=2",
                  "data.generator.n_test=2", "data.generator.min_length=20", "data.generator.max_length=60",
                  "trainer.batch_size=4", "trainer.max_epochs=1", "trainer.progress_bar=false",
                  "trainer.accelerator=cpu"]
    cfg = resolve("listops", model, "paper", overrides=small_data)
    assert (cfg.model.d_model, cfg.model.n_layers, cfg.data.l_max) == (256, 6, 2048)  # the paper network
    run_id = train(cfg)
    folder = run_checkpoint_dir(uris.resolve_uri(None), run_id)
    for name in ("last.ckpt", "best.ckpt"):
        path = folder / name
        state = torch.load(path, map_location="cpu", weights_only=True)
        assert state["suite_config"]["model"]["d_model"] == 256
        assert path.stat().st_size < 16 * 2**20, (name, path.stat().st_size)
    assert torch.load(folder / "last.ckpt", weights_only=True)["optimizer_states"]  # what --resume continues


def test_sigusr1_asks_for_a_time_limit_stop(tmp_path, capsys):
    """SLURM's `--signal=USR1@90`: the job's time is nearly up. The run stops as at its time limit (exit 75)."""
    import os
    import signal

    from suite.train.guards import ResumePoint

    point = ResumePoint(tmp_path / "last.ckpt")
    with point.signal_handlers():
        os.kill(os.getpid(), signal.SIGUSR1)  # Python runs the handler before the next bytecode
        assert point.interrupt_requested and point.time_limit_reached
    assert "SIGUSR1: saving a checkpoint after this batch and stopping" in capsys.readouterr().err

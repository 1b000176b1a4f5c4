"""suite/mps.py: when several worker processes share one GPU through a CUDA MPS daemon, and when not.

The daemon itself needs an NVIDIA GPU and driver: `benchmarks/many_runs.py` exercises it on the GPU machine
(BENCHMARKS.md). Here: the decisions, on this machine as it is (no GPU here: the fallback)."""

from __future__ import annotations

import os
import shutil

import pytest

from suite import mps
from suite.errors import ConfigError


def test_one_worker_never_uses_mps_and_says_nothing(capsys):
    with mps.mps_for_workers(1, "auto") as how:
        assert how == "off"
    assert capsys.readouterr().err == ""


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU machine")
def test_without_a_gpu_auto_falls_back_with_one_note_and_on_is_an_error(capsys, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert mps.why_not(4) == "no GPU"
    with mps.mps_for_workers(4, "auto") as how:
        assert how == "off" and "CUDA_MPS_PIPE_DIRECTORY" not in os.environ
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "4 workers without CUDA MPS (no GPU)" in err
    with pytest.raises(ConfigError, match="no GPU"):
        with mps.mps_for_workers(4, "on"):
            pass


def test_visible_gpus_follows_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert mps.visible_gpus() == 2 and mps.why_not(4).startswith("2 GPUs visible: the runs are spread over them")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert mps.visible_gpus() == 0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert mps.visible_gpus() == 1


def test_off_and_unknown_modes(capsys):
    with mps.mps_for_workers(4, "off") as how:
        assert how == "off"
    assert capsys.readouterr().err == ""
    with pytest.raises(ConfigError, match="'sometimes' is not one of auto, on, off"):
        with mps.mps_for_workers(4, "sometimes"):
            pass


def test_a_running_daemon_of_the_user_is_used_and_left_alone(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    if shutil.which(mps.CONTROL) is None:
        pytest.skip(f"{mps.CONTROL} not installed")
    monkeypatch.setenv("CUDA_MPS_PIPE_DIRECTORY", str(tmp_path))
    with mps.mps_for_workers(2, "auto") as how:
        assert how == "running"
    assert os.environ["CUDA_MPS_PIPE_DIRECTORY"] == str(tmp_path)

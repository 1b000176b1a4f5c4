"""suite/gpus.py: one run trains on one GPU unless told otherwise; several runs spread over the GPUs."""

from __future__ import annotations

import pytest

from suite import gpus
from suite.train.datamodule import local_processes


@pytest.mark.parametrize("visible, ids", [
    ("0,1", ["0", "1"]),
    (" 2 , 3 ", ["2", "3"]),
    ("GPU-8f6c,GPU-0a1b", ["GPU-8f6c", "GPU-0a1b"]),  # UUIDs as nvidia-smi -L prints them
    ("", []),
    ("-1", []),
    ("0,-1,2", ["0"]),  # CUDA stops at the first invalid entry
    ("NoDevFiles", []),  # what SLURM sets when a job has no GPU
    ("0,0", []),  # a repeated entry hides every GPU
    ("3", ["3"]),
])
def test_visible_gpu_ids_read_cuda_visible_devices_as_cuda_does(monkeypatch, visible, ids):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert gpus.visible_gpu_ids() == ids


def test_auto_is_one_device_and_the_rest_is_as_given():
    """The paper recipes' batch is one GPU's: `trainer.devices: auto` must not become every GPU of the machine."""
    assert gpus.training_devices("auto") == 1
    assert [gpus.training_devices(d) for d in (1, 2, -1, "0,3", "1,")] == [1, 2, -1, "0,3", "1,"]
    assert [gpus.devices_per_machine(d) for d in ("auto", 1, 2, "2", "0,3", "1,", -1, "-1")] == [1, 1, 2, 2, 2, 1,
                                                                                                -1, -1]
    assert [local_processes(d) for d in ("auto", 1, 4, "2", "0,3", "1,")] == [1, 1, 4, 2, 2, 1]


def test_worker_slots_go_round_the_gpus_and_one_gpu_is_left_alone(monkeypatch):
    ids = ["4", "5", "6"]
    assert [gpus.worker_gpu(k, ids) for k in range(7)] == ["4", "5", "6", "4", "5", "6", "4"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6")
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    env = gpus.worker_env(4, ids)
    assert env["CUDA_VISIBLE_DEVICES"] == "5" and env["PATH"]  # the rest of the environment carries over
    assert "CUDA_DEVICE_ORDER" not in env  # the user's indices, in the user's order
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")  # ids from nvidia-smi: CUDA must count as it does
    assert gpus.worker_env(1, ["0", "1"])["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert gpus.worker_gpu(3, ["0"]) is None and gpus.worker_env(3, ["0"]) is None
    assert gpus.worker_env(0, []) is None


def test_the_spread_note_says_how_many_runs_share_a_gpu():
    assert gpus.spread_note(4, ["0", "1", "2", "3"]).endswith("over 4 GPUs (0,1,2,3): one per GPU")
    assert "up to 2 per GPU, taking turns" in gpus.spread_note(5, ["0", "1", "2", "3"])
    assert gpus.spread_note(1, ["0", "1"]) is None and gpus.spread_note(4, ["0"]) is None

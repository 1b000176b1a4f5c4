"""The training loop off the critical path (issue 12, target 2), checked on the CPU.

On a GPU the loop must never wait for it: no tensor value read by the host between two log points, and no MLflow
write on the training thread (suite/train/throughput.py, suite/tracking/lightning.py). Without a GPU the first is checked by
recording every read of a tensor value (`HostReads`), the second by what the store holds and when. Moving the
writes off the training thread must change nothing a user sees: the same metrics at the same steps with the same
values, nothing lost at a checkpoint, a SIGKILL or a SIGTERM.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import lightning.pytorch as L
import pytest
import torch
from lightning.pytorch.loggers import Logger
from mlflow.tracking import MlflowClient

from suite.tracking import store as tracking_store
from suite.tracking import uris
from suite.config import resolve
from suite.tracking.lightning import MetricWriter
from suite.train.run import train
from suite.train.throughput import HostReads
from tests.suite.test_resume import start_suite, stop_at_checkpoint, store  # noqa: F401  (start_suite is a fixture)

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "loop_smoke_history.json"
QUIET = ["trainer.progress_bar=false"]


class Recorder(Logger):
    """A second logger beside the run's MLflow one: every (key, step, value) Lightning and the callbacks log,
    recorded in the training thread at the moment they are logged."""

    def __init__(self):
        super().__init__()
        self.logged: dict[tuple[str, int], float] = {}

    name = "recorder"
    version = "0"

    def log_metrics(self, metrics, step=None):
        for k, v in metrics.items():
            self.logged[(k, step or 0)] = float(v)

    def log_hyperparams(self, params, *args, **kwargs):
        pass


class AddLogger(L.Callback):
    def __init__(self, logger: Logger):
        self.logger = logger

    def on_fit_start(self, trainer, pl_module):
        trainer.loggers = [*trainer.loggers, self.logger]


def test_a_smoke_run_logs_the_same_metrics_at_the_same_steps_with_the_values_computed():
    recorder = Recorder()
    run_id = train(resolve("listops", "s4d", "smoke", overrides=QUIET), callbacks=[AddLogger(recorder)])
    uri = uris.resolve_uri(None)
    client = MlflowClient(uri)
    assert client.get_run(run_id).info.status == "FINISHED"
    history = {k: v for k, v in tracking_store.metric_histories(uri, run_id).items() if not k.startswith("system/")}
    # the keys and steps a run logged when every write was made on the training thread (tests/golden)
    expected = json.loads(GOLDEN.read_text())["history"]
    if torch.cuda.is_available():  # on a GPU, the peak memory at every throughput point too (suite/train/throughput.py)
        expected["perf/gpu_mem_gib"] = expected["perf/samples_per_s"]
    assert {k: [s for s, _ in h] for k, h in history.items()} == expected
    # every value as computed in the training thread, none lost, none changed (best/* and data/* are logged by
    # suite.train.run directly, not through Lightning)
    stored = {(k, s): v for k, h in history.items() for s, v in h if not k.startswith(("best/", "data/"))}
    assert stored == recorder.logged


def test_training_steps_read_no_tensor_value_between_log_points():
    """Every read of a tensor value by the host during steps 2..18 (log points at steps 4, 9, 14: the smoke
    preset logs every 5 steps). On a GPU each would be a wait; the ones allowed here are of host memory there
    too: data loading (the sampler's indices, the collate's lengths: CPU tensors before the batch is moved),
    AdamW's step counters (kept on the host), and the divergence check, which reads the loss at once on a CPU
    and, on a GPU, keeps the first non-finite loss on the device and reads that record at the log points
    (suite/train/guards.py)."""
    reads = HostReads(2, 18)
    train(resolve("listops", "s4d", "smoke", overrides=[*QUIET, "trainer.max_epochs=1"]), callbacks=[reads])
    assert reads.steps == list(range(2, 19))
    deferred = torch.cuda.is_available()  # the guard's mode: DivergenceGuard(defer=None) defers on a GPU

    def guard_read(r):
        return any("suite/train/guards.py" in f for f in r["where"])

    def host_memory_anyway(r):
        return any("torch/utils/data/" in f or "torch/optim/" in f for f in r["where"]) or (
            r["what"] == "__float__" and "suite/train/guards.py" in r["where"][-1]
            and "on_train_batch_end" in r["where"][-1])

    device_reads = [r for r in reads.reads if not host_memory_anyway(r)]
    log_steps = {4, 9, 14}
    between = [r for r in device_reads if r["step"] not in log_steps]
    assert between == []
    # at a log point: Lightning turns the step loss into a number for the loggers, once; on a GPU the divergence
    # guard reads its (step, value) record, once
    at_log = [r for r in device_reads if r["step"] in log_steps]
    shown = "\n".join(f"step {r['step']}: {r['what']} {r['shape']} <- " + " <- ".join(reversed(r["where"]))
                      for r in at_log)
    for step in sorted(log_steps):
        here = [r for r in at_log if r["step"] == step]
        assert len([r for r in here if not guard_read(r)]) == 1, shown
        assert len([r for r in here if guard_read(r)]) == (1 if deferred else 0), shown
    # the allowed reads are there (the recorder sees what it should): without a GPU the guard reads the loss
    # at every step
    guard = [r for r in reads.reads if "suite/train/guards.py" in r["where"][-1] and r["what"] == "__float__"]
    assert sorted(r["step"] for r in guard) == ([] if deferred else list(range(2, 19)))


def test_metric_writes_run_in_a_background_thread_in_order_and_a_failed_write_fails_the_run():
    written: list[tuple[str, list]] = []
    release = threading.Event()

    def slow_write(batch):
        release.wait(10)  # a slow store
        written.append((threading.current_thread().name, list(batch)))

    writer = MetricWriter(slow_write)
    t0 = time.perf_counter()
    for i in range(2500):
        writer.put([i])
    assert time.perf_counter() - t0 < 1.0 and writer.pending > 0  # queued, not written: the caller goes on
    assert not writer.flush(timeout=0.05)  # still writing
    release.set()
    assert writer.flush(timeout=10)
    assert all(name == "suite-metrics" for name, _ in written)
    assert [i for _, batch in written for i in batch] == list(range(2500))  # in order, each once
    assert max(len(batch) for _, batch in written) <= 1000  # MLflow's log_batch limit

    def broken_write(batch):
        raise OSError("disk full")

    broken = MetricWriter(broken_write)
    broken.put([1])
    with pytest.raises(OSError, match="disk full"):
        broken.flush(timeout=10)
    writer.close()
    broken.close()


def test_a_run_killed_after_a_checkpoint_has_every_metric_up_to_it_and_resumes_to_the_full_history(
        tmp_path, start_suite):  # noqa: F811
    """SIGKILL right after a checkpoint: the metrics are flushed before each checkpoint is written, so the store
    holds every step's loss up to it; the resumed run then ends with the history of an uninterrupted run. The one
    exception, before the background writes as after: Lightning logs a step's own metrics just after the
    checkpoint taken at that step's end, and a kill in between loses them (the resume starts at the next step)."""
    uri, ckpt_root = store(tmp_path)
    args = ["run", "--task", "listops", "--model", "s4d", "--preset", "smoke", "--set", "trainer.batch_size=16",
            "--set", "trainer.checkpoint_every_n_steps=5", "--set", "trainer.progress_bar=false",
            "--set", "trainer.log_every_n_steps=1", "--max-epochs", "2", "--tracking-uri", uri]
    proc = start_suite(*args)
    run_id, at = stop_at_checkpoint(proc, ckpt_root, lambda step: 15 <= step <= 30)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    client = MlflowClient(uri)
    steps = {m.step for m in client.get_metric_history(run_id, "train/loss_step")}
    assert set(range(at - 1)) <= steps, (at, sorted(steps))  # every step before the checkpoint's own is stored
    assert client.get_run(run_id).info.status == "RUNNING"  # left by a process that is gone: resumable

    resumed = start_suite("run", "--resume", run_id, "--tracking-uri", uri)
    _, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, err[-3000:]
    whole = start_suite(*args)  # the same run, never interrupted
    _, err = whole.communicate(timeout=240)
    assert whole.returncode == 0, err[-3000:]
    (other,) = [r for r in client.search_runs([client.get_run(run_id).info.experiment_id]) if r.info.run_id != run_id]

    def keys_and_steps(rid):
        h = tracking_store.metric_histories(uri, rid)
        return {(k, s) for k, v in h.items() if not k.startswith("system/") for s, _ in v}

    resumed_history, whole_history = keys_and_steps(run_id), keys_and_steps(other.info.run_id)
    assert resumed_history <= whole_history  # nothing twice (a set would hide it: test_resume checks), nothing new
    assert {s for _, s in whole_history - resumed_history} <= {at - 1}, sorted(whole_history - resumed_history)


def test_sigterm_writes_every_queued_metric_before_the_run_is_marked_killed(tmp_path, start_suite):  # noqa: F811
    uri, ckpt_root = store(tmp_path)
    proc = start_suite("run", "--task", "listops", "--model", "s4d", "--preset", "smoke", "--set",
                       "trainer.batch_size=16", "--set", "trainer.checkpoint_every_n_steps=5", "--set",
                       "trainer.progress_bar=false", "--set", "trainer.log_every_n_steps=1", "--max-epochs", "2",
                       "--tracking-uri", uri)
    run_id, seen = stop_at_checkpoint(proc, ckpt_root, lambda step: 5 <= step <= 25)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    client = MlflowClient(uri)
    assert client.get_run(run_id).info.status == "KILLED"
    saved = torch.load(ckpt_root / run_id / "last.ckpt", map_location="cpu", weights_only=False)["global_step"]
    steps = {m.step for m in client.get_metric_history(run_id, "train/loss_step")}
    # every step before the stop's own, written before the run was marked KILLED (the stop comes at that step's
    # end, before Lightning logs it, as it always did)
    assert set(range(saved - 1)) <= steps, (saved, sorted(steps))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("model", ["s4d", "liquid_s4_pb"])
def test_graphed_evaluation_scores_what_the_eager_pass_scores(model):
    """Forward-only graphs (suite/train/eval_graphs.py) on variable-length batches, at the model's rate and at rate 2 (the
    8 kHz split), in inference mode as Lightning evaluates: the same outputs as the eager pass, also after the
    parameters changed (an optimizer step between two epochs) and for a longer batch that grows the kernels."""
    from suite.train.eval_graphs import GraphedEvaluation
    from tests.suite.test_cuda_graphs import VOCAB, network

    net = network(model, []).cuda().eval()
    graphed = GraphedEvaluation(net)
    g = torch.Generator().manual_seed(0)

    def batch(L):
        lengths = torch.randint(L // 2, L + 1, (5,), generator=g)
        lengths[0] = L
        x = torch.randint(3, VOCAB, (5, L), generator=g) * (torch.arange(L) < lengths[:, None])
        return x.cuda(), lengths.cuda()

    for step in range(3):
        for L, rate in [(100, None), (90, 2.0), (300, None)]:
            x, lengths = batch(L)
            with torch.inference_mode():
                want = net(x, lengths, rate)
                got = graphed(x, lengths, rate)
            rel = ((got - want).abs().max() / want.abs().max()).item()
            assert rel < 1e-5, (model, step, L, rate, rel)
        with torch.no_grad():  # an optimizer step: the graphs read the parameters in place
            for p in net.parameters():
                p.add_(0.01 * torch.randn_like(p))
    assert graphed.off is None and graphed.graphs

"""Evaluation splits in a real run: every scored sample is counted, and a diverged evaluation fails the run.

A run whose validation or test loss is NaN or infinite must end FAILED with the reason and the step
(tag suite.failure), never FINISHED with a chance-level "best" accuracy. The runs below are real smoke
runs; the divergence comes from a forward hook that multiplies the network's output by infinity while
one evaluation split is scored: what a numerically broken evaluation (e.g. an overflowing kernel at
another sampling rate) does to the logits. Training itself stays finite.
"""

from __future__ import annotations

import math

import lightning.pytorch as L
import pytest
from mlflow.tracking import MlflowClient

from suite.tracking import uris
from suite.config import resolve
from suite.errors import DivergenceError
from suite.train.run import train

SMOKE = ["trainer.progress_bar=false", "trainer.max_epochs=1", "trainer.limit_train_batches=3"]


def _lra_runs(uri: str):
    client = MlflowClient(uri)
    return client, client.search_runs([client.get_experiment_by_name("lra").experiment_id])


class InfiniteOutputOn(L.Callback):
    """While the evaluation dataloader `split_index` is scored (0 = val, 1 = test), the network's output is
    multiplied by infinity (a forward hook on the real network; the module under test is untouched)."""

    def __init__(self, split_index: int):
        self.split_index = split_index
        self.active = False
        self.hooked = 0

    def on_fit_start(self, trainer, pl_module):
        pl_module.model.register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        if self.active and not module.training:
            self.hooked += 1
            return output * math.inf
        return output

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.active = dataloader_idx == self.split_index

    def on_validation_end(self, trainer, pl_module):
        self.active = False


@pytest.mark.parametrize("split_index, split_name", [(0, "validation"), (1, "test")])
def test_a_diverged_evaluation_fails_the_run_with_the_reason_and_step(split_index, split_name):
    cfg = resolve("listops", "s4d", "smoke", overrides=SMOKE)
    hook = InfiniteOutputOn(split_index)
    with pytest.raises(DivergenceError, match=f"non-finite {split_name} loss"):
        train(cfg, callbacks=[hook])
    assert hook.hooked > 0  # the plant really reached the scored split
    client, (run,) = _lra_runs(uris.resolve_uri(None))
    assert run.info.status == "FAILED"  # not FINISHED with a "best" accuracy of a broken evaluation
    failure = run.data.tags["suite.failure"]
    assert failure.startswith(f"divergence: non-finite {split_name} loss (nan) at step 3 (epoch 0)"), failure
    assert not any(k.startswith("best/") for k in run.data.metrics)


def test_every_evaluation_split_logs_its_number_of_scored_samples():
    # listops smoke: 128 validation and 128 test samples (generator n_val / n_test); batch 32
    cfg = resolve("listops", "s4d", "smoke", overrides=SMOKE)
    train(cfg)
    _, (run,) = _lra_runs(uris.resolve_uri(None))
    assert run.info.status == "FINISHED"
    m = run.data.metrics
    assert (m["val/n_samples"], m["test/n_samples"]) == (128, 128)

    cfg = resolve("listops", "s4d", "smoke", overrides=[*SMOKE, "trainer.limit_val_batches=2"])
    train(cfg)
    _, runs = _lra_runs(uris.resolve_uri(None))
    assert runs[0].data.metrics["test/n_samples"] == 2 * 32  # what was scored, not the size of the split

"""The epoch metrics (suite/train/epoch_metrics.py): what each logged number means, checked against its definition
computed over the whole epoch at once."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from suite.train.epoch_metrics import HIGHER_IS_BETTER, METRIC, EpochMeter


def _batches(sizes, classes=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    for n in sizes:
        if classes:
            yield torch.randn(n, classes, generator=g), torch.randint(0, classes, (n,), generator=g)
        else:
            yield torch.randn(n, generator=g), torch.randn(n, generator=g)


def test_classification_epoch_is_the_sample_weighted_loss_and_the_micro_accuracy():
    meter = EpochMeter("classification")
    outs, ys = [], []
    for out, y in _batches([12, 12, 5], classes=10):  # a short last batch weighs by its size
        meter.update(F.cross_entropy(out, y), out, y)
        outs.append(out)
        ys.append(y)
    out, y = torch.cat(outs), torch.cat(ys)
    got = meter.compute()
    assert got["n_samples"] == 29
    assert got["loss"] == pytest.approx(F.cross_entropy(out, y).item(), rel=1e-6)
    assert got["accuracy"] == pytest.approx((out.argmax(-1) == y).float().mean().item())


def test_regression_epoch_is_the_root_of_the_mean_squared_error():
    meter = EpochMeter("regression")
    outs, ys = [], []
    for out, y in _batches([8, 3]):
        meter.update(F.mse_loss(out, y), out, y)
        outs.append(out)
        ys.append(y)
    out, y = torch.cat(outs), torch.cat(ys)
    got = meter.compute()
    assert set(got) == {"loss", "rmse", "n_samples"}
    assert got["rmse"] == pytest.approx(math.sqrt(F.mse_loss(out, y).item()), rel=1e-6)
    assert got["loss"] == pytest.approx(F.mse_loss(out, y).item(), rel=1e-6)


def test_reset_starts_a_new_epoch_and_an_empty_epoch_logs_nothing():
    meter = EpochMeter("classification")
    assert meter.compute() == {}
    out, y = next(_batches([4], classes=3))
    meter.update(F.cross_entropy(out, y), out, y)
    meter.reset()
    assert meter.compute() == {}
    meter.update(F.cross_entropy(out, y), out, y)
    assert meter.compute()["n_samples"] == 4


def test_the_sums_are_reduced_over_ranks_before_the_ratios():
    """Two ranks' sums added (what the strategy's all-reduce does), then divided: the accuracy of all samples."""
    a, b = EpochMeter("classification"), EpochMeter("classification")
    (oa, ya), (ob, yb) = _batches([6, 2], classes=4, seed=3)
    a.update(F.cross_entropy(oa, ya), oa, ya)
    b.update(F.cross_entropy(ob, yb), ob, yb)
    got = a.compute(lambda t: t + b.sums)
    out, y = torch.cat([oa, ob]), torch.cat([ya, yb])
    assert got["n_samples"] == 8
    assert got["accuracy"] == pytest.approx((out.argmax(-1) == y).float().mean().item())


def test_one_metric_per_problem_and_its_direction():
    assert METRIC == {"classification": "accuracy", "regression": "rmse"}
    assert HIGHER_IS_BETTER["accuracy"] and not HIGHER_IS_BETTER["rmse"]
    with pytest.raises(ValueError, match="unknown problem 'ranking'"):
        EpochMeter("ranking")


def test_a_checkpoint_taken_mid_epoch_carries_the_training_sums_to_the_resumed_epoch():
    """The resumed epoch's train/loss and train/accuracy cover the whole epoch, the steps before the stop too; the
    checkpoint holds them as plain floats (it must load with weights_only=True)."""
    from suite.config import OptimConfig
    from suite.train.lightning_module import SequenceModule

    before = SequenceModule(torch.nn.Linear(3, 4), "classification", OptimConfig(), ["val"])
    out, y = next(_batches([10], classes=4))
    before.meters["train"].update(F.cross_entropy(out, y), out, y)
    checkpoint: dict = {}
    before.on_save_checkpoint(checkpoint)
    assert all(isinstance(v, float) for v in checkpoint["suite_train_epoch_sums"])

    after = SequenceModule(torch.nn.Linear(3, 4), "classification", OptimConfig(), ["val"])
    after.on_load_checkpoint(checkpoint)
    after.on_train_start()  # the resumed epoch goes on with the saved sums
    assert after.meters["train"].compute() == before.meters["train"].compute()
    after.on_train_epoch_start()  # the next epoch starts from zero
    assert after.meters["train"].compute() == {}


def full_length_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int = 4) -> torch.utils.data.DataLoader:
    """(x, y, lengths=None) batches in order, as a task's collate gives them when every sequence has full length."""
    def collate(b):
        return torch.stack([s[0] for s in b]), torch.stack([s[1] for s in b]), None

    return torch.utils.data.DataLoader(list(zip(x, y)), batch_size=batch_size, collate_fn=collate)


class _Pooled(torch.nn.Module):
    """The smallest network with the suite's signature: (B, L, 3) -> (B, 4)."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 4)

    def forward(self, x, lengths=None, rate=None):
        return self.linear(x.mean(1))


def test_in_a_real_fit_the_epoch_metrics_reach_the_callbacks_and_only_a_mid_epoch_checkpoint_keeps_the_sums(tmp_path):
    """Through Lightning itself: the callbacks' on_train_epoch_end (where the progress line of the epoch is written)
    sees train/loss and train/accuracy; a checkpoint taken after the second of four batches carries the sums of
    those two batches, one taken at the end of the epoch none (the resumed run starts the next epoch from zero)."""
    import lightning.pytorch as L

    from suite.config import OptimConfig
    from suite.train.lightning_module import SequenceModule

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 5, 3, generator=g), torch.randint(0, 4, (16,), generator=g)
    batches = full_length_batches(x, y)
    seen, saved = {}, {}

    class Watch(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx == 1:
                trainer.save_checkpoint(tmp_path / "mid.ckpt")

        def on_train_epoch_end(self, trainer, pl_module):
            seen.update({k: float(v) for k, v in trainer.callback_metrics.items()})
            trainer.save_checkpoint(tmp_path / "end.ckpt")

    module = SequenceModule(_Pooled(), "classification", OptimConfig(), ["val"])
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[Watch()])
    trainer.fit(module, train_dataloaders=batches)
    assert {"train/loss", "train/accuracy"} <= set(seen)
    for name in ("mid", "end"):
        saved[name] = torch.load(tmp_path / f"{name}.ckpt", weights_only=True)
    assert "suite_train_epoch_sums" not in saved["end"]
    loss_sum, correct, n = saved["mid"]["suite_train_epoch_sums"]
    assert n == 8 and 0 <= correct <= 8 and loss_sum > 0


def test_a_run_resumed_from_a_mid_epoch_checkpoint_counts_every_sample_of_each_epoch_once(tmp_path):
    """Through Lightning's own resume (fit with ckpt_path): the resumed epoch counts the samples before the stop
    (from the checkpoint) and after it, the next epoch only its own: 16 and 16 for 4 batches of 4. (Lightning does
    not call on_train_epoch_start for the epoch it resumes: the sums come back in on_train_start.)"""
    import lightning.pytorch as L

    from suite.config import OptimConfig
    from suite.train.lightning_module import SequenceModule

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 5, 3, generator=g), torch.randint(0, 4, (16,), generator=g)

    class StopMidEpoch(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx == 1:
                trainer.save_checkpoint(tmp_path / "mid.ckpt")
                trainer.should_stop = True  # stops after this batch, as a time limit does

    counted = []

    class Count(L.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            counted.append(int(pl_module.meters["train"].sums[2]))

    def fit(callback, ckpt_path=None):
        module = SequenceModule(_Pooled(), "classification", OptimConfig(), ["val"])
        trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, callbacks=[callback])
        trainer.fit(module, train_dataloaders=full_length_batches(x, y), ckpt_path=ckpt_path)

    fit(StopMidEpoch())
    counted.clear()
    fit(Count(), ckpt_path=tmp_path / "mid.ckpt")
    assert counted == [16, 16]


def test_fused_adamw_on_a_gpu_except_where_mixed_precision_clips_the_gradients():
    from suite.train.optim import use_fused

    assert use_fused(True, "32-true", 1.0) and use_fused(True, "bf16-mixed", 0.0)
    assert not use_fused(True, "bf16-mixed", 1.0) and not use_fused(True, "16-mixed", 0.5)
    assert not use_fused(False, "32-true", 0.0)

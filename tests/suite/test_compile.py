"""trainer.compile (suite/train/lightning_module.py): the training network through torch.compile gives the eager
network's numbers, and the checkpoint does not change (the compiled wrapper is not a submodule)."""

from __future__ import annotations

import types

import lightning.pytorch as L
import pytest
import torch

from suite import config
from suite.train.build import build_model
from suite.train.lightning_module import SequenceModule
from tests.suite.test_epoch_metrics import full_length_batches

VOCAB, CLASSES = 18, 10


def _trained(compile_network: bool, batches) -> SequenceModule:
    cfg = config.resolve("listops", "s4d", "smoke", overrides=["model.dropout=0"])  # inductor draws its own dropout
    shapes = types.SimpleNamespace(d_input=VOCAB, d_output=CLASSES, encoder="embedding")
    torch.manual_seed(0)
    module = SequenceModule(build_model(cfg, shapes), "classification", cfg.optim, ["val"],
                            compile_network=compile_network)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(module, train_dataloaders=batches)
    return module


def test_compiled_training_steps_give_the_eager_parameters_and_the_same_checkpoint_keys():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randint(0, VOCAB, (12, 48), generator=g), torch.randint(0, CLASSES, (12,), generator=g)
    batches = full_length_batches(x, y)  # 3 steps of one shape
    eager, compiled = _trained(False, batches), _trained(True, batches)
    assert compiled._compiled and not eager._compiled
    assert compiled.state_dict().keys() == eager.state_dict().keys()
    # fused kernels add in another order: after 3 AdamW steps a parameter differs by ~1e-6 (float32 rounding)
    for (name, a), b in zip(eager.model.named_parameters(), compiled.model.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=lambda m: f"{name}: {m}")
    assert any(not torch.equal(a, b) for a, b in zip(eager.model.parameters(), _fresh_parameters()))  # it trained


def _fresh_parameters():
    cfg = config.resolve("listops", "s4d", "smoke", overrides=["model.dropout=0"])
    torch.manual_seed(0)
    return list(build_model(cfg, types.SimpleNamespace(d_input=VOCAB, d_output=CLASSES,
                                                        encoder="embedding")).parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="trainer.compile inside CUDA graphs needs a GPU")
@pytest.mark.parametrize("model", ["s4d", "s4", "liquid_s4_pb", "liquid_s4_kb"])
def test_compiled_graphed_step_matches_the_eager_step_on_the_gpu(model):
    """trainer.compile on one GPU: torch.compile inside the CUDA graphs of two length buckets, against the eager
    step on the collated batch: outputs and every gradient within 1e-4 of the largest value (fp32, no TF32)."""
    from suite.train.cuda_graphs import GraphedTraining
    from tests.suite.test_cuda_graphs import gpu_batch, gpu_network

    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    net = gpu_network(model, [])
    graphed = GraphedTraining(torch.compile(net, dynamic=False))
    gen = torch.Generator().manual_seed(1)
    for L in (300, 700):
        x, y, lengths = gpu_batch("tokens", L, gen)
        results = []
        for forward in (lambda: graphed(x, lengths), lambda: net(x, lengths)):
            net.zero_grad(set_to_none=True)
            out = forward()
            torch.nn.functional.cross_entropy(out, y).backward()
            results.append([out.detach()] + [p.grad.clone() for p in net.parameters()])
        for a, b in zip(*results):
            assert ((a - b).abs().max() / b.abs().max().clamp(min=1e-12)).item() < 1e-4

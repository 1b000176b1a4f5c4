"""The whole training step in CUDA graphs (`trainer.cuda_graph_scope: step`, suite/train/step_graphs.py).

On the CPU: the step as the module runs it (Lightning's backward, zero_grad and clipping skipped, the optimizer's
step only running its closure) trains exactly as Lightning's own loop does, through real fits; AdamW's state is
created as AdamW's first step creates it. On a GPU: the graphed step against the eager step, batch by batch over
two length buckets and back: outputs, loss, the clipped gradients, parameters and BatchNorm's statistics.
"""

from __future__ import annotations

import dataclasses
import types

import lightning.pytorch as L
import pytest
import torch
import torch.nn.functional as F

from suite import config
from suite.train import step_graphs
from suite.train.build import build_model
from suite.train.lightning_module import SequenceModule
from suite.train.optim import AdamW, make_optimizer
from suite.train.step_graphs import GraphedStep, init_adam_state
from tests.suite.test_compile import _fresh_parameters
from tests.suite.test_epoch_metrics import full_length_batches

VOCAB, CLASSES = 18, 10


class EagerWholeStep(GraphedStep):
    """The module's whole-step path without the capture (GraphedStep.eager: what runs beyond MAX_GRAPHS)."""

    def __call__(self, x, y, lengths):
        return self.eager(x, y, lengths)


class WholeStepOnCpu(L.Callback):
    def on_train_start(self, trainer, pl_module):
        optimizer = pl_module.optimizers().optimizer
        pl_module._step = EagerWholeStep(pl_module.model, pl_module.model, optimizer, pl_module._loss,
                                         grad_clip=pl_module.optim_cfg.grad_clip)
        optimizer.update_in_graph = True


def _fit(whole_step: bool, batches, grad_clip: float) -> tuple[SequenceModule, L.Trainer]:
    cfg = config.resolve("listops", "s4d", "smoke", overrides=["optim.warmup_steps=2"])
    cfg = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, grad_clip=grad_clip))
    shapes = types.SimpleNamespace(d_input=VOCAB, d_output=CLASSES, encoder="embedding")
    torch.manual_seed(0)
    module = SequenceModule(build_model(cfg, shapes), "classification", cfg.optim, ["val"])
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        gradient_clip_val=grad_clip or None, callbacks=[WholeStepOnCpu()] if whole_step else [])
    trainer.fit(module, train_dataloaders=batches)
    return module, trainer


@pytest.mark.parametrize("grad_clip", [0.0, 0.05])
def test_the_step_made_by_the_module_trains_as_lightnings_own_loop(grad_clip):
    """Two epochs of three steps, dropout on, warm-up and cosine schedule, with and without clipping: the same
    parameters, AdamW state, learning rates and step count, bit for bit. A second update, a skipped or doubled
    clipping or a lost scheduler step would each show."""
    g = torch.Generator().manual_seed(1)
    x, y = torch.randint(0, VOCAB, (12, 48), generator=g), torch.randint(0, CLASSES, (12,), generator=g)
    batches = full_length_batches(x, y)
    (lightning, t1), (whole, t2) = _fit(False, batches, grad_clip), _fit(True, batches, grad_clip)
    assert whole._step is not None and lightning._step is None
    assert t1.global_step == t2.global_step == 6
    for (name, a), b in zip(lightning.model.named_parameters(), whole.model.parameters()):
        assert torch.equal(a, b), name
    for a, b in zip(lightning.model.buffers(), whole.model.buffers()):
        assert torch.equal(a, b)
    o1, o2 = t1.optimizers[0], t2.optimizers[0]
    assert [g["lr"] for g in o1.param_groups] == [g["lr"] for g in o2.param_groups]
    for p1, p2 in zip(lightning.model.parameters(), whole.model.parameters()):
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(o1.state[p1][key], o2.state[p2][key]), key
    assert all(isinstance(g["lr"], float) for g in o2.param_groups)  # what checkpoints and the lr monitor see


def test_the_state_made_before_a_capture_is_the_state_adamw_makes_at_its_first_step():
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(3, 4)), torch.nn.Parameter(torch.randn(5))]
    for p in params:
        p.grad = torch.randn_like(p)
    first, ours = AdamW(params, lr=0.1, fused=True), AdamW(params, lr=0.1, fused=True)
    torch.optim.AdamW.step(first)
    init_adam_state(ours, params)
    for p in params:
        assert first.state[p].keys() == ours.state[p].keys()
        for key, value in first.state[p].items():
            made = ours.state[p][key]
            assert (made.dtype, made.shape, made.device) == (value.dtype, value.shape, value.device), key
        assert ours.state[p]["step"].item() == 0 and not ours.state[p]["exp_avg"].any()


def test_a_checkpoint_of_foreach_adamw_resumes_as_fused_adamw_with_the_same_state():
    """Run 1 of the ListOps reproduction began with foreach AdamW (step counters on the host); resumed by today's
    suite, whose AdamW is fused on a GPU, it kept foreach from the checkpoint and its captured update failed."""
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(4))
    p.grad = torch.randn(4)
    old = AdamW([p], lr=0.1, foreach=True)
    old.step()
    assert old.state[p]["step"].device.type == "cpu"
    new = AdamW([p], lr=0.5, fused=True)
    new.load_state_dict(old.state_dict())
    group = new.param_groups[0]
    assert group["fused"] is True and group["foreach"] is None and group["lr"] == 0.1  # the flags stay, the lr loads
    assert new.state[p]["step"].dtype == torch.float32 and new.state[p]["step"].item() == 1
    torch.testing.assert_close(new.state[p]["exp_avg"], old.state[p]["exp_avg"])
    if torch.cuda.is_available():  # a host step counter is moved to the device before a capture
        q = torch.nn.Parameter(torch.randn(3, device="cuda"))
        opt = AdamW([q], lr=0.1, fused=True)
        opt.state[q] = {"step": torch.tensor(5.0), "exp_avg": torch.zeros_like(q), "exp_avg_sq": torch.zeros_like(q)}
        init_adam_state(opt, [q])
        assert opt.state[q]["step"].device == q.device and opt.state[q]["step"].item() == 5


def test_a_state_with_another_number_of_groups_is_refused_as_torch_refuses_it():
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(3))
    two = AdamW([{"params": [a]}, {"params": [b]}], lr=0.1)
    with pytest.raises(ValueError, match="different number of parameter groups"):
        AdamW([a, b], lr=0.1).load_state_dict(two.state_dict())


def test_a_change_of_the_hyperparameters_a_capture_holds_drops_the_graphs():
    """The learning rate is copied into the graphs at every step; betas, eps and weight decay are constants of a
    captured update: changing one drops the graphs (recaptured at the next step)."""
    net = torch.nn.Linear(3, 2)
    opt = AdamW(net.parameters(), lr=0.1)
    step = GraphedStep(net, net, opt, F.cross_entropy)
    step.graphs["a shape"] = object()
    opt.param_groups[0]["lr"] = 0.05  # the schedule's business: kept
    step._drop_if_retuned()
    assert step.graphs
    opt.param_groups[0]["weight_decay"] = 0.5
    step._drop_if_retuned()
    assert not step.graphs


def test_the_suite_adamw_runs_only_the_closure_when_the_graph_updates():
    p = torch.nn.Parameter(torch.ones(2))
    p.grad = torch.ones(2)
    opt = AdamW([p], lr=0.1)
    opt.update_in_graph = True
    assert opt.step(lambda: 7) == 7
    assert torch.equal(p, torch.ones(2)) and not opt.state
    opt.update_in_graph = False
    opt.step()
    assert not torch.equal(p, torch.ones(2))
    assert type(opt).__name__ == "AdamW"  # the learning-rate monitor's metric names (lr-AdamW/...) stay


# ---------------------------------------------------------------------------------------------------------------
# On a GPU


def _gpu_pair(model: str, overrides: list[str], kind: str, grad_clip: float):
    from tests.suite.test_cuda_graphs import gpu_network

    regression = kind == "regression"
    shapes = dict(d_input=2 if regression else VOCAB, d_output=1 if regression else (2 if kind == "pairs" else CLASSES),
                  encoder="linear" if regression else "embedding")
    optim = config.resolve("listops", model, "smoke", overrides=["optim.warmup_steps=2"]).optim
    optim = dataclasses.replace(optim, grad_clip=grad_clip)
    pairs = []
    for _ in range(2):
        net = gpu_network(model, overrides, **shapes)
        opt, sched, _ = make_optimizer(net, optim, total_steps=100)
        pairs.append((net, opt, sched))
    return pairs


def _loss(regression: bool):
    return (lambda out, y: F.mse_loss(out.squeeze(-1), y)) if regression else F.cross_entropy


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("max_graphs", [8, 1])
@pytest.mark.parametrize("case", [
    ("s4d", [], "tokens"), ("s4", [], "tokens"), ("liquid_s4_pb", [], "tokens"), ("liquid_s4_kb", [], "tokens"),
    ("liquid_s4_kb", ["model.liquid_mode=exact"], "tokens"), ("liquid_s4_pb", ["model.bidirectional=true"], "tokens"),
    ("s4d", ["model.decoder=retrieval"], "pairs"), ("liquid_s4_kb", ["model.norm=layer"], "regression"),
], ids=str)
def test_the_graphed_whole_step_is_the_eager_step_on_the_gpu(case, max_graphs, monkeypatch):
    """Four steps over two length buckets and back (max_graphs 1: the second bucket trains eagerly beyond
    MAX_GRAPHS), gradients clipped: outputs, loss, the clipped gradients, every parameter and BatchNorm's
    statistics after each step within 1e-4 of the largest value (fp32, no TF32); the AdamW state counts 4 steps."""
    from tests.suite.test_cuda_graphs import gpu_batch

    monkeypatch.setattr(step_graphs, "MAX_GRAPHS", max_graphs)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    model, overrides, kind = case
    regression = kind == "regression"
    loss_fn = _loss(regression)
    (net_g, opt_g, sched_g), (net_e, opt_e, sched_e) = _gpu_pair(model, overrides, kind, grad_clip=0.05)
    step = GraphedStep(net_g, net_g, opt_g, loss_fn, grad_clip=0.05)
    gen = torch.Generator().manual_seed(1)

    def close(a, b, what):
        err = ((a.float() - b.float()).abs().max() / b.float().abs().max().clamp(min=1e-12)).item()
        assert err < 1e-4, f"{what}: {err:.2e}"

    for i, L in enumerate((300, 700, 290, 650) if not regression else (512, 512, 512, 512)):
        x, y, lengths = gpu_batch(kind, L, gen)
        out_g, loss_g = step(x, y, lengths)
        grads_g = None if step.last is None else [None if g is None else g.clone() for g in step.last.grads]
        sched_g.step()
        opt_e.zero_grad(set_to_none=True)
        out_e = net_e(x, lengths)
        loss_e = loss_fn(out_e, y)
        loss_e.backward()
        torch.nn.utils.clip_grad_norm_(net_e.parameters(), 0.05)
        opt_e.step()
        sched_e.step()
        close(out_g, out_e.detach(), f"step {i} output")
        close(loss_g, loss_e.detach(), f"step {i} loss")
        if grads_g is not None:
            for (name, p), g in zip(net_e.named_parameters(), grads_g):
                assert (g is None) == (p.grad is None), name
                if g is not None:
                    close(g, p.grad, f"step {i} gradient of {name}")
        for (name, a), b in zip(net_g.named_parameters(), net_e.parameters()):
            close(a.detach(), b.detach(), f"step {i} {name}")
        for (name, a), b in zip(net_g.named_buffers(), net_e.buffers()):
            if a.is_floating_point():
                close(a, b, f"step {i} buffer {name}")
    assert len(step.graphs) == (min(2, max_graphs) if not regression else 1)
    assert all(s["step"].item() == 4 for s in opt_g.state.values())
    assert all(isinstance(g["lr"], float) and not g["capturable"] for g in opt_g.param_groups)


def _fit_on_gpu(scope: str, batches) -> SequenceModule:
    cfg = config.resolve("listops", "s4d", "smoke", overrides=["optim.warmup_steps=2", "model.dropout=0.0"])
    cfg = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, grad_clip=0.05))
    shapes = types.SimpleNamespace(d_input=VOCAB, d_output=CLASSES, encoder="embedding")
    torch.manual_seed(0)
    module = SequenceModule(build_model(cfg, shapes), "classification", cfg.optim, ["val"], cuda_graph=True,
                            cuda_graph_scope=scope)
    trainer = L.Trainer(max_epochs=2, accelerator="gpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        gradient_clip_val=0.05)
    trainer.fit(module, train_dataloaders=batches)
    return module


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_a_fit_with_the_step_in_graphs_trains_as_the_network_graphs_do_on_the_gpu():
    """Through Lightning on one GPU (six steps, clipping, warm-up and cosine): scope step, whose update runs in the
    graph, ends with the parameters of scope network, whose update Lightning makes, within 1e-4 of each largest."""
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    g = torch.Generator().manual_seed(1)
    x, y = torch.randint(0, VOCAB, (12, 48), generator=g), torch.randint(0, CLASSES, (12,), generator=g)
    batches = full_length_batches(x, y)
    step, network = _fit_on_gpu("step", batches), _fit_on_gpu("network", batches)
    assert step._step is not None and step._step.graphs and network._step is None
    for (name, a), b in zip(network.model.named_parameters(), step.model.parameters()):
        err = ((a - b).abs().max() / a.abs().max().clamp(min=1e-12)).item()
        assert err < 1e-4, f"{name}: {err:.2e}"
    fresh = _fresh_parameters()  # the network before training, the same seed
    assert any(not torch.equal(a.cpu(), b) for a, b in zip(step.model.parameters(), fresh))  # it trained

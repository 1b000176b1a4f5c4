"""AdamW with SSM parameter groups, and the warm-up + cosine schedule (docs/models.md §5;
the schedule: docs/recipes.md, "The learning-rate schedule")."""

from __future__ import annotations

import math

import torch
from torch import nn

from models.ssm import ConvSSM


def _backbone_bias_and_norm(model: nn.Module) -> set[int]:
    """ids of the backbone's biases and normalisation parameters (state-spaces/s4's optimizer_param_grouping:
    the residual blocks and the final norm; not the encoder or the decoder, which that code keeps apart)."""
    backbone = [m for name in ("blocks", "final_norm") if isinstance(m := getattr(model, name, None), nn.Module)]
    norms = (nn.BatchNorm1d, nn.LayerNorm, nn.GroupNorm)
    out: set[int] = set()
    for part in backbone:
        for module in part.modules():
            for name, p in module.named_parameters(recurse=False):
                if name.endswith("bias") or isinstance(module, norms):
                    out.add(id(p))
    return out


def param_groups(model: nn.Module, lr: float, weight_decay: float, dt_lr: float | None, ssm_lr: float | None,
                 decay_bias_and_norm: bool = True):
    """Three groups: everything else (lr, weight_decay); log dt (dt_lr, no decay); A and B (ssm_lr, no decay).
    With `decay_bias_and_norm` False, a fourth: the backbone's biases and norms (lr, no decay).

    C and D, as in the reference, take the global learning rate and weight decay.
    """
    roles: dict[int, str] = {}
    for module in model.modules():
        if isinstance(module, ConvSSM):
            for role, p in module.param_roles():
                roles[id(p)] = role
    if not decay_bias_and_norm:
        roles.update({i: "no_decay" for i in _backbone_bias_and_norm(model) if i not in roles})
    groups = {
        "default": {"params": [], "lr": lr, "weight_decay": weight_decay},
        "no_decay": {"params": [], "lr": lr, "weight_decay": 0.0},
        "dt": {"params": [], "lr": lr if dt_lr is None else dt_lr, "weight_decay": 0.0},
        "ssm": {"params": [], "lr": lr if ssm_lr is None else ssm_lr, "weight_decay": 0.0},
    }
    for p in model.parameters():
        if not p.requires_grad:
            continue
        role = roles.get(id(p))
        groups["default" if role is None else role if role in ("dt", "no_decay") else "ssm"]["params"].append(p)
    return [dict(g, name=name) for name, g in groups.items() if g["params"]]


def cosine_factor(step: int, warmup: int, horizon: int, clamp: bool = False) -> float:
    """Linear warm-up over `warmup` steps, then half a cosine period down to 0 at `horizon`.

    Unclamped (the reference's `get_cosine_schedule_with_warmup`), the factor rises again past the
    horizon, with period 2 x (horizon - warmup); clamped, it stays at 0.
    """
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, horizon - warmup)
    if clamp:
        progress = min(progress, 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


class AdamW(torch.optim.AdamW):
    """torch's AdamW, whose update can run inside a CUDA graph of the whole training step
    (suite/train/step_graphs.py): with `update_in_graph` set, step(closure) runs the closure, whose replay of the
    graph made the update, and nothing more. Same name, state and checkpoints as torch's."""

    update_in_graph = False
    IMPLEMENTATION = ("fused", "foreach", "capturable")  # how the update is computed, not what it computes

    def load_state_dict(self, state_dict: dict) -> None:
        """The state and hyperparameters of the checkpoint, with this instance's implementation flags: a run
        resumed from a checkpoint of foreach AdamW runs fused like a new run (and its step counters come to the
        device, as fused AdamW keeps them), not as the run that wrote it."""
        if len(state_dict["param_groups"]) != len(self.param_groups):
            return super().load_state_dict(state_dict)  # torch's error: a different number of groups
        groups = [dict(saved, **{k: now[k] for k in self.IMPLEMENTATION if k in now})
                  for saved, now in zip(state_dict["param_groups"], self.param_groups)]
        super().load_state_dict({**state_dict, "param_groups": groups})

    def step(self, closure=None):
        if not self.update_in_graph:
            return super().step(closure)
        if closure is None:
            return None
        with torch.enable_grad():
            return closure()


def use_fused(on_gpu: bool, precision: str, grad_clip: float) -> bool:
    """Fused AdamW on a GPU, except under mixed precision with gradient clipping: Lightning's mixed-precision plugin
    refuses to clip the gradients of a fused optimizer (which unscales them itself)."""
    return on_gpu and not ("mixed" in precision and grad_clip > 0)


def make_optimizer(model: nn.Module, cfg, total_steps: int, precision: str = "32-true"):
    """AdamW and its schedule from an OptimConfig: (optimizer, scheduler, interval).

    cosine and constant are LambdaLR factors stepped every optimisation step; `step` halves (x step_gamma)
    the learning rate every `step_epochs` epochs, the reference's MultiStep schedule for BIDMC.

    On a GPU, AdamW runs fused (one kernel per parameter group instead of a dozen per group and operation): the
    same update, and less host time per step, which with CUDA graphs sets the pace (suite/train/cuda_graphs.py);
    `use_fused` says when it cannot. Else torch's default, the multi-tensor (foreach) AdamW.
    """
    groups = param_groups(model, cfg.lr, cfg.weight_decay, cfg.dt_lr, cfg.ssm_lr, cfg.decay_bias_and_norm)
    on_gpu = all(p.is_cuda for g in groups for p in g["params"])
    fused = use_fused(on_gpu, precision, cfg.grad_clip)
    # fused=None, not False: an explicit False also turns the foreach path off
    opt = AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), fused=True if fused else None)
    if cfg.scheduler == "step":
        return opt, torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_epochs, gamma=cfg.step_gamma), "epoch"
    if cfg.scheduler == "constant":
        factor = lambda step: min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0  # noqa: E731
    else:
        horizon = cfg.schedule_steps or total_steps
        warmup = min(cfg.warmup_steps, max(horizon - 1, 0))
        factor = lambda step: cosine_factor(step, warmup, horizon, cfg.clamp_schedule)  # noqa: E731
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor), "step"

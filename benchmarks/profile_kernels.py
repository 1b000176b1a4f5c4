"""Top GPU kernels of the ListOps training step and of one layer (issue 12, targets 3 and 4).

    PYTHONPATH=$PWD python3 benchmarks/profile_kernels.py [--models s4d,liquid_s4_pb] [--rows 25]

For each model: torch.profiler over 3 eager training steps of the ListOps paper network (batch 12 x 2048,
`suite.bench.listops_network`; the kernels are those the CUDA-graph replay runs) and over 3 forward+backward
calls of the SSM layer at 50x128x2048 (`suite.bench.bench_layer`'s layer); prints the kernels sorted by
GPU time and the number of kernel launches per step.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _table(prof, title: str, calls: int, rows: int) -> None:
    from torch.autograd import DeviceType

    events = [e for e in prof.key_averages() if e.device_type == DeviceType.CUDA]
    total = sum(e.self_device_time_total for e in events)
    launches = sum(e.count for e in events)
    print(f"\n=== {title}: {total / calls / 1000:.3f} ms GPU time and {launches / calls:.0f} kernels per call ===")
    for e in sorted(events, key=lambda e: -e.self_device_time_total)[:rows]:
        share = 100 * e.self_device_time_total / total
        print(f"{e.self_device_time_total / calls:9.1f} us {share:5.1f}% x{e.count // calls:<4d} {e.key[:110]}")


def profile_train(model: str, rows: int) -> None:
    import torch.nn.functional as F
    from torch.profiler import ProfilerActivity, profile

    from suite.bench import LISTOPS_CLASSES, LISTOPS_VOCAB, listops_network
    from suite.train.optim import make_optimizer

    device = torch.device("cuda")
    net, cfg = listops_network(model, device)
    opt, sched, _ = make_optimizer(net, cfg.optim, total_steps=10**6)
    x = torch.randint(3, LISTOPS_VOCAB, (12, 2048), device=device)
    y = torch.randint(0, LISTOPS_CLASSES, (12,), device=device)
    lengths = torch.full((12,), 2048, device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x, lengths), y).backward()
        opt.step()
        sched.step()

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            step()
        torch.cuda.synchronize()
    _table(prof, f"{model} ListOps training step (eager kernels)", 3, rows)


def profile_layer(model: str, rows: int, shape=(50, 128, 2048)) -> None:
    from torch.profiler import ProfilerActivity, profile

    from models.block import SSMLayer
    from suite import registry
    from suite.train.build import build_ssm

    B, H, L = shape
    options = registry.model(model).options(name=model, d_state=64)
    layer = SSMLayer(build_ssm(options, L, H)).cuda()
    u = torch.randn(B, H, L, device="cuda", requires_grad=True)
    for _ in range(5):
        layer(u).sum().backward()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            layer(u).sum().backward()
        torch.cuda.synchronize()
    _table(prof, f"{model} layer {B}x{H}x{L} fwd+bwd", 3, rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="s4d,liquid_s4_pb")
    ap.add_argument("--rows", type=int, default=25)
    ap.add_argument("--what", default="train,layer")
    args = ap.parse_args()
    print(torch.__version__, torch.cuda.get_device_name(0), flush=True)
    for model in args.models.split(","):
        if "train" in args.what:
            profile_train(model, args.rows)
        if "layer" in args.what:
            profile_layer(model, args.rows)


if __name__ == "__main__":
    main()

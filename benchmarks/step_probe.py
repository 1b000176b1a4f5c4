"""Where a graphed ListOps training step spends its GPU time, and what capturing or fusing more of it gives
(issue 12, target 3).

    PYTHONPATH=$PWD python3 benchmarks/step_probe.py [--models s4d,s4,liquid_s4_pb,liquid_s4_kb] [--variants ...]

The step of `suite.bench.bench_train` (ListOps `paper` network of the Liquid-S4 recipe, batch 12 x 2048, d_state 8,
random tokens), in variants measured in the same process:
- graphs:  forward and backward as CUDA graphs; loss, AdamW (foreach) and schedule eager;
- fused:   the same with AdamW(fused=True): the suite's default on a GPU (suite/train/optim.py);
- whole:   zero_grad, forward, loss, backward and AdamW(capturable) in one CUDA graph (learning rates in device
           tensors, written by the schedule before each replay);
- compile: torch.compile(network) inside the forward and backward graphs (inductor fuses the elementwise chains),
           AdamW fused.
With --attribute, each model's eager step is profiled once more with its CPU ops: the GPU time of each aten op by
the Python line that called it (forward) and of each autograd function (backward), to say where the copies are.
Per variant: samples/s (median of --rounds x --steps after --warmup) and a kernel profile of 3 steps (kernels per
step, GPU ms per step, top kernels). Prints one table and writes step_probe.json / .md to --out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VARIANTS = ["graphs", "fused", "whole", "compile"]


def make_step(variant: str, net, x, y, lengths):
    """(step function, optimizer) for one variant; the step runs one whole training step."""
    import torch
    import torch.nn.functional as F

    from suite.bench import graphed
    from suite.train.optim import cosine_factor, param_groups

    groups = param_groups(net, 0.01, 0.05, None, 0.001)
    if variant == "whole":
        for g in groups:
            g["lr"] = torch.tensor(g["lr"], device=x.device)
        opt = torch.optim.AdamW(groups, capturable=True, foreach=True)
    else:
        # fused=None, not False: an explicit False also turns foreach off (the single-tensor loop)
        opt = torch.optim.AdamW(groups, fused=True if variant in ("fused", "compile") else None)
    base = [g["lr"] for g in opt.param_groups]
    base = [b.item() if torch.is_tensor(b) else b for b in base]
    count = [0]

    def schedule():
        f = cosine_factor(count[0], 100, 10**6)
        count[0] += 1
        for g, b in zip(opt.param_groups, base):
            if torch.is_tensor(g["lr"]):
                g["lr"].fill_(b * f)
            else:
                g["lr"] = b * f

    if variant == "whole":
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(net(x, lengths), y).backward()
                opt.step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            F.cross_entropy(net(x, lengths), y).backward()
            opt.step()

        def step():
            schedule()
            graph.replay()
        return step, opt

    forward = graphed(torch.compile(net) if variant == "compile" else net, x, lengths)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(forward(x, lengths), y).backward()
        opt.step()
        schedule()
    return step, opt


def kernel_profile(step, steps: int = 3, rows: int = 12) -> dict:
    import torch
    from torch.autograd import DeviceType

    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.device_type == DeviceType.CUDA]
    total = sum(e.self_device_time_total for e in events)
    top = sorted(events, key=lambda e: -e.self_device_time_total)[:rows]
    return {"kernels_per_step": sum(e.count for e in events) / steps, "gpu_ms_per_step": total / steps / 1000,
            "top": [{"us": e.self_device_time_total / steps, "calls": e.count / steps, "name": e.key[:100]}
                    for e in top]}


def attribute(model: str, args, rows: int = 30) -> list[str]:
    """GPU microseconds per eager step of the aten ops by calling line, and of the autograd functions."""
    import torch
    import torch.nn.functional as F

    from suite.bench import LISTOPS_CLASSES, LISTOPS_VOCAB, listops_network

    device = torch.device("cuda")
    net, _ = listops_network(model, device, [f"model.d_state={args.d_state}"])
    x = torch.randint(3, LISTOPS_VOCAB, (args.batch, args.length), device=device)
    y = torch.randint(0, LISTOPS_CLASSES, (args.batch,), device=device)
    lengths = torch.full((args.batch,), args.length, device=device)

    def step():
        net.zero_grad(set_to_none=True)
        F.cross_entropy(net(x, lengths), y).backward()

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    acts = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=acts, with_stack=True) as prof:
        step()
        torch.cuda.synchronize()
    lines = [f"## {model}: eager step, GPU us by aten op and calling line (forward)", ""]
    ops = [e for e in prof.key_averages(group_by_stack_n=3) if e.key.startswith("aten::") and e.stack
           and e.device_time_total > 0]
    ops.sort(key=lambda e: -e.device_time_total)
    for e in ops[:rows]:
        where = " < ".join(f.split("/")[-1] for f in e.stack[:3] if "site-packages" not in f)
        lines.append(f"- {e.device_time_total:.0f} us x{e.count} {e.key} @ {where}")
    lines += ["", f"## {model}: eager step, GPU us by autograd function (backward)", ""]
    grads = [e for e in prof.key_averages() if e.key.startswith("autograd::engine::evaluate_function")]
    grads.sort(key=lambda e: -e.device_time_total)
    lines += [f"- {e.device_time_total:.0f} us x{e.count} {e.key.split(': ')[-1]}" for e in grads[:rows]]
    return lines


def measure(model: str, variant: str, args) -> dict:
    import torch

    from suite.bench import LISTOPS_CLASSES, LISTOPS_VOCAB, listops_network

    device = torch.device("cuda")
    torch.cuda.empty_cache()
    net, _ = listops_network(model, device, [f"model.d_state={args.d_state}"])
    x = torch.randint(3, LISTOPS_VOCAB, (args.batch, args.length), device=device)
    y = torch.randint(0, LISTOPS_CLASSES, (args.batch,), device=device)
    lengths = torch.full((args.batch,), args.length, device=device)
    t0 = time.perf_counter()
    step, _ = make_step(variant, net, x, y, lengths)
    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    setup_s = time.perf_counter() - t0
    times = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        for _ in range(args.steps):
            step()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) / args.steps)
    step_s = statistics.median(times)
    row = {"model": model, "variant": variant, "step_ms": 1000 * step_s, "samples_per_s": args.batch / step_s,
           "setup_s": setup_s}
    row.update(kernel_profile(step))
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="s4d,s4,liquid_s4_pb,liquid_s4_kb")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--batch", type=int, default=12)
    p.add_argument("--length", type=int, default=2048)
    p.add_argument("--d-state", type=int, default=8)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--out", default=".")
    p.add_argument("--attribute", action="store_true", help="also the GPU time by op and calling line (eager)")
    args = p.parse_args()
    import torch

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for model in args.models.split(","):
        for variant in args.variants.split(","):
            try:
                row = measure(model, variant, args)
            except Exception as exc:  # one variant failing must not lose the others
                traceback.print_exc()
                row = {"model": model, "variant": variant, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "top"}), flush=True)
            (out / "step_probe.json").write_text(json.dumps(rows, indent=1))
    lines = [f"# step probe: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, batch {args.batch} x "
             f"{args.length}, d_state {args.d_state}", "",
             "| model | variant | samples/s | step ms | GPU ms/step | kernels/step | setup s | error |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['variant']} | {r.get('samples_per_s', 0):.1f} | {r.get('step_ms', 0):.2f} | "
                     f"{r.get('gpu_ms_per_step', 0):.2f} | {r.get('kernels_per_step', 0):.0f} | "
                     f"{r.get('setup_s', 0):.1f} | {r.get('error', '')} |")
    for r in rows:
        if r.get("top"):
            lines += ["", f"## {r['model']} / {r['variant']}: top kernels per step", ""]
            lines += [f"- {t['us']:.1f} us x{t['calls']:.0f} {t['name']}" for t in r["top"]]
    if args.attribute:
        for model in args.models.split(","):
            try:
                lines += [""] + attribute(model, args)
            except Exception as exc:
                lines += ["", f"## {model}: attribution failed: {type(exc).__name__}: {str(exc)[:200]}"]
    (out / "step_probe.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

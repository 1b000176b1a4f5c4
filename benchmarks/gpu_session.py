"""One GPU session: fast-path checks, profiler summaries, layer and training-step benchmarks.

    PYTHONPATH=$PWD python3 benchmarks/gpu_session.py [--stages check,profile,bench,train] [--out DIR]

Writes each stage's output to DIR (default $OUT or ./gpu_out) and prints it. Meant for one call of a
GPU machine: every stage runs in one process, so the CUDA context and caches are shared.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def stage_check(out):
    from benchmarks.fast_path_check import main as check

    return check()


def stage_profile(out, models, shape=(50, 128, 2048)):
    from torch.profiler import ProfilerActivity, profile

    from suite.bench import bench_layer  # noqa: F401  (same layer as the bench)
    from models.block import SSMLayer
    from suite import registry

    B, H, L = shape
    for model in models:
        cls = registry.resolve(registry.model(model))
        kw = {"d_state": 64} | ({} if model == "s4d" else {"l_max": L})
        layer = SSMLayer(cls(H, **kw)).cuda()
        u = torch.randn(B, H, L, device="cuda", requires_grad=True)
        for _ in range(5):
            layer(u).sum().backward()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(5):
                layer(u).sum().backward()
            torch.cuda.synchronize()
        print(f"\n=== profile {model} {B}x{H}x{L} fwd+bwd, 5 iterations ===")
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=60))


def stage_profile_train(out, models):
    import types

    import torch.nn.functional as F
    from torch.profiler import ProfilerActivity, profile

    from suite import config
    from suite.train.optim import make_optimizer
    from suite.train.build import build_model

    for model in models:
        cfg = config.resolve("listops", model, "paper")
        net = build_model(cfg, types.SimpleNamespace(d_input=18, d_output=10, encoder="embedding")).cuda()
        opt, sched, _ = make_optimizer(net, cfg.optim, 10**6)
        x = torch.randint(3, 18, (12, 2048), device="cuda")
        y = torch.randint(0, 10, (12,), device="cuda")
        lengths = torch.full((12,), 2048, device="cuda")

        def step():
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x, lengths), y).backward()
            opt.step()
            sched.step()

        for _ in range(5):
            step()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(3):
                step()
            torch.cuda.synchronize()
        print(f"\n=== profile train step {model}, 3 steps ===")
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=20, max_name_column_width=60))
        print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=12, max_name_column_width=60))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stages", default="check,profile,bench,train")
    ap.add_argument("--models", default="s4d,s4,liquid_s4_pb,liquid_s4_kb")
    ap.add_argument("--shapes", default=None, help="e.g. 50x128x2048,8x256x16384")
    ap.add_argument("--out", default=os.environ.get("OUT", "gpu_out"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = args.models.split(",")
    print(torch.__version__, torch.cuda.get_device_name(0), flush=True)
    for stage in args.stages.split(","):
        t0 = time.time()
        buf = io.StringIO()

        class Tee(io.TextIOBase):
            def write(self, s):
                sys.__stdout__.write(s)
                buf.write(s)
                return len(s)

        with contextlib.redirect_stdout(Tee()):
            try:
                if stage == "check":
                    stage_check(out)
                elif stage == "profile":
                    stage_profile(out, models)
                elif stage == "profile_train":
                    stage_profile_train(out, [m for m in models if m != "s4d"] or models)
                elif stage == "bench":
                    from suite.bench import run

                    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")] if args.shapes else None
                    run(models, shapes, "cuda", 20, track=False)
                elif stage == "train":
                    from suite.bench import run_train

                    run_train(models, "cuda")
            except Exception as exc:  # keep the other stages going
                import traceback

                traceback.print_exc(file=sys.stdout)
                print(f"stage {stage} failed: {exc!r}")
        print(f"[stage {stage}: {time.time() - t0:.1f} s]", flush=True)
        (out / f"{stage}.txt").write_text(buf.getvalue())


if __name__ == "__main__":
    main()

"""Layer benchmark: forward and forward+backward time and peak memory of each model's SSM layer.

The layer is the one the network uses (SSM, GELU, GLU output projection) at B x H x L with
d_state 64, timed with CUDA events (median of `repeats` after `warmup`), as in
docs/benchmarks.md, "The public code's figures on one H100".
On a CPU it times with perf_counter, for a smoke check only.
"""

from __future__ import annotations

import statistics
import sys
import time

from suite import registry

SHAPES = [(50, 128, 2048), (50, 512, 1024), (16, 256, 4096), (8, 256, 16384)]
# On a CPU (no GPU, or --device cpu) without --shape: a smoke measurement at one small shape, a few seconds per
# model (the GPU shapes took minutes each on 2 cores and printed nothing meanwhile); not comparable with BENCHMARKS.md
CPU_SHAPES = [(4, 64, 1024)]
CPU_REPEATS = 5
CPU_TRAIN = {"batch": 2, "length": 512, "steps": 3, "rounds": 2, "warmup": 2}


def _cpu_note(what: str) -> None:
    print(f"note: no GPU in use: a CPU smoke measurement ({what}); the numbers of BENCHMARKS.md are measured on a "
          "GPU (--device cuda)", file=sys.stderr, flush=True)


def _timer(device):
    import torch

    if device.type == "cuda":
        def measure(fn):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end)
    else:
        def measure(fn):
            t0 = time.perf_counter()
            fn()
            return 1000 * (time.perf_counter() - t0)
    return measure


def bench_layer(model: str, B: int, H: int, L: int, device, warmup: int = 5, repeats: int = 20,
                d_state: int = 64) -> dict:
    import torch

    from models.block import SSMLayer
    from suite.train.build import build_ssm

    options = registry.model(model).options(name=model, d_state=d_state)
    layer = SSMLayer(build_ssm(options, L, H)).to(device)
    u = torch.randn(B, H, L, device=device, requires_grad=True)
    measure = _timer(device)

    def forward():
        with torch.no_grad():
            layer(u)

    def forward_backward():
        layer(u).sum().backward()

    runs = [("fwd_ms", forward), ("fwd_bwd_ms", forward_backward)]
    if device.type == "cuda":  # the same layer's forward and backward as CUDA graphs (no launch overhead)
        graph_layer = torch.cuda.make_graphed_callables(layer, (u,))
        runs.append(("graph_fwd_bwd_ms", lambda: graph_layer(u).sum().backward()))

    out = {"model": model, "B": B, "H": H, "L": L}
    for name, fn in runs:
        for _ in range(warmup):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        out[name] = statistics.median(measure(fn) for _ in range(repeats))
        if device.type == "cuda":
            out[name.replace("_ms", "_peak_gib")] = torch.cuda.max_memory_allocated() / 2**30
    return out


def run(models=None, shapes=None, device_name: str | None = None, repeats: int = 20, track: bool = True,
        tracking_uri: str | None = None) -> list[dict]:
    import torch
    from tabulate import tabulate

    device = torch.device(device_name or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu" and not shapes:
        shapes, repeats = CPU_SHAPES, min(repeats, CPU_REPEATS)
        _cpu_note(f"B x H x L = {' '.join('x'.join(map(str, s)) for s in shapes)}, median of {repeats}; "
                  "--shape BxHxL for others")
    rows = []
    for model in models or list(registry.MODELS):
        for B, H, L in shapes or SHAPES:
            try:
                rows.append(bench_layer(model, B, H, L, device, repeats=repeats))
            except torch.OutOfMemoryError:
                rows.append({"model": model, "B": B, "H": H, "L": L, "fwd_ms": float("nan"), "fwd_bwd_ms": float("nan")})
                torch.cuda.empty_cache()
            print(tabulate([rows[-1]], headers="keys", floatfmt=".2f", tablefmt="plain"), file=sys.stderr)
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    print(f"\nlayer benchmark on {name}, torch {torch.__version__}, fp32, d_state 64, median of {repeats}"
          + ("; graph_*: forward and backward replayed as CUDA graphs" if device.type == "cuda" else ""))
    print(tabulate(rows, headers="keys", floatfmt=".2f", tablefmt="github"))
    if track:
        _log(rows, name, tracking_uri)
    return rows


def _log(rows: list[dict], device: str, tracking_uri: str | None) -> None:
    import json
    import tempfile
    from pathlib import Path

    from suite.tracking import store, uris

    uri = uris.resolve_uri(tracking_uri)
    exp = store.ensure_experiment(uri, "bench")
    run_id = store.start_run(uri, exp, f"layer-bench-{device}", {"suite.device": device, "suite.kind": "bench"})
    metrics = {}
    for r in rows:
        key = f"{r['model']}/{r['B']}x{r['H']}x{r['L']}"
        for q in ("fwd_ms", "fwd_bwd_ms", "fwd_bwd_peak_gib", "graph_fwd_bwd_ms"):
            if q in r:
                metrics[f"{key}/{q}"] = r[q]
    store.log_metrics(uri, run_id, metrics)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.json"
        path.write_text(json.dumps(rows, indent=2))
        store.log_artifact(uri, run_id, path)
    store.set_terminated(uri, run_id, "FINISHED")
    print(f"logged to MLflow run {run_id} (experiment 'bench')", file=sys.stderr)


# ------------------------------------------------------------------------------------------------
# Whole training steps of the ListOps paper network (`suite bench --train`)
# ------------------------------------------------------------------------------------------------

# The public code's ListOps training throughput on one H100 (docs/benchmarks.md), samples/s.
PUBLIC_TRAIN = {"s4": 256.0, "liquid_s4_pb": 188.0, "liquid_s4_kb": 176.0}
LISTOPS_VOCAB = 18  # 15 ListOps symbols + <pad>, <unk>, <eos>, as in the release vocabulary
LISTOPS_CLASSES = 10


def listops_network(model: str, device, overrides: list[str] | None = None):
    """(network, resolved config) of the ListOps `paper` preset of the Liquid-S4 recipe, for every model (the
    network the public code's figures were measured on), built by `suite.train.build.build_model`."""
    import types

    import torch

    from suite import config
    from suite.train.build import build_model

    cfg = config.resolve("listops", model, "paper", overrides=overrides, recipe="liquid_s4")
    shapes = types.SimpleNamespace(d_input=LISTOPS_VOCAB, d_output=LISTOPS_CLASSES, encoder="embedding")
    torch.manual_seed(0)
    return build_model(cfg, shapes).to(device).train(), cfg


def graphed(net, x, lengths):
    """The network's forward and backward captured as CUDA graphs (torch.cuda.make_graphed_callables):
    one graph launch replaces the per-operation launches, which dominate at ListOps sizes. Shapes are
    fixed to those of (x, lengths); parameters are updated in place by the optimiser as usual."""
    import torch

    return torch.cuda.make_graphed_callables(net, (x, lengths))


def bench_train(model: str, device, batch: int = 12, length: int = 2048, warmup: int = 10, rounds: int = 5,
                steps: int = 20, overrides: list[str] | None = None, cuda_graph: bool = False,
                compile: bool = False) -> dict:
    """Samples/s of whole training steps (forward, cross-entropy, backward, AdamW, schedule) of the
    ListOps `paper` network built by `suite.train.build.build_model`, on random tokens of full length.

    Median over `rounds` rounds of `steps` steps each, after `warmup` steps. `cuda_graph` runs the step as
    `suite run` does on one GPU: with `trainer.cuda_graph_scope` step (the default; the overrides can set it)
    the whole step as one graph (suite/train/step_graphs.py), with network the network's forward and backward
    as CUDA graphs (`graphed`) and the loss and AdamW eager. `compile` runs the network through torch.compile
    (inside the graphs with `cuda_graph`), as `trainer.compile` does.
    """
    import torch
    import torch.nn.functional as F

    from suite.train.optim import make_optimizer

    net, cfg = listops_network(model, device, overrides)
    opt, sched, _ = make_optimizer(net, cfg.optim, total_steps=10**6)
    x = torch.randint(3, LISTOPS_VOCAB, (batch, length), device=device)  # (B, L) tokens
    y = torch.randint(0, LISTOPS_CLASSES, (batch,), device=device)
    lengths = torch.full((batch,), length, device=device)
    inner = torch.compile(net, dynamic=False) if compile else net
    whole = cuda_graph and cfg.trainer.cuda_graph_scope == "step"
    if whole:
        from suite.train.step_graphs import GraphedStep

        graphed_step = GraphedStep(net, inner, opt, F.cross_entropy)  # no clipping, as the other modes
        opt.update_in_graph = True  # opt.step(closure) runs the closure: the replay makes the update
    forward = graphed(inner, x, lengths) if cuda_graph and not whole else inner

    def step():
        if whole:
            opt.step(lambda: graphed_step(x, y, lengths))  # as Lightning calls it
        else:
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(forward(x, lengths), y)
            loss.backward()
            opt.step()
        sched.step()

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        times.append((time.perf_counter() - t0) / steps)
    step_s = statistics.median(times)
    mode = ("cuda graph (whole step)" if whole else "cuda graph" if cuda_graph else "eager") + (
        " + compile" if compile else "")
    out = {"model": model, "mode": mode, "batch": batch, "L": length,
           "step_ms": 1000 * step_s, "samples_per_s": batch / step_s,
           "n_params": sum(p.numel() for p in net.parameters())}
    if device.type == "cuda":
        out["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    if model in PUBLIC_TRAIN:
        out["public_samples_per_s"] = PUBLIC_TRAIN[model]
        out["speedup"] = out["samples_per_s"] / PUBLIC_TRAIN[model]
    return out


def run_train(models=None, device_name: str | None = None, batch: int = 12, length: int = 2048, steps: int = 20,
              rounds: int = 5, warmup: int = 10) -> list[dict]:
    import torch
    from tabulate import tabulate

    device = torch.device(device_name or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu":
        batch, length, steps, rounds, warmup = (CPU_TRAIN[k] for k in ("batch", "length", "steps", "rounds", "warmup"))
        _cpu_note(f"batch {batch} x length {length}, {rounds} x {steps} steps")
    rows = []
    for m in models or list(registry.MODELS):
        for cuda_graph in (False, True) if device.type == "cuda" else (False,):
            try:
                rows.append(bench_train(m, device, batch, length, warmup, rounds, steps, cuda_graph=cuda_graph))
            except RuntimeError as exc:  # e.g. an operation that cannot be captured: report, keep going
                rows.append({"model": m, "mode": "cuda graph" if cuda_graph else "eager", "error": str(exc)[:80]})
            print(tabulate([rows[-1]], headers="keys", floatfmt=".2f", tablefmt="plain"), file=sys.stderr)
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    print(f"\ntraining-step benchmark on {name}, torch {torch.__version__}: ListOps paper network, "
          f"batch {batch} x length {length}, median of {rounds} x {steps} steps after {warmup} warm-up")
    print(tabulate(rows, headers="keys", floatfmt=".2f", tablefmt="github"))
    return rows

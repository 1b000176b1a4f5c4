"""Side by side: the public implementations and the suite, measured in the same process (issue 12).

    PYTHONPATH=$PWD python3 benchmarks/side_by_side.py --s4 PATH --liquid-s4 PATH --out DIR \
        [--layer] [--train] [--profile] [--models s4,s4d,liquid_s4_pb,liquid_s4_kb]

--s4 is a checkout of state-spaces/s4 (its `models/s4/s4.py` `S4Block`, mode 'dplr' for S4, 'diag' for S4D),
--liquid-s4 one of raminmh/liquid-s4 (its `src/models/sequence/ss/s4.py` `S4`, liquid_kernel 'polyb' / 'kb',
degree 2). Their CUDA extensions (`extensions/kernels`, `extensions/cauchy`) must be built and installed
beforehand (`pip install --no-build-isolation .` in each folder); whether each was found is recorded. Nothing
of the public code is copied into this repository: the script imports it from the checkouts, with stand-in
`hydra` / `omegaconf` modules (written to a temporary folder) for the Liquid-S4 helpers that import them.
How to run it on a GPU machine: docs/benchmarks.md.

What each side includes (the same on both):
- layer: SSM kernel generation, FFT convolution, D skip, GELU, Linear(H, 2H) and GLU (public `S4Block` /
  `S4(postact='glu')`, which also multiply by the all-ones mask they build from `lengths`; suite
  `models.block.SSMLayer`, given no mask), fp32, d_state 64, forward+backward of
  `layer(u).sum()` timed with CUDA events (median of --repeats after --warmup), peak memory
  (torch.cuda.max_memory_allocated during the timed calls, parameters and input included).
- train: the ListOps `paper` network of the Liquid-S4 recipe (embedding, n_layers residual blocks with
  BatchNorm prenorm, the layer, dropout; final norm, mean pool, linear), AdamW with the public code's parameter
  groups (SSM parameters at their own lr, no weight decay) or the suite's (`suite.train.optim.make_optimizer`),
  batch 12 x 2048 random tokens; samples/s = median of --rounds x --steps steps after --warmup. Suite side:
  `suite.bench.bench_train`, eager and with `trainer.cuda_graph` (forward and backward as CUDA graphs).
  Both sides at a d_state the public Cauchy/Vandermonde extensions accept (their number of modes, d_state // 2,
  must be a power of two): the recipe's value if it qualifies, else --train-d-state (default 8).
- profile: torch.profiler of one suite ListOps training step on the default path (eager, the recipe as is),
  top 15 CUDA kernels by time (name, calls, total ms, % of the step's kernel time).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MODELS = ["s4", "s4d", "liquid_s4_pb", "liquid_s4_kb"]
SHAPES = [(50, 128, 2048), (50, 512, 1024), (16, 256, 4096), (8, 256, 16384)]
PUBLIC_SOURCE = {"s4": "state-spaces/s4 S4Block mode='dplr'", "s4d": "state-spaces/s4 S4Block mode='diag'",
                 "liquid_s4_pb": "raminmh/liquid-s4 S4 liquid_kernel='polyb', degree 2",
                 "liquid_s4_kb": "raminmh/liquid-s4 S4 liquid_kernel='kb', degree 2"}
LISTOPS_VOCAB, LISTOPS_CLASSES = 18, 10


# ------------------------------------------------------------------------------------------------
# Pure helpers (no torch)
# ------------------------------------------------------------------------------------------------

def extension_accepts(d_state: int) -> bool:
    """Whether the public Cauchy/Vandermonde CUDA extensions take this d_state: d_state // 2 complex modes,
    a power of two (2 .. 1024)."""
    modes = d_state // 2
    return 1 <= modes <= 1024 and modes & (modes - 1) == 0


def ratio(num, den):
    """num / den, or None where either is missing or not a positive finite number."""
    if not isinstance(num, (int, float)) or not isinstance(den, (int, float)):
        return None
    if not (math.isfinite(num) and math.isfinite(den)) or den <= 0:
        return None
    return num / den


def markdown_table(headers: list[str], rows: list[list]) -> str:
    """A GitHub Markdown table; floats with 2 decimals (ratios ending in 'x' as given), None as '-'."""
    def cell(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return "nan" if math.isnan(v) else f"{v:.2f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def times(v):
    """A ratio as '3.21x', or None."""
    return None if v is None else f"{v:.2f}x"


def top_kernels(events: list[tuple[str, float]], n: int = 15) -> list[dict]:
    """(kernel name, microseconds) per launch -> the n names with the most total time:
    name, calls, total_ms, pct (of all kernel time given)."""
    by_name: dict[str, list[float]] = {}
    for name, us in events:
        by_name.setdefault(name, []).append(us)
    total = sum(us for _, us in events) or 1.0
    rows = [{"name": k, "calls": len(v), "total_ms": sum(v) / 1000, "pct": 100 * sum(v) / total}
            for k, v in by_name.items()]
    rows.sort(key=lambda r: -r["total_ms"])
    return rows[:n]


def short_kernel_name(name: str, width: int = 110) -> str:
    """A kernel name for a table: without 'void ', 'at::native::', '(anonymous namespace)::' and
    'c10::', cut to `width` characters (the JSON keeps the full name)."""
    for noise in ("void ", "at::native::", "(anonymous namespace)::", "c10::"):
        name = name.replace(noise, "")
    return name if len(name) <= width else name[:width - 3] + "..."


def checkout_commit(path: Path) -> str:
    """The commit of a checkout: its COMMIT file (written when extracted from a mirror), else git."""
    f = path / "COMMIT"
    if f.is_file():
        return f.read_text().strip()
    try:
        return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# ------------------------------------------------------------------------------------------------
# The public code, imported from the checkouts
# ------------------------------------------------------------------------------------------------

STAND_INS = {
    "omegaconf.py": "class DictConfig(dict):\n    pass\n\n\nclass ListConfig(list):\n    pass\n\n\n"
                    "class OmegaConf:\n    pass\n",
    "hydra/__init__.py": "from hydra import utils  # noqa: F401\n",
    "hydra/utils.py": "def get_method(path):\n    raise RuntimeError('stand-in hydra: not used by the layer')\n\n\n"
                      "get_class = get_method\n",
}


def _stand_ins() -> Path:
    """A temporary folder with small `hydra` and `omegaconf` modules, which the Liquid-S4 helpers import and
    the layer never calls."""
    tmp = Path(tempfile.mkdtemp(prefix="sbs-stand-ins-"))
    for name, text in STAND_INS.items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(text)
    return tmp


class Public:
    """The public layer classes and what was found about their extensions."""

    def __init__(self, s4_path: Path | None, liquid_path: Path | None):
        import importlib.util
        import logging

        logging.getLogger().setLevel(logging.ERROR)
        self.info: dict = {}
        self.S4Block = self.LiquidS4 = None
        for p in (s4_path, liquid_path):  # after this repository's root: `models` stays the suite's
            if p is not None and str(p) not in sys.path:
                sys.path.append(str(p))
        if s4_path is not None:  # loaded by file: its folder `models` would shadow the suite's package
            spec = importlib.util.spec_from_file_location("public_s4_standalone", s4_path / "models/s4/s4.py")
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            self.S4Block = mod.S4Block
            self.info["state-spaces/s4"] = {"path": str(s4_path), "commit": checkout_commit(s4_path),
                                            "cuda_extension": bool(mod.has_cuda_extension),
                                            "pykeops": bool(mod.has_pykeops)}
        if liquid_path is not None:
            sys.path.insert(0, str(_stand_ins()))
            src = liquid_path / "src"
            for name, path in [("src", src), ("src.models", src / "models"),  # package __init__s not run:
                               ("src.models.sequence", src / "models/sequence"),  # they import the
                               ("src.models.sequence.ss", src / "models/sequence/ss")]:  # training stack
                pkg = types.ModuleType(name)
                pkg.__path__ = [str(path)]
                sys.modules[name] = pkg
                parent, _, child = name.rpartition(".")
                if parent:
                    setattr(sys.modules[parent], child, pkg)
            from src.models.sequence.ss import kernel as liquid_kernel  # noqa: E402
            from src.models.sequence.ss.s4 import S4  # noqa: E402

            self.LiquidS4 = S4
            self.info["raminmh/liquid-s4"] = {"path": str(liquid_path), "commit": checkout_commit(liquid_path),
                                              "cuda_extension": bool(liquid_kernel.has_cauchy_extension),
                                              "pykeops": bool(liquid_kernel.has_pykeops)}

    def layer(self, model: str, H: int, L: int, d_state: int, dt_min: float, dt_max: float,
              dropout: float = 0.0, ssm_lr: float | None = None):
        """The public layer of `model` as (B, H, L), lengths -> (B, H, L)."""
        import torch

        common = dict(d_state=d_state, l_max=L, dt_min=dt_min, dt_max=dt_max, dropout=dropout, transposed=True,
                      lr=ssm_lr)  # lr: the learning rate the kernel registers for A, B (and dt) via `_optim`
        if model in ("s4", "s4d"):
            if self.S4Block is None:
                raise RuntimeError("no --s4 checkout given")
            inner = self.S4Block(H, mode="dplr" if model == "s4" else "diag", tie_dropout=True, **common)
        else:
            if self.LiquidS4 is None:
                raise RuntimeError("no --liquid-s4 checkout given")
            inner = self.LiquidS4(H, liquid_kernel={"liquid_s4_pb": "polyb", "liquid_s4_kb": "kb"}[model],
                                  liquid_degree=2, tie_dropout=True, **common)

        class PublicLayer(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = inner

            def forward(self, u, lengths=None):
                return self.inner(u, lengths=lengths)[0]

        return PublicLayer()


def public_network(public: Public, model: str, cfg, L: int, d_state: int):
    """Embedding -> n_layers x (BatchNorm prenorm, public layer, dropout, residual) -> BatchNorm -> mean pool ->
    linear: the suite's network (models/network.py) with the public layer in each block."""
    import torch
    from torch import nn

    m = cfg.model

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.BatchNorm1d(m.d_model)
            self.layer = public.layer(model, m.d_model, L, d_state, m.dt_min, m.dt_max, m.dropout,
                                      cfg.optim.ssm_lr)
            self.drop = nn.Dropout(m.dropout) if m.dropout > 0 else nn.Identity()

        def forward(self, x, lengths):
            return x + self.drop(self.layer(self.norm(x), lengths))

    class Network(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Embedding(LISTOPS_VOCAB, m.d_model)
            self.blocks = nn.ModuleList(Block() for _ in range(m.n_layers))
            self.norm = nn.BatchNorm1d(m.d_model)
            self.decoder = nn.Linear(m.d_model, LISTOPS_CLASSES)

        def forward(self, x, lengths):
            h = self.encoder(x).transpose(1, 2)
            for block in self.blocks:
                h = block(h, lengths)
            h = self.norm(h)
            mask = (torch.arange(h.shape[-1], device=h.device)[None] < lengths[:, None]).unsqueeze(1)
            return self.decoder((h * mask).sum(-1) / lengths[:, None])

    torch.manual_seed(0)
    return Network()


def public_optimizer(net, cfg):
    """AdamW with the public training script's grouping: parameters the layer registered with `_optim`
    (lr, weight_decay) get those; all others the global lr and weight decay. Cosine schedule with warmup."""
    import torch

    o = cfg.optim
    plain = [p for p in net.parameters() if not hasattr(p, "_optim")]
    groups = [{"params": plain, "lr": o.lr, "weight_decay": o.weight_decay}]
    special: dict = {}
    for p in net.parameters():
        if hasattr(p, "_optim"):
            key = tuple(sorted(p._optim.items()))
            special.setdefault(key, []).append(p)
    for key, params in special.items():
        hp = dict(key)
        groups.append({"params": params, "lr": hp.get("lr") or o.lr, "weight_decay": hp.get("weight_decay", 0.0)})
    opt = torch.optim.AdamW(groups, lr=o.lr)
    horizon = o.schedule_steps or 10**6
    warm = o.warmup_steps or 1
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * s / horizon)))
    return opt, sched


# ------------------------------------------------------------------------------------------------
# Measurements
# ------------------------------------------------------------------------------------------------

def _median_cuda_ms(fn, warmup: int, repeats: int) -> tuple[float, float]:
    """(median ms of fn over `repeats` CUDA-event timings after `warmup` calls, peak GiB during them)."""
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    samples = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        samples.append(start.elapsed_time(end))
    return statistics.median(samples), torch.cuda.max_memory_allocated() / 2**30


def _fresh():
    import gc

    import torch

    gc.collect()
    torch.cuda.empty_cache()


def suite_layer(model: str, H: int, L: int, d_state: int, liquid_mode: str | None):
    from models.block import SSMLayer
    from suite import registry
    from suite.train.build import build_ssm

    extra = {"liquid_mode": liquid_mode} if liquid_mode else {}
    options = registry.model(model).options(name=model, d_state=d_state, **extra)
    return SSMLayer(build_ssm(options, L, H))


def layer_rows(public: Public, models, shapes, d_state: int, warmup: int, repeats: int) -> list[dict]:
    """One row per (model, shape, side): fwd_bwd_ms, peak_gib; suite rows also graph_fwd_bwd_ms."""
    import torch

    rows = []
    for model in models:
        sides = [("public", None), ("suite", None)]
        if model.startswith("liquid"):
            sides.append(("suite exact", "exact"))
        for B, H, L in shapes:
            for side, mode in sides:
                row = {"model": model, "B": B, "H": H, "L": L, "side": side}
                _fresh()
                try:
                    torch.manual_seed(0)
                    layer = (public.layer(model, H, L, d_state, 0.001, 0.1) if side == "public"
                             else suite_layer(model, H, L, d_state, mode)).cuda()
                    u = torch.randn(B, H, L, device="cuda", requires_grad=True)
                    lengths = torch.full((B,), L, device="cuda")
                    row["fwd_bwd_ms"], row["peak_gib"] = _median_cuda_ms(
                        lambda: layer(u, lengths).sum().backward() if side == "public"
                        else layer(u).sum().backward(), warmup, repeats)
                    if side != "public":
                        try:
                            g = torch.cuda.make_graphed_callables(layer, (u,))
                            row["graph_fwd_bwd_ms"], _ = _median_cuda_ms(lambda: g(u).sum().backward(), warmup,
                                                                         repeats)
                        except RuntimeError as exc:
                            row["graph_error"] = str(exc).splitlines()[0][:120]
                except (RuntimeError, torch.OutOfMemoryError) as exc:
                    row["error"] = str(exc).splitlines()[0][:160]
                print(json.dumps(row), flush=True)
                rows.append(row)
                layer = u = g = None  # noqa: F841
    return rows


def public_train(public: Public, model: str, cfg, batch: int, length: int, d_state: int, warmup: int,
                 rounds: int, steps: int) -> dict:
    import torch
    import torch.nn.functional as F

    net = public_network(public, model, cfg, length, d_state).cuda().train()
    opt, sched = public_optimizer(net, cfg)
    x = torch.randint(3, LISTOPS_VOCAB, (batch, length), device="cuda")
    y = torch.randint(0, LISTOPS_CLASSES, (batch,), device="cuda")
    lengths = torch.full((batch,), length, device="cuda")

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x, lengths), y).backward()
        opt.step()
        sched.step()

    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    per_step = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
        per_step.append((time.perf_counter() - t0) / steps)
    s = statistics.median(per_step)
    return {"step_ms": 1000 * s, "samples_per_s": batch / s, "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
            "n_params": sum(p.numel() for p in net.parameters())}


def train_rows(public: Public, models, d_state: int, batch: int, length: int, warmup: int, rounds: int,
               steps: int, compile: bool = False, triton_norm: bool = False) -> list[dict]:
    """One row per (model, side): public, suite eager, suite cuda graph (+ liquid exact mode, both paths; + the
    cuda graph with trainer.compile's torch.compile when `compile`; + the cuda graph with the masked BatchNorm's
    Triton kernels, models/ops/masked_norm_triton.py, when `triton_norm`)."""
    import torch

    from models import padding
    from suite import config
    from suite.bench import bench_train

    rows = []
    for model in models:
        overrides = [f"model.d_state={d_state}"]
        cfg = config.resolve("listops", model, "paper", overrides=overrides, recipe="liquid_s4")
        variants = [("public", None, False), ("suite eager", [], False), ("suite cuda graph", [], True)]
        if compile:
            variants += [("suite cuda graph + compile", [], True)]
        if triton_norm:
            variants += [("suite cuda graph + triton norm", [], True)]
        if model.startswith("liquid"):
            variants += [("suite exact eager", ["model.liquid_mode=exact"], False),
                         ("suite exact cuda graph", ["model.liquid_mode=exact"], True)]
        for side, extra, cuda_graph in variants:
            row = {"model": model, "side": side, "d_state": d_state, "batch": batch, "L": length}
            _fresh()
            default_norm, padding.TRITON_NORM = padding.TRITON_NORM, side.endswith("triton norm") or padding.TRITON_NORM
            try:
                if side == "public":
                    row.update(public_train(public, model, cfg, batch, length, d_state, warmup, rounds, steps))
                else:
                    r = bench_train(model, torch.device("cuda"), batch, length, warmup, rounds, steps,
                                    overrides=overrides + extra, cuda_graph=cuda_graph,
                                    compile=side.endswith("compile"))
                    row.update({k: r[k] for k in ("step_ms", "samples_per_s", "peak_gib", "n_params") if k in r})
            except (RuntimeError, torch.OutOfMemoryError) as exc:
                row["error"] = str(exc).splitlines()[0][:160]
            finally:
                padding.TRITON_NORM = default_norm
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def profile_step(models, out: Path, n: int = 15) -> dict:
    """Top n CUDA kernels of one suite ListOps training step as the default path computes it: the batch's true
    length given as a device tensor (the masked BatchNorm, the reference liquid term's padded path), as the whole
    step's CUDA graph replays it, but run eagerly so that the profiler names each kernel; the recipe as is."""
    import torch
    import torch.nn.functional as F
    from torch.profiler import ProfilerActivity, profile

    from models.padding import batch_length
    from suite.bench import LISTOPS_CLASSES as C
    from suite.bench import LISTOPS_VOCAB as V
    from suite.bench import listops_network
    from suite.train.optim import make_optimizer

    result, text = {}, []
    for model in models:
        _fresh()
        net, cfg = listops_network(model, torch.device("cuda"))
        opt, sched, _ = make_optimizer(net, cfg.optim, total_steps=10**6)
        batch, length = cfg.trainer.batch_size, cfg.data.l_max
        x = torch.randint(3, V, (batch, length), device="cuda")
        y = torch.randint(0, C, (batch,), device="cuda")
        lengths = torch.full((batch,), length, device="cuda")

        def step():
            opt.zero_grad(set_to_none=True)
            with batch_length(net, lengths.max()):  # as the graphs compute (suite/train/cuda_graphs.py _Forward)
                loss = F.cross_entropy(net(x, lengths), y)
            loss.backward()
            opt.step()
            sched.step()

        for _ in range(5):
            step()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            t0 = time.perf_counter()
            step()
            torch.cuda.synchronize()
            wall_ms = 1000 * (time.perf_counter() - t0)
        events = prof.events()
        cpu_names = {e.name for e in events if e.device_type == torch.autograd.DeviceType.CPU}
        kernels = [(e.name, e.time_range.elapsed_us()) for e in events  # kernels, copies and memsets:
                   if e.device_type == torch.autograd.DeviceType.CUDA  # not the GPU-side ranges of
                   and not getattr(e, "is_user_annotation", False) and e.name not in cpu_names]  # annotations
        top = top_kernels(kernels, n)
        total_ms = sum(us for _, us in kernels) / 1000
        result[model] = {"d_state": cfg.model.d_state, "batch": batch, "L": length,
                         "liquid_mode": getattr(cfg.model, "liquid_mode", None), "kernel_launches": len(kernels),
                         "kernel_ms": total_ms, "step_wall_ms_profiled": wall_ms, "top": top}
        head = (f"### {model}: one training step as the graphs compute it, run eagerly, d_state {cfg.model.d_state}, "
                f"batch {batch} x {length}"
                + (f", liquid_mode {cfg.model.liquid_mode}" if hasattr(cfg.model, "liquid_mode") else "")
                + f"\n\n{len(kernels)} kernel launches, {total_ms:.2f} ms of kernel time, "
                  f"{wall_ms:.2f} ms wall (under the profiler)\n")
        table = markdown_table(["kernel", "calls", "total ms", "%"],
                               [[short_kernel_name(r["name"]), r["calls"], r["total_ms"], r["pct"]] for r in top])
        text.append(head + "\n" + table + "\n")
        print(text[-1], flush=True)
    (out / "profile.md").write_text("\n".join(text))
    return result


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------

def layer_markdown(rows: list[dict]) -> str:
    """Per (model, shape): public vs suite (default) and suite with CUDA graphs; speed-up = public ms / suite ms,
    memory ratio = suite GiB / public GiB."""
    by = {(r["model"], r["B"], r["H"], r["L"], r["side"]): r for r in rows}
    out = []
    for (model, B, H, L, side), r in by.items():
        if side == "public":
            continue
        p = by.get((model, B, H, L, "public"), {})
        out.append([model, side, f"{B}x{H}x{L}", p.get("fwd_bwd_ms"), r.get("fwd_bwd_ms"),
                    times(ratio(p.get("fwd_bwd_ms"), r.get("fwd_bwd_ms"))), r.get("graph_fwd_bwd_ms"),
                    times(ratio(p.get("fwd_bwd_ms"), r.get("graph_fwd_bwd_ms"))), p.get("peak_gib"),
                    r.get("peak_gib"), times(ratio(r.get("peak_gib"), p.get("peak_gib"))),
                    p.get("error") or r.get("error") or r.get("graph_error")])
    return markdown_table(["model", "suite side", "BxHxL", "public ms", "suite ms", "speed-up", "suite graph ms",
                           "speed-up (graph)", "public GiB", "suite GiB", "memory suite/public", "note"], out)


def train_markdown(rows: list[dict]) -> str:
    """Per model and suite side: samples/s and the ratio suite / public."""
    pub = {r["model"]: r for r in rows if r["side"] == "public"}
    out = []
    for r in rows:
        p = pub.get(r["model"], {})
        out.append([r["model"], r["side"], r["d_state"], r.get("samples_per_s"), r.get("step_ms"),
                    None if r["side"] == "public" else times(ratio(r.get("samples_per_s"), p.get("samples_per_s"))),
                    r.get("peak_gib"), r.get("n_params"), r.get("error")])
    return markdown_table(["model", "side", "d_state", "samples/s", "step ms", "suite/public", "peak GiB",
                           "parameters", "note"], out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--s4", type=Path, help="checkout of state-spaces/s4 (extension built and installed)")
    ap.add_argument("--liquid-s4", type=Path, help="checkout of raminmh/liquid-s4 (extension built and installed)")
    ap.add_argument("--out", type=Path, required=True, help="folder for side_by_side.json / .md (and profile.md)")
    ap.add_argument("--layer", action="store_true", help="layer fwd+bwd at the four shapes")
    ap.add_argument("--train", action="store_true", help="ListOps training step")
    ap.add_argument("--profile", action="store_true", help="top CUDA kernels of one suite ListOps training step")
    ap.add_argument("--compile", action="store_true",
                    help="with --train: also the graphed step with torch.compile (trainer.compile; 40-80 s per model)")
    ap.add_argument("--triton-norm", action="store_true",
                    help="with --train: also the graphed step with the masked BatchNorm's Triton kernels")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--shapes", default=None, help="e.g. 50x128x2048,8x256x16384 (default: the four shapes)")
    ap.add_argument("--layer-d-state", type=int, default=64)
    ap.add_argument("--train-d-state", type=int, default=8,
                    help="d_state of both sides where the recipe's is not one the public extensions accept")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--length", type=int, default=2048)
    ap.add_argument("--train-warmup", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("error: side_by_side needs a CUDA GPU (the public extensions and CUDA events)\n"
              "fix: run it on a GPU machine (docs/benchmarks.md)", file=sys.stderr)
        return 2
    if not (a.layer or a.train or a.profile):
        a.layer = a.train = True
    models = [m for m in a.models.split(",") if m]
    shapes = ([tuple(int(v) for v in s.split("x")) for s in a.shapes.split(",")] if a.shapes else SHAPES)
    a.out.mkdir(parents=True, exist_ok=True)
    report = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join([Path(sys.argv[0]).name] + (argv or sys.argv[1:])),
              "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda,
              "public_for": {m: PUBLIC_SOURCE[m] for m in models}}
    md = [f"# Side by side, {report['date']}, {report['gpu']}, torch {report['torch']}\n"]
    notes = []

    def save():  # after each section, so that a run stopped part-way keeps what it measured
        report["notes"] = notes
        head = md[:1] + ["\n".join(f"- {n}" for n in notes) + "\n"]
        (a.out / "side_by_side.json").write_text(json.dumps(report, indent=2))
        (a.out / "side_by_side.md").write_text("\n".join(head + md[1:]))

    if a.layer or a.train:
        public = Public(a.s4, a.liquid_s4)
        report["public"] = public.info
        for name, info in public.info.items():
            notes.append(f"{name} @ {info['commit']}: CUDA extension "
                         + ("found" if info["cuda_extension"] else "NOT found (naive kernels)"))
    if a.layer:
        if not extension_accepts(a.layer_d_state):
            notes.append(f"layer d_state {a.layer_d_state}: the public extensions reject it (naive kernels)")
        report["layer"] = layer_rows(public, models, shapes, a.layer_d_state, a.warmup, a.repeats)
        md += [f"## Layer forward+backward (fp32, d_state {a.layer_d_state}, ms: median of {a.repeats} after "
               f"{a.warmup} warm-up; GiB: peak allocated)\n",
               "Both sides: kernel generation, FFT convolution, D skip, GELU, Linear(H, 2H), GLU (the public "
               "layers also apply their length mask). "
               "speed-up = public ms / suite ms; 'suite' is the default liquid mode (reference), 'suite exact' "
               "liquid_mode exact; suite graph = the same layer's forward and backward as CUDA graphs.\n",
               layer_markdown(report["layer"]), ""]
        save()
    if a.train:
        from suite import config

        recipe_d = {m: config.resolve("listops", m, "paper", recipe="liquid_s4").model.d_state for m in models}
        d_train = {m: d if extension_accepts(d) else a.train_d_state for m, d in recipe_d.items()}
        for m in models:
            if d_train[m] != recipe_d[m]:
                notes.append(f"{m} training step: both sides at d_state {d_train[m]}: the public Cauchy/"
                             f"Vandermonde extensions reject the recipe's d_state {recipe_d[m]} "
                             f"({recipe_d[m] // 2} modes; they accept only powers of two)")
        rows = []
        for m in models:
            rows += train_rows(public, [m], d_train[m], a.batch, a.length, a.train_warmup, a.rounds, a.steps,
                               compile=a.compile, triton_norm=a.triton_norm)
            report["train"] = rows
            save()
        md += [f"## ListOps training step (paper network of the Liquid-S4 recipe, batch {a.batch} x {a.length}, "
               f"samples/s: median of {a.rounds} x {a.steps} steps after {a.train_warmup} warm-up)\n",
               train_markdown(rows), ""]
    if a.profile:
        report["profile"] = profile_step(models, a.out)
        md += ["## Profile: see profile.md\n"]
    save()
    print((a.out / "side_by_side.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Why exact-mode Liquid-S4 KB blows up and where the exact recurrence diverges (docs/liquid.md, "Divergence").

    PYTHONPATH=$PWD python benchmarks/liquid_divergence.py [--L 2048] [--H 128]

CPU, float64 unless stated. One layer at the ListOps recipe sizes (d_state 7, dt in [0.002, 0.2]), inputs
sigma * N(0, 1) (a normalised layer input has sigma ~ 1):
  1. the exact recurrence x_k = (A + B u_k) x_{k-1} + B u_k against exact mode's truncated expansion (KB P=2):
     relative difference, largest |x|, and the modes' mean log growth E log|A_bar + B_bar u| per step;
  2. the liquid term's size at init against the linear output (KB and PB, degree 2 and 3), per feature:
     median and max over features of max_t |liquid| / max_t |linear|, and how it grows with L;
  3. the gradient of the output's mean square with respect to log dt, with the liquid term on and off;
  4. a 9-layer network at the ListOps recipe sizes (generated ListOps, BatchNorm, prenorm): the liquid term
     against the linear output per block at init, and a short training run of a small network (4 layers,
     d_model 32, L 256), with liquid_norm 'none' and 'pole'.
"""

from __future__ import annotations

import argparse
import math

import torch

from models.liquid import LiquidS4


def layer(kind: str, degree: int, H: int, L: int, seed: int = 0) -> LiquidS4:
    torch.manual_seed(seed)
    return LiquidS4(H, 7, l_max=L, dt_min=0.002, dt_max=0.2, liquid_kernel=kind, liquid_degree=degree,
                    liquid_mode="exact").double()


def oracle(m: LiquidS4, u: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The exact liquid recurrence of m's diagonal system (float64): its output and its largest |x|."""
    A, B, C = (x.detach() for x in m.diagonal())
    x, ys, top = torch.zeros(u.shape[0], *B.shape, dtype=B.dtype), [], 0.0
    for t in range(u.shape[-1]):
        Bu = B * u[..., t, None]
        x = (A + Bu) * x + Bu
        top = max(top, x.abs().max().item())
        ys.append(2 * (C[0] * x).sum(-1).real + m.D.detach() * u[..., t])
    return torch.stack(ys, -1), top


def divergence(H: int, L: int) -> None:
    print(f"1. exact recurrence vs exact-mode KB P=2, one layer H={H}, L={L}")
    m = layer("kb", 2, H, L)
    m.P.data.zero_()  # diagonal system: the expansion of the recurrence is exactly the liquid series
    A, B, _ = (x.detach() for x in m.diagonal())
    for sigma in (0.03, 0.1, 0.3, 1.0, 3.0):
        u = sigma * torch.randn(1, H, L, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            conv = m(u)
        ref, top = oracle(m, u)
        rel = ((conv - ref).abs().max() / conv.abs().max()).item()
        v = sigma * torch.randn(4096, 1, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
        growth = torch.log((A + B * v).abs()).mean(0)  # (H, N2): mean log |A + B u| per step
        unstable = (growth > 0).double().mean().item()
        print(f"  sigma {sigma:4}: rel |conv - recurrence| = {rel:.1e}, max|x| = {top:.1e}, "
              f"modes with E log|A+Bu| > 0: {100 * unstable:.0f}% (max {growth.max().item():.2e}/step)")


def sizes(H: int, L: int) -> None:
    print(f"2. liquid term / linear output at init (per feature: max_t |liquid| / max_t |linear|), N(0,1) inputs")
    for L_ in (256, L):
        u = torch.randn(2, H, L_, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
        for kind, degree in (("kb", 2), ("kb", 3), ("pb", 2), ("pb", 3)):
            m = layer(kind, degree, H, L_)
            with torch.no_grad():
                lin = super(LiquidS4, m).forward(u)
                liq = m.liquid_term(u)
            r = liq.abs().amax((0, 2)) / lin.abs().amax((0, 2))
            print(f"  L={L_:5d} {kind} P={degree}: median {r.median().item():.2f}, max {r.max().item():.1f}, "
                  f"largest |liquid| {liq.abs().max().item():.1e} (fp32 max 3.4e38)")


def dt_gradient(H: int, L: int) -> None:
    print("3. |d mean(y^2) / d log dt| (median over features), liquid on vs off")
    u = torch.randn(2, H, L, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    for kind in ("kb", "pb"):
        out = {}
        for k in (kind, "none"):
            m = layer(k, 2, H, L)
            m(u).pow(2).mean().backward()
            out[k] = m.log_dt.grad.abs().median().item()
        print(f"  {kind}: on {out[kind]:.2e}, off {out['none']:.2e}, ratio {out[kind] / out['none']:.1f}")




# 4. A network: the liquid term through depth, and a short training run -------------------------------


def listops_batches(n: int, batch: int, max_len: int, seed: int = 0):
    """Generated ListOps expressions (tasks/generators/listops.py) as padded token batches."""
    from tasks.generators.listops import generate
    from tasks.listops import tokenize

    rows = generate(n, 0, 0, min_length=max_len // 4, max_length=max_len, seed=seed, progress=False)["train"]
    vocab = {t: i + 3 for i, t in enumerate(sorted({t for s, _ in rows for t in tokenize(s)}))}
    for b in range(0, n, batch):
        chunk = rows[b: b + batch]
        ids = [[vocab[t] for t in tokenize(s)][: max_len - 1] + [2] for s, _ in chunk]
        x = torch.zeros(len(ids), max_len, dtype=torch.long)
        for i, seq in enumerate(ids):
            x[i, : len(seq)] = torch.tensor(seq)
        yield x, torch.tensor([len(s) for s in ids]), torch.tensor([y for _, y in chunk])


def network(kind: str, degree: int, d_model: int, n_layers: int, L: int, seed: int = 0, norm: str = "none"):
    from models.network import SequenceModel

    torch.manual_seed(seed)
    options = dict(d_state=7, l_max=L, dt_min=0.002, dt_max=0.2, liquid_kernel=kind, liquid_degree=degree,
                   liquid_mode="exact", liquid_norm=norm)
    return SequenceModel(LiquidS4, options, d_input=40, d_output=10, d_model=d_model, n_layers=n_layers, norm="batch",
                         prenorm=True, dropout=0.0)


def through_depth(d_model: int, n_layers: int, L: int) -> None:
    print(f"4a. per block at init (train-mode BatchNorm), d_model {d_model}, {n_layers} layers, L {L}: "
          "max|liquid| / max|linear| of the SSM, and the residual stream's RMS")
    x, lengths, _ = next(listops_batches(4, 4, L))
    for kind, degree, norm in (("kb", 2, "none"), ("kb", 3, "none"), ("pb", 2, "none"), ("kb", 2, "pole"),
                               ("kb", 3, "pole")):
        m = network(kind, degree, d_model, n_layers, L, norm=norm)
        ratios, rms = [], []
        for block in m.blocks:
            ssm = block.layer.ssm
            def hook(mod, inp, out, ssm=ssm):
                with torch.no_grad():
                    liq = mod.liquid_term(inp[0])
                    ratios.append((liq.abs().max() / (out - liq).abs().max()).item())
            ssm.register_forward_hook(hook)
            block.register_forward_hook(lambda mod, inp, out: rms.append(out.float().pow(2).mean().sqrt().item()))
        with torch.no_grad():
            m(x, lengths)
        print(f"  {kind} P={degree} liquid_norm {norm}: ratio " + " ".join(f"{r:.2g}" for r in ratios)
              + " | RMS " + " ".join(f"{r:.2g}" for r in rms))


def short_training(d_model: int, n_layers: int, L: int, steps: int) -> None:
    print(f"4b. short CPU training (float32, AdamW lr 2e-3, batch 8, d_model {d_model}, {n_layers} layers, L {L}):"
          " train loss, eval-mode loss on a held-out batch, |grad log dt|")
    data = list(listops_batches(8 * (steps + 1), 8, L, seed=1))
    held = data.pop()
    for kind, degree, norm in (("none", 2, "none"), ("pb", 2, "none"), ("kb", 2, "none"), ("kb", 3, "none"),
                               ("kb", 2, "pole"), ("kb", 3, "pole")):
        m = network(kind, degree, d_model, n_layers, L, norm=norm)
        opt = torch.optim.AdamW(m.parameters(), lr=2e-3, weight_decay=0.03)
        log = []
        for step, (x, lengths, y) in enumerate(data[:steps]):
            m.train()
            loss = torch.nn.functional.cross_entropy(m(x, lengths), y)
            opt.zero_grad()
            loss.backward()
            g = max(b.layer.ssm.log_dt.grad.abs().max().item() for b in m.blocks)
            opt.step()
            if step % max(1, steps // 5) == 0 or step == steps - 1:
                m.eval()
                with torch.no_grad():
                    ev = torch.nn.functional.cross_entropy(m(held[0], held[1]), held[2]).item()
                log.append(f"{step}: {loss.item():.2f}/{ev:.3g}/{g:.1e}")
        print(f"  {kind} P={degree} liquid_norm {norm}: " + "  ".join(log))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--L", type=int, default=2048)
    ap.add_argument("--H", type=int, default=128)
    ap.add_argument("--steps", type=int, default=40, help="short training run (section 4b); 0 skips it")
    args = ap.parse_args()
    torch.set_num_threads(1)
    divergence(args.H, min(args.L, 1024))
    sizes(args.H, args.L)
    dt_gradient(args.H, args.L)
    through_depth(args.H, 9, min(args.L, 1024))
    if args.steps:
        short_training(32, 4, 256, args.steps)


if __name__ == "__main__":
    main()

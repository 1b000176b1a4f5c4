"""Fast paths against float64 on whatever device is present (the GPU in benchmarks/gpu_session.py).

The checks themselves are models/checks.py (the tests run them on a CPU); this script runs them at full size.

For each model's SSM layer: the fp32 layer (the fast paths: fused FFT convolution with the skip
folded in, batched Cauchy, the fused KB degree-2 convolution) against a float64 copy of the same layer, outputs and
the gradients of the input and of every parameter, as max |diff| / max |float64 value|, beside the
same error of the plain fp32 path (`fused = False`: autograd FFT convolution, skip added, liquid terms
one by one). The fast path passes when its error is at most twice the plain path's (+5e-5): it adds
no error of its own beyond fp32 rounding. Prints one line per model and raises on a failure.
"""

from __future__ import annotations

import copy

import torch

from models.checks import check_layer as check_ssm_layer
from models.checks import kb2_long_error, rel_err, within

TOL = 2e-6  # conv_and_kb2 at L = 16384: relative to the largest float64 value


def check_layer(model: str, B: int = 4, H: int = 32, L: int = 1024, device: str = "cuda") -> dict:
    """models.checks.check_layer for a registered model name."""
    from suite import registry

    return check_ssm_layer(registry.resolve(registry.model(model)), B=B, H=H, L=L, device=device)


def check_graphed_network(model: str) -> float:
    """One forward and backward of the ListOps network (dropout 0), eager against CUDA-graphed: the
    worst relative difference over the output and every parameter gradient."""
    import torch.nn.functional as F

    from suite.bench import LISTOPS_CLASSES, LISTOPS_VOCAB, graphed, listops_network

    net, _ = listops_network(model, "cuda", overrides=["model.dropout=0.0"])
    twin = copy.deepcopy(net)
    x = torch.randint(3, LISTOPS_VOCAB, (12, 2048), device="cuda")
    y = torch.randint(0, LISTOPS_CLASSES, (12,), device="cuda")
    lengths = torch.full((12,), 2048, device="cuda")
    fwd = graphed(twin, x, lengths)  # its warm-up runs leave gradients behind: clear them
    twin.zero_grad(set_to_none=True)
    outs = []
    for f, m in ((net, net), (fwd, twin)):
        out = f(x, lengths)
        F.cross_entropy(out, y).backward()
        outs.append([out.detach()] + [p.grad for p in m.parameters()])
    return max(rel_err(a, b.double()) for a, b in zip(outs[1], outs[0]))


def check_graphed_layer(model: str, B: int = 4, H: int = 64, L: int = 2048) -> float:
    """The SSM layer (d_state 64) eager against its CUDA-graphed twin: worst relative difference over
    the output, the input gradient and every parameter gradient."""
    from models.block import SSMLayer
    from suite import registry

    torch.manual_seed(0)
    cls = registry.resolve(registry.model(model))
    kw = {"d_state": 64} | ({} if model == "s4d" else {"l_max": L})
    kw |= {"liquid_mode": "exact"} if model.startswith("liquid") else {}  # the fused KB path is exact mode's
    layer = SSMLayer(cls(H, **kw)).cuda()
    twin = copy.deepcopy(layer)
    u = torch.randn(B, H, L, device="cuda", requires_grad=True)
    fwd = torch.cuda.make_graphed_callables(twin, (u,))
    twin.zero_grad(set_to_none=True)
    outs = []
    for f, m in ((layer, layer), (fwd, twin)):
        x = u.detach().clone().requires_grad_()
        y = f(x)
        (y * y).sum().backward()
        outs.append([y.detach(), x.grad] + [p.grad for p in m.parameters()])
    return max(rel_err(a, b.double()) for a, b in zip(outs[1], outs[0]))


def main(models=("s4d", "s4", "liquid_s4_pb", "liquid_s4_kb"), device: str | None = None) -> None:
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    failures = []
    for model in models:
        errs = check_layer(model, device=device)
        name, (e_fast, e_plain) = max(errs.items(), key=lambda kv: kv[1][0])
        print(f"fast-path check {model:13s} on {device}: out {errs['out'][0]:.2e} (plain {errs['out'][1]:.2e}), "
              f"grad u {errs['grad u'][0]:.2e} (plain {errs['grad u'][1]:.2e}), worst {name} {e_fast:.2e} "
              f"(plain {e_plain:.2e})")
        failures += [f"{model} {n}: {a:.2e} vs plain {b:.2e}" for n, (a, b) in errs.items() if not within(a, b)]
    # KB degree 2 at long L against the float64 path (prefix-sum precision)
    L = 16384
    e = kb2_long_error(L, device=device)
    print(f"fast-path check conv_and_kb2 L={L}, input mean 1: fp32 vs float64 rel err {e:.2e} (tolerance {TOL:.0e})")
    if e > TOL:
        failures.append(f"conv_and_kb2: {e:.2e}")
    if device == "cuda":
        for model in models:
            e = check_graphed_layer(model)
            print(f"fast-path check CUDA-graphed layer {model}: worst rel err vs eager {e:.2e} (tolerance 1e-4)")
            if e > 1e-4:
                failures.append(f"graphed layer {model}: {e:.2e}")
        for model in models:
            e = check_graphed_network(model)
            print(f"fast-path check CUDA-graphed ListOps network {model}: worst rel err vs eager {e:.2e} (tolerance 1e-4)")
            if e > 1e-4:
                failures.append(f"graphed {model}: {e:.2e}")
    if failures:
        raise AssertionError("fast paths off: " + "; ".join(failures))
    print("fast-path check: all within tolerance")


if __name__ == "__main__":
    main()

"""Golden numbers for Liquid-S4's reference mode, from the public Liquid-S4 layer itself.

    PYTHONPATH=$PWD:/tmp/deps python benchmarks/liquid_golden.py /path/to/liquid-s4-checkout [--out tests/golden]

The checkout is raminmh/liquid-s4 (the Liquid-S4 paper code; its class `S4` in src/models/sequence/ss/s4.py
with liquid_kernel 'polyb' / 'kb'); it needs einops and opt_einsum importable (e.g. `pip install --target
/tmp/deps einops opt_einsum`). Nothing of it is copied into this repository: the script imports the public
layer from the checkout, with stand-ins for the package modules it does not need (logging helper, the
position-wise components, package __init__ files that import hydra and the training stack; pykeops hidden,
so that its plain PyTorch Cauchy sums run on the CPU), builds it in
float64 on the CPU with `linear=True` (the layer's output y = K * u + D u + liquid term, before the
activation), copies its parameters into our LiquidS4 (liquid_mode="reference"), checks that both agree and
writes, for every case, the parameters, the input, the public output and the public output with the liquid
term switched off to tests/golden/liquid_reference.npz (+ a JSON index of the cases).

The public liquid term reads plain tensors kept from initialisation (its quirk 1, docs/liquid.md); `.double()`
does not convert those, so the script converts them itself: the same (float32-drawn) values, in float64.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import types
from pathlib import Path

import numpy as np
import torch

H, N, L, L_MAX, BATCH = 2, 8, 40, 80, 2


def import_public_layer(checkout: Path):
    """The public `S4` class, imported from the checkout with stand-ins for the modules it does not use."""

    def package(name: str, path: Path | None = None) -> types.ModuleType:
        mod = types.ModuleType(name)
        mod.__path__ = [str(path)] if path else []
        return register(name, mod)

    def register(name: str, mod: types.ModuleType) -> types.ModuleType:
        sys.modules[name] = mod
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, mod)
        return mod

    src = checkout / "src"
    package("src", src)
    package("src.utils", src / "utils")
    package("src.models", src / "models")
    package("src.models.sequence", src / "models" / "sequence")
    package("src.models.sequence.ss", src / "models" / "sequence" / "ss")
    train = types.ModuleType("src.utils.train")
    train.get_logger = lambda name=__name__: logging.getLogger(name)  # the public helper wraps logging
    register("src.utils.train", train)
    nn_stub = package("src.models.nn")  # position-wise parts, unused with linear=True

    def unused(*args, **kwargs):
        raise RuntimeError("stand-in: not used by the golden cases (linear=True)")

    nn_stub.LinearActivation = nn_stub.Activation = nn_stub.DropoutNd = unused
    sys.modules["pykeops"] = None  # the public code then takes its plain PyTorch Cauchy/Vandermonde (CPU)
    from src.models.sequence.ss.s4 import S4  # noqa: E402  (the public layer)
    return S4


def public_layer(S4, kind: str, degree: int, bidirectional: bool, seed: int):
    torch.manual_seed(seed)
    pub = S4(H, d_state=N, l_max=L_MAX, bidirectional=bidirectional, linear=True, transposed=True,
             liquid_kernel={"pb": "polyb", "kb": "kb"}[kind], liquid_degree=degree, dt_min=0.01, dt_max=0.1)
    pub = pub.double()
    w = pub.kernel  # the SSKernel wrapper: its B, C, w, log_dt are the liquid term's init-time tensors
    w.B, w.C, w.w = (x.to(torch.complex128) for x in (w.B, w.C, w.w))
    w.log_dt = w.log_dt.to(torch.float64)
    return pub


def parameters(pub) -> dict[str, np.ndarray]:
    """The public layer's parameters as our LiquidS4 names them (before the first forward: raw C, not C~)."""
    k = pub.kernel.kernel  # SSKernelNPLR
    return {"log_dt": k.log_dt, "A_log_re": k.inv_w_real, "A_im": k.w_imag, "P": k.P[0], "B": k.B[0],
            "C": k.C, "D": pub.D[0]}


def our_layer(kind: str, degree: int, bidirectional: bool, params: dict):
    """Our reference-mode layer with the given public parameters (C~ recomputed from the raw C)."""
    from models.liquid import LiquidS4

    ours = LiquidS4(H, N, bidirectional=bidirectional, l_max=L_MAX, liquid_kernel=kind, liquid_degree=degree,
                    liquid_mode="reference").double()
    with torch.no_grad():
        for name, value in params.items():
            getattr(ours, name).copy_(torch.as_tensor(value))
        ours.L.fill_(0)
        ours._length = 0
        ours._grow(L_MAX)
        ours.freeze_reference()
    return ours


def cases():
    for i, (kind, degree, bidirectional, rate) in enumerate(
            itertools.product(("pb", "kb"), (2, 3), (False, True), (1.0, 2.0))):
        yield f"{kind}{degree}_{'bi' if bidirectional else 'uni'}_rate{int(rate)}", kind, degree, bidirectional, rate, i


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkout", type=Path, help="local checkout of raminmh/liquid-s4")
    ap.add_argument("--out", type=Path, default=Path("tests/golden"))
    args = ap.parse_args(argv)
    S4 = import_public_layer(args.checkout.resolve())
    arrays, index = {}, {}
    for name, kind, degree, bidirectional, rate, seed in cases():
        pub = public_layer(S4, kind, degree, bidirectional, seed)
        params = {k: v.detach().numpy().copy() for k, v in parameters(pub).items()}
        gen = torch.Generator().manual_seed(1000 + seed)
        u = torch.randn(BATCH, H, L, generator=gen, dtype=torch.float64)
        with torch.no_grad():
            y = pub(u, rate=rate)[0]
            liquid, pub.liquid_kernel = pub.liquid_kernel, None
            y_linear = pub(u, rate=rate)[0]
            pub.liquid_kernel = liquid
            layer = our_layer(kind, degree, bidirectional, params)
            ours, ours_liquid = layer(u, rate=rate), layer.liquid_term(u, rate=rate)
        err = ((ours - y).abs().max() / y.abs().max()).item()
        err_liq = ((ours_liquid - (y - y_linear)).abs().max() / (y - y_linear).abs().max()).item()
        print(f"{name:18s} max|ours - public| / max|public| = {err:.1e}; liquid term alone {err_liq:.1e}")
        for key, value in (params | {"u": u.numpy(), "y": y.numpy(), "y_linear": y_linear.numpy()}).items():
            arrays[f"{name}/{key}"] = value
        index[name] = {"liquid_kernel": kind, "liquid_degree": degree, "bidirectional": bidirectional,
                       "rate": rate, "d_model": H, "d_state": N, "L": L, "l_max": L_MAX, "seed": seed}
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out / "liquid_reference.npz", **arrays)
    meta = {"source": "raminmh/liquid-s4, src/models/sequence/ss/s4.py class S4 (linear=True, float64, CPU)",
            "script": "benchmarks/liquid_golden.py", "cases": index}
    (args.out / "liquid_reference.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    main()

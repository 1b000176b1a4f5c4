"""The KB tap map of padded batches (models/ops/kb_taps_triton.py) on the GPU: time of the Triton kernel at a few
launch configurations, of its PyTorch twin, and of the float64 matrix product each layer then pays; error of each
configuration against the twin.

    PYTHONPATH=$PWD python3 benchmarks/kb_taps_bench.py [--L 2048] [--L0 1900] [--H 128] [--out DIR]

Times are CUDA-event medians of 20 calls after 3 warm-up calls, in ms.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.liquid_reference import kb_tap_map_ref  # noqa: E402
from models.ops import kb_taps_triton  # noqa: E402
from benchmarks.triton_check import time_ms  # noqa: E402

CONFIGS = [(256, 4), (128, 4), (512, 4), (1024, 8), (64, 2)]  # (BLOCK_N, num_warps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--L", type=int, default=2048)
    parser.add_argument("--L0", type=int, default=1900)
    parser.add_argument("--H", type=int, default=128, help="channels of the layer's matrix product")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    L0 = torch.tensor(args.L0, device="cuda")
    ref = kb_tap_map_ref(L0, args.L)
    rows = [{"what": "PyTorch twin", "ms": time_ms(lambda: kb_tap_map_ref(L0, args.L)), "err": 0.0}]
    for block_n, warps in CONFIGS:
        G = kb_taps_triton.kb_tap_map(L0, args.L, block_n, warps)
        err = ((G - ref).abs().max() / ref.abs().max()).item()
        ms = time_ms(lambda: kb_taps_triton.kb_tap_map(L0, args.L, block_n, warps))
        rows.append({"what": f"Triton BLOCK_N {block_n}, {warps} warps", "ms": ms, "err": err})
    k1 = torch.randn(args.H, args.L + 1, device="cuda", dtype=torch.float64)
    rows.append({"what": f"float64 product ({args.H}, {args.L + 1}) x ({args.L + 1}, {2 * args.L})",
                 "ms": time_ms(lambda: k1 @ ref.t()), "err": None})
    print(f"# KB tap map, {torch.cuda.get_device_name()}, L {args.L}, L0 {args.L0}")
    print("| what | ms | error vs twin |\n|---|---|---|")
    for r in rows:
        err = "" if r["err"] is None else f"{r['err']:.1e}"
        print(f"| {r['what']} | {r['ms']:.3f} | {err} |")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "kb_taps_bench.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

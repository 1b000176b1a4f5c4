"""Layer fwd+bwd and graphed ListOps training step of whichever checkout is on PYTHONPATH, one JSON line
per figure: run it once with the old checkout and once with the new one in the same device command.

    PYTHONPATH=/path/to/checkout python3 benchmarks/before_after.py --tag after [--train s4d,s4]

Layer: `suite.bench.bench_layer` (fp32, d_state 64, CUDA-event median of 10). Training step:
`suite.bench.bench_train` with cuda_graph=True (batch 12 x 2048, median of 3 x 20 steps after 10).
"""

from __future__ import annotations

import argparse
import json

import torch

SHAPES = [(50, 128, 2048), (50, 512, 1024), (16, 256, 4096), (8, 256, 16384)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tag", required=True)
    ap.add_argument("--layer", default="s4d,s4,liquid_s4_pb,liquid_s4_kb")
    ap.add_argument("--train", default="s4d,s4")
    args = ap.parse_args()
    from suite.bench import bench_layer, bench_train

    device = torch.device("cuda")
    for model in filter(None, args.train.split(",")):
        r = bench_train(model, device, warmup=10, rounds=3, steps=20, cuda_graph=True)
        print(json.dumps({"tag": args.tag, "what": "train", "model": model,
                          "samples_per_s": round(r["samples_per_s"], 1), "peak_gib": round(r["peak_gib"], 3)}),
              flush=True)
    for model in filter(None, args.layer.split(",")):
        for B, H, L in SHAPES:
            r = bench_layer(model, B, H, L, device, repeats=10)
            print(json.dumps({"tag": args.tag, "what": "layer", "model": model, "shape": f"{B}x{H}x{L}",
                              "fwd_ms": round(r["fwd_ms"], 3), "fwd_bwd_ms": round(r["fwd_bwd_ms"], 3),
                              "peak_gib": round(r["fwd_bwd_peak_gib"], 3)}), flush=True)
            del r
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# `suite run` training throughput, eager against trainer.cuda_graph=true, on one GPU (device tool or any CUDA
# machine; needs mlflow: see BENCHMARKS.md for the wheel line):
#   bash benchmarks/run_throughput.sh [MODEL ...]      -> one Markdown table per model and mode, under $OUT
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
for m in ${@:-liquid_s4_kb liquid_s4_pb s4 s4d}; do
  for g in "" "--cuda-graph"; do
    python3 benchmarks/ddp_throughput.py --gpus 1 --model "$m" --steps 150 --warmup 30 \
      --out "$OUT/run_${m}${g:+_graph}" $g 2>&1 | grep -v "^\$ "
  done
done

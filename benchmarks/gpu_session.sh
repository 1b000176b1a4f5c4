#!/usr/bin/env bash
# The whole GPU session in one command (device tool or any CUDA machine):
#   bash benchmarks/gpu_session.sh        -> fast-path checks, Triton kernel checks (and s4/KB bench with the
#                                            Triton Cauchy kernel on), layer bench, training bench, profiles, in $OUT
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
python3 benchmarks/gpu_session.py --stages check --out "$OUT" > "$OUT/check.log" 2>&1
python3 benchmarks/triton_check.py --bench-cauchy > "$OUT/triton.log" 2>&1
python3 -m suite.cli bench --no-track > "$OUT/bench.log" 2>&1
python3 -m suite.cli bench --train --no-track > "$OUT/train.log" 2>&1
python3 benchmarks/gpu_session.py --stages profile --out "$OUT" > "$OUT/profile.log" 2>&1
grep -h "fast-path" "$OUT/check.log"; grep -h "triton\|Error" "$OUT/triton.log"; grep -h -A12 "layer benchmark on" "$OUT/triton.log"
grep -h -B1 -A30 "layer benchmark on" "$OUT/bench.log"; grep -h -A12 "training-step" "$OUT/train.log"
grep -h "=== \|Self CUDA time total\|Self CPU time total" "$OUT/profile.log"

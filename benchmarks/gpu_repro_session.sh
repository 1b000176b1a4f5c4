#!/usr/bin/env bash
# One device command of session 8 (issues 12 and 13): the CUDA-graph check of every model and input kind, the
# training-step benchmark of the default path, then ListOps reproduction runs until the command's end.
#   bash benchmarks/gpu_repro_session.sh SECONDS [check] RUN [RUN ...]      (results in $OUT)
# On a machine with several GPUs the runs train at the same time, one per GPU (reproduction_job.py --parallel).
set -u
start=$(date +%s); budget=$1; shift
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
python3 -c "import mlflow, optuna" 2>/dev/null || python3 -m pip install -q --no-index --find-links .gpu-wheels \
  mlflow==3.17.2 optuna==5.0.0 optuna-integration==5.0.0
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
if [ "${1:-}" = check ]; then
  shift
  python3 -m pytest -q -p no:cacheprovider -k gpu tests/suite/test_cuda_graphs.py -rf 2>&1 | tail -40 > "$OUT/graphs.log"
  tail -15 "$OUT/graphs.log"
  python3 -m suite.cli bench --train --no-track 2>&1 | tail -20 | tee "$OUT/train_bench.log"
fi
left=$((budget - $(date +%s) + start))
# several runs on a machine with several GPUs: at the same time, one per GPU
parallel=$([ $# -gt 1 ] && [ "$(nvidia-smi -L | grep -c '^GPU ')" -gt 1 ] && echo --parallel)
[ $# -gt 0 ] && python3 benchmarks/reproduction_job.py "$@" $parallel --deadline "$left" --out "$OUT" 2>&1 \
  | grep -v "generating ListOps" | tee "$OUT/job.log" | grep -v "^epoch\|step " | tail -30
for f in "$OUT"/*.log; do grep -h "^epoch" "$f" | tail -4; done
# the device tool brings back at most 8 files of 16 MiB: beyond 8, everything goes into one archive in parts
# (cat all.tgz.* | tar -xz, then unpack each bundle's RUN.tar.* as above); the files go only once it is written
if [ "$(ls "$OUT" | wc -l)" -gt 8 ]; then
  (cd "$OUT" && tar -czf /tmp/all.tgz ./* && mkdir /tmp/parts && split -b 15M /tmp/all.tgz /tmp/parts/all.tgz. \
    && rm -rf ./* && mv /tmp/parts/* . && rm -rf /tmp/all.tgz /tmp/parts && ls)
fi

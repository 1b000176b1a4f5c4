#!/usr/bin/env bash
# One device command for issue 12's side-by-side and many-runs figures (docs/benchmarks.md):
#   bash benchmarks/gpu_speed_session.sh [check] [sbs] [profile] [many] [loop]      (results in $OUT/results.tgz)
# Every stage runs under `timeout` so that the whole command ends by $DEADLINE seconds (default 570, under the
# device tool's 600 s limit) and the archive of what finished always comes back; check and loop get at most
# $CHECK_S (200) and $LOOP_S (220) seconds.
# check: the GPU tests of the graphed paths (training and evaluation graphs against eager, every model; with
#        trainer.compile too; CHECK_TESTS="tests/..." for other files; pytest stops at CHECK_S seconds:
#        Lightning turns the SIGTERM of `timeout` into a SIGTERMException in the test running then);
# sbs:  builds the public CUDA extensions from public_code/ (benchmarks/side_by_side_prepare.sh made it) and runs
#       benchmarks/side_by_side.py --train: the ListOps training step of every model, public and suite, same process
#       (SBS_ARGS="--compile" adds the suite's step with trainer.compile: 40-80 s of compilation per model);
# profile: benchmarks/side_by_side.py --profile: the top CUDA kernels of one ListOps step as the default graphs
#       compute it (PROFILE_MODELS, default liquid_s4_kb,liquid_s4_pb,s4d), in profile/profile.md;
# many: benchmarks/many_runs.py (K runs on one GPU, with and without the CUDA MPS daemon the suite starts);
# loop: benchmarks/loop_overhead.py (suite run against the step benchmark; LOOP_ARGS="--trace --warmup 400" for
#       the host's CUDA calls over 20 steady steps).
# Device tool: carry [".gpu-wheels", "public_code"] (both git-ignored; public_code only for sbs).
set -u
start=$(date +%s); DEADLINE=${DEADLINE:-570}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
python3 -c "import mlflow, optuna, einops, opt_einsum, rich" 2>/dev/null || python3 -m pip install -q --no-index \
  --find-links .gpu-wheels mlflow==3.17.2 optuna==5.0.0 optuna-integration==5.0.0 einops opt_einsum rich
left() { echo $((DEADLINE - 10 - $(date +%s) + start)); }
cap() { local l; l=$(left); echo $(( l < $1 ? l : $1 )); }   # the time left, at most $1 seconds
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
for stage in "$@"; do
  [ "$(left)" -gt 20 ] || { echo "skipped $stage: no time left" | tee -a "$OUT/skipped.txt"; continue; }
  echo "stage $stage: $(left) s left"
  case $stage in
    check)
      timeout "$(cap ${CHECK_S:-200})" python3 -m pytest -q -p no:cacheprovider -rf ${CHECK_TESTS:-tests/suite/test_cuda_graphs.py \
        tests/suite/test_step_graphs.py tests/models/test_padding.py tests/suite/test_loop.py tests/models/test_fast_paths.py \
        tests/models/test_kb_taps.py tests/suite/test_compile.py} \
        > "$OUT/check.log" 2>&1
      tail -8 "$OUT/check.log" ;;
    sbs)
      # build where session 7's build worked (docs/benchmarks.md): a copy under /tmp, not the carried tree
      export TORCH_CUDA_ARCH_LIST=9.0 PUBLIC=/tmp/public; rm -rf $PUBLIC; cp -r public_code $PUBLIC
      python3 -c "import setuptools" 2>/dev/null || python3 -m pip install -q --no-index --find-links .gpu-wheels setuptools wheel
      python3 -c "import ninja" 2>/dev/null || python3 -m pip install -q --no-index --find-links .gpu-wheels ninja
      python3 -c "import setuptools, pip; print('setuptools', setuptools.__version__, 'pip', pip.__version__)"
      (cd $PUBLIC/s4/extensions/kernels && { python3 -m pip install --no-build-isolation . || python3 setup.py build_ext --inplace; } > "$OUT/build_s4.log" 2>&1 \
        || { echo "s4 extension build failed:"; tail -25 "$OUT/build_s4.log"; }) &
      (cd $PUBLIC/liquid-s4/extensions/cauchy && { python3 -m pip install --no-build-isolation . || python3 setup.py build_ext --inplace; } > "$OUT/build_ls4.log" 2>&1 \
        || { echo "liquid-s4 extension build failed:"; tail -25 "$OUT/build_ls4.log"; }) &
      wait
      export PYTHONPATH=$PYTHONPATH:$PUBLIC/s4/extensions/kernels:$PUBLIC/liquid-s4/extensions/cauchy  # build_ext --inplace
      python3 -c "import torch, structured_kernels, cauchy_mult; print('public extensions: importable')"
      timeout "$(left)" python3 benchmarks/side_by_side.py --s4 $PUBLIC/s4 --liquid-s4 $PUBLIC/liquid-s4 --out "$OUT" \
        --train ${SBS_ARGS:-} > "$OUT/sbs.log" 2>&1
      tail -30 "$OUT/side_by_side.md" ;;
    profile)
      timeout "$(left)" python3 benchmarks/side_by_side.py --profile --models ${PROFILE_MODELS:-liquid_s4_kb,liquid_s4_pb,s4d} \
        --out "$OUT/profile" > "$OUT/profile.log" 2>&1
      grep -h "^###\|kernel launches" "$OUT/profile/profile.md" ;;
    many)
      timeout "$(left)" python3 benchmarks/many_runs.py --model s4d --workers 1 4 --steps ${MANY_STEPS:-2000} --out "$OUT/many" > "$OUT/many.log" 2>&1
      tail -12 "$OUT/many.log"; rm -rf "$OUT/many/data" "$OUT/many/checkpoints" "$OUT/many/mlruns" "$OUT/many/many_runs.db"* ;;
    loop)
      timeout "$(cap ${LOOP_S:-220})" python3 benchmarks/loop_overhead.py --case s4d --case pb_reference ${LOOP_ARGS:-} --out "$OUT/loop" \
        > "$OUT/loop.log" 2>&1
      tail -15 "$OUT/loop.log" ;;
  esac
done
# the device tool brings back at most 8 files of limited size: the texts only (stores, data and checkpoints
# stay behind), in one archive (tar -xzf results.tgz)
(cd "$OUT" && find . -type f \( -name '*.md' -o -name '*.json' -o -name '*.log' -o -name '*.txt' \) -size -4M \
  | tar -czf /tmp/results.tgz -T - && rm -rf ./* && mv /tmp/results.tgz . && ls -la results.tgz)

#!/usr/bin/env bash
# Extracts the parts of the public code that benchmarks/side_by_side.py needs from two git repositories
# (bare mirrors or clones) into DEST/s4 and DEST/liquid-s4, each with a COMMIT file (docs/benchmarks.md):
#   bash benchmarks/side_by_side_prepare.sh S4_GIT_DIR LIQUID_S4_GIT_DIR DEST
set -euo pipefail
s4=$1 liquid=$2 dest=$3
mkdir -p "$dest/s4" "$dest/liquid-s4"
git --git-dir="$s4" archive HEAD models/s4/s4.py extensions/kernels | tar -x -C "$dest/s4"
git --git-dir="$s4" rev-parse HEAD > "$dest/s4/COMMIT"
git --git-dir="$liquid" archive HEAD src/models/sequence/ss/s4.py src/models/sequence/ss/kernel.py \
    src/models/sequence/ss/dplr.py src/models/hippo src/models/functional src/models/nn src/utils \
    extensions/cauchy | tar -x -C "$dest/liquid-s4"
git --git-dir="$liquid" rev-parse HEAD > "$dest/liquid-s4/COMMIT"
du -sh "$dest"

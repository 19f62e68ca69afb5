#!/usr/bin/env bash
# Fine-tune the shipped model on a lent GPU machine in ONE self-contained call, then sample the real-photo
# benchmark with the new weights in the same call (a lent machine is given back seconds after a call, so nothing
# written there outlasts it: no checkpoint to resume from in a later call).
#
#   bash scripts/gpu_finetune.sh PREPARED.npz SECONDS CONDITIONS.npz [more train_small.py options]
#
#   PREPARED.npz    scripts/prepare_training.py's file (the shipped model's: see its model card, Data)
#   SECONDS         training time (train_small --max-seconds); rebuilding the views from the seeds comes first
#   CONDITIONS.npz  bench_real_photos.py --photos outputs/real --save-conditions CONDITIONS.npz (made here:
#                   the GPU machine has no mediapipe)
#
# Writes into $OUT (default outputs/gpu_finetune): model/ (config.json and the fp16 safetensors in parts of at
# most 15 MiB, to join with `cat F.part0 F.part1 ... > F`), losses.jsonl and views_01.npz, views_23.npz (seeds
# 0-3 of the benchmark; score them here with bench_real_photos.py --score). Start from other weights by
# copying them over data/checkpoints/gen3dface-small/model first (a fresh optimiser: a continuation, not an
# exact resume). SAMPLE_STEPS: DDIM steps of the benchmark's views (default 50). Needs the bundle of `LEAN=1 bash scripts/gpu_bundle.sh .devlean` (carry .devlean, PREPARED
# and CONDITIONS).
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: bash scripts/gpu_finetune.sh PREPARED.npz SECONDS CONDITIONS.npz [options]" >&2; exit 2; }
prepared=$1 secs=$2 cond=$3
shift 3
out=${OUT:-outputs/gpu_finetune}
run=$(mktemp -d)
# shellcheck disable=SC1091
source .devlean/activate.sh
python scripts/train_small.py --prepared "$prepared" --run "$run" --init data/checkpoints/gen3dface-small/model \
  --reprojection --mirror squarest --batch 16 --steps 1000000 --max-seconds "$secs" --ema 0.995 \
  --lr-backbone 1e-4 --export "$run/export" --split-mb 100000 "$@"
mkdir -p "$out"
cp -r "$run/export/." "$out/"
python -c "import sys; from pathlib import Path; from gen3dface.training.export import split_file
[split_file(p, 15) for p in Path(sys.argv[1]).glob('*/*.safetensors')]" "$out"
for seeds in "0 1" "2 3"; do
  python scripts/bench_real_photos.py --conditions "$cond" --checkpoint "$run/export" --seeds $seeds \
    --steps "${SAMPLE_STEPS:-50}" --save-views "$out/views_${seeds// /}.npz"
done

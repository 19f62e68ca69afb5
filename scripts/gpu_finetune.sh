#!/usr/bin/env bash
# Fine-tune the shipped model on a lent GPU machine in ONE self-contained call (a lent machine is given back
# seconds after a call, so nothing written there outlasts it: no checkpoint to resume from in a later call).
#
#   bash scripts/gpu_finetune.sh PREPARED.npz SECONDS [more train_small.py options, e.g. --side-weight 2]
#
#   PREPARED.npz  scripts/prepare_training.py's file (the shipped model's: see its model card, Data)
#   SECONDS       the script's whole time (train_small --deadline): rendering the views from the seeds, then
#                 training until 60 s before it ends, then the export; 530 ran 495 s of a 600 s call
#
# Writes into $OUT (default outputs/gpu_finetune): model/ (config.json and the fp16 safetensors in parts of at
# most 15 MiB: join them with `cat F.part0 F.part1 ... > F`) and losses.jsonl. Carry the bundle of
# `LEAN=1 bash scripts/gpu_bundle.sh .devlean` and PREPARED: the tree (~54.4 MB) + .devlean (1.9 MB) + the
# shipped model's prepared file (9.9 MB) fill the 64 MiB a call may carry, so the real-photo benchmark is sampled
# in a second call, with the joined weights copied over data/checkpoints/gen3dface-small/model/ in the tree
# (uncommitted) and the conditions made here (bench_real_photos.py --photos outputs/real --save-conditions C.npz):
#
#   source .devlean/activate.sh && for s in "0 1" "2 3"; do python scripts/bench_real_photos.py \
#     --conditions C.npz --seeds $s --save-views $OUT/views_${s// /}.npz; done
#
# (55 s for the four seeds on one H200; call it at once: the machine is released 30 s after a call), then score
# here: bench_real_photos.py --score each file. To continue from other weights, copy them over the
# shipped model first likewise (a fresh optimiser: a continuation, not an exact resume). The shipped stage 10 is
# stage 9 + 440 s of this on the model card's p800.npz, averaged half and half with the weights it started from;
# with stage 9's weights copied over the shipped model's file first (git show f261dd7:data/checkpoints/
# gen3dface-small/model/diffusion_pytorch_model.safetensors), the same up to fp16 rounding and the GPU's noise:
#   OUT=$OUT bash scripts/gpu_finetune.sh p800.npz 440 --average-with data/checkpoints/gen3dface-small/model
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: bash scripts/gpu_finetune.sh PREPARED.npz SECONDS [train_small options]" >&2; exit 2; }
prepared=$1 secs=$2
shift 2
out=${OUT:-outputs/gpu_finetune}
run=$(mktemp -d)
# shellcheck disable=SC1091
source .devlean/activate.sh
python scripts/train_small.py --prepared "$prepared" --run "$run" --init data/checkpoints/gen3dface-small/model \
  --reprojection --mirror squarest --batch 16 --steps 1000000 --deadline "$secs" --ema 0.995 \
  --lr-backbone 1e-4 --export "$run/export" --split-mb 15 "$@"
mkdir -p "$out"
cp -r "$run/export/." "$out/"

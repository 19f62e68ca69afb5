#!/usr/bin/env bash
# Pack what an offline GPU machine with Python 3.12 and torch (but no diffusers, mediapipe, papermill
# or Jupyter kernel) needs to run gen3dface's notebooks, as one xz tarball plus an activate script.
#   bash scripts/gpu_bundle.sh [DEST=.device]
#   LEAN=1 bash scripts/gpu_bundle.sh .devlean   # diffusers only (LEAN_EXTRA="trimesh scikit-image" adds
#                                                 # what reconstruction needs): training and benchmarks,
#                                                 # leaving room in the 64 MB carry for a checkpoint
# On the GPU machine, from the repository root:  source DEST/activate.sh
# Packages the target already has (numpy 2.x, scipy, matplotlib, opencv-python-headless, jax, huggingface_hub,
# ...) are left out: carrying numpy 1.26 there breaks its scipy, and mediapipe 0.10.21 runs on numpy 2.x.
# mediapipe's pose / hand / holistic / objectron models are dropped (the face models stay) to fit 64 MB.
set -euo pipefail
dest=${1:-.device}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -n "${LEAN:-}" ]; then
  pkgs=("diffusers==0.42.1" importlib_metadata ${LEAN_EXTRA:-})
else
  pkgs=(papermill ipykernel ipywidgets plotly "mediapipe==0.10.21" "protobuf==4.25.9" "diffusers==0.42.1"
        importlib_metadata truststore trimesh scikit-image)
fi
python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$tmp/whl" "${pkgs[@]}"
# already on the target image (its own versions are kept)
have="absl-py accelerate anyio attrs certifi charset-normalizer click contourpy cycler filelock flatbuffers
fonttools fsspec h11 hf-xet httpcore httpx httpcore2 httpx2 huggingface-hub idna jax jaxlib jinja2 kiwisolver
markupsafe matplotlib ml-dtypes numpy opencv-contrib-python opt-einsum packaging pillow psutil pygments pyparsing
python-dateutil pyyaml regex requests safetensors scipy sentencepiece six tqdm typing-extensions urllib3 zipp"
mkdir -p "$tmp/site"
for w in "$tmp"/whl/*.whl; do
  name=$(basename "$w" | sed 's/-[0-9].*//' | tr 'A-Z_' 'a-z-')
  case " $(echo $have) " in *" $name "*) continue ;; esac
  (cd "$tmp/site" && unzip -q -o "$w")
done
for d in pose_detection pose_landmark palm_detection hand_landmark holistic_landmark objectron; do
  find "$tmp/site/mediapipe/modules/$d" -name '*.tflite' -delete 2>/dev/null || true
done
mkdir -p "$dest"
tar -C "$tmp/site" -cf - . | xz -6 -T2 > "$dest/extra.tar.xz"
cat > "$dest/activate.sh" <<'ACT'
# sourced on the GPU machine: unpack the carried packages into /tmp/devsite and put them first on the path
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
stamp=$(cksum < "$here/extra.tar.xz")
if [ "$(cat /tmp/devsite/.stamp 2>/dev/null)" != "$stamp" ]; then rm -rf /tmp/devsite && mkdir -p /tmp/devsite && tar -xJf "$here/extra.tar.xz" -C /tmp/devsite && echo "$stamp" > /tmp/devsite/.stamp; fi
if [ -f "$here/spconv.tar.xz" ] && [ ! -d /tmp/devspconv ]; then mkdir -p /tmp/devspconv && tar -xJf "$here/spconv.tar.xz" -C /tmp/devspconv; fi
export PYTHONPATH=/tmp/devsite:/tmp/devspconv:$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 PATH=/tmp/devsite/bin:$PATH
ACT
du -sh "$dest"

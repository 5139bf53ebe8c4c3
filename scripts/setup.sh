#!/usr/bin/env bash
# Sets torch-guidance up on a fresh Debian 12 machine with Node >= 20.19 (as
# root, or with sudo), then runs the main job (`npm start`):
#   - libtorch: kept if one is found (TORCH_GUIDANCE_LIBTORCH, a Python torch
#     with its CMake files, or the system package), else Debian's libtorch-dev;
#   - Python torch for the test suite's reference (python3-torch), cmake, g++;
#   - OpenBLAS (libopenblas0-pthread) where Debian's libtorch would otherwise
#     run on the reference BLAS (see below);
#   - redis-server, which the queue tests start on a free loopback port (and
#     a cluster runs its sampling queue on: docs/distributed.md);
#   - npm ci, which builds the native addon (scripts/install.mjs) and the
#     TypeScript (prepare).
# Usage: bash scripts/setup.sh [--no-start]
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*"; }
python_for_tests="${TORCH_GUIDANCE_PYTHON:-/usr/bin/python3}"

has_libtorch() {
  if [ -n "${TORCH_GUIDANCE_LIBTORCH:-}" ]; then return 0; fi
  for py in python3 /usr/bin/python3; do
    if "$py" -c 'import os, torch; p = torch.utils.cmake_prefix_path; assert os.path.isfile(os.path.join(p, "Torch", "TorchConfig.cmake"))' 2>/dev/null; then
      return 0
    fi
  done
  compgen -G '/usr/lib/*/cmake/Torch/TorchConfig.cmake' > /dev/null
}

packages=()
has_libtorch || packages+=(libtorch-dev)
"$python_for_tests" -c 'import torch' 2>/dev/null || packages+=(python3-torch)
"$python_for_tests" -c 'import PIL' 2>/dev/null || packages+=(python3-pil)  # test/image.test.ts checks PNGs against PIL
# The real images `torch-guidance evaluate` and the quality benchmark compare with.
[ -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ] || packages+=(dataset-fashion-mnist)
command -v redis-server > /dev/null || packages+=(redis-server)  # test/queue.test.ts starts its own on a loopback port
command -v cmake > /dev/null || packages+=(cmake)
command -v g++ > /dev/null || packages+=(g++)
command -v make > /dev/null || packages+=(make)

# Debian's libtorch and python3-torch call whatever libblas.so.3 the
# alternatives system selects. On a fresh Debian that is the reference BLAS
# (libblas3, pulled in by libtorch): one thread, no cache blocking, matrix
# multiplies ~20x slower than OpenBLAS. Installing libopenblas0-pthread selects
# OpenBLAS (its priority is higher) unless someone chose a BLAS by hand.
case "$(uname -m)" in
  x86_64) multiarch=x86_64-linux-gnu ;;
  aarch64) multiarch=aarch64-linux-gnu ;;
  *) multiarch="$(uname -m)-linux-gnu" ;;
esac
selected_blas() { readlink -e "/usr/lib/$multiarch/libblas.so.3" 2>/dev/null || true; }
is_reference_blas() { case "$1" in '' | */blas/libblas.so.3*) return 0 ;; *) return 1 ;; esac; }
uses_system_blas=false
if [[ " ${packages[*]:-} " == *" libtorch-dev "* || " ${packages[*]:-} " == *" python3-torch "* ]] ||
  compgen -G "/usr/lib/$multiarch/libtorch_cpu.so*" > /dev/null; then
  uses_system_blas=true
fi
blas="$(selected_blas)"
if $uses_system_blas && is_reference_blas "$blas"; then
  log "libblas.so.3 is the reference BLAS (${blas:-not installed yet}): one thread, ~20x slower matrix multiplies; adding libopenblas0-pthread"
  packages+=(libopenblas0-pthread)
  # The reference BLAS stays installed, unselected (libtorch's own dependency;
  # test/blas.test.ts runs a child on it to check the warning).
  packages+=(libblas3)
fi

if [ ${#packages[@]} -gt 0 ]; then
  log "installing ${packages[*]} from Debian"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}"
else
  log "libtorch, Python torch and the compilers are already there"
fi

if $uses_system_blas; then
  blas="$(selected_blas)"
  if is_reference_blas "$blas"; then
    # Installed, yet not selected: the alternative was set by hand. Left as it is.
    log "WARNING: libblas.so.3 is still the reference BLAS (${blas:-missing}), chosen by hand; select OpenBLAS with:"
    log "  sudo update-alternatives --set libblas.so.3-$multiarch /usr/lib/$multiarch/openblas-pthread/libblas.so.3"
  else
    log "BLAS: libtorch will call $blas"
  fi
fi

log "npm ci (builds the native addon and the TypeScript)"
npm ci --no-audit --no-fund

if [ "${1:-}" != "--no-start" ]; then
  log "running the main job: npm start"
  npm start
fi

#!/usr/bin/env bash
# Sets torch-guidance up on a fresh Debian 12 machine with Node >= 20.19 (as
# root, or with sudo), then runs the main job (`npm start`):
#   - libtorch: kept if one is found (TORCH_GUIDANCE_LIBTORCH, a Python torch
#     with its CMake files, or the system package), else Debian's libtorch-dev;
#   - Python torch for the test suite's reference (python3-torch), cmake, g++;
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

log "npm ci (builds the native addon and the TypeScript)"
npm ci --no-audit --no-fund

if [ "${1:-}" != "--no-start" ]; then
  log "running the main job: npm start"
  npm start
fi

#!/usr/bin/env bash
# The CUDA checks, in one go, for a machine with a GPU and a pip CUDA torch:
# build the addon against that torch, run the test suite (the CUDA tests run
# instead of skipping), then the CUDA speed benchmark. Logs go to $OUT (or
# ./gpu-check-out). Used by GPU sessions; CI has no GPU and never runs it.
#
#   bash scripts/gpu-check.sh
#
# Node and node_modules: used as found; where the machine has neither (the
# lent GPU machines have no Node and no registry), from .device/node.xz and
# .device/nm.tar.xz (copies of this machine's, made by the session).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-check-out}"
mkdir -p "$OUT"
log() { echo "== $* ($(date +%T))"; }

log machine
nvidia-smi -L
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'
export PATH="/usr/local/cuda/bin:$PATH"
g++ --version | head -1; cmake --version | head -1; nvcc --version | tail -1

if ! command -v node >/dev/null; then
  log unpack node
  mkdir -p /tmp/node-bin
  python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(".device/node.xz"), open("/tmp/node-bin/node","wb"))'
  chmod +x /tmp/node-bin/node
  export PATH="/tmp/node-bin:$PATH"
fi
node --version
if [ ! -d node_modules ]; then
  log unpack node_modules
  python3 -c 'import tarfile; tarfile.open(".device/nm.tar.xz").extractall(".")'
fi

log build against the Python torch
export TORCH_GUIDANCE_PYTHON=python3
rm -rf build
if ! node scripts/build-native.mjs >"$OUT/build.log" 2>&1; then
  tail -60 "$OUT/build.log"
  grep -n "error" "$OUT/build.log" | head -40
  exit 1
fi
grep -n "torch-guidance: libtorch" "$OUT/build.log"
node --import tsx -e 'import("./src/index.ts").then(m => console.log(JSON.stringify(m.runtimeInfo())))'

log tests
# package.test.ts installs from the npm registry, which the lent machines cannot
# reach; image.test.ts checks against PIL, which their Python lacks.
skip='package.test.ts'
python3 -c 'import PIL' 2>/dev/null || skip="$skip|image.test.ts"
tests=$(ls test/*.test.ts | grep -v -E "$skip")
timeout 200 node node_modules/mocha/bin/mocha.js --no-config --node-option import=tsx --node-option expose-gc --timeout 120000 \
  --reporter dot $tests >"$OUT/tests.log" 2>&1
echo "tests exit $?"
tail -80 "$OUT/tests.log"

log speed
timeout 150 node --import tsx benchmarks/speed.ts --device cuda --batch 16 --steps 20 >"$OUT/speed16.log" 2>&1
echo "speed exit $?"; cp benchmarks/results/speed-cuda.md "$OUT/speed-cuda-b16.md" 2>/dev/null
tail -12 "$OUT/speed16.log"
timeout 100 node --import tsx benchmarks/speed.ts --device cuda --batch 128 --steps 20 >"$OUT/speed128.log" 2>&1
echo "speed exit $?"; cp benchmarks/results/speed-cuda.md "$OUT/speed-cuda-b128.md" 2>/dev/null
tail -12 "$OUT/speed128.log"
log done

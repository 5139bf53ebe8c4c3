#!/usr/bin/env bash
# Checks torch-guidance on a machine with an NVIDIA GPU, Node and a pip CUDA
# torch, in one go: builds the addon against that torch; runs the SDPA, CUDA
# and runtime tests; the CUDA benchmarks (call overhead, optimised graph,
# forward with and without hooks against Python, step profile, sampling
# speed, throughput); a GPU-memory soak; then the rest of the test suite (the
# CUDA tests run instead of being pending). Logs and result tables go to $OUT
# (default ./gpu-check-out). Run `npm ci` first.
#
#   bash scripts/gpu-check.sh
#   STAGES="first speed" bash scripts/gpu-check.sh     # some stages only
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

command -v node >/dev/null || { echo "gpu-check: no node on PATH" >&2; exit 1; }
node --version
[ -d node_modules ] || { echo "gpu-check: no node_modules: run npm ci first" >&2; exit 1; }

log build against the Python torch
export TORCH_GUIDANCE_PYTHON=python3
rm -rf build
if ! node scripts/build-native.mjs >"$OUT/build.log" 2>&1; then
  tail -60 "$OUT/build.log"
  grep -n "error" "$OUT/build.log" | head -40
  exit 1
fi
grep -n -E "torch-guidance: libtorch|TORCH_GUIDANCE_CUDA_MEMORY_STATS|AUTOCAST" "$OUT/build.log"
node --import tsx -e 'import("./src/index.ts").then(m => console.log(JSON.stringify(m.runtimeInfo())))'

# Stages, most wanted first; each has its own time limit so that one that
# hangs cannot take the others' time. Logs and result tables go to $OUT.
# STAGES picks some of them (default: all): first overhead graphs forward profile speed throughput soak rest.
want() { [[ " ${STAGES:-first overhead graphs forward profile speed throughput soak rest} " == *" $1 "* ]]; }
mocha() {
  node node_modules/mocha/bin/mocha.js --no-config --node-option import=tsx --node-option expose-gc \
    --timeout 120000 --reporter dot "$@"
}

if want first; then
log "tests: SDPA sites, CUDA, runtime"
timeout 120 bash -c "$(declare -f mocha); mocha test/attention-sdpa.test.ts test/cuda.test.ts test/runtime.test.ts" \
  >"$OUT/tests-first.log" 2>&1
echo "tests exit $?"; tail -40 "$OUT/tests-first.log"
fi

if want overhead; then
log "fixed cost per call: ours vs Python"
timeout 60 node --import tsx benchmarks/call-overhead.ts --device cuda --iterations 1000 >"$OUT/overhead.log" 2>&1
echo "overhead exit $?"; tail -8 "$OUT/overhead.log"; cp benchmarks/results/call-overhead-cuda.md "$OUT/" 2>/dev/null
fi

if want graphs; then
log "optimised graph: ours vs Python"
timeout 60 node --import tsx benchmarks/graph-vs-python.ts --device cuda --model models/fashion-unet.pt --batch 16 >"$OUT/graphs.log" 2>&1
echo "graphs exit $?"; tail -14 "$OUT/graphs.log"; cp benchmarks/results/graph-vs-python-cuda.md "$OUT/" 2>/dev/null
tar -C out -cJf "$OUT/graphs.tar.xz" graphs 2>/dev/null
fi

if want forward; then
log "forward: ours (hooks / no hooks) vs Python"
timeout 90 node --import tsx benchmarks/forward-vs-python.ts --device cuda --model models/fashion-unet.pt \
  --batches 16,128 >"$OUT/forward.log" 2>&1
echo "forward exit $?"; tail -6 "$OUT/forward.log"; cp benchmarks/results/forward-vs-python-cuda.md "$OUT/" 2>/dev/null
fi

if want profile; then
log "step profile: where a sampling step's time goes, ours vs Python"
# none, cfg, autoguidance × 8 alternating pairs: ~20 s on the H200.
timeout 60 node --import tsx benchmarks/step-profile.ts --device cuda --batch 16 --steps 20 >"$OUT/profile.log" 2>&1
echo "profile exit $?"; cp benchmarks/results/step-profile-cuda.md "$OUT/" 2>/dev/null
grep "^|" "$OUT/profile.log" | tail -8
fi

if want speed; then
log "speed, batch 16"
# 7 strategies × 12 alternating pairs plus one Python start each: about 90 s on the H200.
timeout 150 node --import tsx benchmarks/speed.ts --device cuda --batch 16 --steps 20 >"$OUT/speed16.log" 2>&1
echo "speed exit $?"; cp benchmarks/results/speed-cuda.md "$OUT/speed-cuda-b16.md" 2>/dev/null
tail -10 "$OUT/speed16.log"
fi

if want throughput; then
log "throughput, CFG, batch 1-256"
# 9 batch sizes × 3 sides × 4-64 short runs; the Python loop restarts per batch size.
timeout 150 node --import tsx benchmarks/throughput.ts --device cuda >"$OUT/throughput.log" 2>&1
echo "throughput exit $?"; cp benchmarks/results/throughput-cuda.md benchmarks/results/throughput-cuda.png "$OUT/" 2>/dev/null
tail -14 "$OUT/throughput.log"
fi

if want soak; then
log "soak"
# The driver's view too, every 5 s (what an operator watching the server sees).
nvidia-smi --query-gpu=timestamp,memory.used --format=csv -l 5 >"$OUT/soak-nvidia-smi.csv" 2>&1 &
smi=$!
timeout 80 node --import tsx --expose-gc benchmarks/soak.ts --device cuda --runs 300 >"$OUT/soak.log" 2>&1
echo "soak exit $?"; kill $smi 2>/dev/null
cp benchmarks/results/soak-cuda.md "$OUT/" 2>/dev/null; tail -12 "$OUT/soak.log"
fi

if want rest; then
log "tests: the rest"
# package.test.ts packs and installs the package (its own check, not a CUDA one);
# image.test.ts checks against PIL, which this Python may lack.
skip='package.test.ts|attention-sdpa.test.ts|cuda.test.ts|runtime.test.ts'
python3 -c 'import PIL' 2>/dev/null || skip="$skip|image.test.ts"
tests=$(ls test/*.test.ts | grep -v -E "$skip" | tr '\n' ' ')
timeout "${REST_TIMEOUT:-170}" bash -c "$(declare -f mocha); mocha $tests" >"$OUT/tests-rest.log" 2>&1
echo "tests exit $?"
grep -E "passing|failing|pending" "$OUT/tests-rest.log"; grep -A12 -E "^  [0-9]+\) " "$OUT/tests-rest.log" | head -80
fi
log done

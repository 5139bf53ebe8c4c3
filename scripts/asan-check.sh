#!/usr/bin/env bash
# Native safety check: builds the addon with AddressSanitizer into
# build-asan/ and runs the native-facing test files against that binary.
#
#   bash scripts/asan-check.sh [test files...]
#
# Node is not instrumented, so libasan is preloaded into it (and into the
# child processes the tests start). Settings, each for a reason:
#   detect_leaks=0        libtorch and V8 keep one-time allocations for the
#                         process lifetime; live-handle leaks are what the
#                         tests themselves check (liveHandles()).
#   handle_segv=0         V8 handles SIGSEGV itself (WebAssembly traps).
#   alloc_dealloc_mismatch=0, new_delete_type_size_mismatch=0
#                         uninstrumented Node and libtorch mix allocators in
#                         ways ASan flags without the addon being involved.
#   detect_odr_violation=0  libtorch's own duplicate globals.
#   allocator_may_return_null=1  the bad-input tests ask for impossible
#                         allocations on purpose; malloc returns null there
#                         (and libtorch throws), which ASan would otherwise
#                         report as allocation-size-too-big and abort.
#   halt_on_error=1       the first real report fails the run.
# Reports go to build-asan/asan.<pid> files; the script prints them and fails
# when any holds an error.
set -uo pipefail
cd "$(dirname "$0")/.."
out="$PWD/build-asan"
node scripts/build-native.mjs --sanitize=address --out="$out" >"$out.log" 2>&1 || { tail -40 "$out.log"; exit 1; }
rm -f "$out"/asan.*
libasan="$(gcc -print-file-name=libasan.so)"
[ -f "$libasan" ] || { echo "asan-check: libasan.so not found (apt-get install gcc)"; exit 1; }
tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
  tests=(test/tensor.test.ts test/model.test.ts test/runtime.test.ts test/errors.test.ts test/attention.test.ts
    test/attention-styles.test.ts test/attention-sdpa.test.ts test/module-hooks.test.ts test/bad-input.test.ts
    test/properties.test.ts test/concurrency.test.ts test/exit.test.ts test/samplers.test.ts test/sample.test.ts
    test/preconditioning.test.ts)
fi
export TORCH_GUIDANCE_BINARY="$out/Release/torch_guidance.node"
# The Python references run without libasan: preloaded into Python, its
# __cxa_throw interceptor finds no libstdc++ yet and aborts on the first C++
# exception libtorch_python throws (seen here). They test nothing native of ours.
python="${TORCH_GUIDANCE_PYTHON:-/usr/bin/python3}"
printf '#!/bin/sh\nexec env -u LD_PRELOAD %s "$@"\n' "$python" >"$out/python3"
chmod +x "$out/python3"
export TORCH_GUIDANCE_PYTHON="$out/python3"
export ASAN_OPTIONS="detect_leaks=0:handle_segv=0:alloc_dealloc_mismatch=0:new_delete_type_size_mismatch=0:detect_odr_violation=0:allocator_may_return_null=1:halt_on_error=1:log_path=$out/asan"
LD_PRELOAD="$libasan" node node_modules/mocha/bin/mocha.js --no-config --node-option import=tsx --node-option expose-gc \
  --timeout 600000 --reporter dot "${tests[@]}"
status=$?
reports=$(ls "$out"/asan.* 2>/dev/null)
if [ -n "$reports" ]; then
  # Warnings (the refused impossible allocations) are shown; errors fail the run.
  if grep -l -E "ERROR: AddressSanitizer|CHECK failed" $reports >/dev/null; then
    echo "asan-check: AddressSanitizer errors:"; cat $reports; exit 1
  fi
  echo "asan-check: AddressSanitizer warnings (no errors):"; cat $reports
fi
echo "asan-check: mocha exit $status, no AddressSanitizer errors"
exit $status

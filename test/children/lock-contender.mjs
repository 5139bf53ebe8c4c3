// A rival for one output directory's lock (test/bad-input-io.test.ts): once
// the parent says "go" on stdin, takes the lock, reports, and holds it until
// stdin closes. Plain JavaScript over the addon's lock (what
// src/io/run-lock.ts wraps), found by the package's own binary loader:
// fifty trials of up to eight processes start it hundreds of times, and the
// TypeScript loader would double each start.
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { loadBinary } from '../../scripts/binary-candidates.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const native = loadBinary(root, process.env.TORCH_GUIDANCE_BINARY).binding;
const lockFile = join(process.argv[2], '.lock');
console.log(JSON.stringify({ ready: process.pid }));
let held;
for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() !== 'go' || held !== undefined) continue;
  const taken = native.tryLockFile(lockFile);
  if (typeof taken === 'number') {
    held = taken;
    console.log(JSON.stringify({ pid: process.pid, took: true }));
  } else {
    held = null;
    console.log(JSON.stringify({ pid: process.pid, heldBy: taken.heldBy }));
  }
}
if (typeof held === 'number') native.unlockFile(held);

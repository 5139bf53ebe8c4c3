#!/usr/bin/env node
// npm install hook: use a binary that loads (a prebuild, or an earlier local
// build); otherwise build one with cmake-js. Never a bare node-gyp rebuild.
// TORCH_GUIDANCE_BUILD_FROM_SOURCE=1 skips the prebuild and always builds.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { loadBinary } from './binary-candidates.mjs';
import { buildNative } from './build-native.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const log = (message) => console.log(`torch-guidance: ${message}`);

// Loads in a child process: a binary that fails in this one stays mapped and
// would shadow the rebuilt file at the same path.
function probe() {
  const script = `import(${JSON.stringify(join(root, 'scripts', 'binary-candidates.mjs'))})
    .then((m) => { const r = m.loadBinary(${JSON.stringify(root)}, process.env.TORCH_GUIDANCE_BINARY);
      console.log(r.path + ' (libtorch ' + r.buildInfo.torchVersion + ', ' + (r.buildInfo.cuda ? 'CUDA' : 'CPU') + ')'); })
    .catch((e) => { console.log(e.message); process.exit(1); });`;
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  return { ok: result.status === 0, output: (result.stdout + result.stderr).trim() };
}

if (process.env.TORCH_GUIDANCE_BUILD_FROM_SOURCE !== '1') {
  const found = probe();
  if (found.ok) {
    log(`using ${found.output}; no build needed`);
    process.exit(0);
  }
  log(`no usable binary yet, building from source.\n${found.output}`);
}

try {
  buildNative();
} catch (error) {
  console.error(`torch-guidance: ${error.message}`);
  process.exit(1);
}
const built = probe();
if (!built.ok) {
  console.error(`torch-guidance: the build finished but the binary does not load:\n${built.output}`);
  process.exit(1);
}
log(`built ${built.output}`);

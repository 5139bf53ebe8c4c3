#!/usr/bin/env node
// Builds the native addon with cmake-js into build/Release (or build/Debug).
//
//   node scripts/build-native.mjs [--debug] [--sanitize=address] [--out DIR]
//
// libtorch is found by native/cmake/FindLibtorch.cmake (TORCH_GUIDANCE_LIBTORCH,
// then a Python torch, then the system package); the build prints what it used.
// Used by `npm run build:native`, the install script and the prebuild.
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

export function buildNative({ debug = false, sanitize = '', out = join(root, 'build') } = {}) {
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  const args = [cmakeJs, 'compile', '--directory', join(root, 'native'), '--out', out,
    '--parallel', String(availableParallelism())];
  if (debug) args.push('--debug');
  if (sanitize) args.push(`--CDTORCH_GUIDANCE_SANITIZE=${sanitize}`);
  const result = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) {
    throw new Error(
      `native build failed (cmake-js exit ${result.status ?? result.signal}). The lines above say what was looked ` +
      'for. Most often libtorch is missing: apt-get install libtorch-dev, or set TORCH_GUIDANCE_LIBTORCH to an ' +
      'unzipped libtorch, then run npm run build:native.');
  }
  return join(out, debug ? 'Debug' : 'Release');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  const option = (name) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? '';
  try {
    const dir = buildNative({ debug: argv.includes('--debug'), sanitize: option('sanitize'), out: option('out') || undefined });
    console.log(`torch-guidance: built ${join(dir, 'torch_guidance.node')}`);
  } catch (error) {
    console.error(`torch-guidance: ${error.message}`);
    process.exit(1);
  }
}

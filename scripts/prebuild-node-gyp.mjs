#!/usr/bin/env node
// Stands in for node-gyp when prebuildify runs it (`<this> rebuild --target=...
// --release`, in the staging folder of prebuild.mjs): the real build is
// cmake-js into build/, and a copy of its output goes where prebuildify looks.
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { buildNative } from './build-native.mjs';

try {
  const built = buildNative({ debug: process.argv.includes('--debug') });
  const target = join(process.cwd(), 'build', process.argv.includes('--debug') ? 'Debug' : 'Release');
  mkdirSync(target, { recursive: true });
  for (const file of ['torch_guidance.node', 'torch_guidance.json']) copyFileSync(join(built, file), join(target, file));
} catch (error) {
  console.error(`torch-guidance: ${error.message}`);
  process.exit(1);
}

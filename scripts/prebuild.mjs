#!/usr/bin/env node
// npm run prebuild: prebuildify drives our cmake-js build (through
// prebuild-node-gyp.mjs, which stands in for node-gyp) and stores
// prebuilds/<platform>-<arch>/torch-guidance.napi.node; the build-facts JSON
// goes beside it for the loader.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { arch, platform } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { PREBUILD_NAME, buildInfoPath } from './binary-candidates.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const buildDir = join(root, 'build', 'Release');
const outDir = join(root, 'prebuilds', `${platform()}-${arch()}`);

// prebuildify moves the .node away from build/Release; keep the build facts.
mkdirSync(outDir, { recursive: true });
const prebuildify = require.resolve('prebuildify/bin.js');
const result = spawnSync(
  process.execPath,
  [prebuildify, '--napi', '--strip', '--node-gyp', join(root, 'scripts', 'prebuild-node-gyp.mjs')],
  { cwd: root, stdio: 'inherit' },
);
if (result.status !== 0) process.exit(result.status ?? 1);
copyFileSync(join(buildDir, 'torch_guidance.json'), buildInfoPath(join(outDir, PREBUILD_NAME)));
console.log(`torch-guidance: prebuild in ${join(outDir, PREBUILD_NAME)}`);

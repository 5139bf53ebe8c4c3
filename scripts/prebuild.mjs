#!/usr/bin/env node
// npm run prebuild: prebuildify drives our cmake-js build (through
// prebuild-node-gyp.mjs, which stands in for node-gyp) and stores
// prebuilds/<platform>-<arch>/torch-guidance.node, with the build-facts
// JSON beside it for the loader.
//
// prebuildify strips and then moves the binary it finds in <cwd>/build/Release.
// It runs in a staging folder so that it never touches build/Release: a
// process that has that file loaded would crash if it changed in place.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { arch, platform } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { PREBUILD_NAME, buildInfoPath } from './binary-candidates.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
export const stage = join(root, 'build', 'prebuild-stage');
const outDir = join(root, 'prebuilds', `${platform()}-${arch()}`);

rmSync(stage, { recursive: true, force: true });
mkdirSync(join(stage, 'build', 'Release'), { recursive: true });
// prebuildify names the file after the package in its cwd.
writeFileSync(join(stage, 'package.json'), JSON.stringify({ name: 'torch-guidance' }));

const prebuildify = require.resolve('prebuildify/bin.js');
const result = spawnSync(
  process.execPath,
  [prebuildify, '--napi', '--strip', '--cwd', stage, '--out', root,
    '--node-gyp', join(root, 'scripts', 'prebuild-node-gyp.mjs')],
  { cwd: root, stdio: 'inherit' },
);
if (result.status !== 0) process.exit(result.status ?? 1);
copyFileSync(join(stage, 'build', 'Release', 'torch_guidance.json'), buildInfoPath(join(outDir, PREBUILD_NAME)));
console.log(`torch-guidance: prebuild in ${join(outDir, PREBUILD_NAME)}`);

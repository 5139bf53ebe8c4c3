#!/usr/bin/env node
// Stands in for node-gyp when prebuildify runs it (`<this> rebuild --target=...
// --release`): the real build is cmake-js, which leaves
// build/Release/torch_guidance.node where prebuildify looks for it.
import { buildNative } from './build-native.mjs';

try {
  buildNative({ debug: process.argv.includes('--debug') });
} catch (error) {
  console.error(`torch-guidance: ${error.message}`);
  process.exit(1);
}

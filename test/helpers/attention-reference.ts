/** Runs test/reference/attention_hooks.py: tiny-unet in eager PyTorch with its attention perturbed explicitly. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { python, repoRoot } from './python.js';

export interface ReferenceEntry {
  path: string;
  start: number;
  length: number;
  action: 'identity' | 'blur' | 'capture';
  sigma?: number;
}

export function attentionReference(
  inputs: { x: Float32Array; t: Float32Array; label: BigInt64Array; batch: number },
  entries: ReferenceEntry[],
): { output: Float32Array; captures: Float32Array } {
  const dir = mkdtempSync(join(tmpdir(), 'tg-attn-'));
  try {
    const file = (name: string, data: ArrayBufferView) => {
      const path = join(dir, name);
      writeFileSync(path, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
      return path;
    };
    const spec = join(dir, 'spec.json');
    // JSON has no Infinity: the Python side reads the string back as float('inf').
    writeFileSync(
      spec,
      JSON.stringify({ x: file('x', inputs.x), t: file('t', inputs.t), label: file('label', inputs.label), batch: inputs.batch, entries },
        (_, v) => (v === Infinity ? 'inf' : v)),
    );
    const out = join(dir, 'out.bin');
    execFileSync(python, [join(repoRoot, 'test', 'reference', 'attention_hooks.py'), spec, out], { stdio: 'pipe' });
    const read = (path: string) => {
      const bytes = readFileSync(path);
      return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    };
    return { output: read(out), captures: read(`${out}.captures`) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

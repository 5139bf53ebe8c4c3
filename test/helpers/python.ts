/**
 * Runs test/reference/forward.py: the same TorchScript file through Python
 * torch (Debian's python3-torch here), as an independent reference.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The Python with torch: TORCH_GUIDANCE_PYTHON, else Debian's. */
export const python = process.env.TORCH_GUIDANCE_PYTHON ?? '/usr/bin/python3';

export type ReferenceInput =
  | { kind: 'tensor'; dtype: 'float32' | 'int64' | 'int32' | 'uint8' | 'bool'; shape: number[]; data: ArrayBufferView }
  | { kind: 'float' | 'int'; value: number };

export interface ReferenceOutput {
  shapes: number[][];
  /** All outputs as float32, one after another. */
  data: Float32Array;
}

export function pythonReference(model: string, method: string, inputs: ReferenceInput[]): ReferenceOutput {
  const dir = mkdtempSync(join(tmpdir(), 'tg-ref-'));
  try {
    const specInputs = inputs.map((input, i) => {
      if (input.kind !== 'tensor') return input;
      const file = join(dir, `input${i}.bin`);
      writeFileSync(file, Buffer.from(input.data.buffer, input.data.byteOffset, input.data.byteLength));
      return { kind: 'tensor', dtype: input.dtype, shape: input.shape, file };
    });
    const spec = join(dir, 'spec.json');
    const out = join(dir, 'out.bin');
    writeFileSync(spec, JSON.stringify({ method, inputs: specInputs }));
    execFileSync(python, [join(repoRoot, 'test', 'reference', 'forward.py'), model, spec, out], { stdio: 'pipe' });
    const bytes = readFileSync(out);
    const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    const { shapes } = JSON.parse(readFileSync(`${out}.json`, 'utf8')) as { shapes: number[][] };
    return { shapes, data };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function pythonTorchVersion(): string {
  return execFileSync(python, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' }).trim();
}

/**
 * Runs a reference script `test/reference/<script>` as `script [...leadingArgs] SPEC.json OUT.bin`:
 * each entry of `files` is written raw to a temporary file whose path replaces
 * it in the spec. Returns OUT.bin and OUT.bin.captures as float32.
 * JSON has no Infinity: it is sent as the string "inf" (Python's float() reads it).
 */
export function runReference(
  script: string,
  spec: Record<string, unknown>,
  files: Record<string, ArrayBufferView>,
  leadingArgs: readonly string[] = [],
): { output: Float32Array; captures: Float32Array } {
  const dir = mkdtempSync(join(tmpdir(), 'tg-ref-'));
  try {
    const paths: Record<string, string> = {};
    for (const [name, data] of Object.entries(files)) {
      paths[name] = join(dir, name);
      writeFileSync(paths[name], Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    }
    const specPath = join(dir, 'spec.json');
    writeFileSync(specPath, JSON.stringify({ ...spec, ...paths }, (_, v) => (v === Infinity ? 'inf' : v)));
    const out = join(dir, 'out.bin');
    execFileSync(python, [join(repoRoot, 'test', 'reference', script), ...leadingArgs, specPath, out], { stdio: 'pipe' });
    const read = (path: string) => {
      const bytes = readFileSync(path);
      return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    };
    return { output: read(out), captures: read(`${out}.captures`) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

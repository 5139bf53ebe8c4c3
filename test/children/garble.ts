// Damaged copies of a model archive, loaded one after another in this child
// (test/bad-input-models.test.ts): truncated at random points, random bytes
// flipped, blocks zeroed, the zip directory scrambled. Prints the outcome of
// each load, grouped: { outcomes: { ok | CODE: count }, examples: { CODE: message } }.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { loadModel } from '../../src/index.js';
import { seededRandom } from '../helpers/random.js';

const [source, seedText, countText, dir] = process.argv.slice(2);
const original = readFileSync(source!);
const random = seededRandom(Number(seedText)).next;
const pick = (n: number) => Math.floor(random() * n);
// The zip directory sits at the end: damage there is what confuses readers most.
const directoryStart = original.lastIndexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]), original.length - 22);

function damaged(kind: number): Buffer {
  const bytes = Buffer.from(original);
  switch (kind) {
    case 0:
      return bytes.subarray(0, pick(bytes.length));
    case 1:
      for (let i = 0, n = 1 + pick(16); i < n; i++) bytes[pick(bytes.length)] = pick(256);
      return bytes;
    case 2: {
      const at = pick(bytes.length - 64);
      bytes.fill(0, at, at + 64);
      return bytes;
    }
    default:
      for (let i = 0, n = 1 + pick(8); i < n; i++) bytes[directoryStart + pick(bytes.length - directoryStart)] = pick(256);
      return bytes;
  }
}

const outcomes: Record<string, number> = {};
const examples: Record<string, string> = {};
for (let i = 0; i < Number(countText); i++) {
  const path = join(dir!, `garbled-${i}.pt`);
  writeFileSync(path, damaged(i % 4));
  let outcome = 'ok';
  try {
    const model = await loadModel(path, { device: 'cpu' });
    model.dispose();
  } catch (error) {
    const e = error as { code?: string; message?: string };
    outcome = e.code ?? `untyped ${String(error)}`;
    examples[outcome] ??= `${e.message?.slice(0, 300)} (variant ${i})`;
  }
  outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
  rmSync(path);
}
console.log(JSON.stringify({ outcomes, examples }));

/**
 * The examples in examples/ run as a user runs them (`npx tsx examples/NAME.ts`,
 * with small counts), say what they claim, and leave no tensor or model alive;
 * the docs show each of them verbatim.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { decodePng } from '../src/image/index.js';
import { repoRoot } from './helpers/python.js';

function runExample(name: string, ...args: string[]) {
  const result = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--import', './test/helpers/report-live-handles.ts', join('examples', name), ...args],
    { cwd: repoRoot, encoding: 'utf8' },
  );
  assert.equal(result.status, 0, `${name}: ${result.stderr}`);
  const live = /live handles at exit: (\{.*\})/.exec(result.stderr);
  assert.ok(live, `${name} did not report its live handles: ${result.stderr}`);
  assert.deepEqual(JSON.parse(live[1]!), { tensors: 0, models: 0 }, `${name} left handles alive`);
  return result.stdout;
}

describe('examples', function () {
  this.timeout(300_000);

  it('sample.ts: CFG + PAG, one forward per step, a grid of the ten classes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tg-example-'));
    try {
      const out = join(dir, 'samples.png');
      const stdout = runExample('sample.ts', out, '3');
      assert.match(stdout, /^step 1\/3$/m);
      assert.match(stdout, /^step 3\/3$/m);
      assert.match(stdout, /^forwards: 3,/m); // stacked: one forward of 3N per step
      const png = decodePng(readFileSync(out));
      assert.ok(png.width >= 10 * 56 && png.height >= 56, `${png.width}x${png.height}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('custom-strategy.ts: planned with CFG as one forward of 3N while on, 2N after', () => {
    const stdout = runExample('custom-strategy.ts', '10');
    const evaluations = [...stdout.matchAll(/^evaluation \d+: (\d+) forward\(s\), ([\d.]+) model evaluations per sample$/gm)];
    assert.equal(evaluations.length, 10);
    assert.deepEqual([evaluations[0]![1], evaluations[0]![2]], ['1', '3']);
    assert.deepEqual([evaluations.at(-1)![1], evaluations.at(-1)![2]], ['1', '2']);
    assert.match(stdout, /^samples: \[2, 1, 28, 28\]$/m);
  });

  it('hooks.ts: hooks change only their slices; captures have the site\'s token counts', () => {
    const stdout = runExample('hooks.ts');
    assert.match(stdout, /^site mid\.attn: softmax, self, grid 7x7$/m);
    assert.match(stdout, /^captured up\.2: \[1, 49, 49\]$/m);
    assert.match(stdout, /^captured up\.6: \[1, 196, 196\]$/m);
    const moved = [...stdout.matchAll(/^sample (\d): \|hooked - plain\| = (\S+)$/gm)].map((m) => Number(m[2]));
    assert.equal(moved.length, 6);
    assert.deepEqual(moved.slice(0, 2), [0, 0]); // no hook on samples 0-1 (capture changes nothing)
    for (const value of moved.slice(2)) assert.ok(value > 1e-3, `a hooked sample did not move: ${moved}`);
  });

  it('evaluate.ts: CFG samples score sanely, and worse than as many real images', () => {
    const stdout = runExample('evaluate.ts', '100', '10');
    const samples = /^samples: +FD (\S+), accuracy (\S+), precision (\S+), recall (\S+)$/m.exec(stdout);
    const real = /^real images: FD (\S+), precision (\S+), recall (\S+)$/m.exec(stdout);
    assert.ok(samples && real, stdout);
    const [fd, accuracy, precision, recall] = samples.slice(1).map(Number) as [number, number, number, number];
    const realFd = Number(real[1]);
    // CFG 2 at 10 steps: 0.88-0.91 of 400 samples in the quality benchmark.
    assert.ok(accuracy > 0.6, `accuracy ${accuracy}`);
    assert.ok(fd > realFd && realFd > 0, `FD of samples ${fd}, of real images ${realFd}`);
    for (const v of [precision, recall]) assert.ok(v > 0 && v <= 1, stdout);
  });

  it('the docs show every example verbatim', () => {
    const check = spawnSync(process.execPath, ['scripts/embed-examples.mjs', '--check'], { cwd: repoRoot, encoding: 'utf8' });
    assert.equal(check.status, 0, check.stderr);
    for (const name of ['sample.ts', 'custom-strategy.ts', 'hooks.ts', 'evaluate.ts']) {
      assert.match(check.stdout, new RegExp(`^examples/${name.replace('.', '\\.')}: \\S`, 'm'));
    }
  });
});

/**
 * Bad input, requests: numbers that are cheap to type and impossible to
 * serve (a count of a billion, a batch of millions), option values past any
 * meaning (scales that overflow float32), predictions that turn non-finite,
 * and TypedArrays over shared memory. A request the machine cannot serve is
 * refused, typed and before it allocates: the children's peak memory shows it.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { apg, cfg, explain, isTorchGuidanceError, loadModel, pag, sag, sample, seg, tensor, tsg, type Model } from '../src/index.js';
import { describeChild, runCli, runTs } from './helpers/child.js';
import { type HostileFiles, makeHostileFiles } from './helpers/hostile-files.js';
import { repoRoot } from './helpers/python.js';

const fixture = join(repoRoot, 'models', 'fixtures', 'tiny-unet.pt');
const PEAK_RSS_MIB = 600;

interface SampleReport {
  ok?: boolean;
  finite?: boolean;
  shape?: number[];
  code?: string | null;
  message?: string;
}

async function sampleInChild(model: string, options: Record<string, unknown>, env: Record<string, string> = {}): Promise<SampleReport> {
  const run = await runTs('test/children/sample-request.ts', [model, JSON.stringify(options)], { env, timeoutMs: 180_000 });
  const context = describeChild(run);
  assert.equal(run.signal, null, `killed: ${context}`);
  assert.equal(run.status, 0, context);
  assert.ok(run.json, context);
  assert.ok(run.peakRssMiB < PEAK_RSS_MIB, `peak ${run.peakRssMiB} MiB: ${context}`);
  return run.json as SampleReport;
}

function expectCode(code: string, message?: RegExp) {
  return (error: unknown) => {
    assert.ok(isTorchGuidanceError(error), `expected a TorchGuidanceError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (message) assert.match(error.message, message);
    return true;
  };
}

describe('bad input: requests no machine can serve', function () {
  this.timeout(600_000);
  let files: HostileFiles;
  let model: Model;
  before(async () => {
    files = makeHostileFiles(['nan-denoiser.pt', 'huge-denoiser.pt']);
    model = await loadModel(fixture, { device: 'cpu' });
  });
  after(() => {
    model.dispose();
    files.remove();
  });

  describe('huge counts and batches', () => {
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ['count 1e9', { count: 1e9 }, /result of 1000000000 samples .* needs about 5\.7 TiB, more than the memory limit .*nothing was allocated/],
      ['count 8e6, batchSize 8e6', { count: 8e6, batchSize: 8e6 }, /needs about .* GiB, more than the memory limit/],
      ['count 4000, batchSize 4000, parallel 1, CFG (a batch, not the result, is too large)', { count: 4000, batchSize: 4000, parallel: 1, guidance: [['cfg', { scale: 2 }]] }, /a batch of 4000 samples \(2 forward rows each.*use batchSize \d+ or less/],
    ];
    for (const [name, options, message] of cases) {
      it(`${name}: ERR_OUT_OF_MEMORY naming the limit, before allocating`, async () => {
        // A 256 MiB limit makes the batch case small enough to test on any machine; the others exceed any limit.
        const report = await sampleInChild(fixture, options, { TORCH_GUIDANCE_MEMORY_LIMIT: '256MiB' });
        assert.equal(report.code, 'ERR_OUT_OF_MEMORY', report.message);
        assert.match(report.message!, message);
        assert.match(report.message!, /TORCH_GUIDANCE_MEMORY_LIMIT/);
      });
    }

    it('explain() on a billion samples plans two kinds of batch, not fifty million', () => {
      const started = performance.now();
      const plan = explain({ model, count: 1e9, batchSize: 16, sampler: { name: 'euler', steps: 4 }, guidance: [cfg({ scale: 2 })] });
      assert.equal(plan.batches, 62_500_000);
      assert.equal(plan.forwards, 62_500_000 * 4);
      assert.ok(performance.now() - started < 2000, `${performance.now() - started} ms`);
    });

    it('sample --count 1000000000 on the command line: refused before anything is written (exit 1)', async () => {
      const out = join(files.dir, 'cli-huge');
      const run = await runCli(['sample', '--model', fixture, '--count', '1000000000', '--steps', '1', '--out', out, '--format', 'npz']);
      assert.equal(run.status, 1, describeChild(run));
      assert.match(run.stderr, /ERR_IO: --count 1000000000 in --format npz needs about .* free; nothing was written/);
      assert.ok(run.peakRssMiB < PEAK_RSS_MIB, describeChild(run));
    });

    it('sample --batch-size 65536 --parallel 1 with shards of 65536 under a small limit: ERR_OUT_OF_MEMORY naming the flags (exit 1)', async () => {
      const out = join(files.dir, 'cli-batch');
      const run = await runCli(
        ['sample', '--model', fixture, '--count', '65536', '--batch-size', '65536', '--parallel', '1', '--steps', '1', '--out', out, '--format', 'npz'],
        { env: { TORCH_GUIDANCE_MEMORY_LIMIT: '256MiB' } },
      );
      assert.equal(run.status, 1, describeChild(run));
      assert.match(run.stderr, /ERR_OUT_OF_MEMORY: with --batch-size 65536 and shards of 65536 samples/);
    });
  });

  describe('option values past any meaning', () => {
    it('scales, noise and sigmas that only overflow: ERR_INVALID_OPTION naming the field', () => {
      assert.throws(() => cfg({ scale: 1e308 }), expectCode('ERR_INVALID_OPTION', /scale: must be within ±1000/));
      assert.throws(() => pag({ scale: -1e20 }), expectCode('ERR_INVALID_OPTION', /scale/));
      assert.throws(() => tsg({ noiseScale: 1e30 }), expectCode('ERR_INVALID_OPTION', /noiseScale: must be at most 1000/));
      assert.throws(() => seg({ sigma: 1e300 }), expectCode('ERR_INVALID_OPTION', /sigma/));
      assert.throws(() => sag({ blurSigma: 1e300 }), expectCode('ERR_INVALID_OPTION', /blurSigma/));
      assert.throws(() => apg({ momentum: 1e10 }), expectCode('ERR_INVALID_OPTION', /momentum/));
      // The boundaries themselves are accepted.
      assert.doesNotThrow(() => cfg({ scale: 1000 }));
      assert.doesNotThrow(() => seg({ sigma: Infinity }));
    });

    it('a sampler schedule whose sigmas overflow float32: ERR_INVALID_OPTION', () => {
      assert.throws(
        () => explain({ model, count: 1, sampler: { name: 'euler', steps: 2, schedule: { kind: 'karras', sigmaMax: 1e30 } } }),
        expectCode('ERR_INVALID_OPTION', /sigmaMax: must be at most 1e6/),
      );
    });
  });

  describe('non-finite predictions', () => {
    it('a model that predicts NaN: ERR_NON_FINITE at step 1, naming the prediction; checkFinite: false lets it through', async () => {
      const checked = await sampleInChild(files.path('nan-denoiser.pt'), { labels: [1, 2] });
      assert.equal(checked.code, 'ERR_NON_FINITE', checked.message);
      assert.match(checked.message!, /at step 1 of 3 .* in the model's prediction; strategy: none \(unguided\).*checkFinite: false/);
      const unchecked = await sampleInChild(files.path('nan-denoiser.pt'), { labels: [1, 2], checkFinite: false });
      assert.equal(unchecked.ok, true, unchecked.message);
      assert.equal(unchecked.finite, false);
    });

    it('a CFG term that overflows from finite predictions: ERR_NON_FINITE naming cfg', async () => {
      const report = await sampleInChild(files.path('huge-denoiser.pt'), { labels: [1, 2], guidance: [['cfg', { scale: 999 }]] });
      assert.equal(report.code, 'ERR_NON_FINITE', report.message);
      assert.match(report.message!, /at step 1 of 3 .*the term cfg\(w=999\).*strategy: cfg/);
    });

    it('the check costs no forward and changes no sample: a finite run gives the same images with and without it', async () => {
      const options = { model, labels: [3, 7], seed: 5, sampler: { name: 'euler', steps: 3 } } as const;
      const a = await sample({ ...options, guidance: [cfg({ scale: 2 })] });
      const b = await sample({ ...options, guidance: [cfg({ scale: 2 })], checkFinite: false });
      try {
        assert.deepEqual(await a.images.toArray(), await b.images.toArray());
        assert.equal(a.forwards, b.forwards);
      } finally {
        a.images.dispose();
        b.images.dispose();
      }
    });
  });

  describe('tensor data', () => {
    it('a Float32Array over a SharedArrayBuffer copies like any other (was "Invalid argument")', async () => {
      const shared = new Float32Array(new SharedArrayBuffer(4 * 6));
      shared.set([1, 2, 3, 4, 5, 6]);
      using t = tensor(shared, [2, 3]);
      shared[0] = 100; // a copy: later writes do not reach the tensor
      assert.deepEqual(Array.from((await t.toArray()) as Float32Array), [1, 2, 3, 4, 5, 6]);
      const offset = new Float32Array(new SharedArrayBuffer(4 * 8), 8, 4);
      offset.set([7, 8, 9, 10]);
      using u = tensor(offset, [4]);
      assert.deepEqual(Array.from((await u.toArray()) as Float32Array), [7, 8, 9, 10]);
    });
  });
});

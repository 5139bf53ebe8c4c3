/**
 * `featureMetrics`: FD and precision/recall computed as native jobs on torch
 * threads. Checked against an independent numpy computation on fresh random
 * clouds (test/reference/quality_metrics.py); the event loop stays free while
 * it runs (timer gaps against the time the computation takes); an abort
 * rejects at once and stops the native computation at its next block; bad
 * sets reject with a typed error naming the problem.
 */
import assert from 'node:assert/strict';

import { isTorchGuidanceError, liveHandles } from '../src/index.js';
import { featureMetrics, type FeatureMatrix } from '../src/metrics/index.js';
import { runReference } from './helpers/python.js';
import { freshRandom, type Rng } from './helpers/random.js';

/** A correlated Gaussian cloud: x = z·M + shift with a random M. */
function cloud(rng: Rng, count: number, dim: number, shift: number): FeatureMatrix {
  const mixing = Float64Array.from({ length: dim * dim }, (_, i) => (i % (dim + 1) === 0 ? 1 : 0) + 0.3 * rng.normal());
  const data = new Float64Array(count * dim);
  const z = new Float64Array(dim);
  for (let i = 0; i < count; i++) {
    for (let d = 0; d < dim; d++) z[d] = rng.normal();
    for (let d = 0; d < dim; d++) {
      let v = shift;
      for (let e = 0; e < dim; e++) v += z[e]! * mixing[e * dim + d]!;
      data[i * dim + d] = v;
    }
  }
  return { data, count, dim };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until no native job runs; the milliseconds it took. */
async function jobsDone(limitMs: number): Promise<number> {
  const started = performance.now();
  while (liveHandles().jobs > 0 && performance.now() - started < limitMs) await sleep(5);
  return performance.now() - started;
}

describe('featureMetrics (torch threads)', function () {
  this.timeout(120_000);

  it('equals numpy on fresh random clouds (FD, precision/recall with k = 3)', async () => {
    const rng = freshRandom();
    const dim = 24;
    // Sets of one size (the manifolds take min(manifoldSize, both counts) points of each), with
    // manifoldSize above it: precision/recall use every point, as the reference does.
    const count = 150 + Math.floor(rng.next() * 100);
    const samples = cloud(rng, count, dim, 0.25);
    const reference = cloud(rng, count, dim, 0);
    const ours = await featureMetrics(samples, reference, { k: 3, manifoldSize: 10_000 });
    // quality_metrics.py: precision = share of b inside a's manifold (b = the samples).
    const { output } = runReference(
      'quality_metrics.py',
      { dim, k: 3, countA: reference.count, countB: samples.count },
      { a: reference.data as Float64Array, b: samples.data as Float64Array },
    );
    const [fd, precision, recall] = new Float64Array(output.buffer, output.byteOffset, 3);
    const seed = `(seed ${rng.seed})`;
    assert.ok(fd! > 1, `the clouds should differ ${seed}`);
    assert.ok(Math.abs(ours.fd - fd!) <= 1e-9 * fd!, `FD ${ours.fd} vs numpy ${fd} ${seed}`);
    assert.equal(Math.round(ours.precision * samples.count), Math.round(precision! * samples.count), `precision ${ours.precision} vs ${precision} ${seed}`);
    assert.equal(Math.round(ours.recall * reference.count), Math.round(recall! * reference.count), `recall ${ours.recall} vs ${recall} ${seed}`);
    assert.equal(ours.manifoldSize, count);
    assert.equal(ours.k, 3);
  });

  it('keeps the event loop free while it runs', async () => {
    const rng = freshRandom();
    const a = cloud(rng, 5000, 48, 0.1);
    const b = cloud(rng, 5000, 48, 0);
    let maxGap = 0;
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
    }, 5);
    const t0 = performance.now();
    let metrics;
    try {
      metrics = await featureMetrics(a, b, { manifoldSize: 5000 });
    } finally {
      clearInterval(timer);
    }
    const ms = performance.now() - t0;
    assert.ok(ms > 200, `the computation took only ${ms.toFixed(0)} ms: too little to tell a free loop apart; make the sets larger`);
    assert.ok(Number.isFinite(metrics.fd));
    // The main thread only copies the arrays in and the results out.
    assert.ok(maxGap < ms / 4, `longest timer gap ${maxGap.toFixed(0)} ms while the statistics ran ${ms.toFixed(0)} ms`);
  });

  it('an abort rejects at once with ERR_ABORTED and the reason, and stops the native computation', async () => {
    const rng = freshRandom();
    const a = cloud(rng, 6000, 48, 0.1);
    // Left alone: how long the same computation runs.
    let t0 = performance.now();
    await featureMetrics(a, a, { manifoldSize: 6000 });
    const fullMs = performance.now() - t0;

    const controller = new AbortController();
    t0 = performance.now();
    const pending = featureMetrics(a, a, { manifoldSize: 6000, signal: controller.signal });
    await sleep(fullMs / 3);
    assert.ok(liveHandles().jobs > 0, 'no native job is running');
    const reason = new Error('stop now');
    const abortedAt = performance.now();
    controller.abort(reason);
    await assert.rejects(pending, (error: unknown) => isTorchGuidanceError(error, 'ERR_ABORTED') && (error as Error).cause === reason);
    const rejectMs = performance.now() - abortedAt;
    // The running block finishes, the next never starts.
    const stopMs = await jobsDone(fullMs);
    assert.ok(rejectMs < 100, `the promise rejected ${rejectMs.toFixed(0)} ms after the abort`);
    assert.ok(stopMs < fullMs / 3, `the native job ran on ${stopMs.toFixed(0)} ms after the abort; the whole computation takes ${fullMs.toFixed(0)} ms`);
    // An already aborted signal never starts one.
    await assert.rejects(featureMetrics(a, a, { signal: AbortSignal.abort() }), (error: unknown) => isTorchGuidanceError(error, 'ERR_ABORTED'));
  });

  it('bad sets reject with ERR_INVALID_ARGUMENT naming the problem and the fix', async () => {
    const rng = freshRandom();
    const good = cloud(rng, 20, 4, 0);
    const withInfinity = { ...good, data: Float64Array.from(good.data) };
    withInfinity.data[7 * 4] = Infinity;
    const cases: [FeatureMatrix, FeatureMatrix, object, RegExp][] = [
      [{ ...good, count: 21 }, good, {}, /samples: 80 values do not make 21 vectors of 4\. Fix: give data of count × dim values/],
      [good, cloud(rng, 20, 5, 0), {}, /samples have 4-d features and the reference 5-d\. Fix: score both with the same classifier/],
      [cloud(rng, 3, 4, 0), good, {}, /samples: 3 vectors; the k-NN manifolds need more than k = 3\. Fix/],
      [good, good, { k: 0 }, /k 0: must be a whole number ≥ 1/],
      [good, good, { manifoldSize: 2 }, /manifoldSize 2: needs a whole number above k = 3/],
      [withInfinity, good, {}, /samples: row 7 holds NaN or infinity\. Fix/],
    ];
    for (const [samples, reference, options, message] of cases) {
      await assert.rejects(featureMetrics(samples, reference, options), (error: unknown) => {
        assert.ok(isTorchGuidanceError(error, 'ERR_INVALID_ARGUMENT'), String(error));
        assert.match((error as Error).message, message);
        return true;
      });
    }
  });
});

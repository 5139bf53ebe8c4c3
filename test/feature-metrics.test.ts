/**
 * `featureMetrics`: FD and precision/recall computed in a worker thread.
 * Checked against an independent numpy computation on fresh random clouds
 * (test/reference/quality_metrics.py); the event loop stays free while it
 * runs (timer gaps against the time the same work blocks the thread
 * synchronously); an abort ends the worker at once and leaves no handle;
 * bad sets reject with a typed error naming the problem.
 */
import assert from 'node:assert/strict';

import { isTorchGuidanceError } from '../src/index.js';
import { featureMetrics, type FeatureMatrix } from '../src/metrics/index.js';
import { featureMetricsSync } from '../src/metrics/feature-metrics.js';
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

/** Names of the active handles that belong to worker threads. */
const workerHandles = () => process.getActiveResourcesInfo().filter((r) => r === 'MessagePort' || r === 'Worker');

describe('featureMetrics (worker thread)', function () {
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
      { a: reference.data as Float64Array, b: samples.data as Float64Array, square: new Float64Array(dim * dim) },
    );
    const seed = `(seed ${rng.seed})`;
    assert.ok(output[0]! > 1, `the clouds should differ ${seed}`);
    assert.ok(Math.abs(ours.fd - output[0]!) <= 1e-5 * output[0]! + 1e-4, `FD ${ours.fd} vs numpy ${output[0]} ${seed}`);
    assert.equal(Math.round(ours.precision * samples.count), Math.round(output[1]! * samples.count), `precision ${ours.precision} vs ${output[1]} ${seed}`);
    assert.equal(Math.round(ours.recall * reference.count), Math.round(output[2]! * reference.count), `recall ${ours.recall} vs ${output[2]} ${seed}`);
    assert.equal(ours.manifoldSize, count);
    assert.equal(ours.k, 3);
    assert.deepEqual(workerHandles(), [], 'the worker outlived the call');
  });

  it('keeps the event loop free while the same work blocks it when run synchronously', async () => {
    const rng = freshRandom();
    const a = cloud(rng, 2000, 48, 0.1);
    const b = cloud(rng, 2000, 48, 0);
    let t0 = performance.now();
    const sync = featureMetricsSync(a, b);
    const blockedMs = performance.now() - t0;
    assert.ok(blockedMs > 200, `the synchronous run took only ${blockedMs.toFixed(0)} ms: too little to tell blocking apart; make the sets larger`);

    let maxGap = 0;
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
    }, 5);
    t0 = performance.now();
    let inWorker;
    try {
      inWorker = await featureMetrics(a, b);
    } finally {
      clearInterval(timer);
    }
    const workerMs = performance.now() - t0;
    assert.deepEqual(inWorker, sync, 'the worker computes what the calling thread computes');
    assert.ok(maxGap < blockedMs / 4, `longest timer gap ${maxGap.toFixed(0)} ms while the worker ran ${workerMs.toFixed(0)} ms; run synchronously it blocks ${blockedMs.toFixed(0)} ms`);
  });

  it('an abort ends the worker at once: ERR_ABORTED with the reason, no handle left', async () => {
    const rng = freshRandom();
    const a = cloud(rng, 2000, 48, 0.1);
    const controller = new AbortController();
    const started = performance.now();
    const pending = featureMetrics(a, a, { signal: controller.signal });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(workerHandles().length > 0, 'no worker thread is running');
    const reason = new Error('stop now');
    controller.abort(reason);
    await assert.rejects(pending, (error: unknown) => isTorchGuidanceError(error, 'ERR_ABORTED') && (error as Error).cause === reason);
    const elapsed = performance.now() - started;
    assert.deepEqual(workerHandles(), [], 'the aborted worker is still alive');
    // An already aborted signal never starts one.
    await assert.rejects(featureMetrics(a, a, { signal: AbortSignal.abort() }), (error: unknown) => isTorchGuidanceError(error, 'ERR_ABORTED'));
    // The aborted computation runs seconds when left alone (the test above); aborted, it ends within a fraction.
    assert.ok(elapsed < 1000, `the abort took effect after ${elapsed.toFixed(0)} ms`);
  });

  it('bad sets reject with ERR_INVALID_ARGUMENT naming the problem and the fix', async () => {
    const rng = freshRandom();
    const good = cloud(rng, 20, 4, 0);
    const cases: [FeatureMatrix, FeatureMatrix, object, RegExp][] = [
      [{ ...good, count: 21 }, good, {}, /samples: 80 values do not make 21 vectors of 4\. Fix: give data of count × dim values/],
      [good, cloud(rng, 20, 5, 0), {}, /samples have 4-d features and the reference 5-d\. Fix: score both with the same classifier/],
      [cloud(rng, 3, 4, 0), good, {}, /samples: 3 vectors; the k-NN manifolds need more than k = 3\. Fix/],
      [good, good, { k: 0 }, /k 0: must be a whole number ≥ 1/],
      [good, good, { manifoldSize: 2 }, /manifoldSize 2: needs a whole number above k = 3/],
    ];
    for (const [samples, reference, options, message] of cases) {
      await assert.rejects(featureMetrics(samples, reference, options), (error: unknown) => {
        assert.ok(isTorchGuidanceError(error, 'ERR_INVALID_ARGUMENT'), String(error));
        assert.match((error as Error).message, message);
        return true;
      });
    }
    assert.deepEqual(workerHandles(), [], 'a rejected call started a worker');
  });
});

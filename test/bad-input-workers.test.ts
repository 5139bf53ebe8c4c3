/**
 * Bad input, worker threads: a worker terminated while its forwards,
 * sample() calls, model loads or copies to JS run on the torch threads, or in
 * the middle of a synchronous native call, must not take the process down
 * (the jobs finish in the background and are freed), and leaves no handle.
 * In a child process: a crash there is a failed assertion here.
 */
import assert from 'node:assert/strict';

import { describeChild, runTs } from './helpers/child.js';
import { freshRandom } from './helpers/random.js';

describe('bad input: worker threads terminated with jobs in flight', function () {
  this.timeout(600_000);

  it('20 terminations at random moments during forwards, sample(), synchronous tensor calls, loads and copies: the process lives, handles return to baseline', async () => {
    const { seed } = freshRandom();
    const run = await runTs('test/children/worker-terminate.ts', [String(seed), '20'], { timeoutMs: 540_000 });
    const context = `seed ${seed}; ${describeChild(run)}`;
    assert.equal(run.signal, null, `the child was killed: ${context}`);
    assert.equal(run.status, 0, context);
    const report = run.json as { terminations: number; before: Record<string, number>; after: Record<string, number>; forwardOk: boolean };
    assert.equal(report.terminations, 20, context);
    assert.equal(report.after.tensors, report.before.tensors, `tensor handles: ${context}`);
    assert.equal(report.after.models, report.before.models, `model handles: ${context}`);
    assert.equal(report.after.jobs, 0, `native jobs still running: ${context}`);
    assert.ok(report.forwardOk, `a forward after the terminations: ${context}`);
    // Each worker loaded a model; what they held was freed with them.
    assert.ok(run.peakRssMiB < 1200, `peak ${run.peakRssMiB} MiB: ${context}`);
  });
});

/**
 * Bad input, hangs: a forward that never returns (hang.pt loops 10^15
 * times). Its AbortSignal settles the call at once; the torch threads it holds
 * are replaced, up to a cap, then new work is refused with a typed error; the
 * process still exits within the exit wait. Each case runs in a child process
 * (TORCH_GUIDANCE_EXIT_WAIT_MS=1500 there) whose exit time is measured.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { runtimeInfo } from '../src/index.js';
import { type ChildResult, describeChild, runTs } from './helpers/child.js';
import { type HostileFiles, makeHostileFiles } from './helpers/hostile-files.js';
import { repoRoot } from './helpers/python.js';

const EXIT_WAIT_MS = 1500;
/** Slack for a loaded 2-core machine between the child's last line and its exit. */
const EXIT_SLACK_MS = 2500;
const PEAK_RSS_MIB = 600;

function hung(mode: string, files: HostileFiles, threads: number): Promise<ChildResult & { exitedAt: number }> {
  return runTs('test/children/hung-forward.ts', [mode, files.path('hang.pt'), files.path('hang-denoiser.pt')], {
    env: { TORCH_GUIDANCE_EXIT_WAIT_MS: String(EXIT_WAIT_MS), TORCH_GUIDANCE_JOB_THREADS: String(threads) },
    timeoutMs: 180_000,
  }).then((result) => ({ ...result, exitedAt: Date.now() }));
}

function assertCleanExit(run: ChildResult & { exitedAt: number }): void {
  const context = describeChild(run);
  assert.equal(run.signal, null, `killed: ${context}`);
  assert.equal(run.status, 0, context);
  assert.doesNotMatch(run.stderr, /terminate called|Segmentation|Aborted|core dumped/, context);
  const exitAt = run.json?.exitAt as number | undefined;
  if (exitAt !== undefined) {
    assert.ok(run.exitedAt - exitAt <= EXIT_WAIT_MS + EXIT_SLACK_MS, `exit took ${run.exitedAt - exitAt} ms after its last line: ${context}`);
  }
  assert.match(run.stderr, /still running after the exit wait of 1500 ms/, `the exit says why it ended early: ${context}`);
  assert.ok(run.peakRssMiB < PEAK_RSS_MIB, `peak ${run.peakRssMiB} MiB: ${context}`);
}

describe('bad input: forwards that never return', function () {
  this.timeout(300_000);
  let files: HostileFiles;
  before(() => {
    files = makeHostileFiles(['hang.pt', 'hang-denoiser.pt']);
  });
  after(() => files.remove());

  it('an AbortSignal settles running calls with ERR_ABORTED; replacement threads serve later loads and forwards; exit waits at most the exit wait', async () => {
    const run = await hung('call', files, 2);
    const context = describeChild(run);
    const report = run.json as { results: { code: string }[]; abortedMs: number; afterMs: number };
    assert.deepEqual(
      report.results.map((r) => r.code),
      ['ERR_ABORTED', 'ERR_ABORTED'],
      context,
    );
    // The signals fire at 300 ms; nothing waits for the forwards themselves.
    assert.ok(report.abortedMs < 3000, `settled after ${report.abortedMs} ms: ${context}`);
    assert.ok(report.afterMs < 60_000, context);
    assertCleanExit(run);
  });

  it('sample() with a hung forward rejects with ERR_ABORTED, the signal\'s reason as its cause, when it fires, and leaves no tensor', async () => {
    const run = await hung('sample', files, 2);
    const context = describeChild(run);
    const report = run.json as { result: { code: string; cause: string }; abortedMs: number; handles: { tensors: number } };
    assert.equal(report.result.code, 'ERR_ABORTED', context);
    assert.equal(report.result.cause, 'TimeoutError', context);
    assert.ok(report.abortedMs < 3000, context);
    assert.equal(report.handles.tensors, 0, context);
    assertCleanExit(run);
  });

  it('once every thread the executor may start is held by an aborted call, new work fails with ERR_THREADS_STUCK instead of waiting forever', async () => {
    const run = await hung('stuck', files, 1);
    const context = describeChild(run);
    const report = run.json as { results: { code: string }[]; more: { code: string }; load: { code: string } };
    assert.deepEqual(new Set(report.results.map((r) => r.code)), new Set(['ERR_ABORTED']), context);
    assert.equal(report.more.code, 'ERR_THREADS_STUCK', context);
    assert.equal(report.load.code, 'ERR_THREADS_STUCK', context);
    assertCleanExit(run);
  });

  it('a hung forward does not hold up the feature statistics (they wait for the BLAS alone a bounded time only)', async () => {
    const run = await hung('statistics', files, 2);
    const context = describeChild(run);
    const report = run.json as { before: number; after: number; fdMs: number; hung: { code: string } };
    assert.ok(Number.isFinite(report.before) && report.before > 0, context);
    assert.ok(Math.abs(report.after - report.before) <= 1e-12 * 1024 * 2, `FD ${report.after} vs ${report.before}: ${context}`);
    // The bounded wait (1 s) plus the distance itself, on a loaded machine.
    assert.ok(report.fdMs < 20_000, `FD took ${report.fdMs} ms: ${context}`);
    assert.equal(report.hung.code, 'ERR_ABORTED', context);
    assertCleanExit(run);
  });

  it('the default exit wait is the one docs/reliability.md states', () => {
    assert.equal(process.env.TORCH_GUIDANCE_EXIT_WAIT_MS, undefined, 'this test reads the default');
    assert.equal(runtimeInfo().exitWaitMs, 60_000);
    const docs = readFileSync(join(repoRoot, 'docs', 'reliability.md'), 'utf8');
    assert.match(docs, /TORCH_GUIDANCE_EXIT_WAIT_MS[^\n]*60000/);
  });
});

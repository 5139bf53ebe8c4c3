/**
 * Thread settings from code (setThreads, src/core/threads.ts) beside their
 * environment variables, and a model's bound on its batch split
 * (loadModel's `threads`), observed where they act: runtimeInfo()'s counts,
 * the BLAS count, and the forwards a split batch takes.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

import { autoChunks } from '../src/model/batch-split.js';
import { isTorchGuidanceError, setThreads } from '../src/index.js';
import { repoRoot } from './helpers/python.js';

interface Report {
  counts: [number, number, number];
  started: { same: string; other: string; bad: string };
  blas: [string, number | null];
  blasBack: string;
  worker: [string, string];
  split: Record<'all' | 'two' | 'one', { splitThreads: number; forwards: number }>;
  badModel: string;
}

describe('thread settings from code', function () {
  this.timeout(120_000);
  let report: Report;
  let blasName: string;

  before(() => {
    // The environment asks for other counts than the code: the code wins.
    const env: NodeJS.ProcessEnv = { ...process.env, TORCH_GUIDANCE_INTRAOP_THREADS: '1', TORCH_GUIDANCE_INTEROP_THREADS: '2', TORCH_GUIDANCE_JOB_THREADS: '2' };
    delete env.TORCH_GUIDANCE_BLAS_THREADS;
    delete env.OPENBLAS_NUM_THREADS;
    const result = spawnSync(process.execPath, ['--import', 'tsx', join('test', 'children', 'threads.ts')], { cwd: repoRoot, encoding: 'utf8', env });
    assert.equal(result.status, 0, result.stderr);
    report = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as Report;
    const script = "import('./src/index.ts').then((m) => console.log(m.runtimeInfo().blas.name + ' ' + m.runtimeInfo().blas.threading))";
    blasName = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: repoRoot, encoding: 'utf8', env }).stdout.trim();
  });

  it('setThreads() before the first use sets the torch counts runtimeInfo() reports, over the environment', () => {
    assert.deepEqual(report.counts, [2, 1, 4]);
  });

  it('once the addon has started, the counts in force pass and others throw ERR_THREADS_STARTED, also in a worker thread', () => {
    assert.deepEqual(report.started, { same: 'ok', other: 'ERR_THREADS_STARTED', bad: 'ERR_INVALID_OPTION' });
    assert.deepEqual(report.worker, ['ok', 'ERR_THREADS_STARTED']);
  });

  it('setThreads({ blas }) sets the BLAS count at any time, as setBlasThreads() does', function () {
    // Only an OpenBLAS with its own threads takes a count from here; others report 'intra-op' or 'none'.
    if (blasName !== 'openblas pthreads') this.skip();
    assert.deepEqual(report.blas, ['fixed', 1]);
    assert.equal(report.blasBack, 'auto');
  });

  it("loadModel's threads bounds the model's batch split: its split threads and the forwards a batch takes", () => {
    const { all, two, one } = report.split;
    assert.equal(all.splitThreads, 4);
    assert.equal(all.forwards, autoChunks(16, 4));
    assert.deepEqual(two, { splitThreads: 2, forwards: autoChunks(16, 2) });
    assert.deepEqual(one, { splitThreads: 1, forwards: 1 });
    assert.ok(all.forwards > two.forwards && two.forwards > one.forwards, JSON.stringify(report.split));
    assert.equal(report.badModel, 'ERR_INVALID_OPTION');
  });

  it('refuses bad settings with ERR_INVALID_OPTION naming the field, before anything else', () => {
    for (const bad of [{ intraOp: 0 }, { interOp: 1.5 }, { jobs: 5000 }, { blas: 'many' }, { threads: 2 }, null]) {
      assert.throws(
        () => setThreads(bad as never),
        (error: unknown) => isTorchGuidanceError(error, 'ERR_INVALID_OPTION') && /setThreads options/.test(error.message),
        JSON.stringify(bad),
      );
    }
  });
});

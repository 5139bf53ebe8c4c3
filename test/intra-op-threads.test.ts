/**
 * The chunks of a split batch share the intra-op threads: each chunk's
 * forward runs with the process-wide count divided among the chunks that run
 * at once, and a whole forward with all of it, on the same torch threads
 * (native/src/runtime/intra_op_threads.h), as the torch thread running the
 * forward reports it (Model.lastForwardThreads).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

import { chunkIntraOpThreads } from '../src/model/model-run.js';
import { repoRoot } from './helpers/python.js';
import { freshRandom, uniformInt } from './helpers/random.js';


describe('intra-op threads of a split forward', function () {
  this.timeout(120_000);

  it('each chunk runs with the intra-op count shared by the chunks at once; a whole forward with all of it', () => {
    // 4 intra-op threads, 2 torch threads: two chunks at once get 2 each.
    const env = { ...process.env, TORCH_GUIDANCE_INTRAOP_THREADS: '4', TORCH_GUIDANCE_JOB_THREADS: '2' };
    const run = spawnSync(process.execPath, ['--import', 'tsx', join('test', 'children', 'intra-op-threads.ts')], { cwd: repoRoot, encoding: 'utf8', env });
    assert.equal(run.status, 0, run.stderr);
    const report = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as Record<string, number>;
    assert.deepEqual(report, { intraOp: 4, whole: 4, two: 2, four: 2, wholeAfter: 4, forward: 4 });
  });

  it('chunkIntraOpThreads shares the count among the chunks that run at once, never below one thread', () => {
    const rng = freshRandom();
    for (let i = 0; i < 500; i++) {
      const intraOp = uniformInt(rng, 1, 64);
      const jobs = uniformInt(rng, 1, 16);
      const chunks = uniformInt(rng, 2, 100);
      const threads = chunkIntraOpThreads(chunks, { intraOp, jobs });
      const atOnce = Math.min(chunks, jobs);
      const at = `intraOp ${intraOp}, jobs ${jobs}, chunks ${chunks} -> ${threads} (seed ${rng.seed})`;
      assert.ok(Number.isInteger(threads) && threads >= 1, at);
      // As many as fit: the chunks at once never ask for more than the count, one more each would.
      if (intraOp >= atOnce) {
        assert.ok(threads * atOnce <= intraOp, at);
        assert.ok((threads + 1) * atOnce > intraOp, at);
      } else {
        assert.equal(threads, 1, at);
      }
    }
  });
});

/**
 * runWorkerTask (src/util/worker-task.ts), the one-call worker thread under
 * featureMetrics: every way a worker can end maps to a typed error, and no
 * worker outlives its promise.
 */
import assert from 'node:assert/strict';

import { isTorchGuidanceError } from '../src/index.js';
import { runWorkerTask } from '../src/core/worker-task.js';

const entry = new URL('./helpers/failing-worker.ts', import.meta.url);
const workerHandles = () => process.getActiveResourcesInfo().filter((r) => r === 'MessagePort' || r === 'Worker');

describe('runWorkerTask', function () {
  this.timeout(60_000);

  it('a reply resolves; a thrown error, an exit without a reply and an error reply reject with typed errors; no worker is left', async () => {
    assert.equal(await runWorkerTask(entry, 'echo'), 'echo');
    const cases: [string, string, RegExp][] = [
      ['throw', 'ERR_WORKER_FAILED', /the worker thread failed: boom in the worker/],
      ['exit', 'ERR_WORKER_FAILED', /the worker thread exited \(code 3\) without a result/],
      ['reply-error', 'ERR_INVALID_ARGUMENT', /^refused in the worker$/],
    ];
    for (const [how, code, message] of cases) {
      await assert.rejects(runWorkerTask(entry, how), (error: unknown) => {
        assert.ok(isTorchGuidanceError(error), `${how}: ${String(error)}`);
        assert.equal((error as { code: string }).code, code, how);
        assert.match((error as Error).message, message);
        return true;
      });
    }
    assert.deepEqual(workerHandles(), []);
  });
});

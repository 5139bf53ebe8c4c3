// Prints one JSON line: the thread counts runtimeInfo() reports after
// setThreads() before the addon's first use (with the environment asking for
// others); what setThreads() says once the addon has started, on this thread
// and in a worker thread; the BLAS count after setThreads({ blas }); and how
// many forwards a split batch of 16 took on a model loaded with and without
// `threads`. test/threads.test.ts runs it.
import { Worker } from 'node:worker_threads';

import { loadModel, randn, runtimeInfo, setThreads, tensor } from '../../src/index.js';

/** The code of what fn throws, or 'ok'. */
function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  }
}

setThreads({ intraOp: 2, interOp: 1 });
setThreads({ jobs: 4 }); // a second call before the start adds to the first
const info = runtimeInfo();
const counts = [info.intraOpThreads, info.interOpThreads, info.jobThreads];

const started = {
  same: codeOf(() => setThreads({ intraOp: 2, jobs: 4 })),
  other: codeOf(() => setThreads({ jobs: 3 })),
  bad: codeOf(() => setThreads({ jobs: 0 })),
};
setThreads({ blas: 1 });
const blas = runtimeInfo().blas;
setThreads({ blas: 'auto' });
const blasBack = runtimeInfo().blas;

// A worker thread shares the process's torch threads: the counts in force pass, others do not.
const worker = await new Promise<string[]>((resolve, reject) => {
  const w = new Worker(new URL('./worker-entry.mjs', import.meta.url), { workerData: { body: new URL('./threads-worker.ts', import.meta.url).href } });
  w.once('message', resolve);
  w.once('error', reject);
});

/** Forwards a batch of 16 takes with parallel 'auto' on the tiny UNet loaded with `options`. */
async function forwardsFor(options: { threads?: number }): Promise<{ splitThreads: number; forwards: number }> {
  using model = await loadModel('models/fixtures/tiny-unet.pt', { device: 'cpu', ...options });
  using x = randn([16, 1, 28, 28], { seed: 1 });
  using t = tensor(new Float32Array(16).fill(500), [16]);
  using label = tensor(new BigInt64Array(16), [16]);
  const start = model.forwardCount;
  const { output } = await model.run({ inputs: [x, t, label], parallel: 'auto' });
  (output as { dispose(): void }).dispose();
  return { splitThreads: model.splitThreads, forwards: model.forwardCount - start };
}
const split = { all: await forwardsFor({}), two: await forwardsFor({ threads: 2 }), one: await forwardsFor({ threads: 1 }) };
const badModel = await loadModel('models/fixtures/tiny-unet.pt', { threads: 0 }).then(
  () => 'ok',
  (error: { code?: string }) => error.code,
);

console.log(JSON.stringify({ counts, started, blas: [blas.control, blas.threads], blasBack: blasBack.control, worker, split, badModel }));

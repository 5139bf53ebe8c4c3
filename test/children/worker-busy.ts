// A worker thread's body (test/children/worker-terminate.ts): loads the tiny
// UNet, then runs forwards (mode 'forward'), sample() calls (mode 'sample'),
// synchronous tensor calls in a loop that never yields (mode 'tensor-ops'),
// model loads (mode 'load') or copies to JS (mode 'copy') until it is
// terminated. Posts 'busy' once the first call is under way.
//
// 'tensor-ops' keeps the thread inside native calls nearly all the time, so a
// termination lands mid-call, when the addon's Node-API calls start failing.
import { parentPort, workerData } from 'node:worker_threads';

import { cfg, loadModel, pag, randn, sample, tensor } from '../../src/index.js';

const { modelPath, mode } = workerData as { modelPath: string; mode: 'forward' | 'sample' | 'tensor-ops' | 'load' | 'copy' };
const model = await loadModel(modelPath, { device: 'cpu' });
const batch = 48;
const x = randn([batch, 1, 28, 28], { seed: 1 });
const t = tensor(new Float32Array(batch).fill(500), [batch]);
const label = tensor(new BigInt64Array(batch).fill(3n), [batch]);
if (mode === 'tensor-ops') {
  parentPort!.postMessage('busy');
  for (let i = 0; ; i++) {
    using noise = randn([batch, 1, 28, 28], { seed: i });
    using mixed = noise.mul(0.5).add(x);
    using rows = mixed.narrow(0, 8).gaussianBlur(3, 1);
    using sums = rows.sumPerSample();
    if (!sums.allFinite()) throw new Error('a tensor op gave a non-finite value');
  }
}
const big = randn([64, 4, 64, 64], { seed: 2 });
const calls = {
  forward: () => model.run({ inputs: [x, t, label], parallel: 'auto' }).then((r) => (r.output as { dispose(): void }).dispose()),
  sample: () =>
    sample({ model, guidance: [cfg({ scale: 2 }), pag({ scale: 2 })], count: 8, sampler: { name: 'euler', steps: 4 } }).then((r) =>
      r.images.dispose(),
    ),
  load: () => loadModel(modelPath, { device: 'cpu' }).then((loaded) => loaded.dispose()),
  copy: () => big.toArray().then(() => undefined),
};
let first = true;
for (;;) {
  const call = calls[mode as keyof typeof calls]();
  if (first) parentPort!.postMessage('busy');
  first = false;
  await call;
}

// Child process for exit.test.ts: starts forwards, then leaves in the way
// the first argument says, with nothing disposed.
//   exit     process.exit(0) while the forwards run
//   natural  let the event loop drain (the forwards finish first)
//   abort    abort a queued call, then exit while the others run
import { join } from 'node:path';

import { loadModel, randn, tensor } from '../../src/index.js';

const mode = process.argv[2] ?? 'exit';
const model = await loadModel(join(import.meta.dirname, '..', '..', 'models', 'fixtures', 'tiny-unet.pt'), {
  device: 'cpu',
});
const batch = 256;
const x = randn([batch, 1, 28, 28], { seed: 1 });
const t = tensor(new Float32Array(batch).fill(500), [batch]);
const label = tensor(new BigInt64Array(batch).fill(3n), [batch]);
const controller = new AbortController();
const calls = Array.from({ length: 5 }, () =>
  model.call('forward', [x, t, label], { signal: controller.signal }).catch((error) => error.code),
);
console.log('started');
if (mode === 'abort') controller.abort();
if (mode === 'exit' || mode === 'abort') {
  setTimeout(() => process.exit(0), 5);
} else {
  void Promise.all(calls).then((results) => console.log(`finished ${results.length}`));
}

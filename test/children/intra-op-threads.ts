// Reports the intra-op threads forwards ran with (test/intra-op-threads.test.ts):
// whole, split into two and four chunks, whole again, and forward().
import { join } from 'node:path';

import { loadModel, randn, runtimeInfo, tensor, type Tensor } from '../../src/index.js';

const model = await loadModel(join(import.meta.dirname, '..', '..', 'models', 'fixtures', 'tiny-unet.pt'), { device: 'cpu' });
const batch = 8;
using x = randn([batch, 1, 28, 28], { seed: 1 });
using t = tensor(new Float32Array(batch).fill(500), [batch]);
using label = tensor(new BigInt64Array(batch).fill(3n), [batch]);
async function threads(parallel: number): Promise<number> {
  const { output } = await model.run<Tensor>({ inputs: [x, t, label], parallel });
  output.dispose();
  return model.lastForwardThreads;
}
const report = {
  intraOp: runtimeInfo().intraOpThreads,
  whole: await threads(1),
  two: await threads(2),
  four: await threads(4),
  wholeAfter: await threads(1),
  forward: await (async () => {
    ((await model.forward(x, t, label)) as Tensor).dispose();
    return model.lastForwardThreads;
  })(),
};
model.dispose();
console.log(JSON.stringify(report));

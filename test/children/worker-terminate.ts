// Terminates worker threads at random moments while their forwards and
// sample() calls run on the torch threads (test/bad-input-workers.test.ts).
// Prints { terminations, jobsLeft, before, after, forwardOk }: the handles of
// this (main) thread before and after, and whether a forward still works.
import { once } from 'node:events';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';

import { liveHandles, loadModel, randn, tensor } from '../../src/index.js';
import { seededRandom } from '../helpers/random.js';

const [seedText, countText] = process.argv.slice(2);
const random = seededRandom(Number(seedText));
const modelPath = join(import.meta.dirname, '..', '..', 'models', 'fixtures', 'tiny-unet.pt');
const before = liveHandles();
const moments: number[] = [];
const modes = ['forward', 'sample', 'tensor-ops', 'load', 'copy'] as const;
for (let i = 0; i < Number(countText); i++) {
  const worker = new Worker(new URL('./worker-entry.mjs', import.meta.url), {
    workerData: { body: new URL('./worker-busy.ts', import.meta.url).href, modelPath, mode: modes[i % modes.length] },
  });
  const failed = once(worker, 'error').then(([error]) => {
    throw error;
  });
  await Promise.race([once(worker, 'message'), failed]);
  // A random moment into its work: mid-forward, between forwards, mid-copy.
  const moment = Math.floor(random.next() * 400);
  moments.push(moment);
  await sleep(moment);
  await worker.terminate();
}
// The terminated workers' jobs finish in the background; wait for them.
const deadline = Date.now() + 120_000;
while (liveHandles().jobs > 0 && Date.now() < deadline) await sleep(50);
const after = liveHandles();
using model = await loadModel(modelPath, { device: 'cpu' });
using x = randn([2, 1, 28, 28], { seed: 2 });
using t = tensor(new Float32Array([1, 900]), [2]);
using label = tensor(new BigInt64Array([0n, 10n]), [2]);
const out = (await model.forward(x, t, label)) as { shape: number[]; dispose(): void };
const forwardOk = out.shape.join() === '2,1,28,28';
out.dispose();
console.log(JSON.stringify({ terminations: moments.length, moments, before, after, forwardOk }));

// Prints one JSON line: the BLAS thread counts seen with no job, and while
// two forwards run at once, under the 'auto' rule and after setBlasThreads(3),
// and how many chunks parallel 'auto' ran a batch of 16 in, in each case.
// test/blas.test.ts runs it with 4 intra-op threads and 2 torch threads.
import { loadModel, randn, runtimeInfo, setBlasThreads, tensor, type Tensor } from '../../src/index.js';

using model = await loadModel('models/fixtures/tiny-unet.pt', { device: 'cpu' });
const batch = 16;
using x = randn([batch, 1, 28, 28], { seed: 1 });
using t = tensor(new Float32Array(batch).fill(500), [batch]);
using label = tensor(new BigInt64Array(batch), [batch]);

/** The BLAS thread counts seen (polled from the event loop) while two forwards run at once, `rounds` times. */
async function whileTwoRun(rounds: number): Promise<(number | null)[]> {
  const seen = new Set<number | null>();
  for (let round = 0; round < rounds; round++) {
    let done = false;
    const both = Promise.all([model.forward<Tensor>(x, t, label), model.forward<Tensor>(x, t, label)]).then((outputs) => {
      done = true;
      for (const output of outputs) output.dispose();
    });
    while (!done) {
      seen.add(runtimeInfo().blas.threads);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await both;
  }
  return [...seen];
}

/** Forwards one parallel 'auto' run of the batch took. */
async function autoChunks(): Promise<number> {
  const before = model.forwardCount;
  const { output } = await model.run<Tensor>({ inputs: [x, t, label], parallel: 'auto' });
  output.dispose();
  return model.forwardCount - before;
}

const start = runtimeInfo().blas;
const auto = { idle: start.threads, control: start.control, during: await whileTwoRun(3), after: runtimeInfo().blas.threads, chunks: await autoChunks() };
const pinned = setBlasThreads(3);
const fixed = { idle: pinned.threads, control: pinned.control, during: await whileTwoRun(3), chunks: await autoChunks() };
const back = setBlasThreads('auto');
console.log(JSON.stringify({ auto, fixed, back: { threads: back.threads, control: back.control } }));

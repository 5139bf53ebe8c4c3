// Prints one JSON line: the BLAS thread count with no job and while two
// forwards run at once, under the 'auto' rule and after setBlasThreads(3);
// whether the two concurrent forwards equal the same forward run alone, bit
// for bit; and how many chunks parallel 'auto' ran a batch of 16 in.
// test/blas.test.ts runs it with 4 intra-op threads and 2 torch threads, so
// that 'auto' gives OpenBLAS 2 threads (more than one: the case where a count
// that moved with the running jobs would change results).
import { loadModel, randn, runtimeInfo, setBlasThreads, tensor, type Tensor } from '../../src/index.js';

using model = await loadModel('models/fixtures/tiny-unet.pt', { device: 'cpu' });
const batch = 16;
using x = randn([batch, 1, 28, 28], { seed: 1 });
using t = tensor(new Float32Array(batch).fill(500), [batch]);
using label = tensor(new BigInt64Array(batch), [batch]);

async function values(pending: Promise<Tensor>): Promise<number[]> {
  using output = await pending;
  return Array.from((await output.toArray()) as Float32Array);
}

/** Two forwards at once, `rounds` times: the BLAS thread counts seen meanwhile, and whether each output equals `alone`. */
async function whileTwoRun(rounds: number, alone: number[]): Promise<{ seen: (number | null)[]; equal: boolean }> {
  const seen = new Set<number | null>();
  let equal = true;
  for (let round = 0; round < rounds; round++) {
    let done = false;
    const both = Promise.all([values(model.forward<Tensor>(x, t, label)), values(model.forward<Tensor>(x, t, label))]).finally(() => {
      done = true;
    });
    while (!done) {
      seen.add(runtimeInfo().blas.threads);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    for (const output of await both) equal &&= output.every((v, i) => Object.is(v, alone[i]));
  }
  return { seen: [...seen], equal };
}

/** Forwards one parallel 'auto' run of the batch took. */
async function autoChunks(): Promise<number> {
  const before = model.forwardCount;
  const { output } = await model.run<Tensor>({ inputs: [x, t, label], parallel: 'auto' });
  output.dispose();
  return model.forwardCount - before;
}

async function phase() {
  const { threads, control } = runtimeInfo().blas;
  const alone = await values(model.forward<Tensor>(x, t, label));
  return { threads, control, ...(await whileTwoRun(3, alone)), chunks: await autoChunks() };
}

const auto = await phase();
setBlasThreads(3);
const fixed = await phase();
const back = setBlasThreads('auto');
console.log(JSON.stringify({ auto, fixed, back: { threads: back.threads, control: back.control } }));

/**
 * The fixed cost of one call into the package, next to Python torch on the
 * same libtorch: a forward of a module that does a single add (so the graph
 * costs next to nothing and what is left is the path: argument checks, the
 * hop to a torch thread, the promise back), and one eager tensor op on the
 * main thread (what the guidance mix and the samplers are made of).
 *
 *   npx tsx benchmarks/call-overhead.ts [--device cpu|cuda] [--iterations 2000]
 *
 * Writes benchmarks/results/call-overhead[-cuda].md. A sampling step costs
 * one or two forwards and 5-15 ops; multiply to see what the path adds to a
 * step, next to the model's own forward time (forward-vs-python.ts).
 *
 * It also splits a forward's time as the native jobs see it (jobTimes():
 * waiting for a torch thread, the work, waiting for the event loop, settling)
 * and measures the machine's floor for the two hops: a round trip between two
 * threads that sleep on a futex (Atomics.wait / Atomics.notify), which is what
 * waking a parked torch thread and the event loop costs the kernel.
 * No synchronisation inside the timed loops on either side (on CUDA: launch
 * cost, as in a sampling loop that never waits for the GPU).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Worker } from 'node:worker_threads';

import { jobTimes, loadModel, runtimeInfo, tensor, type DeviceName, type Tensor } from '../src/index.js';
import { blasFor, flag, machineFor, median, pythonFor } from './cli.js';

const root = join(import.meta.dirname, '..');
const device = flag('device', 'cpu') as DeviceName;
const iterations = Number(flag('iterations', '2000'));
const python = pythonFor(device);
const info = runtimeInfo();

// The module: built here by the machine's own torch, so both sides load one file.
const dir = mkdtempSync(join(tmpdir(), 'tg-call-overhead-'));
const modelPath = join(dir, 'add-one.pt');
const script = join(root, 'benchmarks', 'python', 'call_overhead.py');
execFileSync(python, [script, '--make', modelPath]);

/** Per forward, in µs: where the native job's time went (see jobTimes()). */
interface ForwardSplit {
  queueUs: number;
  workUs: number;
  notifyUs: number;
  settleUs: number;
}

async function ours(): Promise<{ forwardUs: number; runUs: number; opUs: number; split: ForwardSplit }> {
  const model = await loadModel(modelPath, { device });
  const x = tensor(new Float32Array(16 * 784), [16, 1, 28, 28], { device });
  try {
    for (let i = 0; i < 50; i++) ((await model.forward(x)) as Tensor).dispose();
    const timed = async (fn: () => Promise<void> | void) => {
      const times: number[] = [];
      for (let i = 0; i < iterations; i++) {
        const start = performance.now();
        await fn();
        times.push((performance.now() - start) * 1000);
      }
      return median(times);
    };
    jobTimes({ reset: true });
    const forwardUs = await timed(async () => ((await model.forward(x)) as Tensor).dispose());
    const jobs = jobTimes({ reset: true });
    const perJob = (ms: number) => (ms * 1000) / jobs.jobs;
    const split = { queueUs: perJob(jobs.queueMs), workUs: perJob(jobs.workMs), notifyUs: perJob(jobs.notifyMs), settleUs: perJob(jobs.settleMs) };
    // run() with an empty plan: the path sample() takes for every forward.
    const runUs = await timed(async () => (await model.run<Tensor>({ inputs: [x], hooks: [] })).output.dispose());
    const opUs = await timed(() => x.add(1).dispose());
    return { forwardUs, runUs, opUs, split };
  } finally {
    x.dispose();
    model.dispose();
  }
}

function pythonSide(): { forward_us: number; op_us: number } {
  const out = execFileSync(python, [script, modelPath, String(iterations), String(info.intraOpThreads), '--device', device], { encoding: 'utf8' });
  return JSON.parse(out) as { forward_us: number; op_us: number };
}

/**
 * Round trips between this thread and a worker thread, each side sleeping in
 * Atomics.wait until the other notifies it: two futex wake-ups per trip, as
 * a forward pays (a parked torch thread woken, then the event loop). Median
 * and 90th percentile in µs.
 */
async function wakeRoundTrip(trips: number): Promise<{ medianUs: number; p90Us: number }> {
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const echo = new Worker(
    `const { workerData } = require('node:worker_threads');
     const flag = new Int32Array(workerData.buffer);
     for (let i = 0; i < workerData.trips; i++) {
       Atomics.wait(flag, 0, 0);
       Atomics.store(flag, 0, 0);
       Atomics.notify(flag, 0);
     }`,
    { eval: true, workerData: { buffer: flag.buffer, trips } },
  );
  await new Promise((resolve) => echo.once('online', resolve));
  const times: number[] = [];
  for (let i = 0; i < trips; i++) {
    const start = performance.now();
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
    Atomics.wait(flag, 0, 1);
    times.push((performance.now() - start) * 1000);
  }
  await echo.terminate();
  times.sort((a, b) => a - b);
  return { medianUs: median(times), p90Us: times[Math.floor(times.length * 0.9)] ?? Number.NaN };
}

// Alternate, three rounds; medians of the round medians.
const rounds: { ours: Awaited<ReturnType<typeof ours>>; py: ReturnType<typeof pythonSide> }[] = [];
for (let r = 0; r < 3; r++) rounds.push({ ours: await ours(), py: pythonSide() });
rmSync(dir, { recursive: true, force: true });
const m = (f: (round: (typeof rounds)[number]) => number) => median(rounds.map(f));
const rows = [
  ['forward (module: one add)', m((r) => r.ours.forwardUs), m((r) => r.py.forward_us)],
  ['run({ hooks: [] }) (sample()\'s path)', m((r) => r.ours.runUs), m((r) => r.py.forward_us)],
  ['eager op (x + 1)', m((r) => r.ours.opUs), m((r) => r.py.op_us)],
] as const;
const split = {
  queueUs: m((r) => r.ours.split.queueUs),
  workUs: m((r) => r.ours.split.workUs),
  notifyUs: m((r) => r.ours.split.notifyUs),
  settleUs: m((r) => r.ours.split.settleUs),
};
const wake = await wakeRoundTrip(iterations);

const machine = machineFor(device);
const report = `# Fixed cost per call: this package vs Python torch

Command: \`npx tsx benchmarks/call-overhead.ts${process.argv.slice(2).length ? ' ' + process.argv.slice(2).join(' ') : ''}\`  
Date: ${new Date().toISOString()}  
Machine: ${machine}; device ${device}; libtorch ${info.torchVersion}, ${info.intraOpThreads} intra-op threads; Node ${process.version}  
${blasFor({ python: true })}  
Method: a TorchScript module whose forward is \`x + 1\` on a [16, 1, 28, 28] float tensor, frozen on both sides; ${iterations} calls per loop, median per call, 3 alternating rounds, median of the rounds. No synchronisation inside the loops. Python: \`benchmarks/python/call_overhead.py\` (inference mode).

| call | ours (µs) | Python (µs) | ours − Python (µs) |
|---|---|---|---|
${rows.map(([what, a, b]) => `| ${what} | ${a.toFixed(1)} | ${b.toFixed(1)} | ${(a - b).toFixed(1)} |`).join('\n')}

The forward rows are what each forward of a sampling step pays on top of the model's own work; the op row what each
step's guidance mix and sampler update pay per tensor operation.

Where a forward's time goes (\`jobTimes()\`, mean per forward over the forward loop, median of the rounds):

| waiting for a torch thread | work on it | waiting for the event loop | settling the promise |
|---:|---:|---:|---:|
| ${split.queueUs.toFixed(1)} µs | ${split.workUs.toFixed(1)} µs | ${split.notifyUs.toFixed(1)} µs | ${split.settleUs.toFixed(1)} µs |

The machine's floor for the two waits: a round trip between two threads that sleep on a futex (\`Atomics.wait\` /
\`Atomics.notify\`, ${iterations} trips) took ${wake.medianUs.toFixed(1)} µs (median), ${wake.p90Us.toFixed(1)} µs at the 90th percentile.
`;
const out = join(root, 'benchmarks', 'results', device === 'cpu' ? 'call-overhead.md' : 'call-overhead-cuda.md');
writeFileSync(out, report);
console.log(report);

/**
 * Where a sampling step's time goes, ours next to the Python loop's: the
 * forward's own work, the path around it and the rest of the step. Made for
 * launch-bound GPUs, where a forward takes a few ms and the path counts (on
 * an H200 each of our steps once cost ~2 ms more than Python's on a ~3 ms
 * forward; docs/benchmarks.md).
 *
 *   npx tsx benchmarks/step-profile.ts [--device cpu|cuda] [--batch 16] [--steps 20]
 *                                      [--runs 8] [--only none,cfg,autoguidance] [--parallel 1]
 *                                      [--model M.pt] [--guide G.pt]
 *
 * Per step, median over runs that alternate with the Python loop's
 * (benchmarks/python/sample_loop.py --serve):
 *   step         the whole run / steps (ending with the images on the host)
 *   forwards     ours: time awaiting forwards (sample()'s timings.forwardMs);
 *                Python: time inside its model calls (on CUDA: launching
 *                kernels, nothing waits for the GPU)
 *   work         ours: time the forwards ran on the torch threads (jobTimes();
 *                concurrent forwards, as autoguidance's, add up)
 *   path         ours: forwards − work, the hop to a torch thread and back
 *                (queue, notify, settle and the JS around the call)
 *   hop          ours: the part of path in the native hop: waiting for a
 *                torch thread, for the event loop to hear of the result
 *                (notify, also shown alone) and settling the promise; the
 *                rest of path is JS: the input scaling, time input, output
 *                scaling and the wrappers around the call
 *   rest         step − forwards: the guidance mix, the sampler, the host copy
 * Reading it: work > Python's forwards → the graph or its launches are slower
 * (graph-vs-python.ts); path large → the call path; rest large → the eager ops.
 *
 * Ours runs sample() with `parallel: 1` by default (one forward per branch
 * group, as on CUDA, where the split never applies), so work is one job per
 * forward. Writes benchmarks/results/step-profile-<device>[-<model>].md.
 */
import { writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

import {
  autoguidance,
  cfg,
  jobTimes,
  loadModel,
  noiseScheduleFromCard,
  pag,
  runtimeInfo,
  sample,
  sigmasFor,
  type DenoiserCard,
  type DeviceName,
  type Strategy,
} from '../src/index.js';
import { argv, blasFor, flag, machineFor, median, pythonFor } from './cli.js';
import { startPythonLoop } from './python-loop.js';

const root = join(import.meta.dirname, '..');
const device = flag('device', 'cpu') as DeviceName;
const batch = Number(flag('batch', '16'));
const steps = Number(flag('steps', '20'));
const runs = Number(flag('runs', '8'));
const parallelFlag = flag('parallel', '1');
const parallel = parallelFlag === 'auto' ? 'auto' : Number(parallelFlag);
const info = runtimeInfo();

// Any model with the shipped UNet's signature (x, t, label) and schedule, e.g.
// models/fixtures/tiny-unet.pt, whose ~1 ms forwards on the CPU make the path
// stand out as it does for a launch-bound model on a GPU.
const modelPath = flag('model', join(root, 'models', 'fashion-unet.pt'));
const guidePath = flag('guide', join(root, 'models', 'fashion-unet-weak.pt'));
const model = await loadModel(modelPath, { device });
const guide = await loadModel(guidePath, { device });
const sigmas = sigmasFor({ kind: 'karras', rho: 7 }, steps, noiseScheduleFromCard(model.card as DenoiserCard));

const strategies: Record<string, Strategy[]> = {
  none: [],
  cfg: [cfg({ scale: 4 })],
  pag: [pag({ scale: 3 })],
  autoguidance: [autoguidance({ guide, scale: 2 })],
};
const chosen = flag('only', 'none,cfg,autoguidance').split(',');
for (const name of chosen) if (!strategies[name]) throw new Error(`--only: no strategy '${name}'; choose from ${Object.keys(strategies).join(', ')}`);

/** Per-step milliseconds of one run: what both sides report. */
interface Profile {
  step: number;
  forwards: number;
}

/** Ours also splits the forwards with jobTimes(). */
interface OurProfile extends Profile {
  work: number;
  hop: number;
  notify: number;
}

async function oursOnce(guidance: Strategy[]): Promise<OurProfile> {
  const labels = Array.from({ length: batch }, (_, i) => i % 10);
  jobTimes({ reset: true });
  const start = performance.now();
  const result = await sample({
    model,
    guidance,
    sampler: { name: 'euler', steps, schedule: { kind: 'karras', rho: 7 } },
    labels,
    seed: 0,
    parallel,
  });
  const jobs = jobTimes({ reset: true }); // the forwards only: read before the host copy
  await result.images.toArray();
  const ms = performance.now() - start;
  result.images.dispose();
  return {
    step: ms / steps,
    forwards: result.timings.forwardMs / steps,
    work: jobs.workMs / steps,
    hop: (jobs.queueMs + jobs.notifyMs + jobs.settleMs) / steps,
    notify: jobs.notifyMs / steps,
  };
}

const rows: string[] = [];
const col = (values: number[]) => median(values).toFixed(3);
for (const name of chosen) {
  const guidance = strategies[name]!;
  const loop = await startPythonLoop({
    python: pythonFor(device),
    model: modelPath,
    guide: guidePath,
    strategy: name,
    batch,
    sigmas,
    threads: info.intraOpThreads,
    device,
  });
  const ours: OurProfile[] = [];
  const theirs: Profile[] = [];
  try {
    await oursOnce(guidance); // warm-up (the Python loop warmed up as it started)
    for (let i = 0; i < runs; i++) {
      const python = async () => {
        const p = await loop.profile();
        theirs.push({ step: p.ms / steps, forwards: p.forwardMs / steps });
      };
      if (i % 2 === 1) await python();
      ours.push(await oursOnce(guidance));
      if (i % 2 === 0) await python();
    }
  } finally {
    loop.close();
  }
  const path = ours.map((o) => o.forwards - o.work);
  // Forwards that ran at once (autoguidance's two models) sum to more work than wall time: no path to read.
  const pathCell = median(path) >= 0 ? col(path) : '— (concurrent)';
  const oursRow = `| ${name} | ours | ${col(ours.map((o) => o.step))} | ${col(ours.map((o) => o.forwards))} | ${col(ours.map((o) => o.work))} | ${pathCell} | ${col(ours.map((o) => o.hop))} | ${col(ours.map((o) => o.notify))} | ${col(ours.map((o) => o.step - o.forwards))} |`;
  const theirRow = `| ${name} | Python | ${col(theirs.map((o) => o.step))} | ${col(theirs.map((o) => o.forwards))} | — | — | — | — | ${col(theirs.map((o) => o.step - o.forwards))} |`;
  rows.push(oursRow, theirRow);
  console.log(oursRow);
  console.log(theirRow);
}
model.dispose();
guide.dispose();

const deviceKind = device.replace(/:.*/, '');
const report = `# Where a sampling step's time goes: ours vs a Python loop (${device})

Command: \`npx tsx benchmarks/step-profile.ts${argv.length ? ' ' + argv.join(' ') : ''}\`  
Date: ${new Date().toISOString()}  
Machine: ${machineFor(device)}; libtorch ${info.torchVersion}; ${info.intraOpThreads} intra-op threads on both sides  
${blasFor({ python: true })}  
Model: ${modelPath.replace(root + '/', '')} (guide: ${guidePath.replace(root + '/', '')}), Euler, ${steps} Karras steps, batch ${batch}; ours with parallel ${parallel}.

Milliseconds per step, median over ${runs} runs per side, the sides alternating run by run. "forwards": ours, the time
awaiting forwards; Python, the time inside its model calls (on CUDA without a sync: launching the kernels). "work": the
time our forwards ran on the torch threads (\`jobTimes()\`; concurrent forwards add up). "path" = forwards − work: what
our forwards cost around the model itself; of it, "hop" is the native hop (waiting for a torch thread, "notify": for the
event loop to pick a finished forward up, settling the promise), the rest JS (input and output scaling, the wrappers).
"rest" = step − forwards: guidance mix, sampler, host copy. Work above Python's forwards: the graph or its launches are
slower; a large path: the call path; a large rest: the eager ops.

| strategy | side | step | forwards | work | path | hop | notify | rest |
|---|---|---:|---:|---:|---:|---:|---:|---:|
${rows.join('\n')}
`;
// Another model's report goes beside the shipped UNet's, named after it.
const modelTag = argv.includes('--model') ? `-${basename(modelPath, '.pt')}` : '';
writeFileSync(join(root, 'benchmarks', 'results', `step-profile-${deviceKind}${modelTag}.md`), report);
console.log(report);

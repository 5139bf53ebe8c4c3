// Forwards that never return (test/bad-input-hangs.test.ts), in a child:
//   call    two hung calls aborted by their signals; then a load and a forward
//           on the torch threads that replace them; then process.exit(0)
//   sample  sample() on a denoiser that never returns, aborted by a timeout
//   stuck   one torch thread: hung calls, each aborted once it runs, until
//           every thread the executor may start is held; then a call and a load
//   statistics  a Fréchet distance, then one hung call aborted, then the same
//           distance again: it must not wait for the hung call (it would
//           like the BLAS alone, but waits a bounded time only)
// Prints one JSON line of what happened, with times in ms.
import { join } from 'node:path';

import { liveHandles, loadModel, randn, sample, tensor } from '../../src/index.js';
import { frechetDistance, type GaussianStats } from '../../src/metrics/statistics.js';

const [mode, hangPath, hangDenoiser] = process.argv.slice(2);
const fixture = join(import.meta.dirname, '..', '..', 'models', 'fixtures', 'tiny-unet.pt');
const outcome = (error: unknown) => ({
  code: (error as { code?: string }).code ?? null,
  name: (error as Error).name,
  cause: ((error as Error).cause as Error | undefined)?.name ?? null,
});
const NEVER = 1e15; // additions in hang.pt's loop

if (mode === 'statistics') {
  // Two Gaussians of 512 dimensions with dense covariances (I + a rank-8 term), from a fixed generator.
  let state = 12345;
  const next = () => ((state = (state * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
  const stats = (shift: number): GaussianStats => {
    const dim = 512;
    const loadings = Float64Array.from({ length: 8 * dim }, next);
    const cov = new Float64Array(dim * dim);
    for (let i = 0; i < dim; i++) {
      for (let j = 0; j < dim; j++) {
        let v = i === j ? 1 : 0;
        for (let f = 0; f < 8; f++) v += loadings[f * dim + i]! * loadings[f * dim + j]!;
        cov[i * dim + j] = v;
      }
    }
    return { dim, count: 10_000, mean: new Float64Array(dim).fill(shift), cov };
  };
  const [a, b] = [stats(0), stats(0.1)];
  const before = await frechetDistance(a, b);
  const model = await loadModel(hangPath!, { device: 'cpu' });
  const hung = model.call('forward', [randn([1], { seed: 0 }), NEVER], { signal: AbortSignal.timeout(300) }).then(() => 'resolved', outcome);
  while (liveHandles().jobs < 1) await new Promise((resolve) => setTimeout(resolve, 5));
  const started = performance.now();
  const after = await frechetDistance(a, b);
  const fdMs = performance.now() - started;
  console.log(JSON.stringify({ before, after, fdMs, hung: await hung, exitAt: Date.now() }));
  process.exit(0);
}

if (mode === 'call' || mode === 'stuck') {
  const model = await loadModel(hangPath!, { device: 'cpu' });
  const x = randn([1], { seed: 0 });
  const hang = () => model.call('forward', [x, NEVER], { signal: AbortSignal.timeout(300) }).then(() => ({ code: 'resolved' }), outcome);
  const started = performance.now();
  let results;
  if (mode === 'call') {
    results = await Promise.all([hang(), hang()]);
  } else {
    // One at a time, each aborted once it runs: every abort frees a place for a replacement thread, until the cap.
    results = [];
    for (let i = 0; i < 5; i++) {
      const pending = hang();
      while (liveHandles().jobs < i + 1) await new Promise((resolve) => setTimeout(resolve, 5));
      results.push(await pending);
    }
  }
  const abortedMs = performance.now() - started;
  if (mode === 'stuck') {
    const more = await model.call('forward', [x, 1]).then(() => ({ code: 'resolved' }), outcome);
    const load = await loadModel(fixture, { device: 'cpu' }).then((m) => (m.dispose(), { code: 'loaded' }), outcome);
    console.log(JSON.stringify({ results, abortedMs, more, load }));
    process.exit(0);
  }
  // Every configured torch thread is held by a hung call: the next jobs run on replacements.
  const loadStarted = performance.now();
  using unet = await loadModel(fixture, { device: 'cpu' });
  using input = randn([2, 1, 28, 28], { seed: 1 });
  using t = tensor(new Float32Array([10, 500]), [2]);
  using label = tensor(new BigInt64Array([1n, 10n]), [2]);
  const out = await unet.forward(input, t, label);
  const afterMs = performance.now() - loadStarted;
  (out as { dispose(): void }).dispose();
  console.log(JSON.stringify({ results, abortedMs, afterMs, handles: liveHandles(), exitAt: Date.now() }));
  process.exit(0);
}

if (mode === 'sample') {
  using model = await loadModel(hangDenoiser!, { device: 'cpu' });
  const started = performance.now();
  const result = await sample({ model, labels: [1, 2], sampler: { name: 'euler', steps: 2 }, signal: AbortSignal.timeout(300) }).then(
    () => ({ code: 'resolved', name: '' }),
    outcome,
  );
  console.log(JSON.stringify({ result, abortedMs: performance.now() - started, handles: liveHandles(), exitAt: Date.now() }));
}

// Forwards that never return (test/bad-input-hangs.test.ts), in a child:
//   call    two hung calls aborted by their signals; then a load and a forward
//           on the torch threads that replace them; then process.exit(0)
//   sample  sample() on a denoiser that never returns, aborted by a timeout
//   stuck   one torch thread: hung calls, each aborted once it runs, until
//           every thread the executor may start is held; then a call and a load
// Prints one JSON line of what happened, with times in ms.
import { join } from 'node:path';

import { liveHandles, loadModel, randn, sample, tensor } from '../../src/index.js';

const [mode, hangPath, hangDenoiser] = process.argv.slice(2);
const fixture = join(import.meta.dirname, '..', '..', 'models', 'fixtures', 'tiny-unet.pt');
const outcome = (error: unknown) => ({
  code: (error as { code?: string }).code ?? null,
  name: (error as Error).name,
  cause: ((error as Error).cause as Error | undefined)?.name ?? null,
});
const NEVER = 1e15; // additions in hang.pt's loop

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

/**
 * Sampler trajectories against an independent Python implementation
 * (test/reference/samplers.py) over the same TorchScript file and the same
 * noise: every sampler, every schedule, every prediction type and
 * conditioning kind of the fixtures, with and without CFG.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { type Model, cfg, loadModel, sample, type SamplerOptions } from '../src/index.js';
import { Streams, mixSeed, sampleSeeds } from '../src/samplers/seeds.js';
import { repoRoot, runReference } from './helpers/python.js';
import { freshRandom, relativeError } from './helpers/random.js';

const fixture = (name: string) => join(repoRoot, 'models', 'fixtures', name);

interface Case {
  model: string;
  sampler: SamplerOptions;
  cfgScale: number;
}

const cases: Case[] = [
  { model: 'tiny-unet.pt', sampler: { name: 'euler', steps: 5 }, cfgScale: 2.5 },
  { model: 'tiny-unet.pt', sampler: { name: 'heun', steps: 4, churn: 2 }, cfgScale: 2 },
  { model: 'tiny-unet.pt', sampler: { name: 'ddim', steps: 6, eta: 0, schedule: { kind: 'discrete', spacing: 'trailing' } }, cfgScale: 3 },
  { model: 'tiny-unet.pt', sampler: { name: 'ddim', steps: 5, eta: 0.5, schedule: { kind: 'discrete', spacing: 'leading' } }, cfgScale: 0 },
  { model: 'tiny-unet.pt', sampler: { name: 'euler_ancestral', steps: 5, schedule: { kind: 'exponential' } }, cfgScale: 1.5 },
  { model: 'tiny-unet.pt', sampler: { name: 'dpmpp_2m', steps: 6 }, cfgScale: 2 },
  { model: 'tiny-unet-v.pt', sampler: { name: 'dpmpp_2m', steps: 5, schedule: { kind: 'karras', rho: 5 } }, cfgScale: 2 },
  { model: 'tiny-unet-x0.pt', sampler: { name: 'heun', steps: 3 }, cfgScale: 2 },
  { model: 'tiny-edm.pt', sampler: { name: 'euler', steps: 5 }, cfgScale: 2 },
  { model: 'tiny-edm.pt', sampler: { name: 'euler_ancestral', steps: 4, eta: 0.7 }, cfgScale: 0 },
  { model: 'tiny-uncond.pt', sampler: { name: 'dpmpp_2m', steps: 5 }, cfgScale: 0 },
];

describe('samplers against the Python reference', function () {
  this.timeout(300_000);
  const models = new Map<string, Model>();
  before(async () => {
    for (const name of new Set(cases.map((c) => c.model))) models.set(name, await loadModel(fixture(name), { device: 'cpu' }));
  });
  after(() => models.forEach((m) => m.dispose()));

  for (const c of cases) {
    const title = `${c.model} ${JSON.stringify(c.sampler)}${c.cfgScale ? ` cfg ${c.cfgScale}` : ''}`;
    it(`${title} matches to 1e-4 relative`, async () => {
      const model = models.get(c.model)!;
      const rng = freshRandom();
      const seed = Math.floor(rng.next() * 1e9);
      const conditional = model.card && 'conditioning' in model.card && model.card.conditioning.kind === 'class';
      const labels = conditional ? [Math.floor(rng.next() * 10), null, Math.floor(rng.next() * 10)] : undefined;
      const count = 3;
      const result = await sample({
        model,
        guidance: c.cfgScale ? [cfg({ scale: c.cfgScale })] : [],
        sampler: c.sampler,
        ...(labels ? { labels } : { count }),
        seed,
        batchSize: 2, // crosses a batch boundary: per-sample seeds must carry over
      });
      const ours = (await result.images.toArray()) as Float32Array;
      result.images.dispose();
      const seeds = sampleSeeds(seed, 0, count);
      const steps = c.sampler.steps!;
      const stepSeeds = Array.from({ length: steps }, (_, step) => seeds.map((s) => String(mixSeed(s, Streams.stepNoise + BigInt(step)))));
      const { output } = runReference(
        'samplers.py',
        {
          model: fixture(c.model),
          sampler: c.sampler,
          labels: labels ?? [null, null, null],
          cfg: c.cfgScale,
          seeds: seeds.map(String),
          stepSeeds,
        },
        {},
      );
      const error = relativeError(ours, output);
      assert.ok(error < 1e-4, `relative error ${error} (seed ${rng.seed})`);
    });
  }
});

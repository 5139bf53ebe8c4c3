/**
 * sample(): batch invariance, abort, typed errors for bad options.
 *
 * Batch invariance: sample i of a run with seed s has seed s + i for all of
 * its noise (src/samplers/seeds.ts), so it must not depend on its batch.
 * - Within batches of one size (16), at the same position, the result is
 *   bit-identical whatever the neighbours: the same kernels run on the same
 *   rows, so any dependence on the neighbours shows as a difference. (The
 *   position is not free: moving a sample to another row of the batch
 *   changes it at the 1e-7 level, the CPU kernels' row blocking.)
 * - Alone (batch 1) against inside a batch of 16: libtorch's CPU kernels
 *   round differently per batch size (one forward of tiny-unet differs by
 *   ~1e-6 relative between batch 1 and 16 on the same inputs), so the
 *   comparison is relative to the sample's scale, at 1e-5; a wrong seed,
 *   label, random condition or hook slice differs by orders of magnitude more
 *   (checked against a neighbour).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';

import {
  ErrorCodes,
  isTorchGuidanceError,
  type ErrorCode,
  type Model,
  type SampleOptions,
  type SamplerOptions,
  apg,
  apgMix,
  cfg,
  cfgpp,
  fdg,
  magnitudeAware,
  tcfg,
  explain,
  icg,
  liveHandles,
  loadModel,
  pag,
  sag,
  sample,
  seg,
  slg,
  tsg,
} from '../src/index.js';
import { expectCode } from './helpers/errors.js';
import { repoRoot } from './helpers/python.js';
import { freshRandom, relativeError, uniformInt, guidanceScale, type Rng } from './helpers/random.js';

const fixture = (name: string) => join(repoRoot, 'models', 'fixtures', name);

let model: Model;

async function run(options: SampleOptions) {
  const result = await sample(options);
  const images = (await result.images.toArray()) as Float32Array;
  result.images.dispose();
  const size = images.length / result.seeds.length;
  return { ...result, images, sample: (i: number) => images.subarray(i * size, (i + 1) * size) };
}

describe('sample()', () => {
  before(async () => {
    model = await loadModel(fixture('tiny-unet.pt'), { device: 'cpu' });
  });
  after(() => model?.dispose());

  describe('sample(): batch invariance', function () {
    this.timeout(120_000);
    const BATCH = 16;

    const cases: { what: string; guidance: (rng: Rng) => SampleOptions['guidance']; labelsBy: 'count' | 'labels' }[] = [
      // ICG draws a random label per sample and evaluation from the sample's seed.
      { what: 'icg (random labels), labels drawn from the seeds', guidance: (rng) => [icg({ scale: guidanceScale(rng) })], labelsBy: 'count' },
      // PAG perturbs its branch's slice of a batched forward.
      { what: 'pag (attention hooks), explicit labels', guidance: (rng) => [pag({ scale: guidanceScale(rng) })], labelsBy: 'labels' },
      // TSG draws its time-embedding noise per sample and evaluation from the sample's seed; SLG skips blocks on its slice.
      {
        what: 'tsg (module noise) + slg (module skip), explicit labels',
        guidance: (rng) => [tsg({ scale: guidanceScale(rng), noiseScale: 0.5 + rng.next() }), slg({ scale: guidanceScale(rng), start: 0, stop: 1 })],
        labelsBy: 'labels',
      },
    ];

    for (const c of cases) {
      it(`euler_ancestral with ${c.what}: sample i alone equals sample i in a batch of ${BATCH}`, async () => {
        const rng = freshRandom();
        const steps = uniformInt(rng, 3, 4);
        const sampler: SamplerOptions = { name: 'euler_ancestral', steps, eta: 0.5 + 0.5 * rng.next() };
        const guidance = c.guidance(rng);
        const seed = uniformInt(rng, 0, 1e9);
        const ctx = `seed ${rng.seed}, run seed ${seed}`;
        // Random labels with some null (unconditional) samples among them.
        const randomLabel = () => (rng.next() < 0.2 ? null : uniformInt(rng, 0, 9));
        const a = await run({
          model,
          guidance,
          sampler,
          seed,
          batchSize: BATCH,
          ...(c.labelsBy === 'count' ? { count: BATCH } : { labels: Array.from({ length: BATCH }, randomLabel) }),
        });

        // Other neighbours: about half the samples get new labels (so new trajectories, new ICG draws
        // against them, other hook inputs); the rest must not change by a single bit.
        const kept = a.labels.map(() => rng.next() < 0.5);
        const labels = a.labels.map((l, j) => (kept[j] ? l : randomLabel()));
        const b = await run({ model, guidance, sampler, seed, batchSize: BATCH, labels });
        let changedNeighbours = 0;
        for (let i = 0; i < BATCH; i++) {
          if (labels[i] !== a.labels[i]) {
            changedNeighbours++;
            continue;
          }
          assert.equal(b.seeds[i], a.seeds[i], ctx);
          const differs = a.sample(i).findIndex((v, k) => v !== b.sample(i)[k]);
          assert.equal(differs, -1, `sample ${i} changed with its neighbours at element ${differs}: ${a.sample(i)[differs]} vs ${b.sample(i)[differs]} (${ctx})`);
        }
        if (changedNeighbours > 0) {
          const i = labels.findIndex((l, j) => l !== a.labels[j]);
          assert.ok(relativeError(b.sample(i), a.sample(i)) > 1e-3, `a relabelled sample should change (${ctx})`);
        }

        // Alone, with batch size 1 and the per-sample seed s + i.
        const picked = [uniformInt(rng, 0, 7), uniformInt(rng, 8, BATCH - 1)];
        for (const i of picked) {
          const alone = await run({
            model,
            guidance,
            sampler,
            seed: seed + i,
            batchSize: 1,
            ...(c.labelsBy === 'count' ? { count: 1 } : { labels: [a.labels[i]!] }),
          });
          assert.equal(alone.seeds[0], a.seeds[i], ctx);
          assert.equal(alone.labels[0], a.labels[i], `sample ${i}'s label (${ctx})`);
          const error = relativeError(alone.sample(0), a.sample(i));
          assert.ok(error < 1e-5, `sample ${i} alone vs in the batch: relative error ${error} (${ctx})`);
          // The tolerance is far below what a different sample differs by.
          const neighbour = relativeError(alone.sample(0), a.sample(i === 0 ? 1 : i - 1));
          assert.ok(neighbour > 1e-2, `sample ${i} vs its neighbour: ${neighbour} (${ctx})`);
        }
      });
    }
  });

  describe('sample(): abort', function () {
    this.timeout(60_000);

    const options = (rng: Rng, steps: number): SampleOptions => ({
      model,
      guidance: [cfg({ scale: guidanceScale(rng) }), pag({ scale: guidanceScale(rng) }), sag({ scale: rng.next() + 0.2 })],
      sampler: { name: 'euler_ancestral', steps },
      count: 4,
      batchSize: 2,
      seed: uniformInt(rng, 0, 1e9),
    });

    it('aborting mid-run (from onProgress) rejects with ERR_ABORTED, the reason as its cause, and frees every tensor', async () => {
      const rng = freshRandom();
      const steps = 4;
      const abortAt = { batch: uniformInt(rng, 0, 1), step: uniformInt(rng, 1, steps - 1) };
      const ctx = `seed ${rng.seed}, abort after batch ${abortAt.batch} step ${abortAt.step}`;
      const base = options(rng, steps);
      const perEvaluation = explain(base).evaluations[0]!.forwards;
      const controller = new AbortController();
      const reason = new Error(`stopped by the test (${ctx})`);
      let progress = 0;
      const tensorsBefore = liveHandles().tensors;
      const forwardsBefore = model.forwardCount;
      let caught: unknown;
      try {
        await sample({
          ...base,
          parallel: 1, // one native forward per planned one, to count them
          signal: controller.signal,
          onProgress: (p) => {
            progress++;
            if (p.batch === abortAt.batch && p.step === abortAt.step) controller.abort(reason);
          },
        });
      } catch (error) {
        caught = error;
      }
      assert.ok(isTorchGuidanceError(caught, ErrorCodes.ABORTED), `rejects with ERR_ABORTED (${ctx}), got ${String(caught)}`);
      assert.equal((caught as Error).cause, reason, `the reason is the cause (${ctx})`);
      assert.equal(liveHandles().tensors, tensorsBefore, `tensors leaked (${ctx})`);
      // Stopped at the next model call: no evaluation after the abort.
      const evaluations = abortAt.batch * steps + abortAt.step;
      assert.equal(progress, evaluations, ctx);
      assert.equal(model.forwardCount - forwardsBefore, evaluations * perEvaluation, `forwards after the abort (${ctx})`);
    });

    it('abort() without a reason rejects with ERR_ABORTED, the AbortError that signal.reason holds as its cause', async () => {
      const rng = freshRandom();
      const controller = new AbortController();
      const tensorsBefore = liveHandles().tensors;
      let caught: unknown;
      try {
        await sample({ ...options(rng, 3), signal: controller.signal, onProgress: () => controller.abort() });
      } catch (error) {
        caught = error;
      }
      assert.ok(controller.signal.reason !== undefined, 'the signal has a reason');
      assert.ok(isTorchGuidanceError(caught, ErrorCodes.ABORTED), `seed ${rng.seed}: got ${String(caught)}`);
      assert.equal((caught as Error).cause, controller.signal.reason, `seed ${rng.seed}`);
      assert.equal(((caught as Error).cause as Error).name, 'AbortError');
      assert.equal(liveHandles().tensors, tensorsBefore, `tensors leaked (seed ${rng.seed})`);
    });

    it('an already-aborted signal rejects before any forward', async () => {
      const rng = freshRandom();
      const reason = new Error(`aborted up front (seed ${rng.seed})`);
      const tensorsBefore = liveHandles().tensors;
      const forwardsBefore = model.forwardCount;
      let progress = 0;
      await assert.rejects(
        sample({ ...options(rng, 3), signal: AbortSignal.abort(reason), onProgress: () => progress++ }),
        (error) => isTorchGuidanceError(error, ErrorCodes.ABORTED) && (error as Error).cause === reason,
      );
      assert.equal(model.forwardCount, forwardsBefore, 'no forward ran');
      assert.equal(progress, 0);
      assert.equal(liveHandles().tensors, tensorsBefore, 'tensors leaked');
    });

    it('the model samples normally after an abort', async () => {
      const rng = freshRandom();
      const controller = new AbortController();
      await assert.rejects(sample({ ...options(rng, 3), signal: controller.signal, onProgress: () => controller.abort() }));
      const result = await run({ ...options(rng, 2), count: 2 });
      assert.equal(result.images.length, 2 * 28 * 28, `seed ${rng.seed}`);
      assert.ok(result.images.every(Number.isFinite), `seed ${rng.seed}`);
    });
  });

  describe('sample(): typed errors for bad options', function () {
    this.timeout(60_000);
    const rng = freshRandom();
    const label = () => uniformInt(rng, 0, 9);
    const base = (): SampleOptions => ({ model, sampler: { name: 'euler', steps: 2 }, labels: [label()], seed: uniformInt(rng, 0, 1e9) });

    /**
     * `build` makes the options; a strategy factory validates its own options
     * and throws while they are built (before sample() runs), sample() rejects
     * for the rest: expectCode catches both.
     */
    const cases: { what: string; code: ErrorCode; names: RegExp[]; build: () => SampleOptions }[] = [
      { what: 'NaN scale', code: ErrorCodes.INVALID_OPTION, names: [/cfg options/, /\bscale\b/], build: () => ({ ...base(), guidance: [cfg({ scale: NaN })] }) },
      { what: 'Infinity scale', code: ErrorCodes.INVALID_OPTION, names: [/pag options/, /\bscale\b/], build: () => ({ ...base(), guidance: [pag({ scale: Infinity })] }) },
      { what: '-Infinity scale', code: ErrorCodes.INVALID_OPTION, names: [/seg options/, /\bscale\b/], build: () => ({ ...base(), guidance: [seg({ scale: -Infinity })] }) },
      { what: 'negative CFG++ scale (λ in [0, 2])', code: ErrorCodes.INVALID_OPTION, names: [/cfgpp options/, /\bscale\b/], build: () => ({ ...base(), guidance: [cfgpp({ scale: -0.5 })] }) },
      { what: 'negative PAG adaptive scale', code: ErrorCodes.INVALID_OPTION, names: [/pag options/, /adaptiveScale/], build: () => ({ ...base(), guidance: [pag({ adaptiveScale: -1 })] }) },
      { what: 'negative SAG blur sigma', code: ErrorCodes.INVALID_OPTION, names: [/sag options/, /blurSigma/], build: () => ({ ...base(), guidance: [sag({ blurSigma: -1 })] }) },
      { what: 'NaN eta', code: ErrorCodes.INVALID_OPTION, names: [/sampler\.eta/], build: () => ({ ...base(), sampler: { name: 'euler_ancestral', steps: 2, eta: NaN } }) },
      { what: 'negative churn', code: ErrorCodes.INVALID_OPTION, names: [/sampler\.churn/], build: () => ({ ...base(), sampler: { name: 'heun', steps: 2, churn: -1 } }) },
      { what: 'negative euler churn', code: ErrorCodes.INVALID_OPTION, names: [/sampler\.churn/], build: () => ({ ...base(), sampler: { name: 'euler', steps: 2, churn: -2 } }) },
      { what: 'negative sNoise', code: ErrorCodes.INVALID_OPTION, names: [/sampler\.sNoise/], build: () => ({ ...base(), sampler: { name: 'dpmpp_2m_sde', steps: 2, sNoise: -1 } }) },
      { what: 'dpmpp_sde r outside (0, 1)', code: ErrorCodes.INVALID_OPTION, names: [/sampler\.r\b/], build: () => ({ ...base(), sampler: { name: 'dpmpp_sde', steps: 2, r: 1 } }) },
      { what: 'ancestral eta above 1', code: ErrorCodes.INVALID_OPTION, names: [/sampler\.eta/], build: () => ({ ...base(), sampler: { name: 'dpm_2_ancestral', steps: 2, eta: 1.5 } }) },
      { what: 'unknown SDE solver', code: ErrorCodes.INVALID_OPTION, names: [/sampler\.solverType/], build: () => ({ ...base(), sampler: { name: 'dpmpp_2m_sde', steps: 2, solverType: 'rk4' as never } }) },
      { what: 'lms order 9', code: ErrorCodes.INVALID_OPTION, names: [/sampler\.order/], build: () => ({ ...base(), sampler: { name: 'lms', steps: 2, order: 9 } }) },
      { what: 'vp epsS 1', code: ErrorCodes.INVALID_OPTION, names: [/sampler\.schedule\.epsS/], build: () => ({ ...base(), sampler: { name: 'euler', steps: 2, schedule: { kind: 'vp', epsS: 1 } } }) },
      { what: 'polyexponential rho 0', code: ErrorCodes.INVALID_OPTION, names: [/sampler\.schedule\.rho/], build: () => ({ ...base(), sampler: { name: 'euler', steps: 2, schedule: { kind: 'polyexponential', rho: 0 } } }) },
      { what: 'tcfg space', code: ErrorCodes.INVALID_OPTION, names: [/tcfg options/, /space/], build: () => ({ ...base(), guidance: [tcfg({ space: 'latent' as never })] }) },
      { what: 'negative magnitude-aware alpha', code: ErrorCodes.INVALID_OPTION, names: [/magnitude-aware options/, /alpha/], build: () => ({ ...base(), guidance: [magnitudeAware({ alpha: -1 })] }) },
      { what: 'apg-mix apgStart above 1', code: ErrorCodes.INVALID_OPTION, names: [/apg-mix options/, /apgStart/], build: () => ({ ...base(), guidance: [apgMix({ apgStart: 2 })] }) },
      { what: 'apg momentum as text', code: ErrorCodes.INVALID_OPTION, names: [/apg options/, /momentum/], build: () => ({ ...base(), guidance: [apg({ momentum: 'none' as never })] }) },
      { what: 'fdg without scales', code: ErrorCodes.INVALID_OPTION, names: [/fdg options/, /scales/], build: () => ({ ...base(), guidance: [fdg({ scales: [] })] }) },
      { what: 'sag mask source unknown', code: ErrorCodes.INVALID_OPTION, names: [/sag options/, /mask\.source/], build: () => ({ ...base(), guidance: [sag({ mask: { source: 'dino' } as never })] }) },
      {
        what: 'CFG++ with a second-order SDE sampler',
        code: ErrorCodes.INVALID_OPTION,
        names: [/sampler\.name/, /dpmpp_sde/],
        build: () => ({ ...base(), guidance: [cfgpp()], sampler: { name: 'dpmpp_sde', steps: 2 } }),
      },
      {
        what: 'unknown sampler name',
        code: ErrorCodes.INVALID_OPTION,
        names: [/sampler\.name/],
        build: () => ({ ...base(), sampler: { name: 'euler_a', steps: 2 } as unknown as SamplerOptions }),
      },
      { what: 'steps 0', code: ErrorCodes.INVALID_OPTION, names: [/sampler\.steps/], build: () => ({ ...base(), sampler: { name: 'euler', steps: 0 } }) },
      { what: 'count 0', code: ErrorCodes.INVALID_OPTION, names: [/\bcount\b/], build: () => ({ model, count: 0 }) },
      { what: 'batchSize 0', code: ErrorCodes.INVALID_OPTION, names: [/batchSize/], build: () => ({ ...base(), batchSize: 0 }) },
      { what: 'a label above the classes', code: ErrorCodes.INVALID_OPTION, names: [/labels\.1\b/], build: () => ({ ...base(), labels: [label(), 11 + uniformInt(rng, 0, 5)] }) },
      { what: 'a negative label', code: ErrorCodes.INVALID_OPTION, names: [/labels\.0\b/], build: () => ({ ...base(), labels: [-1 - uniformInt(rng, 0, 5)] }) },
      {
        what: 'a PAG selector that matches no attention site',
        code: ErrorCodes.NO_MATCHING_SITE,
        names: [/pag/, /sites/, /nowhere\.\*/],
        build: () => ({ ...base(), guidance: [pag({ sites: 'nowhere.*' })] }),
      },
      {
        what: 'a SEG selector that matches no site, stacked with CFG and a valid PAG',
        code: ErrorCodes.NO_MATCHING_SITE,
        names: [/seg/, /sites/, /no_such_block/],
        build: () => ({ ...base(), guidance: [cfg(), pag(), seg({ sites: 'no_such_block' })] }),
      },
      {
        what: 'a SAG selector that matches no site',
        code: ErrorCodes.NO_MATCHING_SITE,
        names: [/sag/, /sites/, /nowhere/],
        build: () => ({ ...base(), guidance: [sag({ sites: /^nowhere$/ })] }),
      },
      {
        what: 'CFG++ with heun (second order)',
        code: ErrorCodes.INVALID_OPTION,
        names: [/sampler\.name/, /heun/],
        build: () => ({ ...base(), guidance: [cfgpp()], sampler: { name: 'heun', steps: 2 } }),
      },
      {
        what: 'CFG++ with dpmpp_2m (second order)',
        code: ErrorCodes.INVALID_OPTION,
        names: [/sampler\.name/, /dpmpp_2m/],
        build: () => ({ ...base(), guidance: [cfgpp()], sampler: { name: 'dpmpp_2m', steps: 2 } }),
      },
    ];

    for (const c of cases) {
      it(`${c.what}: ${c.code} naming the field, before any forward; explain() agrees; the model stays usable`, async () => {
        const ctx = `seed ${rng.seed}`;
        const tensorsBefore = liveHandles().tensors;
        const forwardsBefore = model.forwardCount;
        const error = await expectCode(c.code, () => sample(c.build()));
        for (const name of c.names) assert.match(error.message, name, `${ctx}: ${error.message}`);
        assert.equal(model.forwardCount, forwardsBefore, `a forward ran before the error (${ctx})`);
        assert.equal(liveHandles().tensors, tensorsBefore, `tensors leaked (${ctx})`);
        const planned = await expectCode(c.code, () => explain(c.build()));
        for (const name of c.names) assert.match(planned.message, name, `explain(): ${planned.message}`);
        assert.equal(liveHandles().tensors, tensorsBefore, `explain() leaked tensors (${ctx})`);
        // A following small run succeeds.
        const after = await run(base());
        assert.ok(after.images.every(Number.isFinite), ctx);
        assert.equal(model.forwardCount - forwardsBefore, 2, ctx);
        assert.equal(liveHandles().tensors, tensorsBefore, ctx);
      });
    }
  });
});

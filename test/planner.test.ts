/**
 * The planner: explain() against the forwards that really run.
 * Every plan explain() shows is checked against sample()'s forwards as the
 * models see them: Model.run calls recorded in order (batch size, hooks,
 * start and settle order) and the native forward counters.
 *
 * - CFG + PAG + SEG: one forward of 4N per model evaluation, hooks on the
 *   slices explain() names;
 * - autoguidance: two forwards (main, guide) in one stage, both in flight at once;
 * - SAG: two stages, the degraded forward starts after the first settled;
 * - a branch two strategies ask for is computed once;
 * - a term outside its sigma window adds no branch at that step;
 * - over whole runs (several batches, an unconditional batch, every sampler,
 *   Heun, Euler and DPM-2 with churn, the midpoint samplers): explain().forwards = sample().forwards = native counters.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';

import {
  type Model,
  type PlanSummary,
  type SampleOptions,
  type SamplerOptions,
  autoguidance,
  cfg,
  cfgZeroStar,
  explain,
  icg,
  liveHandles,
  loadModel,
  pag,
  sag,
  sample,
  seg,
  sims,
} from '../src/index.js';
import { type RecordedForward, recordForwards } from './helpers/forwards.js';
import { repoRoot } from './helpers/python.js';
import { freshRandom, uniformInt, pick, guidanceScale, type Rng } from './helpers/random.js';

const fixture = (name: string) => join(repoRoot, 'models', 'fixtures', name);

const randomLabels = (rng: Rng, n: number) => Array.from({ length: n }, () => uniformInt(rng, 0, 9));

/**
 * Walks the recorded forwards along the plan of one batch of n samples: each
 * forward has the planned model and batch (batch multiple × n) and as many
 * capture hooks as planned; the forwards of a stage are all in flight at once
 * (every one started before any settled), and a stage starts only after the
 * previous one settled. Returns how many log entries the plan covered.
 */
function checkAgainstPlan(evaluations: PlanSummary[], log: RecordedForward[], n: number, ctx: string, from = 0): number {
  let k = from;
  for (const [e, evaluation] of evaluations.entries()) {
    let previousSettled = -1;
    for (const [s, stage] of evaluation.stages.entries()) {
      const where = `evaluation ${e} (sigma ${evaluation.sigma}), stage ${s} (${ctx})`;
      const entries = log.slice(k, k + stage.length);
      k += stage.length;
      assert.equal(entries.length, stage.length, `${where}: ${stage.length} forwards planned, ${entries.length} ran`);
      stage.forEach((planned, i) => {
        const ran = entries[i]!;
        assert.equal(ran.model, planned.model === 'main' ? 'main' : 'guide', `${where}: forward ${i} on the wrong model`);
        assert.equal(ran.batch, planned.batchMultiple * n, `${where}: forward ${i} batch ${ran.batch}, planned ${planned.batchMultiple}×${n}`);
        assert.equal(ran.hooks.filter((h) => h.action === 'capture').length, planned.captures, `${where}: forward ${i} captures`);
      });
      const lastStart = Math.max(...entries.map((x) => x.started));
      const firstSettle = Math.min(...entries.map((x) => x.settled));
      assert.ok(lastStart < firstSettle, `${where}: the stage's forwards did not all run concurrently`);
      assert.ok(Math.min(...entries.map((x) => x.started)) > previousSettled, `${where}: started before the previous stage settled`);
      previousSettled = Math.max(...entries.map((x) => x.settled));
    }
  }
  return k - from;
}

describe('planner: explain() against the forwards that run', function () {
  this.timeout(120_000);
  let main: Model;
  let guide: Model;
  before(async () => {
    main = await loadModel(fixture('tiny-unet.pt'), { device: 'cpu' });
    // Same card contract as tiny-unet (sample shape, class conditioning), a v-prediction card: a valid guide.
    guide = await loadModel(fixture('tiny-unet-v.pt'), { device: 'cpu' });
  });
  after(() => {
    main?.dispose();
    guide?.dispose();
  });

  /**
   * Runs sample() with the forwards recorded; checks finite output and that no
   * tensor outlives the run. parallel: 1 keeps one native forward per planned
   * forward (a CPU split runs each as several: test/batch-parallel.test.ts).
   */
  async function observe(options: SampleOptions, ctx: string) {
    const tensorsBefore = liveHandles().tensors;
    const recorder = recordForwards({ main, guide });
    let result;
    try {
      result = await sample({ ...options, parallel: 1 });
    } finally {
      recorder.restore();
    }
    const images = (await result.images.toArray()) as Float32Array;
    result.images.dispose();
    assert.ok(images.every(Number.isFinite), `non-finite samples (${ctx})`);
    assert.equal(liveHandles().tensors, tensorsBefore, `tensors leaked (${ctx})`);
    return { forwards: result.forwards, log: recorder.log, native: recorder.nativeDeltas() };
  }

  it('CFG + PAG + SEG run as one forward of 4N per model evaluation', async () => {
    const rng = freshRandom();
    const n = uniformInt(rng, 1, 3);
    const steps = uniformInt(rng, 2, 4);
    const sampler = pick<SamplerOptions>(rng, [
      { name: 'euler', steps },
      { name: 'euler_ancestral', steps },
      { name: 'dpmpp_2m', steps },
    ]);
    const ctx = `seed ${rng.seed}, N ${n}, ${sampler.name} ${steps} steps`;
    const options: SampleOptions = {
      model: main,
      guidance: [cfg({ scale: guidanceScale(rng) }), pag({ scale: guidanceScale(rng) }), seg({ scale: guidanceScale(rng) })],
      sampler,
      labels: randomLabels(rng, n),
      seed: uniformInt(rng, 0, 1e9),
      batchSize: n,
    };
    const plan = explain(options);
    assert.equal(plan.evaluations.length, steps, ctx);
    for (const evaluation of plan.evaluations) {
      assert.equal(evaluation.stages.length, 1, `one stage (${ctx})`);
      assert.equal(evaluation.stages[0]!.length, 1, `one forward (${ctx})`);
      const forward = evaluation.stages[0]![0]!;
      assert.equal(forward.model, 'main', ctx);
      assert.equal(forward.batchMultiple, 4, `batch multiple (${ctx}): ${forward.branches.join(', ')}`);
      assert.equal(new Set(forward.branches).size, 4, `four distinct branches (${ctx})`);
      for (const part of ['(given)', '(null)', 'identity', 'blur']) {
        assert.ok(forward.branches.some((b) => b.includes(part)), `a ${part} branch (${ctx}): ${forward.branches.join(', ')}`);
      }
      assert.equal(evaluation.terms.length, 3, ctx);
      assert.equal(evaluation.modelEvaluations, 4, ctx);
    }
    assert.equal(plan.forwards, steps, ctx);
    assert.equal(plan.modelEvaluations, 4 * steps, ctx);

    const { forwards, log, native } = await observe(options, ctx);
    assert.deepEqual(native, { main: steps, guide: 0 }, `native forward counters (${ctx})`);
    assert.equal(forwards, plan.forwards, `sample().forwards (${ctx})`);
    assert.equal(checkAgainstPlan(plan.evaluations, log, n, ctx), log.length, ctx);
    // Each perturbation lands on the slice of the branch explain() names, and only there.
    log.forEach((ran, i) => {
      const branches = plan.evaluations[i]!.stages[0]![0]!.branches;
      const slice = (part: string) => branches.findIndex((b) => b.includes(part)) * n;
      const hooks = ran.hooks.map((h) => [h.action, h.start, h.length]).sort();
      assert.deepEqual(hooks, [['blur', slice('blur'), n], ['identity', slice('identity'), n]].sort(), `hooks of forward ${i} (${ctx})`);
    });
  });

  it('autoguidance runs the main and the guide forward in one stage, both in flight at once', async () => {
    const rng = freshRandom();
    const n = uniformInt(rng, 1, 3);
    const steps = uniformInt(rng, 2, 4);
    const ctx = `seed ${rng.seed}, N ${n}, ${steps} steps`;
    const options: SampleOptions = {
      model: main,
      guidance: [autoguidance({ guide, scale: guidanceScale(rng) })],
      sampler: { name: 'euler', steps },
      labels: randomLabels(rng, n),
      seed: uniformInt(rng, 0, 1e9),
      batchSize: n,
    };
    const plan = explain(options);
    for (const evaluation of plan.evaluations) {
      assert.equal(evaluation.stages.length, 1, `one stage (${ctx})`);
      const stage = evaluation.stages[0]!;
      assert.equal(stage.length, 2, `two forwards in the stage (${ctx})`);
      assert.deepEqual(stage.map((f) => f.model === 'main').sort(), [false, true], `one per model (${ctx})`);
      assert.deepEqual(stage.map((f) => f.batchMultiple), [1, 1], ctx);
    }
    assert.equal(plan.forwards, 2 * steps, ctx);

    const { forwards, log, native } = await observe(options, ctx);
    assert.deepEqual(native, { main: steps, guide: steps }, `native forward counters (${ctx})`);
    assert.equal(forwards, plan.forwards, ctx);
    assert.equal(checkAgainstPlan(plan.evaluations, log, n, ctx), log.length, ctx);
    for (let e = 0; e < steps; e++) {
      const [a, b] = [log[2 * e]!, log[2 * e + 1]!];
      assert.notEqual(a.model, b.model, ctx);
      // Both calls were issued before either settled: the two forwards were in flight together.
      assert.ok(Math.max(a.started, b.started) < Math.min(a.settled, b.settled), `evaluation ${e}: not concurrent (${ctx})`);
      assert.ok(Math.max(a.startedMs, b.startedMs) <= Math.min(a.settledMs, b.settledMs), `evaluation ${e}: wall-clock overlap (${ctx})`);
    }
  });

  for (const withCfg of [false, true]) {
    it(`SAG${withCfg ? ' with CFG' : ''} runs as two stages, the degraded forward after the first`, async () => {
      const rng = freshRandom();
      const n = uniformInt(rng, 1, 3);
      const steps = uniformInt(rng, 2, 4);
      const ctx = `seed ${rng.seed}, N ${n}, ${steps} steps`;
      const options: SampleOptions = {
        model: main,
        guidance: [...(withCfg ? [cfg({ scale: guidanceScale(rng) })] : []), sag({ scale: rng.next() + 0.2 })],
        sampler: { name: 'euler', steps },
        labels: randomLabels(rng, n),
        seed: uniformInt(rng, 0, 1e9),
        batchSize: n,
      };
      const plan = explain(options);
      // SAG degrades the null prediction beside CFG, else the conditional one.
      const source = withCfg ? 'main(null)' : 'main(given)';
      for (const evaluation of plan.evaluations) {
        assert.equal(evaluation.stages.length, 2, `two stages (${ctx})`);
        const [first, second] = evaluation.stages as [PlanSummary['stages'][0], PlanSummary['stages'][0]];
        assert.equal(first.length, 1, ctx);
        assert.equal(first[0]!.batchMultiple, withCfg ? 2 : 1, ctx);
        assert.equal(first[0]!.captures, 1, `the first stage captures the attention (${ctx})`);
        assert.ok(first[0]!.branches.includes(source), ctx);
        assert.equal(second.length, 1, ctx);
        assert.deepEqual(second[0]!.branches, [`${source}@sag`], ctx);
        assert.equal(second[0]!.batchMultiple, 1, ctx);
      }
      assert.equal(plan.forwards, 2 * steps, ctx);

      const { forwards, log, native } = await observe(options, ctx);
      assert.deepEqual(native, { main: 2 * steps, guide: 0 }, `native forward counters (${ctx})`);
      assert.equal(forwards, plan.forwards, ctx);
      assert.equal(checkAgainstPlan(plan.evaluations, log, n, ctx), log.length, ctx);
      for (let e = 0; e < steps; e++) {
        const [first, degraded] = [log[2 * e]!, log[2 * e + 1]!];
        const sourceSlice = plan.evaluations[e]!.stages[0]![0]!.branches.indexOf(source) * n;
        assert.deepEqual(
          first.hooks.map((h) => [h.action, h.start, h.length]),
          [['capture', sourceSlice, n]],
          `evaluation ${e}: the capture reads the source branch's slice (${ctx})`,
        );
        assert.deepEqual(degraded.hooks, [], ctx);
        assert.ok(degraded.started > first.settled, `evaluation ${e}: the degraded forward started before the first settled (${ctx})`);
      }
    });
  }

  it('a branch that several strategies ask for is computed once', async () => {
    const rng = freshRandom();
    const n = uniformInt(rng, 1, 2);
    const steps = 2;
    const cases: { what: string; guidance: SampleOptions['guidance']; branches: Record<'main' | 'guide', number>; terms: number }[] = [
      // CFG's and ICG's conditional branch is one: given, null, random.
      { what: 'cfg + icg', guidance: [cfg({ scale: guidanceScale(rng) }), icg({ scale: guidanceScale(rng) })], branches: { main: 3, guide: 0 }, terms: 2 },
      // CFG and CFG-Zero* share both branches.
      { what: 'cfg + cfgZeroStar', guidance: [cfg({ scale: guidanceScale(rng) }), cfgZeroStar({ scale: guidanceScale(rng) })], branches: { main: 2, guide: 0 }, terms: 2 },
      // Two PAG terms on the same sites perturb one branch; SEG adds its own.
      {
        what: 'pag + pag + seg',
        guidance: [pag({ scale: guidanceScale(rng) }), pag({ scale: guidanceScale(rng) }), seg({ scale: guidanceScale(rng) })],
        branches: { main: 3, guide: 0 },
        terms: 3,
      },
      // Autoguidance's guide and SIMS's negative are the same model and condition: one guide forward.
      { what: 'autoguidance + sims', guidance: [autoguidance({ guide, scale: guidanceScale(rng) }), sims({ negative: guide, scale: rng.next() })], branches: { main: 1, guide: 1 }, terms: 2 },
    ];
    for (const c of cases) {
      const ctx = `${c.what}, seed ${rng.seed}, N ${n}`;
      const options: SampleOptions = { model: main, guidance: c.guidance, sampler: { name: 'euler', steps }, labels: randomLabels(rng, n), seed: uniformInt(rng, 0, 1e9), batchSize: n };
      const plan = explain(options);
      const models = c.branches.guide > 0 ? 2 : 1;
      for (const evaluation of plan.evaluations) {
        assert.equal(evaluation.stages.length, 1, ctx);
        const labels = evaluation.stages[0]!.flatMap((f) => f.branches);
        assert.equal(new Set(labels).size, labels.length, `a branch planned twice (${ctx}): ${labels.join(', ')}`);
        assert.equal(evaluation.stages[0]!.length, models, ctx);
        for (const f of evaluation.stages[0]!) assert.equal(f.batchMultiple, c.branches[f.model === 'main' ? 'main' : 'guide'], `${ctx}: ${labels.join(', ')}`);
        assert.equal(evaluation.terms.length, c.terms, ctx);
      }
      const { forwards, log, native } = await observe(options, ctx);
      assert.deepEqual(native, { main: steps, guide: c.branches.guide > 0 ? steps : 0 }, `native forward counters (${ctx})`);
      assert.equal(forwards, plan.forwards, ctx);
      assert.equal(checkAgainstPlan(plan.evaluations, log, n, ctx), log.length, ctx);
    }
  });

  it('a term outside its sigma window adds no branch at that step', async () => {
    const rng = freshRandom();
    const n = uniformInt(rng, 1, 2);
    const steps = uniformInt(rng, 4, 5);
    const sampler: SamplerOptions = { name: 'euler', steps };
    const labels = randomLabels(rng, n);
    const sigmas = explain({ model: main, sampler, labels }).evaluations.map((e) => e.sigma);
    // A window edge strictly between two step sigmas, at a random step.
    const at = uniformInt(rng, 1, steps - 2);
    const edge = Math.sqrt(sigmas[at]! * sigmas[at + 1]!);
    const ctx = `seed ${rng.seed}, N ${n}, ${steps} steps, edge ${edge}`;
    const options: SampleOptions = {
      model: main,
      guidance: [
        cfg({ scale: guidanceScale(rng), window: { sigmaMax: edge } }), // only at low noise
        pag({ scale: guidanceScale(rng) }), // always
        sag({ scale: rng.next() + 0.2, branch: 'given', window: { sigmaMin: edge } }), // only at high noise
      ],
      sampler,
      labels,
      seed: uniformInt(rng, 0, 1e9),
      batchSize: n,
    };
    const plan = explain(options);
    for (const evaluation of plan.evaluations) {
      const high = evaluation.sigma > edge;
      const where = `sigma ${evaluation.sigma} (${ctx})`;
      const branches = evaluation.stages.flat().flatMap((f) => f.branches);
      const terms = evaluation.terms.map((t) => t.label);
      assert.equal(terms.some((t) => t.startsWith('cfg')), !high, `cfg term: ${where}`);
      assert.equal(terms.some((t) => t.startsWith('sag')), high, `sag term: ${where}`);
      assert.ok(terms.some((t) => t.startsWith('pag')), where);
      // Outside CFG's window no null branch; outside SAG's window no second stage and no capture.
      assert.equal(branches.some((b) => b.includes('(null)')), !high, `null branch: ${where}: ${branches.join(', ')}`);
      assert.equal(evaluation.stages.length, high ? 2 : 1, `stages: ${where}`);
      assert.equal(evaluation.stages[0]![0]!.captures, high ? 1 : 0, `captures: ${where}`);
      assert.equal(evaluation.stages[0]![0]!.batchMultiple, high ? 2 : 3, `batch multiple: ${where}: ${branches.join(', ')}`);
    }
    assert.equal(plan.forwards, steps + (at + 1), ctx);

    const { forwards, log, native } = await observe(options, ctx);
    assert.deepEqual(native, { main: plan.forwards, guide: 0 }, `native forward counters (${ctx})`);
    assert.equal(forwards, plan.forwards, ctx);
    assert.equal(checkAgainstPlan(plan.evaluations, log, n, ctx), log.length, ctx);
  });

  it('over whole runs, explain() and sample() count the forwards the models ran (every sampler, several batches)', async () => {
    const rng = freshRandom();
    const steps = 3;
    const churn = 1 + rng.next(); // γ = min(churn / steps, √2 − 1)
    const gamma = Math.min(churn / steps, Math.SQRT2 - 1);
    const sigmas = explain({ model: main, sampler: { name: 'euler', steps }, labels: [0] }).evaluations.map((e) => e.sigma);
    // Heun's first evaluation of step 1 runs at σ̂ = σ·(1 + γ): put the window edges between σ and σ̂,
    // where a plan made at σ would differ from the one that runs.
    const edge = sigmas[1]! * (1 + gamma * (0.25 + 0.5 * rng.next()));
    const samplers: SamplerOptions[] = [
      { name: 'heun', steps, churn },
      { name: 'euler_ancestral', steps },
      { name: 'dpmpp_2m', steps },
      { name: 'ddim', steps, eta: rng.next() },
      // Two evaluations per step at midpoints, churn, Brownian increments, multistep history.
      { name: 'euler', steps, churn },
      { name: 'dpm_2', steps, churn },
      { name: 'dpm_2_ancestral', steps },
      { name: 'dpmpp_2s_ancestral', steps },
      { name: 'dpmpp_sde', steps, r: 0.2 + 0.6 * rng.next() },
      { name: 'dpmpp_2m_sde', steps },
      { name: 'dpmpp_3m_sde', steps },
      { name: 'lms', steps },
    ];
    for (const sampler of samplers) {
      // Three samples in batches of two; the second batch holds one null label only (planned unconditional).
      const labels = [uniformInt(rng, 0, 9), uniformInt(rng, 0, 9), null];
      const seed = uniformInt(rng, 0, 1e9);
      const ctx = `${sampler.name}, seed ${rng.seed}, edge ${edge}`;
      const guidance = [
        cfg({ scale: guidanceScale(rng), window: { sigmaMax: edge } }),
        pag({ scale: guidanceScale(rng) }),
        sag({ scale: rng.next() + 0.2, branch: 'given', window: { sigmaMin: edge } }),
        autoguidance({ guide, scale: guidanceScale(rng) }),
      ];
      const options: SampleOptions = { model: main, guidance, sampler, labels, seed, batchSize: 2 };
      const plan = explain(options);
      assert.equal(plan.batches, 2, ctx);
      const { forwards, log, native } = await observe(options, ctx);
      assert.equal(native.main + native.guide, log.length, `every forward went through Model.run (${ctx})`);
      assert.equal(forwards, native.main + native.guide, `sample().forwards vs the native counters (${ctx})`);
      assert.equal(plan.forwards, forwards, `explain().forwards vs sample().forwards (${ctx})`);
      // Forward by forward: the first batch as explain() shows it, then the second (unconditional) batch.
      const firstBatch = checkAgainstPlan(plan.evaluations, log, 2, `${ctx}, batch 0`);
      const second = explain({ ...options, labels: [null], seed: seed + 2 });
      assert.equal(firstBatch + checkAgainstPlan(second.evaluations, log, 1, `${ctx}, batch 1`, firstBatch), log.length, ctx);
      assert.ok(
        second.evaluations.every((e) => e.stages.flat().every((f) => f.branches.every((b) => !b.includes('(given)')))),
        `an all-null batch plans given and null as one branch (${ctx})`,
      );
      if (sampler.name === 'heun' || sampler.name === 'euler' || sampler.name === 'dpm_2') {
        // The churned evaluation of step 1 is planned at σ̂ > edge: SAG on, CFG off.
        const churned = plan.evaluations.find((e) => e.step === 1)!;
        assert.ok(churned.sigma > edge, `heun's first evaluation of step 1 at ${churned.sigma} (${ctx})`);
      }
    }
  });

  it('forwards whose hooks have nothing to do run the graph without hook ops; hooked branches run the hooked graph', async () => {
    const rng = freshRandom();
    const sampler: SamplerOptions = { name: 'euler', steps: uniformInt(rng, 2, 4) };
    const base = { labels: randomLabels(rng, uniformInt(rng, 1, 4)), seed: uniformInt(rng, 0, 1e6), sampler };
    const count = async (options: SampleOptions) => {
      const [mainBefore, guideBefore] = [main.plainForwardCount, guide.plainForwardCount];
      const [mainAll, guideAll] = [main.forwardCount, guide.forwardCount];
      await observe(options, 'plain-graph count');
      return {
        plain: main.plainForwardCount - mainBefore + guide.plainForwardCount - guideBefore,
        all: main.forwardCount - mainAll + guide.forwardCount - guideAll,
      };
    };
    const cfgRun = await count({ ...base, model: main, guidance: [cfg({ scale: guidanceScale(rng) })] });
    assert.ok(cfgRun.all > 0);
    assert.equal(cfgRun.plain, cfgRun.all, 'CFG: every forward without hook ops');
    const autoRun = await count({ ...base, model: main, guidance: [autoguidance({ guide, scale: guidanceScale(rng) })] });
    assert.equal(autoRun.plain, autoRun.all, 'autoguidance: every forward (both models) without hook ops');
    const pagRun = await count({ ...base, model: main, guidance: [pag({ scale: guidanceScale(rng) })] });
    assert.equal(pagRun.plain, 0, 'PAG: its batched forward carries the identity hook');
  });
});

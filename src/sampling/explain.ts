/**
 * explain(): the plan sample() would run, without running it.
 */
import type { PlanSummary } from '../guidance/planner.js';
import type { Tensor } from '../core/tensor.js';
import { batchGroups, batchIsUnconditional, guidedFor, prepare } from './sample-prepare.js';
import type { SampleOptions } from './sample-options.js';
import { evaluationSigmas } from './samplers/samplers.js';

/**
 * The plan the sampler would run, per model evaluation: forwards, their batch
 * multiples and branches, and the active terms. Runs no forward.
 *
 * `evaluations` are the first batch's. `forwards` counts the whole run, every
 * batch (what sample() reports and the models' forward counters see), and
 * `modelEvaluations` is the samples through a model per input sample over the
 * whole run. A batch's plan depends only on its size and on whether its
 * labels are all null (then the given and null branches are one), so each such
 * kind of batch is planned once: explaining a 50,000-sample run costs what two
 * batches cost.
 */
export function explain(raw: SampleOptions): { evaluations: PlanSummary[]; batches: number; forwards: number; modelEvaluations: number } {
  const prep = prepare(raw);
  const { sigmas, sampler, count } = prep;
  const batches = Math.ceil(count / prep.options.batchSize);
  let first: PlanSummary[] | undefined;
  let forwards = 0;
  let sampleForwards = 0;
  const planned = new Map<string, PlanSummary[]>();
  const plan = (start: number, n: number): PlanSummary[] => {
    const owned: Tensor[] = [];
    try {
      const guided = guidedFor(prep, start, n, owned);
      const evaluations: PlanSummary[] = [];
      for (let i = 0; i < sigmas.length - 1; i++) {
        // Each sigma the sampler evaluates at in this step (Heun's churned one and the next,
        // DPM-Solver's midpoints, ...): a window edge may lie between them.
        for (const sigma of evaluationSigmas(sampler, sigmas, i)) evaluations.push(guided.explain(guided.stepInfo(i, sampler.steps, sigma)));
      }
      return evaluations;
    } finally {
      for (const t of owned) t.dispose();
    }
  };
  for (const group of batchGroups(prep)) {
    if (group.batches === 0) continue;
    const { start, n } = group;
    const key = `${n} ${batchIsUnconditional(prep, start, n)}`;
    let evaluations = planned.get(key);
    // With count, a plan does not depend on the batch's labels beyond `key`: plan one sample, allocate nothing per sample.
    if (!evaluations) planned.set(key, (evaluations = plan(start, prep.given ? n : 1)));
    first ??= evaluations;
    for (const e of evaluations) {
      forwards += e.forwards * group.batches;
      sampleForwards += e.modelEvaluations * n * group.batches;
    }
  }
  return { evaluations: first ?? [], batches, forwards, modelEvaluations: sampleForwards / count };
}

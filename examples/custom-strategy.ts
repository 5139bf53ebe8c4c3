/**
 * A strategy of your own: contrast the conditional prediction with an
 * unconditional one whose middle attention is the identity, and switch it
 * off at the end of sampling. The planner batches it with CFG.
 *
 *   npx tsx examples/custom-strategy.ts [steps]
 */
import { fileURLToPath } from 'node:url';

import { cfg, explain, loadModel, sample, type Strategy } from 'torch-guidance';

const steps = Number(process.argv[2] ?? 10);

const perturbedNull = (scale: number): Strategy => ({
  name: 'perturbed-null',
  settings: { scale },
  terms: () => [
    {
      label: `perturbed-null(s=${scale})`,
      positive: { model: 'main', condition: 'given' },
      negative: { model: 'main', condition: 'null', attention: [{ sites: 'mid.*', action: 'identity' }] },
      scale: ({ sigma }) => (sigma > 0.5 ? scale : 0),
    },
  ],
});

using model = await loadModel(fileURLToPath(import.meta.resolve('torch-guidance/models/fashion-unet.pt')));
const options = {
  model,
  guidance: [cfg({ scale: 2 }), perturbedNull(1)],
  labels: [3, 7],
  sampler: { name: 'euler', steps },
} as const;

// The plan, without running it: one forward of 3N (given, null, null with
// identity attention) while the term is on, CFG's 2N once sigma <= 0.5.
const plan = explain(options);
for (const [i, evaluation] of plan.evaluations.entries()) {
  console.log(`evaluation ${i}: ${evaluation.forwards} forward(s), ${evaluation.modelEvaluations} model evaluations per sample`);
}
const { images } = await sample(options);
console.log(`samples: [${images.shape.join(', ')}]`);
images.dispose();

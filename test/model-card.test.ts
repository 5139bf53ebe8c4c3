import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { checkModelCard, ErrorCodes, liveHandles, loadModel } from '../src/index.js';
import { expectCode } from './helpers/errors.js';
import { python, repoRoot } from './helpers/python.js';

const validDenoiser = {
  name: 'test',
  version: '1',
  prediction: 'eps',
  schedule: { kind: 'discrete', betas: 'linear', betaStart: 0.0001, betaEnd: 0.02, timesteps: 1000 },
  sampleShape: [1, 28, 28],
  conditioning: { kind: 'class', numClasses: 10, nullLabel: 10 },
  timeEmbedding: 'time_embed',
  notes: '',
};

function problems(card: unknown): string[] {
  const result = checkModelCard(card);
  return 'problems' in result ? result.problems : [];
}

describe('model card', () => {
  it('accepts the fixture, the shipped classifier and an EDM denoiser', async () => {
    using unet = await loadModel(join(repoRoot, 'models', 'fixtures', 'tiny-unet.pt'), { device: 'cpu' });
    assert.ok(unet.card && 'prediction' in unet.card && unet.card.prediction === 'eps');
    using classifier = await loadModel(join(repoRoot, 'models', 'fashion-classifier.pt'), { device: 'cpu' });
    assert.ok(classifier.card && 'kind' in classifier.card && classifier.card.kind === 'classifier');
    assert.deepEqual(
      problems({
        ...validDenoiser,
        prediction: 'edm',
        schedule: { kind: 'edm', sigmaMin: 0.002, sigmaMax: 80, sigmaData: 0.5 },
        conditioning: { kind: 'none' },
      }),
      [],
    );
  });

  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['a missing prediction', { ...validDenoiser, prediction: undefined }, /^prediction:/],
    ['an unknown prediction type', { ...validDenoiser, prediction: 'score' }, /^prediction:/],
    ['a misspelt field', { ...validDenoiser, sampleshape: [1, 28, 28] }, /sampleshape/],
    ['a schedule without timesteps', { ...validDenoiser, schedule: { ...validDenoiser.schedule, timesteps: undefined } }, /^schedule/],
    ['a negative sample size', { ...validDenoiser, sampleShape: [1, -28, 28] }, /^sampleShape\.1:/],
    ['class conditioning without a null label', { ...validDenoiser, conditioning: { kind: 'class', numClasses: 10 } }, /^conditioning/],
    ['an edm prediction on a discrete schedule', { ...validDenoiser, prediction: 'edm' }, /^prediction:.*edm/],
  ];
  for (const [name, card, field] of cases) {
    it(`rejects ${name}, naming the field`, () => {
      const found = problems(JSON.parse(JSON.stringify(card)));
      assert.ok(found.length > 0, 'expected a problem');
      assert.ok(found.some((p) => field.test(p)), found.join(' | '));
    });
  }

  it('loadModel rejects an invalid card with ERR_MODEL_CARD naming the field, and frees the model', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tg-card-'));
    try {
      const cardPath = join(dir, 'card.json');
      writeFileSync(cardPath, JSON.stringify({ ...validDenoiser, conditioning: { kind: 'label' } }));
      const modelPath = join(dir, 'bad.pt');
      execFileSync(python, [join(repoRoot, 'test', 'reference', 'save_with_card.py'), modelPath, cardPath]);
      const before = liveHandles().models;
      const error = await expectCode(ErrorCodes.MODEL_CARD, () => loadModel(modelPath, { device: 'cpu' }));
      assert.match(error.message, /conditioning/);
      assert.equal(liveHandles().models, before);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * Model.run's preconditioning (the input and output scaling of a denoiser,
 * applied on the torch thread) against the same scaling done with eager ops
 * from JS around a plain run (Denoiser.inputs / Denoiser.denoised), on every
 * prediction type and conditioning the fixtures cover, with fresh random
 * inputs and sigmas.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ErrorCodes, liveHandles, loadModel, tensor, type Model, type Tensor } from '../src/index.js';
import { Denoiser } from '../src/guidance/denoiser.js';
import { expectCode } from './helpers/errors.js';
import { python, repoRoot } from './helpers/python.js';
import { freshRandom, randomFloat32, relativeError, uniformInt, type Rng } from './helpers/random.js';

const fixture = (name: string) => join(repoRoot, 'models', 'fixtures', `${name}.pt`);
const NAMES = ['tiny-unet', 'tiny-unet-v', 'tiny-unet-x0', 'tiny-edm', 'tiny-uncond', 'tiny-tensor-cond'];

/** log-uniform in [0.02, 80]: the range a Karras schedule spans. */
const drawSigma = (rng: Rng) => Math.exp(Math.log(0.02) + rng.next() * Math.log(80 / 0.02));

function drawConditions(denoiser: Denoiser, batch: number, rng: Rng): Tensor | undefined {
  const conditioning = denoiser.conditioning;
  if (conditioning.kind === 'none') return undefined;
  if (conditioning.kind === 'class') {
    // Null labels among the classes, as CFG's batches have them.
    const labels = Array.from({ length: batch }, () => BigInt(uniformInt(rng, 0, conditioning.numClasses)));
    return tensor(BigInt64Array.from(labels), [batch]);
  }
  if (conditioning.kind === 'named') throw new Error('named conditions are drawn elsewhere');
  const shape = [batch, ...conditioning.shape];
  return tensor(randomFloat32(shape.reduce((a, b) => a * b, 1), rng), shape);
}

function drawX(denoiser: Denoiser, batch: number, sigma: number, rng: Rng): Tensor {
  const shape = [batch, ...denoiser.card.sampleShape];
  const values = randomFloat32(shape.reduce((a, b) => a * b, 1), rng).map((v) => v * sigma);
  return tensor(values, shape);
}

/** D the way a loop in JS computes it: scale, run, scale. */
async function denoisedInJs(denoiser: Denoiser, x: Tensor, sigma: number, conditions: Tensor | undefined): Promise<Float32Array> {
  const { inputs, owned } = denoiser.inputs(x, sigma, conditions && [conditions]);
  try {
    using output = (await denoiser.model.run<Tensor>({ inputs })).output;
    using denoised = denoiser.denoised(x, output, sigma);
    return (await denoised.toArray()) as Float32Array;
  } finally {
    owned.forEach((t) => t.dispose());
  }
}

async function denoisedOnThread(denoiser: Denoiser, x: Tensor, sigma: number, conditions: Tensor | undefined, parallel = 1): Promise<Float32Array> {
  const inputs = denoiser.preconditionedInputs(x, conditions && [conditions]);
  using denoised = (await denoiser.model.run<Tensor>({ inputs, parallel, preconditioning: denoiser.preconditioning(sigma) })).output;
  return (await denoised.toArray()) as Float32Array;
}

describe('Model.run preconditioning', () => {
  const models = new Map<string, Model>();
  before(async () => {
    for (const name of NAMES) models.set(name, await loadModel(fixture(name), { device: 'cpu' }));
  });
  after(() => models.forEach((m) => m.dispose()));

  for (const name of NAMES) {
    it(`${name}: D on the torch thread equals the eager ops from JS, bit for bit`, async () => {
      const denoiser = Denoiser.of(models.get(name)!);
      const rng = freshRandom();
      for (let draw = 0; draw < 4; draw++) {
        const batch = uniformInt(rng, 1, 6);
        const sigma = drawSigma(rng);
        using x = drawX(denoiser, batch, sigma, rng);
        const conditions = drawConditions(denoiser, batch, rng);
        try {
          const expected = await denoisedInJs(denoiser, x, sigma, conditions);
          const actual = await denoisedOnThread(denoiser, x, sigma, conditions);
          assert.equal(actual.length, expected.length);
          const firstDiff = actual.findIndex((v, i) => !Object.is(v, expected[i]));
          assert.equal(firstDiff, -1, `${name}, sigma ${sigma}, batch ${batch}: element ${firstDiff} ${actual[firstDiff]} vs ${expected[firstDiff]} (seed ${rng.seed})`);
          // And both are D = c_skip·x + c_out·F, the formula in float64 over the raw output F.
          const { inputs, owned } = denoiser.inputs(x, sigma, conditions && [conditions]);
          using raw = (await denoiser.model.run<Tensor>({ inputs })).output;
          owned.forEach((t) => t.dispose());
          const f = (await raw.toArray()) as Float32Array;
          const xs = (await x.toArray()) as Float32Array;
          const { cSkip, cOut } = denoiser.scalings(sigma);
          const formula = Float64Array.from(f, (v, i) => cSkip * xs[i]! + cOut * v);
          assert.ok(relativeError(actual, formula) < 1e-6, `${name}: relative error ${relativeError(actual, formula)} (seed ${rng.seed})`);
        } finally {
          conditions?.dispose();
        }
      }
    });
  }

  it('splits across the torch threads like any run: chunks agree with the whole batch', async () => {
    const denoiser = Denoiser.of(models.get('tiny-unet')!);
    const rng = freshRandom();
    const batch = uniformInt(rng, 8, 16);
    const sigma = drawSigma(rng);
    using x = drawX(denoiser, batch, sigma, rng);
    using conditions = drawConditions(denoiser, batch, rng)!;
    const whole = await denoisedOnThread(denoiser, x, sigma, conditions, 1);
    const split = await denoisedOnThread(denoiser, x, sigma, conditions, uniformInt(rng, 2, 5));
    // A convolution may pick another algorithm for another batch size: round-off only.
    assert.ok(relativeError(split, whole) < 1e-5, `relative error ${relativeError(split, whole)} (seed ${rng.seed})`);
  });

  it('refuses non-finite scalings, a model whose second input is not a tensor, and one that returns a tuple; leaks nothing', async () => {
    const unet = models.get('tiny-unet')!;
    const denoiser = Denoiser.of(unet);
    const rng = freshRandom();
    using x = drawX(denoiser, 2, 1, rng);
    using labels = tensor(new BigInt64Array([1n, 2n]), [2]);
    const before = liveHandles().tensors;
    for (const key of ['inputScale', 'time', 'skip', 'out'] as const) {
      for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
        const preconditioning = { ...denoiser.preconditioning(1), [key]: bad };
        const error = await expectCode(ErrorCodes.INVALID_OPTION, () => unet.run({ inputs: [x, labels], preconditioning }));
        assert.match(error.message, new RegExp(`preconditioning\\.${key}`));
      }
    }
    // tiny-tuple: forward(x: Tensor, scale: float) -> (Tensor, Tensor): no time input to fill.
    using tuple = await loadModel(fixture('tiny-tuple'), { device: 'cpu' });
    using flat = tensor(randomFloat32(10, rng), [2, 5]);
    const unit = { inputScale: 1, time: 0, skip: 0, out: 1 };
    const refused = await expectCode(ErrorCodes.INPUT_TYPE, () => tuple.run({ inputs: [flat, 0.5], preconditioning: unit }));
    assert.match(refused.message, /scale: float/);
    // Too few inputs for a denoiser (tiny-mlp: forward(x)): a count error.
    using mlp = await loadModel(fixture('tiny-mlp'), { device: 'cpu' });
    await expectCode(ErrorCodes.INPUT_COUNT, () => mlp.run({ inputs: [flat], preconditioning: unit }));
    // A denoiser-shaped signature that returns a tuple: refused after its forward, with nothing left behind.
    const dir = mkdtempSync(join(tmpdir(), 'tg-precond-'));
    try {
      const path = join(dir, 'pair.pt');
      // TorchScript compiles from source: the module goes in a file, not `python -c`.
      const script = join(dir, 'pair.py');
      writeFileSync(script, [
        'import sys, torch',
        'class Pair(torch.nn.Module):',
        '    def forward(self, x: torch.Tensor, t: torch.Tensor):',
        '        return x, t',
        'torch.jit.save(torch.jit.script(Pair()), sys.argv[1])',
      ].join('\n'));
      execFileSync(python, [script, path]);
      using pair = await loadModel(path, { device: 'cpu' });
      await expectCode(ErrorCodes.OUTPUT_TYPE, () => pair.run({ inputs: [flat], preconditioning: unit }));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(liveHandles().tensors, before + 1, 'only the flat input is new');
  });
});

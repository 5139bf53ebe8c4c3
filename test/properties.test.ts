/**
 * Property-based: any input to the public entry points yields either a result
 * or a typed TorchGuidanceError, never a crash, a hang or a leaked handle.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';

import fc from 'fast-check';

import * as tg from '../src/index.js';
import { repoRoot } from './helpers/python.js';

const { isTorchGuidanceError, liveHandles, loadModel, sample, tensor } = tg;

/** Anything a careless caller might pass where a number or option goes. */
const junk = fc.oneof(
  fc.double(),
  fc.integer({ min: -5, max: 40 }),
  fc.constantFrom(Number.NaN, Infinity, -Infinity, -0, 0, 1e308, -1e-308),
  fc.string({ maxLength: 6 }),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.array(fc.integer({ min: -3, max: 12 }), { maxLength: 4 }),
  fc.object({ maxDepth: 1, maxKeys: 3 }),
);

const strategyNames = [
  'cfg', 'pag', 'seg', 'sag', 'icg', 'apg', 'cfgZeroStar', 'cfgpp', 'rescale', 'blurGuidance', 'lowPassGuidance', 'highPassGuidance',
  'randomResetGuidance', 'squareResetGuidance', 'tcfg', 'fdg', 'magnitudeAware', 'apgMix', 'slg', 'autoguidance',
] as const;
const optionKeys = [
  'scale', 'sigma', 'sites', 'window', 'phi', 'momentum', 'eta', 'kernelSize', 'blurSigma', 'threshold', 'fraction', 'patch', 'cutoff',
  'formulation', 'adaptiveScale', 'zeroSteps', 'start', 'stop', 'enabled', 'space', 'normDim', 'scales', 'parallelWeights', 'rescale',
  'alpha', 'apgScale', 'apgStart', 'mask', 'skip', 'blocks', 'feedForward', 'layers', 'guideCondition', 'bogus',
];

/** Runs fn; a thrown value must be a TorchGuidanceError with a message. */
async function typedOrOk(fn: () => unknown): Promise<'ok' | string> {
  try {
    await fn();
    return 'ok';
  } catch (error) {
    assert.ok(isTorchGuidanceError(error), `not a typed error: ${String(error)}`);
    assert.ok(error.message.length > 10, 'the message says what is wrong');
    return error.code;
  }
}

describe('properties: every public entry point gives a result or a typed error', function () {
  this.timeout(300_000);

  it('strategy factories, for any options', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...strategyNames), fc.dictionary(fc.constantFrom(...optionKeys), junk, { maxKeys: 3 }), async (name, options) => {
        await typedOrOk(() => (tg[name] as (o: unknown) => unknown)(options));
      }),
      { numRuns: 300 },
    );
  });

  it('guidance documents and specs, for any input', async () => {
    const document = fc.record(
      {
        format: fc.constantFrom('torch-guidance/guidance', 'other', 3),
        version: fc.constantFrom(1, 2, '1'),
        strategies: fc.array(fc.record({ name: fc.constantFrom('cfg', 'fdg', 'slg', 'nope', 7), options: fc.dictionary(fc.constantFrom(...optionKeys), junk, { maxKeys: 3 }) }), { maxLength: 3 }),
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(fc.oneof(document, junk, fc.string({ maxLength: 20 })), async (value) => {
        await typedOrOk(() => tg.guidanceFromJSON(value));
      }),
      { numRuns: 300 },
    );
    const spec = fc
      .tuple(fc.constantFrom('cfg', 'tcfg', 'fdg', 'slg', 'apg-mix', 'x', ''), fc.array(fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('start=2', 'scales=1+2', 'enabled=no', '3', 'space=eps')), { maxLength: 3 }))
      .map(([name, items]) => `${name}:${items.join(',')}`);
    await fc.assert(
      fc.asyncProperty(spec, async (text) => {
        await typedOrOk(() => tg.guidanceFromSpec(text));
      }),
      { numRuns: 300 },
    );
  });

  it('tensor(), for any data and shape', async () => {
    const before = liveHandles().tensors;
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.float32Array({ maxLength: 12 }), fc.int32Array({ maxLength: 12 }), fc.constant(new Uint16Array(4)), fc.constant([1, 2, 3])),
        fc.array(fc.oneof(fc.integer({ min: -2, max: 13 }), fc.double()), { maxLength: 4 }),
        fc.record({ dtype: fc.constantFrom('float32', 'float16', 'int64', 'nope', undefined), device: fc.constantFrom('cpu', 'cuda:7', 'gpu', undefined) }, { requiredKeys: [] }),
        async (data, shape, options) => {
          await typedOrOk(() => tensor(data as Float32Array, shape, options as never).dispose());
        },
      ),
      { numRuns: 300 },
    );
    assert.equal(liveHandles().tensors, before);
  });

  it('sample(), for any options around a real model, which stays usable', async () => {
    using model = await loadModel(join(repoRoot, 'models', 'fixtures', 'tiny-unet.pt'), { device: 'cpu' });
    const before = liveHandles().tensors;
    const codes = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(
        // A valid base with zero to two fields replaced by junk, so both results and errors occur.
        fc.record({
          labels: fc.array(fc.oneof(fc.integer({ min: 0, max: 9 }), fc.constant(null)), { minLength: 1, maxLength: 3 }),
          seed: fc.integer({ min: 0, max: 1000 }),
          batchSize: fc.integer({ min: 1, max: 3 }),
          sampler: fc.record({ name: fc.constantFrom('euler', 'heun', 'ddim', 'euler_ancestral', 'dpmpp_2m'), steps: fc.integer({ min: 1, max: 2 }) }),
          guidance: fc.array(fc.constantFrom('cfg', 'pag', 'seg', 'sag', 'icg', 'apg', 'cfgZeroStar', 'cfgpp', 'rescale'), { maxLength: 2 }).map((names) =>
            names.map((n) => tg[n as 'cfg']({})),
          ),
        }).chain((base) =>
          fc.array(fc.tuple(fc.constantFrom('labels', 'count', 'seed', 'batchSize', 'sampler', 'guidance', 'clipDenoised', 'label', 'bogus'), junk), { maxLength: 2 }).map(
            (changes) => ({ ...base, ...Object.fromEntries(changes) }),
          ),
        ),
        async (options) => {
          const code = await typedOrOk(async () => {
            const { images } = await sample({ model, ...(options as object) } as never);
            images.dispose();
          });
          codes.set(code, (codes.get(code) ?? 0) + 1);
        },
      ),
      { numRuns: 80 },
    );
    assert.equal(liveHandles().tensors, before);
    // The model still samples after all of that.
    const { images } = await sample({ model, labels: [1], sampler: { name: 'euler', steps: 2 } });
    assert.deepEqual(images.shape, [1, 1, 28, 28]);
    images.dispose();
    assert.ok(codes.size >= 2, `only ${[...codes.keys()].join(', ')}: the generator should reach both results and errors`);
  });

  it('model.run() hooks, for any plan', async () => {
    using model = await loadModel(join(repoRoot, 'models', 'fixtures', 'tiny-unet.pt'), { device: 'cpu' });
    using x = tg.randn([2, 1, 28, 28], { seed: 1 });
    using t = tensor(new Float32Array([10, 500]), [2]);
    using label = tensor(new BigInt64Array([1n, 10n]), [2]);
    const before = liveHandles().tensors;
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record(
            {
              sites: fc.oneof(fc.constantFrom('mid.*', 'up.2', '**', 'nowhere', /down/), fc.integer({ min: -1, max: 4 }), junk),
              action: fc.constantFrom('identity', 'blur', 'capture', 'explode'),
              sigma: junk,
              start: fc.oneof(fc.integer({ min: -1, max: 3 }), junk),
              length: fc.oneof(fc.integer({ min: -1, max: 3 }), junk),
            },
            { requiredKeys: ['sites', 'action'] },
          ),
          { maxLength: 3 },
        ),
        async (hooks) => {
          await typedOrOk(async () => {
            const result = await model.run({ inputs: [x, t, label], hooks: hooks as never });
            (result.output as tg.Tensor).dispose();
            for (const c of result.captures.values()) c.dispose();
          });
        },
      ),
      { numRuns: 200 },
    );
    assert.equal(liveHandles().tensors, before);
  });
});

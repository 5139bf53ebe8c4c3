import assert from 'node:assert/strict';
import { join } from 'node:path';

import { ErrorCodes, loadModel, type Model, type Tensor } from '../src/index.js';
import { attentionReference, type ReferenceEntry } from './helpers/attention-reference.js';
import { randomDenoiserInputs } from './helpers/denoiser-inputs.js';
import { expectCode } from './helpers/errors.js';
import { repoRoot } from './helpers/python.js';
import { relativeError } from './helpers/random.js';

const UNET = join(repoRoot, 'models', 'fixtures', 'tiny-unet.pt');
const BATCH = 3;
const SAMPLE = 784;

const randomInputs = () => randomDenoiserInputs(BATCH, [1, 28, 28]);

function sampleSlice(data: Float32Array, i: number): Float32Array {
  return data.subarray(i * SAMPLE, (i + 1) * SAMPLE);
}

describe('attention hooks', () => {
  let model: Model;
  before(async () => {
    model = await loadModel(UNET, { device: 'cpu' });
  });
  after(() => model.dispose());

  it('finds every attention site with its module path, grid and self-attention flag', () => {
    assert.deepEqual(
      model.attentionSites.map((s) => [s.id, s.path, s.kind, s.selfAttention, s.grid, s.tokens?.queries]),
      [
        [0, 'down.3', 'softmax', true, [14, 14], 196],
        [1, 'mid.attn', 'softmax', true, [7, 7], 49],
        [2, 'up.2', 'softmax', true, [14, 14], 196],
      ],
    );
  });

  it('with no plan, the hooked model computes exactly what the untouched graph computes', async () => {
    using untouched = await loadModel(UNET, { device: 'cpu', attentionHooks: false });
    assert.deepEqual(untouched.attentionSites, []);
    assert.equal(untouched.lastOptimizedGraph(), null, 'no forward yet (nothing to probe without hooks)');
    const inputs = randomInputs();
    const handles = inputs.tensors();
    using a = await model.forward<Tensor>(...handles);
    using b = await untouched.forward<Tensor>(...handles);
    assert.match(untouched.lastOptimizedGraph() ?? '', /^graph\(/);
    assert.deepEqual(await a.toArray(), await b.toArray());
    for (const h of handles) h.dispose();
  });

  it('a forward whose hooks have nothing to do runs the graph without hook ops, and equals one through the hooked graph', async () => {
    // A capture changes no output but sends the forward through the hooked
    // graph; forward() and run() with no hooks run the copy without hook ops (model.h).
    const inputs = randomInputs();
    const handles = inputs.tensors();
    const plainBefore = model.plainForwardCount;
    const hookOp = /\bguidance::attn_\w+/;
    using plain = await model.forward<Tensor>(...handles);
    assert.doesNotMatch(model.lastOptimizedGraph()!, hookOp, 'the graph forward() ran has no hook op');
    const { output: unhooked } = await model.run<Tensor>({ inputs: handles, hooks: [] });
    assert.equal(model.plainForwardCount, plainBefore + 2, 'forward() and run() without hooks take the graph without hook ops');
    const { output, captures } = await model.run<Tensor>({ inputs: handles, hooks: [{ sites: 'mid.attn', action: 'capture', start: 1, length: 1 }] });
    assert.equal(model.plainForwardCount, plainBefore + 2, 'a capture takes the hooked graph');
    assert.match(model.lastOptimizedGraph()!, hookOp, 'the graph the capture ran has the hook ops');
    assert.deepEqual(await output.toArray(), await plain.toArray());
    assert.deepEqual(await unhooked.toArray(), await plain.toArray());
    assert.equal(captures.size, 1);
    for (const h of [...handles, output, unhooked, ...captures.values()]) h.dispose();
  });

  it('a model without attention has no sites', async () => {
    using mlp = await loadModel(join(repoRoot, 'models', 'fixtures', 'tiny-mlp.pt'), { device: 'cpu' });
    assert.deepEqual(mlp.attentionSites, []);
    await expectCode(ErrorCodes.NO_MATCHING_SITE, () =>
      mlp.run({ inputs: [], hooks: [{ sites: '**', action: 'capture' }] }),
    );
  });

  const cases: { name: string; hook: Parameters<Model['run']>[0]['hooks']; reference: ReferenceEntry[] }[] = [
    {
      name: 'identity (PAG) on mid.attn for sample 1',
      hook: [{ sites: 'mid.attn', action: 'identity', start: 1, length: 1 }],
      reference: [{ path: 'mid.attn', start: 1, length: 1, action: 'identity' }],
    },
    {
      name: 'identity on every site (down.*, mid.*, up.*) for samples 0-1',
      hook: [{ sites: ['down.*', 'mid.*', 'up.*'], action: 'identity', start: 0, length: 2 }],
      reference: ['down.3', 'mid.attn', 'up.2'].map((path) => ({ path, start: 0, length: 2, action: 'identity' as const })),
    },
    {
      name: 'blur (SEG) sigma 2 on down.3 for sample 2',
      hook: [{ sites: 'down.3', action: 'blur', sigma: 2, start: 2, length: 1 }],
      reference: [{ path: 'down.3', start: 2, length: 1, action: 'blur', sigma: 2 }],
    },
    {
      name: 'blur sigma 10 (kernel clipped to the grid) on up.2 for sample 0',
      hook: [{ sites: /^up\./, action: 'blur', sigma: 10, start: 0, length: 1 }],
      reference: [{ path: 'up.2', start: 0, length: 1, action: 'blur', sigma: 10 }],
    },
    {
      name: 'blur sigma Infinity (mean query) on mid.attn for sample 1',
      hook: [{ sites: 1, action: 'blur', sigma: Infinity, start: 1, length: 1 }],
      reference: [{ path: 'mid.attn', start: 1, length: 1, action: 'blur', sigma: Infinity }],
    },
  ];

  for (const { name, hook, reference } of cases) {
    it(`${name}: equals the eager Python reference, changes its slice, leaves the others bit-identical`, async () => {
      const inputs = randomInputs();
      const handles = inputs.tensors();
      using plain = await model.forward<Tensor>(...handles);
      const { output, captures } = await model.run<Tensor>({ inputs: handles, hooks: hook });
      assert.equal(captures.size, 0);
      const ours = (await output.toArray()) as Float32Array;
      const base = (await plain.toArray()) as Float32Array;
      const expected = attentionReference(inputs, reference).output;
      const error = relativeError(ours, expected);
      assert.ok(error < 1e-5, `relative error ${error} vs the reference (seed ${inputs.rng.seed})`);
      const touched = new Set(reference.flatMap((r) => Array.from({ length: r.length }, (_, k) => r.start + k)));
      for (let i = 0; i < BATCH; i++) {
        if (touched.has(i)) {
          assert.ok(relativeError(sampleSlice(ours, i), sampleSlice(base, i)) > 1e-4, `sample ${i} unchanged`);
        } else {
          assert.deepEqual(sampleSlice(ours, i), sampleSlice(base, i), `sample ${i} should be bit-identical`);
        }
      }
      output.dispose();
      for (const h of handles) h.dispose();
    });
  }

  it('captures the head-averaged probabilities of a slice, as the reference computes them', async () => {
    const inputs = randomInputs();
    const handles = inputs.tensors();
    using plain = await model.forward<Tensor>(...handles);
    const { output, captures } = await model.run<Tensor>({
      inputs: handles,
      hooks: [{ sites: 'down.3', action: 'capture', start: 1, length: 2 }],
    });
    const map = captures.get('down.3')!;
    assert.deepEqual(map.shape, [2, 196, 196]);
    const reference = attentionReference(inputs, [{ path: 'down.3', start: 1, length: 2, action: 'capture' }]);
    assert.ok(relativeError((await map.toArray()) as Float32Array, reference.captures) < 1e-5);
    // Rows are probabilities.
    const rows = (await map.toArray()) as Float32Array;
    for (let r = 0; r < 5; r++) {
      const sum = rows.subarray(r * 196, (r + 1) * 196).reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(sum - 1) < 1e-4, `row ${r} sums to ${sum}`);
    }
    // Capturing changes nothing.
    assert.deepEqual(await output.toArray(), await plain.toArray());
    for (const h of [...handles, output, map]) h.dispose();
  });

  it('two concurrent forwards with different plans equal the same two in sequence', async () => {
    const inputs = randomInputs();
    const handles = inputs.tensors();
    const plans = [
      [{ sites: 'mid.attn', action: 'identity' as const }],
      [{ sites: '**', action: 'blur' as const, sigma: 3, start: 1, length: 2 }],
      [],
    ];
    const together = await Promise.all(plans.map((hooks) => model.run<Tensor>({ inputs: handles, hooks })));
    for (let i = 0; i < plans.length; i++) {
      const alone = await model.run<Tensor>({ inputs: handles, hooks: plans[i] });
      assert.deepEqual(await together[i]!.output.toArray(), await alone.output.toArray(), `plan ${i}`);
      alone.output.dispose();
      together[i]!.output.dispose();
    }
    for (const h of handles) h.dispose();
  });

  describe('selectors', () => {
    it('a selector that matches nothing names the sites that exist', async () => {
      const error = await expectCode(ErrorCodes.NO_MATCHING_SITE, () =>
        model.run({ inputs: [], hooks: [{ sites: 'blocks.*', action: 'identity' }] }),
      );
      assert.match(error.message, /down\.3/);
      assert.match(error.message, /mid\.attn/);
    });

    it('matches whole segments: mid never matches mid.attn, up.2 never matches up.20', async () => {
      await expectCode(ErrorCodes.NO_MATCHING_SITE, () => model.run({ inputs: [], hooks: [{ sites: 'mid', action: 'capture' }] }));
      await expectCode(ErrorCodes.NO_MATCHING_SITE, () => model.run({ inputs: [], hooks: [{ sites: 'up.20', action: 'capture' }] }));
      await expectCode(ErrorCodes.NO_MATCHING_SITE, () => model.run({ inputs: [], hooks: [{ sites: 7, action: 'capture' }] }));
    });

    it('rejects bad hooks with the field named', async () => {
      const error = await expectCode(ErrorCodes.INVALID_OPTION, () =>
        model.run({ inputs: [], hooks: [{ sites: 'mid.attn', action: 'blur' }] }),
      );
      assert.match(error.message, /sigma/);
      await expectCode(ErrorCodes.INVALID_OPTION, () =>
        model.run({ inputs: [], hooks: [{ sites: 'mid.attn', action: 'swap' as 'blur' }] }),
      );
      const inputs = randomInputs();
      const handles = inputs.tensors();
      await expectCode(ErrorCodes.INVALID_OPTION, () =>
        model.run({ inputs: handles, hooks: [{ sites: 'mid.attn', action: 'identity', start: 2, length: 2 }] }),
      );
      for (const h of handles) h.dispose();
    });
  });
});

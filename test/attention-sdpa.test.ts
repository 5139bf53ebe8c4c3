import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ErrorCodes, loadModel, runtimeInfo, type Model, type Tensor } from '../src/index.js';
import { randomDenoiserInputs } from './helpers/denoiser-inputs.js';
import { expectCode } from './helpers/errors.js';
import { python, repoRoot, runReference } from './helpers/python.js';
import { relativeError } from './helpers/random.js';
import { checkSliceAction, type SliceAction } from './helpers/slice-action.js';

// sdpa-zoo (test/reference/sdpa_zoo.py): attention through the fused
// aten::scaled_dot_product_attention, with heads apart and an explicit scale
// (blocks.0), heads folded with an additive bias mask (blocks.1),
// cross-attention (blocks.2) and is_causal (blocks.3), on an 8x16 grid. The
// file is made by the test machine's Python torch; the reference perturbs
// attention written out in eager Python, with no SDPA call.
const SCRIPT = join(repoRoot, 'test', 'reference', 'sdpa_zoo.py');
const BATCH = 3;
const info = runtimeInfo();
const native = Number.parseInt(info.torchVersion, 10) >= 2;
const implementation = native
  ? `libtorch ${info.torchVersion}'s own op`
  : `the addon's math version of the op (libtorch ${info.torchVersion} has no SDPA)`;

type Action = SliceAction;

describe(`attention hooks on scaled_dot_product_attention sites (${implementation})`, () => {
  let dir: string;
  let file: string;
  let model: Model;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tg-sdpa-'));
    file = join(dir, 'sdpa-zoo.pt');
    execFileSync(python, [SCRIPT, 'make', file], { stdio: 'pipe' });
    model = await loadModel(file, { device: 'cpu' });
  });
  after(() => {
    model?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('finds every SDPA call in the ModuleList, with kind, self/cross flag, tokens and the 8x16 grid', () => {
    assert.deepEqual(
      model.attentionSites.map((s) => [s.path, s.kind, s.selfAttention, s.tokens, s.grid]),
      [
        ['blocks.0', 'sdpa', true, { queries: 128, keys: 128 }, [8, 16]],
        ['blocks.1', 'sdpa', true, { queries: 128, keys: 128 }, [8, 16]],
        ['blocks.2', 'sdpa', false, { queries: 128, keys: 5 }, [8, 16]],
        ['blocks.3', 'sdpa', true, { queries: 128, keys: 128 }, [8, 16]],
      ],
    );
  });

  const blocks = [
    [0, 'heads apart, explicit scale'],
    [1, 'heads folded, additive bias mask'],
    [3, 'is_causal'],
  ] as const;
  const actions: Action[] = [{ action: 'identity' }, { action: 'blur', sigma: 1.5 }, { action: 'blur', sigma: Infinity },
    { action: 'capture' }];
  for (const [block, style] of blocks) {
    for (const action of actions) {
      const name = action.action === 'blur' ? `blur(sigma ${action.sigma})` : action.action;
      it(`${name} on blocks.${block} (${style}) equals the eager reference; other samples keep SDPA's own output`, () => {
        const inputs = randomDenoiserInputs(BATCH, [1, 8, 16]);
        return checkSliceAction(model, inputs, `blocks.${block}`, action, () =>
          runReference('sdpa_zoo.py', { model: file, batch: BATCH, block, start: 1, length: 1, ...action },
            { x: inputs.x, t: inputs.t, label: inputs.label }, ['reference', file]));
      });
    }
  }

  it('refuses identity on the cross-attention site and captures its [length, queries, keys] maps', async () => {
    await expectCode(ErrorCodes.CROSS_ATTENTION, () =>
      model.run({ inputs: [], hooks: [{ sites: 'blocks.2', action: 'identity', self: false }] }),
    );
    const inputs = randomDenoiserInputs(BATCH, [1, 8, 16]);
    const handles = inputs.tensors();
    const { output, captures } = await model.run<Tensor>({ inputs: handles, hooks: [{ sites: 'blocks.2', action: 'capture', start: 0, length: 2 }] });
    const map = captures.get('blocks.2')!;
    assert.deepEqual(map.shape, [2, 128, 5]);
    const rows = (await map.toArray()) as Float32Array;
    for (let row = 0; row < 2 * 128; row += 37) {
      const sum = rows.subarray(row * 5, row * 5 + 5).reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(sum - 1) < 1e-5, `row ${row} of the probabilities sums to ${sum}`);
    }
    for (const h of [...handles, output, map]) h.dispose();
  });

  it('two concurrent forwards with different plans equal the same two run one after the other', async () => {
    const inputs = randomDenoiserInputs(BATCH, [1, 8, 16]);
    const handles = inputs.tensors();
    const plans = [
      [{ sites: 'blocks.0', action: 'identity' as const, start: 0, length: 2 }],
      [{ sites: 'blocks.*', action: 'blur' as const, sigma: 2, start: 1, length: 2 }],
    ];
    const sequential = [];
    for (const hooks of plans) sequential.push((await model.run<Tensor>({ inputs: handles, hooks })).output);
    const concurrent = (await Promise.all(plans.map((hooks) => model.run<Tensor>({ inputs: handles, hooks })))).map((r) => r.output);
    for (let i = 0; i < plans.length; i++) {
      assert.deepEqual(await concurrent[i]!.toArray(), await sequential[i]!.toArray());
    }
    for (const h of [...handles, ...sequential, ...concurrent]) h.dispose();
  });

  const cudaIt = info.cudaAvailable ? it : it.skip;
  cudaIt(`on CUDA, hooked slices agree with the CPU (TF32 tolerance)${info.cudaAvailable ? '' : ' (skipped: no CUDA device)'}`, async () => {
    await using gpu = await loadModel(file, { device: 'cuda' });
    const inputs = randomDenoiserInputs(BATCH, [1, 8, 16]);
    const hooks = [
      { sites: 'blocks.0', action: 'identity' as const, start: 0, length: 1 },
      { sites: 'blocks.1', action: 'blur' as const, sigma: 1.5, start: 1, length: 1 },
      { sites: 'blocks.3', action: 'blur' as const, sigma: Infinity, start: 2, length: 1 },
    ];
    const handles = inputs.tensors(); // on the CPU; a model moves its inputs to its device
    const onCpu = (await model.run<Tensor>({ inputs: handles, hooks })).output;
    const onGpu = (await gpu.run<Tensor>({ inputs: handles, hooks })).output;
    assert.equal(onGpu.device, 'cuda:0');
    const error = relativeError((await onGpu.toArray()) as Float32Array, (await onCpu.toArray()) as Float32Array);
    assert.ok(error < 5e-3, `CUDA vs CPU relative error ${error}`);
    for (const h of [...handles, onCpu, onGpu]) h.dispose();
  });
});

import assert from 'node:assert/strict';
import { join } from 'node:path';

import { ErrorCodes, loadModel, tensor, type Model, type Tensor } from '../src/index.js';
import { randomDenoiserInputs } from './helpers/denoiser-inputs.js';
import { expectCode } from './helpers/errors.js';
import { repoRoot, runReference } from './helpers/python.js';
import { randomFloat32 } from './helpers/random.js';
import { checkSliceAction, type SliceAction } from './helpers/slice-action.js';

// attn-zoo: attention as diffusers' bmm processor (blocks.0), ADM's einsum
// QKV attention (blocks.1) and cross-attention to 5 context tokens
// (blocks.2), in a ModuleList loop, on an 8x16 grid.
const ZOO = join(repoRoot, 'models', 'fixtures', 'attn-zoo.pt');
const BATCH = 3;
const SAMPLE = 128;

type ZooAction = SliceAction;

function zooReference(
  inputs: { x: Float32Array; t: Float32Array; label: BigInt64Array },
  block: number,
  start: number,
  length: number,
  action: ZooAction,
) {
  return runReference('attn_zoo_reference.py', { batch: BATCH, block, start, length, ...action }, { x: inputs.x, t: inputs.t, label: inputs.label });
}

describe('attention styles (attn-zoo fixture)', () => {
  let model: Model;
  before(async () => {
    model = await loadModel(ZOO, { device: 'cpu' });
  });
  after(() => model.dispose());

  it('finds bmm, einsum and cross-attention sites in a ModuleList, with the non-square grid', () => {
    assert.deepEqual(
      model.attentionSites.map((s) => [s.path, s.selfAttention, s.tokens, s.grid]),
      [
        ['blocks.0', true, { queries: 128, keys: 128 }, [8, 16]],
        ['blocks.1', true, { queries: 128, keys: 128 }, [8, 16]],
        ['blocks.2', false, { queries: 128, keys: 5 }, [8, 16]],
      ],
    );
  });

  const styles = [[0, 'bmm (heads folded into the batch axis)'], [1, 'einsum (ADM)']] as const;
  const actions: ZooAction[] = [{ action: 'identity' }, { action: 'blur', sigma: 1.5 }, { action: 'capture' }];
  for (const [block, style] of styles) {
    for (const action of actions) {
      it(`${action.action} on the ${style} site equals the eager reference and touches only its slice`, () => {
        const inputs = randomDenoiserInputs(BATCH, [1, 8, 16]);
        return checkSliceAction(model, inputs, `blocks.${block}`, action, () => zooReference(inputs, block, 1, 1, action));
      });
    }
  }

  it('refuses identity and blur on cross-attention, and self-only selection skips it', async () => {
    await expectCode(ErrorCodes.CROSS_ATTENTION, () =>
      model.run({ inputs: [], hooks: [{ sites: 'blocks.2', action: 'identity', self: false }] }),
    );
    const error = await expectCode(ErrorCodes.NO_MATCHING_SITE, () =>
      model.run({ inputs: [], hooks: [{ sites: 'blocks.2', action: 'blur', sigma: 1 }] }),
    );
    assert.match(error.message, /cross/);
  });

  it('captures cross-attention maps [length, queries, keys]', async () => {
    const handles = [tensor(randomFloat32(BATCH * SAMPLE), [BATCH, 1, 8, 16]), tensor(new Float32Array(BATCH), [BATCH]),
      tensor(new BigInt64Array(BATCH), [BATCH])];
    const { output, captures } = await model.run<Tensor>({ inputs: handles, hooks: [{ sites: 'blocks.*', action: 'capture', start: 0, length: 2 }] });
    assert.deepEqual([...captures.keys()], ['blocks.0', 'blocks.1', 'blocks.2']);
    assert.deepEqual(captures.get('blocks.2')!.shape, [2, 128, 5]);
    assert.deepEqual(captures.get('blocks.1')!.shape, [2, 128, 128]);
    for (const h of [...handles, output, ...captures.values()]) h.dispose();
  });
});

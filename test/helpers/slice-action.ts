import assert from 'node:assert/strict';

import type { Model, Tensor } from '../../src/index.js';
import type { randomDenoiserInputs } from './denoiser-inputs.js';
import { relativeError } from './random.js';

export type SliceAction = { action: 'identity' } | { action: 'blur'; sigma: number } | { action: 'capture' };

/**
 * One attention action on sample 1 of a batch of 3 at `site`, checked against
 * an eager reference (output and, for capture, the map) to 1e-5 relative:
 * samples 0 and 2 stay bit-identical to the unhooked forward; identity and
 * blur change sample 1, capture changes nothing and returns a [1, N, N] map.
 */
export async function checkSliceAction(
  model: Model,
  inputs: ReturnType<typeof randomDenoiserInputs>,
  site: string,
  action: SliceAction,
  reference: () => { output: Float32Array; captures: Float32Array },
): Promise<void> {
  const handles = inputs.tensors();
  const sample = inputs.x.length / inputs.batch;
  try {
    using plain = await model.forward<Tensor>(...handles);
    const { output, captures } = await model.run<Tensor>({ inputs: handles, hooks: [{ sites: site, start: 1, length: 1, ...action }] });
    using _output = output;
    const ours = (await output.toArray()) as Float32Array;
    const base = (await plain.toArray()) as Float32Array;
    const expected = reference();
    const error = relativeError(ours, expected.output);
    assert.ok(error < 1e-5, `relative error ${error} (seed ${inputs.rng.seed})`);
    assert.deepEqual(ours.subarray(0, sample), base.subarray(0, sample), 'sample 0 untouched, bit for bit');
    assert.deepEqual(ours.subarray(2 * sample), base.subarray(2 * sample), 'sample 2 untouched, bit for bit');
    if (action.action === 'capture') {
      assert.deepEqual(ours, base, 'capture changes nothing');
      using map = captures.get(site)!;
      const tokens = map.shape[1]!;
      assert.deepEqual(map.shape, [1, tokens, tokens]);
      assert.ok(relativeError((await map.toArray()) as Float32Array, expected.captures) < 1e-5);
    } else {
      assert.ok(relativeError(ours.subarray(sample, 2 * sample), base.subarray(sample, 2 * sample)) > 1e-4, 'the perturbed sample changed');
    }
  } finally {
    for (const h of handles) h.dispose();
  }
}

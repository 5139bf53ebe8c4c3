import assert from 'node:assert/strict';

import { TorchGuidanceError, isTorchGuidanceError } from '../src/index.js';

describe('TorchGuidanceError', () => {
  it('is recognised across copies of the module (by brand), and only then', () => {
    // What an error made by another copy of the package looks like: a different class, same brand.
    class OtherCopy extends Error {
      readonly code = 'ERR_DISPOSED';
    }
    const foreign = new OtherCopy('from the other copy');
    Object.defineProperty(foreign, Symbol.for('torch-guidance.error'), { value: true });
    assert.ok(foreign instanceof TorchGuidanceError);
    assert.ok(isTorchGuidanceError(foreign, 'ERR_DISPOSED'));
    assert.ok(!isTorchGuidanceError(foreign, 'ERR_TORCH'));
    assert.ok(!(new Error('plain') instanceof TorchGuidanceError));
    assert.ok(!(Object.assign(new Error('look-alike'), { code: 'ERR_DISPOSED' }) instanceof TorchGuidanceError));
    assert.ok(!((null as unknown) instanceof TorchGuidanceError));
    assert.ok(new TorchGuidanceError('ERR_TORCH', 'made here') instanceof TorchGuidanceError);
  });
});

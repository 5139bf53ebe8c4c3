import assert from 'node:assert/strict';

import { TorchGuidanceError, type ErrorCode } from '../../src/index.js';

/** Asserts that `run` throws (or rejects with) a TorchGuidanceError of `code`; returns it. */
export async function expectCode(code: ErrorCode, run: () => unknown): Promise<TorchGuidanceError> {
  let caught: unknown;
  try {
    await run();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught, `expected ${code}, but nothing was thrown`);
  assert.ok(caught instanceof TorchGuidanceError, `expected a TorchGuidanceError, got ${String(caught)}`);
  assert.equal(caught.code, code, `expected ${code}, got ${caught.code}: ${caught.message}`);
  assert.ok(caught.message.length > 20, 'the message should explain the problem');
  return caught;
}

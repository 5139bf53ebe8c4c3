/**
 * Preloaded into an example's process by test/examples.test.ts: when the
 * example has finished, prints the tensors and models still alive, so the test
 * can check that the example disposes what it makes.
 */
import { liveHandles } from '../../src/index.js';

process.once('beforeExit', () => {
  const { tensors, models } = liveHandles();
  process.stderr.write(`live handles at exit: ${JSON.stringify({ tensors, models })}\n`);
});

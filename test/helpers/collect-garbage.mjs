// Mocha root hook (loaded by .mocharc.json): every test starts with earlier
// tests' garbage collected. Some tests leave unreachable tensors on purpose
// (the garbage-collector fallback); if the GC freed them in the middle of a
// later test, that test's live-handle count would drop and its leak check fail.
const gc = globalThis.gc;

export const mochaHooks = {
  async beforeEach() {
    if (!gc) return;
    gc();
    // Finalizers of collected wrappers may run on the next turn; let them, then collect again.
    await new Promise((resolve) => setImmediate(resolve));
    gc();
  },
};

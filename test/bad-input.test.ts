/**
 * The bad-input sweep: one test per kind of bad input. Each asserts the typed
 * error code and a message that names the problem, then that the process and
 * the model still work (a small sample() on the same model succeeds).
 * Cases that could crash or exhaust the process run in child processes in
 * the suites beside this one: bad-input-models (untrusted, damaged and
 * oversized model files), bad-input-requests (huge counts and batches,
 * overflowing options, non-finite predictions), bad-input-io (declared sizes,
 * file-system failures, the output lock, foreign directories), bad-input-hangs
 * (forwards that never return) and bad-input-workers (terminated workers).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { cfg, isTorchGuidanceError, liveHandles, loadModel, pag, randn, runtimeInfo, sample, seg, tensor, type Model } from '../src/index.js';
import { python, repoRoot } from './helpers/python.js';

const fixture = (name: string) => join(repoRoot, 'models', 'fixtures', name);

function expectCode(code: string, message?: RegExp) {
  return (error: unknown) => {
    assert.ok(isTorchGuidanceError(error), `expected a TorchGuidanceError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (message) assert.match(error.message, message);
    return true;
  };
}

/** Whether this Linux kernel refuses an allocation of `bytes` outright (heuristic or strict overcommit, too little memory). */
function kernelRefuses(bytes: number): boolean {
  try {
    const mode = readFileSync('/proc/sys/vm/overcommit_memory', 'utf8').trim();
    const meminfo = readFileSync('/proc/meminfo', 'utf8');
    const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(meminfo)?.[1] ?? 0);
    return mode !== '1' && (kib('MemTotal') + kib('SwapTotal')) * 1024 < bytes;
  } catch {
    return false;
  }
}

describe('bad input: typed errors, and everything still works afterwards', function () {
  this.timeout(120_000);
  let dir: string;
  let model: Model;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tg-bad-'));
    model = await loadModel(fixture('tiny-unet.pt'), { device: 'cpu' });
    // Card variants and a module whose forward does not fit its card, made by Python torch.
    execFileSync(python, ['-c', `
import json, sys, torch
sys.path.insert(0, ${JSON.stringify(join(repoRoot, 'models', 'fixtures'))})
import make_fixtures as fx
files = {"model.json": ""}
m = torch.jit.load(${JSON.stringify(fixture('tiny-unet.pt'))}, _extra_files=files)
card = json.loads(files["model.json"])
missing = dict(card); del missing["prediction"]
torch.jit.save(m, "${dir}/missing-field.pt", _extra_files={"model.json": json.dumps(missing)})
wrong = dict(card); wrong["prediction"] = "epsilon"
torch.jit.save(m, "${dir}/wrong-field.pt", _extra_files={"model.json": json.dumps(wrong)})
torch.jit.save(torch.jit.script(fx.TinyMLP()), "${dir}/wrong-signature.pt", _extra_files={"model.json": json.dumps(card)})
class Outer(torch.nn.Module):
    def forward(self, x):
        return x.unsqueeze(-1) * x.unsqueeze(-2)
torch.jit.save(torch.jit.trace(Outer(), torch.zeros(3)), "${dir}/outer.pt")  # traced: -c has no source to script
`]);
    writeFileSync(join(dir, 'not-torchscript.pt'), 'this is not a zip archive');
  });
  after(() => {
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  // Every row ends here: the process and the shared model still sample.
  afterEach(async () => {
    const { images } = await sample({ model, labels: [2], sampler: { name: 'euler', steps: 2 } });
    assert.deepEqual(images.shape, [1, 1, 28, 28]);
    images.dispose();
  });

  it('a missing file', async () => {
    await assert.rejects(loadModel(join(dir, 'nope.pt')), expectCode('ERR_MODEL_NOT_FOUND', /nope\.pt/));
  });

  it('a file that is not a TorchScript archive', async () => {
    await assert.rejects(loadModel(join(dir, 'not-torchscript.pt')), expectCode('ERR_NOT_TORCHSCRIPT'));
  });

  it('a card missing a field, or with a wrong value, names the field', async () => {
    await assert.rejects(loadModel(join(dir, 'missing-field.pt')), expectCode('ERR_MODEL_CARD', /prediction/));
    await assert.rejects(loadModel(join(dir, 'wrong-field.pt')), expectCode('ERR_MODEL_CARD', /prediction/));
  });

  it('a TorchScript module whose forward does not fit its card', async () => {
    using wrong = await loadModel(join(dir, 'wrong-signature.pt'), { device: 'cpu' });
    await assert.rejects(sample({ model: wrong, labels: [1], sampler: { name: 'euler', steps: 1 } }), expectCode('ERR_INPUT_COUNT'));
  });

  it('an unknown device, and CUDA where there is none', async () => {
    await assert.rejects(loadModel(fixture('tiny-unet.pt'), { device: 'gpu0' as never }), expectCode('ERR_UNKNOWN_DEVICE', /gpu0/));
    const cuda = runtimeInfo().cudaAvailable ? 'cuda:99' : 'cuda';
    await assert.rejects(loadModel(fixture('tiny-unet.pt'), { device: cuda }), expectCode('ERR_CUDA_UNAVAILABLE'));
  });

  it('NaN, infinite or negative scales where they are not allowed', () => {
    assert.throws(() => cfg({ scale: Number.NaN }), expectCode('ERR_INVALID_OPTION', /scale/));
    assert.throws(() => pag({ scale: Infinity }), expectCode('ERR_INVALID_OPTION', /scale/));
    assert.throws(() => seg({ sigma: -1 }), expectCode('ERR_INVALID_OPTION', /sigma/));
  });

  it('a site selector that matches nothing lists the sites', async () => {
    await assert.rejects(
      sample({ model, guidance: [pag({ sites: 'nowhere.*' })], labels: [1], sampler: { name: 'euler', steps: 1 } }),
      expectCode('ERR_NO_MATCHING_SITE', /down\.3.*mid\.attn.*up\.2/s),
    );
  });

  it('identity on cross-attention', async () => {
    using zoo = await loadModel(fixture('attn-zoo.pt'), { device: 'cpu' });
    const [x, context] = [randn([1, 128, 32], { seed: 1 }), randn([1, 5, 16], { seed: 2 })];
    try {
      const inputs = zoo.methods.find((m) => m.name === 'forward')!.inputs.length === 2 ? [x, context] : [x];
      await assert.rejects(zoo.run({ inputs, hooks: [{ sites: 'blocks.2', action: 'identity', self: false }] }), expectCode('ERR_CROSS_ATTENTION'));
    } finally {
      x.dispose();
      context.dispose();
    }
  });

  it('a sample shape the model rejects', async () => {
    using x = randn([1, 3, 28, 28], { seed: 3 }); // three channels; the model takes one
    using t = tensor(new Float32Array([500]), [1]);
    using label = tensor(new BigInt64Array([1n]), [1]);
    await assert.rejects(model.forward(x, t, label), expectCode('ERR_INPUT_SHAPE', /\[1, 3, 28, 28\]/));
  });

  it('labels out of range, and count 0', async () => {
    await assert.rejects(sample({ model, labels: [11], sampler: { name: 'euler', steps: 1 } }), expectCode('ERR_INVALID_OPTION', /labels/));
    await assert.rejects(sample({ model, count: 0, sampler: { name: 'euler', steps: 1 } }), expectCode('ERR_INVALID_OPTION', /count/));
  });

  it('an allocation no machine can make, inside a forward and outside, is an error, not an abort', async () => {
    // outer(x) = x[:, None] * x[None, :]: 10^7 inputs ask for a 400 TB result,
    // more than a 64-bit process can map (128 TB), so the allocation itself
    // fails under any overcommit setting and on any amount of memory.
    using outer = await loadModel(join(dir, 'outer.pt'), { device: 'cpu' });
    using x = randn([10_000_000], { seed: 4 });
    await assert.rejects(outer.forward(x), expectCode('ERR_OUT_OF_MEMORY', /smaller batch/));
    assert.throws(() => randn([2 ** 22, 2 ** 20], { seed: 5 }), expectCode('ERR_OUT_OF_MEMORY'));
  });

  // A batch too large for this machine: it fails at allocation only where the
  // kernel refuses what it cannot back (overcommit mode 0 or 2, and less than
  // 173 GB of memory and swap). With overcommit mode 1, or more memory, the
  // allocation succeeds and the kernel kills the process when the pages are
  // touched, which no library can turn into an error (seen on a 128 GB GPU
  // machine, 2026-11-26); the test above covers the error path there.
  const refusesHugeAllocations = kernelRefuses(173e9);
  (refusesHugeAllocations ? it : it.skip)(
    `a batch too large for this machine's memory is an error${refusesHugeAllocations ? '' : ' (skipped: this kernel overcommits 173 GB, see above)'}`,
    async () => {
      // 768x768 input: down.3 attends over 384² = 147k tokens, two 147k x 147k maps (173 GB).
      using x = randn([1, 1, 768, 768], { seed: 4 });
      using t = tensor(new Float32Array([500]), [1]);
      using label = tensor(new BigInt64Array([1n]), [1]);
      await assert.rejects(model.forward(x, t, label), expectCode('ERR_OUT_OF_MEMORY', /smaller batch/));
    },
  );

  it('a model used after dispose', async () => {
    const gone = await loadModel(fixture('tiny-unet.pt'), { device: 'cpu' });
    gone.dispose();
    await assert.rejects(sample({ model: gone, labels: [1], sampler: { name: 'euler', steps: 1 } }), expectCode('ERR_DISPOSED'));
  });

  it('an abort mid-run rejects with ERR_ABORTED, the reason as its cause, and leaves no handle', async () => {
    const before = liveHandles().tensors;
    const controller = new AbortController();
    const reason = new Error('stop now');
    await assert.rejects(
      sample({ model, labels: [1, 2], sampler: { name: 'euler', steps: 5 }, signal: controller.signal, onProgress: ({ step }) => step === 2 && controller.abort(reason) }),
      (e: unknown) => (e as { code?: string }).code === 'ERR_ABORTED' && (e as Error).cause === reason,
    );
    assert.equal(liveHandles().tensors, before);
  });
});

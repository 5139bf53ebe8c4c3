import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ErrorCodes, isTensor, liveHandles, loadModel, randn, tensor, type Model, type Tensor } from '../src/index.js';
import { randomDenoiserInputs } from './helpers/denoiser-inputs.js';
import { expectCode } from './helpers/errors.js';
import { pythonReference, repoRoot } from './helpers/python.js';
import { freshRandom, randomFloat32, relativeError } from './helpers/random.js';

const fixture = (name: string) => join(repoRoot, 'models', 'fixtures', name);
const UNET = fixture('tiny-unet.pt');

/** Fresh random tiny-unet inputs. */
const unetInputs = (batch: number) => randomDenoiserInputs(batch, [1, 28, 28]);


/** Live tensors and models (jobs and threads are left out: a torch thread may still be finishing its hand-off). */
function handleCounts() {
  const { tensors, models } = liveHandles();
  return { tensors, models };
}

describe('Model', () => {
  let unet: Model;
  before(async () => {
    unet = await loadModel(UNET, { device: 'cpu' });
  });
  after(() => unet.dispose());

  it('loads, freezes and describes a TorchScript model with its card', () => {
    const description = unet.describe();
    assert.equal(description.device, 'cpu');
    assert.equal(description.dtype, 'float32');
    assert.equal(description.frozen, true);
    assert.ok(description.parameterCount > 10_000);
    assert.deepEqual(
      description.methods.map((m) => m.signature),
      ['forward(x: Tensor, t: Tensor, label: Tensor) -> Tensor'],
    );
    assert.deepEqual(unet.methods[0]!.inputs.map((i) => i.name), ['x', 't', 'label']);
    const card = unet.card as { name: string; prediction: string; sampleShape: number[] };
    assert.equal(card.name, 'tiny-unet');
    assert.equal(card.prediction, 'eps');
    assert.deepEqual(card.sampleShape, [1, 28, 28]);
  });

  it('forward equals Python torch on fresh random inputs (1e-5 relative)', async () => {
    const batch = 5;
    const { x: xs, t: ts, label: labels, tensors, rng } = unetInputs(batch);
    const inputs = tensors();
    const output = (await unet.forward(...inputs)) as Tensor;
    assert.ok(isTensor(output));
    assert.deepEqual(output.shape, [batch, 1, 28, 28]);
    assert.equal(output.device, 'cpu');
    const reference = pythonReference(UNET, 'forward', [
      { kind: 'tensor', dtype: 'float32', shape: [batch, 1, 28, 28], data: xs },
      { kind: 'tensor', dtype: 'float32', shape: [batch], data: ts },
      { kind: 'tensor', dtype: 'int64', shape: [batch], data: labels },
    ]);
    assert.deepEqual(reference.shapes, [[batch, 1, 28, 28]]);
    const error = relativeError((await output.toArray()) as Float32Array, reference.data);
    assert.ok(error < 1e-5, `relative error ${error} (seed ${rng.seed})`);
    for (const t of [...inputs, output]) t.dispose();
  });

  it('runs other exported methods and models without a card', async () => {
    using mlp = await loadModel(fixture('tiny-mlp.pt'), { device: 'cpu' });
    assert.equal(mlp.card, null);
    const x = randomFloat32(6 * 8);
    using input = tensor(x, [6, 8]);
    using features = (await mlp.call('features', [input])) as Tensor;
    assert.deepEqual(features.shape, [6, 16]);
    const reference = pythonReference(fixture('tiny-mlp.pt'), 'features', [
      { kind: 'tensor', dtype: 'float32', shape: [6, 8], data: x },
    ]);
    assert.ok(relativeError((await features.toArray()) as Float32Array, reference.data) < 1e-5);
  });

  it('passes numbers to float arguments and returns tuples as arrays', async () => {
    using model = await loadModel(fixture('tiny-tuple.pt'), { device: 'cpu' });
    const rng = freshRandom();
    const x = randomFloat32(3 * 4, rng);
    const scale = rng.normal();
    using input = tensor(x, [3, 4]);
    const output = (await model.forward(input, scale)) as Tensor[];
    assert.ok(Array.isArray(output) && output.length === 2);
    const [scaled, sums] = output as [Tensor, Tensor];
    const reference = pythonReference(fixture('tiny-tuple.pt'), 'forward', [
      { kind: 'tensor', dtype: 'float32', shape: [3, 4], data: x },
      { kind: 'float', value: scale },
    ]);
    assert.deepEqual(reference.shapes, [[3, 4], [3]]);
    const ours = [...((await scaled.toArray()) as Float32Array), ...((await sums.toArray()) as Float32Array)];
    assert.ok(relativeError(ours, reference.data) < 1e-6);
    scaled.dispose();
    sums.dispose();
  });

  it('moves CPU inputs of another floating dtype to the model dtype', async () => {
    const { tensors } = unetInputs(2);
    const [x, t, label] = tensors();
    using x64 = x.to({ dtype: 'float64' });
    using out32 = (await unet.forward(x, t, label)) as Tensor;
    using out64 = (await unet.forward(x64, t, label)) as Tensor;
    assert.equal(out64.dtype, 'float32');
    assert.deepEqual(await out64.toArray(), await out32.toArray());
    for (const h of [x, t, label]) h.dispose();
  });

  it('does not block the event loop while a forward runs', async () => {
    const { tensors } = unetInputs(128);
    const inputs = tensors();
    let turns = 0;
    let running = true;
    const spin = () => {
      turns++;
      if (running) setImmediate(spin);
    };
    const started = performance.now();
    setImmediate(spin);
    const output = (await unet.forward(...inputs)) as Tensor;
    running = false;
    const elapsed = performance.now() - started;
    // A blocked loop would show 0-1 turns; a free one turns every few microseconds.
    assert.ok(elapsed > 5, `the forward took ${elapsed.toFixed(1)} ms: too short to tell`);
    assert.ok(turns >= 20, `only ${turns} event-loop turns in ${elapsed.toFixed(1)} ms`);
    for (const t of [...inputs, output]) t.dispose();
  });

  it('runs concurrent forwards independently, with the same results as in sequence', async () => {
    const sets = Array.from({ length: 6 }, () => unetInputs(3).tensors());
    const together = (await Promise.all(sets.map((inputs) => unet.forward(...inputs)))) as Tensor[];
    for (let i = 0; i < sets.length; i++) {
      using alone = (await unet.forward(...sets[i]!)) as Tensor;
      assert.deepEqual(await together[i]!.toArray(), await alone.toArray());
    }
    for (const t of [...sets.flat(), ...together]) t.dispose();
  });

  it('counts forwards', async () => {
    const before = unet.forwardCount;
    const inputs = unetInputs(1).tensors();
    const outputs = (await Promise.all([unet.forward(...inputs), unet.forward(...inputs)])) as Tensor[];
    assert.equal(unet.forwardCount, before + 2);
    for (const t of [...inputs, ...outputs]) t.dispose();
  });

  it('keeps a model alive for a forward in flight when it is disposed', async () => {
    const model = await loadModel(UNET, { device: 'cpu' });
    const { tensors } = unetInputs(16);
    const inputs = tensors();
    const pending = model.forward(...inputs);
    model.dispose();
    model.dispose();
    assert.equal(model.disposed, true);
    const output = (await pending) as Tensor;
    using expected = (await unet.forward(...inputs)) as Tensor;
    assert.deepEqual(await output.toArray(), await expected.toArray());
    await expectCode(ErrorCodes.DISPOSED, () => model.forward(...inputs));
    await expectCode(ErrorCodes.DISPOSED, () => model.describe());
    for (const t of [...inputs, output]) t.dispose();
  });

  it('leaves no handle behind after 200 forwards', async () => {
    const before = handleCounts();
    for (let i = 0; i < 200; i++) {
      const inputs = unetInputs(1).tensors();
      const output = (await unet.forward(...inputs)) as Tensor;
      for (const t of [...inputs, output]) t.dispose();
    }
    assert.deepEqual(handleCounts(), before);
  });

  it('honours an AbortSignal that fired before the call', async () => {
    const inputs = unetInputs(1).tensors();
    const controller = new AbortController();
    controller.abort();
    await expectCode(ErrorCodes.ABORTED, () => unet.call('forward', inputs, { signal: controller.signal }));
    await expectCode(ErrorCodes.ABORTED, () => loadModel(UNET, { signal: controller.signal }));
    for (const t of inputs) t.dispose();
  });

  describe('bad input: each a typed error, and the model still works afterwards', () => {
    let scratch: string;
    before(() => {
      scratch = mkdtempSync(join(tmpdir(), 'tg-model-'));
    });
    after(() => rmSync(scratch, { recursive: true, force: true }));
    afterEach(async () => {
      const inputs = unetInputs(2).tensors();
      const output = (await unet.forward(...inputs)) as Tensor;
      assert.deepEqual(output.shape, [2, 1, 28, 28]);
      for (const t of [...inputs, output]) t.dispose();
    });

    it('missing file', async () => {
      const error = await expectCode(ErrorCodes.MODEL_NOT_FOUND, () => loadModel(join(scratch, 'nope.pt')));
      assert.match(error.message, /nope\.pt/);
    });

    it('a file that is not a TorchScript archive', async () => {
      const path = join(scratch, 'random.pt');
      writeFileSync(path, Buffer.from(randomFloat32(1000).buffer));
      const error = await expectCode(ErrorCodes.NOT_TORCHSCRIPT, () => loadModel(path, { device: 'cpu' }));
      assert.match(error.message, /torch\.jit\.save/);
    });

    it('a card that is not valid JSON', async () => {
      const error = await expectCode(ErrorCodes.MODEL_CARD, () => loadModel(fixture('broken-card.pt'), { device: 'cpu' }));
      assert.match(error.message, /model\.json/);
    });

    it('the wrong number of inputs', async () => {
      const [x, t] = unetInputs(2).tensors();
      const error = await expectCode(ErrorCodes.INPUT_COUNT, () => unet.forward(x, t));
      assert.match(error.message, /forward\(x: Tensor, t: Tensor, label: Tensor\)/);
      x.dispose();
      t.dispose();
    });

    it('an input of the wrong kind', async () => {
      const [x, t, label] = unetInputs(2).tensors();
      const error = await expectCode(ErrorCodes.INPUT_TYPE, () => unet.forward(x, 500, label));
      assert.match(error.message, /input 1 \(t: Tensor\)/);
      for (const h of [x, t, label]) h.dispose();
    });

    it('inputs of the wrong shape', async () => {
      using x = randn([2, 3, 28, 28], { seed: 1 });
      const [, t, label] = unetInputs(2).tensors();
      const error = await expectCode(ErrorCodes.INPUT_SHAPE, () => unet.forward(x, t, label));
      assert.match(error.message, /\[2, 3, 28, 28\]/);
      t.dispose();
      label.dispose();
    });

    it('a method that does not exist', async () => {
      await expectCode(ErrorCodes.METHOD_NOT_FOUND, () => unet.call('features', []));
    });

    it('an unknown device', async () => {
      const error = await expectCode(ErrorCodes.UNKNOWN_DEVICE, () => loadModel(UNET, { device: 'gpu' as 'cpu' }));
      assert.match(error.message, /cuda:N/);
    });

    it('CUDA asked for where it is not available', async () => {
      await expectCode(ErrorCodes.CUDA_UNAVAILABLE, () => loadModel(UNET, { device: 'cuda:99' }));
    });

    it('invalid options, with the field named', async () => {
      const error = await expectCode(ErrorCodes.INVALID_OPTION, () =>
        loadModel(UNET, { dtype: 'int8' as 'float32' }),
      );
      assert.match(error.message, /dtype/);
      await expectCode(ErrorCodes.INVALID_OPTION, () => loadModel(UNET, { devcie: 'cpu' } as object));
    });

    it('a disposed input tensor', async () => {
      const [x, t, label] = unetInputs(2).tensors();
      x.dispose();
      await expectCode(ErrorCodes.DISPOSED, () => unet.forward(x, t, label));
      t.dispose();
      label.dispose();
    });
  });
});

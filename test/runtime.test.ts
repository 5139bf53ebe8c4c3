import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { buildInfoPath, loadBinary } from '../scripts/binary-candidates.mjs';
import { config } from '../src/core/config.js';
import { cudaMemory, jobTimes, liveHandles, loadModel, randn, runtimeInfo, tensor, type Model, type Tensor } from '../src/index.js';
import { pythonTorchVersion, repoRoot } from './helpers/python.js';

describe('runtime', () => {
  it('reports the libtorch it runs on, the same version Python torch reports', () => {
    const info = runtimeInfo();
    const [major, minor] = pythonTorchVersion().split('.');
    assert.ok(info.torchVersion.startsWith(`${major}.${minor}.`), `${info.torchVersion} vs Python ${major}.${minor}`);
    assert.equal(info.build.torchVersion, info.torchVersion);
    assert.ok(existsSync(info.libtorchPath), info.libtorchPath);
    assert.ok(existsSync(info.binaryPath), info.binaryPath);
  });

  it('reports CUDA consistently', () => {
    const info = runtimeInfo();
    assert.equal(info.cudaAvailable, info.cudaDevices.length > 0);
    if (!info.builtWithCuda) assert.equal(info.cudaAvailable, false);
    assert.equal(info.build.cuda, info.builtWithCuda);
  });

  it('has no CUDA memory to report for a device that does not exist', () => {
    assert.equal(cudaMemory(runtimeInfo().cudaDevices.length), null);
    assert.equal(cudaMemory(-1), null);
  });

  it('applies the thread settings decided at init', () => {
    const info = runtimeInfo();
    assert.equal(info.intraOpThreads, config.intraOpThreads);
    assert.equal(info.interOpThreads, config.interOpThreads);
    assert.equal(info.jobThreads, config.jobThreads);
  });

  it('takes thread settings from the environment', () => {
    const script = `import('./src/index.ts').then((m) => { const i = m.runtimeInfo();
      console.log(JSON.stringify([i.intraOpThreads, i.jobThreads])); })`;
    const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: repoRoot,
      encoding: 'utf8',
      env: { ...process.env, TORCH_GUIDANCE_INTRAOP_THREADS: '1', TORCH_GUIDANCE_JOB_THREADS: '3' },
    });
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout), [1, 3]);
  });

  it('runs sequential forwards on one torch thread, and concurrent ones on up to jobThreads', () => {
    const script = `
      import { loadModel, randn, tensor, liveHandles } from './src/index.ts';
      const model = await loadModel('models/fixtures/tiny-unet.pt', { device: 'cpu' });
      const inputs = [randn([2, 1, 28, 28], { seed: 1 }), tensor(new Float32Array([1, 2]), [2]),
        tensor(new BigInt64Array([0n, 1n]), [2])];
      for (let i = 0; i < 30; i++) (await model.forward(...inputs)).dispose();
      const sequential = liveHandles().torchThreads;
      const outs = await Promise.all(Array.from({ length: 6 }, () => model.forward(...inputs)));
      console.log(JSON.stringify([sequential, liveHandles().torchThreads]));`;
    const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: repoRoot,
      encoding: 'utf8',
      env: { ...process.env, TORCH_GUIDANCE_JOB_THREADS: '3' },
    });
    assert.equal(result.status, 0, result.stderr);
    const [sequential, concurrent] = JSON.parse(result.stdout) as [number, number];
    assert.equal(sequential, 1);
    assert.ok(concurrent > 1 && concurrent <= 3, `${concurrent} torch threads`);
  });

  it('counts live handles', () => {
    const handles = liveHandles();
    assert.deepEqual(Object.keys(handles).sort(), ['jobs', 'models', 'tensors', 'torchThreads']);
  });
});

describe('jobTimes', () => {
  let model: Model;
  let inputs: Tensor[];
  before(async () => {
    model = await loadModel(join(repoRoot, 'models', 'fashion-unet.pt'), { device: 'cpu' });
    const seed = Math.floor(Math.random() * 2 ** 31);
    inputs = [randn([4, 1, 28, 28], { seed }), tensor(new Float32Array(4).fill(500), [4]), tensor(new BigInt64Array(4).fill(3n), [4])];
    for (let i = 0; i < 3; i++) ((await model.forward(...inputs)) as Tensor).dispose(); // warm-up
  });
  after(() => {
    inputs.forEach((t) => t.dispose());
    model.dispose();
  });
  const forward = async () => ((await model.forward(...inputs)) as Tensor).dispose();
  const total = (t: ReturnType<typeof jobTimes>) => t.queueMs + t.workMs + t.notifyMs + t.settleMs;

  it('accounts for each settled job, inside the wall time JS measured, and resets', async () => {
    jobTimes({ reset: true });
    assert.equal(jobTimes().jobs, 0);
    let wallMs = 0;
    for (let i = 0; i < 6; i++) {
      const start = performance.now();
      await forward();
      wallMs += performance.now() - start;
    }
    const times = jobTimes({ reset: true });
    assert.equal(times.jobs, 6);
    for (const part of ['queueMs', 'workMs', 'notifyMs', 'settleMs'] as const) assert.ok(times[part] >= 0, `${part} ${times[part]}`);
    // The parts lie inside each awaited call (two monotonic clocks: 0.1 ms of slack per job).
    assert.ok(total(times) <= wallMs + 0.6, `parts ${total(times).toFixed(3)} ms > wall ${wallMs.toFixed(3)} ms`);
    // A forward of this UNet is milliseconds of work; the path around it is tens of µs.
    assert.ok(times.workMs >= 0.7 * wallMs, `work ${times.workMs.toFixed(2)} of wall ${wallMs.toFixed(2)} ms`);
    // Sequential calls find an idle torch thread.
    assert.ok(times.queueMs < 0.2 * times.workMs, `queue ${times.queueMs.toFixed(3)} vs work ${times.workMs.toFixed(2)} ms`);
    assert.equal(jobTimes().jobs, 0);
  });

  it('shows forwards waiting for a torch thread when more are in flight than threads', async () => {
    const threads = runtimeInfo().jobThreads;
    jobTimes({ reset: true });
    await Promise.all(Array.from({ length: 4 * threads }, forward));
    const times = jobTimes({ reset: true });
    assert.equal(times.jobs, 4 * threads);
    // In FIFO rounds of `threads`, the jobs of round r wait r rounds: in all
    // about 1.5 x the summed work; require a third of that.
    assert.ok(times.queueMs > 0.5 * times.workMs, `queue ${times.queueMs.toFixed(2)} vs work ${times.workMs.toFixed(2)} ms`);
  });

  it('shows a busy event loop as notify time', async () => {
    jobTimes({ reset: true });
    const pending = forward();
    const busyUntil = performance.now() + 150;
    while (performance.now() < busyUntil); // the main thread cannot hear of the result meanwhile
    await pending;
    const times = jobTimes({ reset: true });
    assert.equal(times.jobs, 1);
    // Submitted before the busy wait, picked up after it: queue + work + notify spans it.
    assert.ok(times.queueMs + times.workMs + times.notifyMs >= 149, JSON.stringify(times));
    assert.ok(times.notifyMs >= 150 - times.queueMs - times.workMs - 1, JSON.stringify(times));
  });
});

describe('binary loader', () => {
  let scratch: string;
  before(() => {
    scratch = mkdtempSync(join(tmpdir(), 'tg-loader-'));
  });
  after(() => rmSync(scratch, { recursive: true, force: true }));

  /** A copy of the loaded binary with edited build facts. */
  function copyWith(facts: Record<string, unknown>): string {
    const { binaryPath, build } = runtimeInfo();
    const dir = mkdtempSync(join(scratch, 'bin-'));
    const path = join(dir, 'torch_guidance.node');
    copyFileSync(binaryPath, path);
    writeFileSync(buildInfoPath(path), JSON.stringify({ ...build, ...facts }));
    return path;
  }

  it('says what it tried when no binary is there', () => {
    assert.throws(() => loadBinary(scratch, join(scratch, 'missing.node')), (error: Error & { tried: string[] }) => {
      assert.match(error.tried[0]!, /missing\.node: not there/);
      assert.match(error.message, /npm run build:native/);
      return true;
    });
  });

  it('refuses a binary built against a libtorch that is gone', () => {
    const path = copyWith({ torchLibDir: join(scratch, 'no-such-libtorch') });
    assert.throws(() => loadBinary(scratch, path), /no longer exists/);
  });

  it('refuses a binary that needs a newer Node-API', () => {
    const path = copyWith({ napiVersion: 999 });
    assert.throws(() => loadBinary(scratch, path), /needs Node-API 999/);
  });

  it('refuses a binary whose build facts are missing', () => {
    const dir = mkdtempSync(join(scratch, 'bare-'));
    const path = join(dir, 'torch_guidance.node');
    copyFileSync(runtimeInfo().binaryPath, path);
    assert.throws(() => loadBinary(scratch, path), /no readable torch_guidance\.json/);
  });

  it('refuses a binary whose libtorch is not the one the process loaded', () => {
    const path = copyWith({ torchLibDir: scratch });
    assert.throws(() => loadBinary(scratch, path), /but the process loaded/);
  });

  it('two copies of the addon in one process each keep working hooks', () => {
    const copy = copyWith({});
    const script = `
      import { createRequire } from 'node:module';
      import { loadModel, randn, tensor, runtimeInfo } from './src/index.ts';
      const model = await loadModel('models/fixtures/tiny-unet.pt', { device: 'cpu' });
      const second = createRequire(import.meta.url)(${JSON.stringify(copy)});
      second.init({ intraOpThreads: 1, interOpThreads: 1, jobThreads: 1 });
      const other = await second.Model.load(${JSON.stringify(join(repoRoot, 'models', 'fixtures', 'tiny-unet.pt'))}, { device: 'cpu' });
      const x = second.Tensor.randn([2, 1, 28, 28], { seed: 1 });
      const t = second.Tensor.fromArray(new Float32Array([5, 5]), [2]);
      const l = second.Tensor.fromArray(new BigInt64Array([1n, 1n]), [2]);
      const plain = await (await other.call('forward', [x, t, l])).toArray();
      const hooked = await (await other.call('forward', [x, t, l], { batch: 2,
        entries: [{ site: 1, start: 1, length: 1, action: 'identity' }] })).output.toArray();
      const same = (a, b, from, to) => a.slice(from, to).every((v, i) => v === b[from + i]);
      const first = await model.run({ inputs: [randn([1, 1, 28, 28], { seed: 1 }), tensor(new Float32Array([5]), [1]),
        tensor(new BigInt64Array([1n]), [1])], hooks: [{ sites: 'mid.attn', action: 'identity' }] });
      console.log(JSON.stringify([runtimeInfo().hookNamespace, second.runtimeInfo().hookNamespace,
        same(plain, hooked, 0, 784), same(plain, hooked, 784, 1568), first.output.shape]));`;
    const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: repoRoot,
      encoding: 'utf8',
    });
    assert.equal(result.status, 0, result.stderr);
    const [ours, theirs, untouchedSame, hookedSame, shape] = JSON.parse(result.stdout);
    assert.notEqual(ours, theirs, 'each copy registers its own hook-op namespace');
    assert.equal(untouchedSame, true);
    assert.equal(hookedSame, false);
    assert.deepEqual(shape, [1, 1, 28, 28]);
  });

  it('fails the import with ERR_BINARY_NOT_FOUND and the fix', () => {
    const script = `import('./src/index.ts').then(() => console.log('loaded'), (e) => console.log(e.code, e.message))`;
    const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: repoRoot,
      encoding: 'utf8',
      env: { ...process.env, TORCH_GUIDANCE_BINARY: join(scratch, 'missing.node') },
    });
    assert.match(result.stdout, /^ERR_BINARY_NOT_FOUND/);
    assert.match(result.stdout, /npm run build:native/);
  });
});

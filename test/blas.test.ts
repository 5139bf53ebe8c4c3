import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { join } from 'node:path';

import { autoChunks } from '../src/model/batch-split.js';
import { splitThreads } from '../src/core/blas.js';
import { config } from '../src/core/config.js';
import { REFERENCE_BLAS_WARNING, runtimeInfo, setBlasThreads, type BlasInfo } from '../src/index.js';
import { fastBlasProblem, mappedFiles, referenceBlasDir, resolvedDependency } from './helpers/blas.js';
import { repoRoot } from './helpers/python.js';

/** Runs a TypeScript file or module body in a child Node with `env` added; its stdout's last line as JSON. */
function child<T>(args: string[], env: Record<string, string | undefined>): { value: T; stderr: string } {
  const base = { ...process.env };
  // The child decides its own BLAS settings from `env` alone.
  for (const name of ['TORCH_GUIDANCE_BLAS_THREADS', 'OPENBLAS_NUM_THREADS', 'TORCH_GUIDANCE_ALLOW_REFERENCE_BLAS', 'LD_PRELOAD']) delete base[name];
  const result = spawnSync(process.execPath, ['--import', 'tsx', ...args], { cwd: repoRoot, encoding: 'utf8', env: { ...base, ...env } });
  assert.equal(result.status, 0, result.stderr);
  const lines = result.stdout.trim().split('\n');
  return { value: JSON.parse(lines.at(-1)!) as T, stderr: result.stderr };
}

function blasIn(env: Record<string, string | undefined>): BlasInfo {
  const script = "import('./src/index.ts').then((m) => console.log(JSON.stringify(m.runtimeInfo().blas)))";
  return child<BlasInfo>(['--input-type=module', '-e', script], env).value;
}

const info = runtimeInfo();
const pthreadsOpenBlas = info.blas.name === 'openblas' && info.blas.threading === 'pthreads';
const referenceDir = referenceBlasDir();

describe('BLAS', () => {
  // The machine check: `bash scripts/setup.sh` installs OpenBLAS where the
  // system would select the reference BLAS, and this is what tells.
  it('runs on a fast BLAS (TORCH_GUIDANCE_ALLOW_REFERENCE_BLAS=1 accepts the reference one)', () => {
    const problem = fastBlasProblem(info.blas, config.allowReferenceBlas);
    assert.equal(problem, null, problem ?? '');
  });

  it('reports the BLAS libtorch calls: a file mapped in this process, the libblas.so.3 the loader gives libtorch', () => {
    const { blas } = info;
    assert.ok(blas.library, `no BLAS found: ${JSON.stringify(blas)}`);
    assert.ok(mappedFiles().has(blas.library), `${blas.library} is not mapped in this process`);
    // Debian's libtorch links libblas.so.3; a PyTorch build with MKL inside has no such dependency.
    const resolved = resolvedDependency(info.libtorchPath, 'libblas.so.3');
    if (resolved !== null) assert.equal(blas.library, realpathSync(resolved), `ldd ${info.libtorchPath}`);
    if (blas.name === 'openblas') {
      assert.match(blas.config ?? '', /^OpenBLAS \d+\.\d+/);
      assert.ok(['pthreads', 'openmp', 'sequential'].includes(blas.threading!), String(blas.threading));
    }
    assert.ok(blas.threads === null || blas.threads >= 1, String(blas.threads));
  });

  (pthreadsOpenBlas ? it : it.skip)(
    `an OpenBLAS with its own threads is set by the 'auto' rule: max(1, floor(intra-op / torch job threads))${pthreadsOpenBlas ? '' : ` (skipped: the BLAS here is ${info.blas.name}, ${info.blas.threading ?? 'threading unknown'})`}`,
    () => {
      const expected = config.blasThreads === 'auto' ? 'auto' : config.blasThreads === 'keep' ? 'external' : 'fixed';
      assert.equal(info.blas.control, expected);
      if (expected === 'auto') assert.equal(info.blas.threads, Math.max(1, Math.floor(info.intraOpThreads / info.jobThreads)));
    },
  );

  (pthreadsOpenBlas ? it : it.skip)(
    `the count holds while forwards run at once, so concurrent forwards equal one alone bit for bit; a pinned count makes the split run one chunk at a time${pthreadsOpenBlas ? '' : ' (skipped: no OpenBLAS with its own threads)'}`,
    () => {
      interface Phase { threads: number; control: string; seen: number[]; equal: boolean; chunks: number }
      const { value } = child<{ auto: Phase; fixed: Phase; back: { threads: number; control: string } }>(
        [join('test', 'children', 'blas-threads.ts')],
        { TORCH_GUIDANCE_INTRAOP_THREADS: '4', TORCH_GUIDANCE_JOB_THREADS: '2' },
      );
      const { auto, fixed, back } = value;
      // 4 intra-op threads over 2 torch threads: 2 BLAS threads, whatever runs.
      assert.deepEqual([auto.control, auto.threads, auto.seen, auto.equal], ['auto', 2, [2], true], JSON.stringify(auto));
      assert.equal(auto.chunks, autoChunks(16, 2));
      assert.deepEqual([fixed.control, fixed.threads, fixed.seen, fixed.equal], ['fixed', 3, [3], true], JSON.stringify(fixed));
      assert.equal(fixed.chunks, autoChunks(16, 1)); // 2 chunks x 3 threads would pass the budget of 4
      assert.deepEqual(back, { threads: 2, control: 'auto' });
    },
  );

  (pthreadsOpenBlas ? it : it.skip)(
    `takes its count from TORCH_GUIDANCE_BLAS_THREADS, else keeps OPENBLAS_NUM_THREADS${pthreadsOpenBlas ? '' : ' (skipped: no OpenBLAS with its own threads)'}`,
    () => {
      // OpenBLAS caps its own variable at the cores it sees; 1 fits every machine.
      assert.deepEqual(pick(blasIn({ OPENBLAS_NUM_THREADS: '1' })), { threads: 1, control: 'external' });
      assert.deepEqual(pick(blasIn({ OPENBLAS_NUM_THREADS: '1', TORCH_GUIDANCE_BLAS_THREADS: '2' })), { threads: 2, control: 'fixed' });
      assert.deepEqual(
        pick(blasIn({ TORCH_GUIDANCE_BLAS_THREADS: 'auto', TORCH_GUIDANCE_INTRAOP_THREADS: '6', TORCH_GUIDANCE_JOB_THREADS: '3' })),
        { threads: 2, control: 'auto' },
      );
    },
  );

  it('refuses a thread count that is not one, in setBlasThreads and the environment', () => {
    for (const bad of [0, -1, 1.5, 5000, Number.NaN]) {
      assert.throws(() => setBlasThreads(bad), (e: Error & { code?: string }) => e.code === 'ERR_INVALID_ARGUMENT' && /setBlasThreads/.test(e.message), String(bad));
    }
    const script = "import('./src/index.ts').catch((e) => { console.log(JSON.stringify([e.code, e.message])); })";
    const { value } = child<[string, string]>(['--input-type=module', '-e', script], { TORCH_GUIDANCE_BLAS_THREADS: 'many' });
    assert.equal(value[0], 'ERR_INVALID_OPTION');
    assert.match(value[1], /TORCH_GUIDANCE_BLAS_THREADS=many must be an integer from 1 to 4096, or auto/);
  });

  describe('forced onto the reference BLAS (a child process)', () => {
    const skip = referenceDir ? '' : ' (skipped: no reference BLAS here; install libblas3 or set TORCH_GUIDANCE_TEST_REFERENCE_BLAS to its directory)';
    const reference = referenceDir ? realpathSync(join(referenceDir, 'libblas.so.3')) : '';
    const report = (env: Record<string, string>) =>
      child<{ blas: BlasInfo; problem: string | null; workerBlas: string; mapped: string[] }>(
        [join('test', 'children', 'blas-report.ts')],
        { LD_LIBRARY_PATH: [referenceDir, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':'), ...env },
      );

    (referenceDir ? it : it.skip)(`reports it, warns once per process naming the fix, and fails the fast-BLAS check${skip}`, () => {
      const { value, stderr } = report({});
      assert.deepEqual(
        pick(value.blas, ['name', 'library', 'threads', 'control']),
        { name: 'reference', library: reference, threads: 1, control: 'none' },
      );
      assert.ok(value.mapped.includes(reference), 'the reference BLAS is not mapped');
      assert.equal(value.workerBlas, 'reference');
      // The main thread warns; the worker thread, loading the package again, does not.
      assert.equal(stderr.split(`[${REFERENCE_BLAS_WARNING}]`).length - 1, 1, stderr);
      assert.match(stderr, /apt-get install libopenblas0-pthread/);
      assert.match(stderr, /update-alternatives --config libblas\.so\.3-/);
      assert.match(stderr, /TORCH_GUIDANCE_ALLOW_REFERENCE_BLAS=1/);
      assert.match(value.problem ?? '', /reference BLAS/);
    });

    (referenceDir ? it : it.skip)(`with TORCH_GUIDANCE_ALLOW_REFERENCE_BLAS=1: no warning, and the check passes${skip}`, () => {
      const { value, stderr } = report({ TORCH_GUIDANCE_ALLOW_REFERENCE_BLAS: '1' });
      assert.equal(value.blas.name, 'reference');
      assert.equal(value.problem, null);
      assert.ok(!stderr.includes(REFERENCE_BLAS_WARNING), stderr);
    });
  });
});

describe("parallel 'auto' and the BLAS (splitThreads)", () => {
  it('spreads over every torch thread unless a pinned BLAS count would pass the budget', () => {
    // Already the budget's share (auto), one thread, or torch's own OpenMP threads: no change.
    for (const control of ['auto', 'none', 'intra-op']) assert.equal(splitThreads(2, { control, threads: 8 }, 8), 2, control);
    assert.equal(splitThreads(2, { control: 'fixed', threads: 1 }, 2), 2);
    assert.equal(splitThreads(2, { control: 'fixed', threads: null }, 2), 2);
    // Pinned: floor(budget / threads) chunks at once, at least 1, at most the torch threads.
    assert.equal(splitThreads(2, { control: 'fixed', threads: 2 }, 2), 1);
    assert.equal(splitThreads(4, { control: 'external', threads: 4 }, 16), 4);
    assert.equal(splitThreads(4, { control: 'fixed', threads: 6 }, 16), 2);
    assert.equal(splitThreads(2, { control: 'fixed', threads: 64 }, 16), 1);
  });
});

function pick(blas: BlasInfo, keys: (keyof BlasInfo)[] = ['threads', 'control']): Partial<BlasInfo> {
  return Object.fromEntries(keys.map((k) => [k, blas[k]]));
}

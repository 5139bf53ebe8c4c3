/**
 * Bad input, files and the output directory: data files whose declared sizes
 * are absurd (a gzip bomb, a sparse .npz of 50000x50000 images, an IDX header
 * of a terabyte) refused before they are read; file-system failures (a full
 * device, a read-only one, a directory that cannot be made) typed as ERR_IO
 * with exit 1; the `sample --out` lock held by exactly one of many processes
 * started together; and someone else's directory never written into.
 *
 * The file-system failures are real: the CLI runs in a private mount
 * namespace (unshare) over a tiny tmpfs and a read-only one.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { gzipSync } from 'node:zlib';

import { isTorchGuidanceError, setResourceLimits, resourceLimits } from '../src/index.js';
import { readImageSet } from '../src/io/index.js';
import { parseIdx } from '../src/io/idx.js';
import { writeNpz } from '../src/io/npz.js';
import { type ChildResult, describeChild, probedNode, runCli, runProcess } from './helpers/child.js';
import { type HostileFiles, makeHostileFiles } from './helpers/hostile-files.js';
import { repoRoot } from './helpers/python.js';
import { freshRandom, uniformInt } from './helpers/random.js';

const fixture = join(repoRoot, 'models', 'fixtures', 'tiny-unet.pt');
const classifier = join(repoRoot, 'models', 'fashion-classifier.pt');
const PEAK_RSS_MIB = 700;

/** Whether this machine lets an unprivileged process mount a tmpfs in its own namespace. */
function canUnshare(): boolean {
  try {
    execFileSync('unshare', ['--mount', '--map-root-user', 'sh', '-c', 'd=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs "$d" && umount "$d"; rmdir "$d"'], {
      stdio: 'pipe',
    });
    return true;
  } catch {
    return false;
  }
}

/** The CLI inside a private mount namespace where `mounts` (shell commands) ran first. */
function cliInNamespace(mounts: string, args: string[]): Promise<ChildResult> {
  const node = [...probedNode, '--import', 'tsx', join(repoRoot, 'src', 'cli', 'main.ts'), ...args];
  const quoted = node.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return runProcess('unshare', ['--mount', '--map-root-user', 'sh', '-c', `${mounts} && exec ${quoted}`]);
}

function expectTyped(run: ChildResult, code: string, message: RegExp): void {
  const context = describeChild(run);
  assert.equal(run.signal, null, context);
  assert.notEqual(run.status, 70, `an untyped failure: ${context}`);
  assert.match(run.stderr, new RegExp(`${code}: ${message.source}`), context);
  assert.ok(run.peakRssMiB < PEAK_RSS_MIB, `peak ${run.peakRssMiB} MiB: ${context}`);
}

describe('bad input: files and output directories', function () {
  this.timeout(900_000);
  let files: HostileFiles;
  let dir: string;
  let samples: string;
  before(async () => {
    files = makeHostileFiles(['bomb-small-header.idx.gz', 'bomb-huge-header.idx.gz', 'sparse.npz', 'sparse-small.npz']);
    dir = mkdtempSync(join(tmpdir(), 'tg-io-'));
    // A small valid sample set for `evaluate`: 20 images of 28x28.
    samples = join(dir, 'samples.npz');
    const pixels = new Uint8Array(20 * 28 * 28).map((_, i) => (i * 37) % 251);
    await writeNpz(samples, [{ name: 'arr_0', dtype: 'uint8', shape: [20, 28, 28, 1], data: pixels }]);
  });
  after(() => {
    files.remove();
    rmSync(dir, { recursive: true, force: true });
  });

  describe('declared sizes, checked before reading', () => {
    it('a gzip bomb as --reference (1 MB inflating to 1 GiB): refused at its declared size, memory stays small', async () => {
      const run = await runCli(['evaluate', samples, '--reference', files.path('bomb-small-header.idx.gz'), '--classifier', classifier, '--device', 'cpu']);
      assert.equal(run.status, 2, describeChild(run));
      assert.match(run.stderr, /--reference: .*holds more data than its header declares \(10x28x28 bytes\); stopped inflating there/);
      assert.ok(run.peakRssMiB < PEAK_RSS_MIB, describeChild(run));
    });

    it('an IDX header declaring 78 GB of 28x28 images: ERR_TOO_LARGE naming the limit, exit 1', async () => {
      const run = await runCli(['evaluate', samples, '--reference', files.path('bomb-huge-header.idx.gz'), '--classifier', classifier, '--device', 'cpu']);
      assert.equal(run.status, 1, describeChild(run));
      expectTyped(run, 'ERR_TOO_LARGE', /.*100000000x28x28 bytes of data.*memory limit/);
    });

    it('a sparse .npz declaring 50000x50000 images: refused from its header (the classifier takes 28x28), nothing read', async () => {
      const run = await runCli(['evaluate', files.path('sparse.npz'), '--classifier', classifier, '--device', 'cpu', '--reference', samples]);
      assert.equal(run.status, 1, describeChild(run));
      expectTyped(run, 'ERR_INPUT_SHAPE', /.*takes 1×28×28 images; got 1×50000×50000/);
      assert.ok(run.wallMs < 60_000, describeChild(run));
    });

    it('readImageSet: declared sizes over the memory limit are ERR_TOO_LARGE before a byte of data is read', async () => {
      const limit = resourceLimits().memoryBytes;
      setResourceLimits({ memoryBytes: 16 << 20 });
      try {
        for (const [name, message] of [
          ['sparse.npz', /arr_0 declares 1x50000x50000 images/],
          ['sparse-small.npz', /arr_0 declares 40000x28x28 images/],
          ['bomb-huge-header.idx.gz', /100000000x28x28 bytes/],
        ] as const) {
          await assert.rejects(readImageSet(files.path(name)), (error: unknown) => {
            assert.ok(isTorchGuidanceError(error, 'ERR_TOO_LARGE'), String(error));
            assert.match((error as Error).message, message);
            assert.match((error as Error).message, /memory limit of 16\.0 MiB/);
            return true;
          });
        }
      } finally {
        setResourceLimits({ memoryBytes: limit });
      }
    });
  });

  describe('a memory limit above the largest buffer', () => {
    it('a gzipped IDX file still inflates, read and parsed (zlib takes no cap above the largest Buffer)', async () => {
      const limit = resourceLimits().memoryBytes;
      const dir = mkdtempSync(join(tmpdir(), 'tg-idx-'));
      const rng = freshRandom();
      try {
        const [n, h, w] = [uniformInt(rng, 1, 4), 5, 7];
        const pixels = Uint8Array.from({ length: n * h * w }, () => uniformInt(rng, 0, 255));
        const header = Buffer.alloc(16);
        header.writeUInt32BE(0x00000803, 0);
        [n, h, w].forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
        writeFileSync(join(dir, 'images.idx.gz'), gzipSync(Buffer.concat([header, pixels])));
        setResourceLimits({ memoryBytes: 64 * 2 ** 30 });
        const set = await readImageSet(join(dir, 'images.idx.gz'));
        assert.deepEqual([set.images.count, set.images.height, set.images.width], [n, h, w]);
        assert.deepEqual([...set.images.data], [...pixels]);
        // The in-memory parser too.
        const parsed = parseIdx(gzipSync(Buffer.concat([header, pixels])));
        assert.deepEqual([parsed.shape, [...parsed.data]], [[n, h, w], [...pixels]]);
      } finally {
        setResourceLimits({ memoryBytes: limit });
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe('file-system failures are ERR_IO, exit 1', function () {
    before(function () {
      if (!canUnshare()) this.skip(); // needs user namespaces (unshare -r) to mount a real full / read-only tmpfs
    });
    const run = (out: string, format = 'png', count = '32') => ['sample', '--model', fixture, '--steps', '1', '--count', count, '--format', format, '--out', out];

    it('a full device mid-run (no inodes left): ERR_IO saying the device is full', async () => {
      const mount = join(dir, 'full');
      mkdirSync(mount, { recursive: true });
      const result = await cliInNamespace(`mount -t tmpfs -o size=8m,nr_inodes=12 tmpfs '${mount}'`, run(join(mount, 'run')));
      assert.equal(result.status, 1, describeChild(result));
      expectTyped(result, 'ERR_IO', /.* failed: the device is full \(ENOSPC\)/);
    });

    it('a run larger than the free space: refused before anything is written', async () => {
      const mount = join(dir, 'small');
      mkdirSync(mount, { recursive: true });
      const result = await cliInNamespace(`mount -t tmpfs -o size=64k tmpfs '${mount}'`, run(join(mount, 'run'), 'npz', '1000'));
      assert.equal(result.status, 1, describeChild(result));
      expectTyped(result, 'ERR_IO', /--count 1000 in --format npz needs about .* free; nothing was written/);
    });

    it('a read-only file system (mkdir -p says ENOENT there): ERR_IO naming the read-only ancestor', async () => {
      const mount = join(dir, 'ro');
      mkdirSync(mount, { recursive: true });
      const result = await cliInNamespace(`mount -t tmpfs -o ro tmpfs '${mount}'`, run(join(mount, 'a', 'b', 'run')));
      assert.equal(result.status, 1, describeChild(result));
      expectTyped(result, 'ERR_IO', /could not create the directory .*: '.*ro' is on a read-only file system/);
    });
  });

  describe('the output lock', () => {
    /** Starts `n` contenders for `out`, lets them take the lock at the same moment, and reports who got it. */
    async function trial(out: string, n: number): Promise<{ took: number[]; heldBy: number[]; pids: number[] }> {
      const children = Array.from({ length: n }, () =>
        spawn(process.execPath, [join(repoRoot, 'test', 'children', 'lock-contender.mjs'), out], { cwd: repoRoot, stdio: ['pipe', 'pipe', 'inherit'] }),
      );
      const reports = children.map((child) => {
        const lines = createInterface({ input: child.stdout! });
        const queue: Record<string, number | boolean>[] = [];
        const waiters: ((v: Record<string, number | boolean>) => void)[] = [];
        lines.on('line', (line) => {
          const value = JSON.parse(line) as Record<string, number | boolean>;
          const waiter = waiters.shift();
          if (waiter) waiter(value);
          else queue.push(value);
        });
        return () => (queue.length > 0 ? Promise.resolve(queue.shift()!) : new Promise<Record<string, number | boolean>>((resolve) => waiters.push(resolve)));
      });
      try {
        const ready = await Promise.all(reports.map((next) => next()));
        for (const child of children) child.stdin!.write('go\n');
        const results = await Promise.all(reports.map((next) => next()));
        return {
          took: results.filter((r) => r.took).map((r) => r.pid as number),
          heldBy: results.filter((r) => !r.took).map((r) => r.heldBy as number),
          pids: ready.map((r) => r.ready as number),
        };
      } finally {
        for (const child of children) child.stdin!.end();
        await Promise.all(children.map((child) => new Promise((resolve) => (child.exitCode !== null ? resolve(null) : child.on('exit', resolve)))));
      }
    }

    it('50 trials of 4-8 processes started together: exactly one holds it, the others name it (fresh, empty, stale and garbage lock files)', async () => {
      const rng = freshRandom();
      const setups = [
        (out: string) => mkdirSync(out),
        (out: string) => (mkdirSync(out), writeFileSync(join(out, '.lock'), '')),
        (out: string) => (mkdirSync(out), writeFileSync(join(out, '.lock'), '999999999\n')),
        (out: string) => (mkdirSync(out), writeFileSync(join(out, '.lock'), 'not a pid')),
      ];
      for (let t = 0; t < 50; t++) {
        const out = join(dir, `lock-${t}`);
        setups[t % setups.length]!(out);
        const n = uniformInt(rng, 4, 8);
        const result = await trial(out, n);
        const context = `trial ${t} (setup ${t % setups.length}, ${n} processes, seed ${rng.seed}): ${JSON.stringify(result)}`;
        assert.equal(result.took.length, 1, context);
        assert.equal(result.heldBy.length, n - 1, context);
        // A rival reads the holder's pid, or 0 in the moment before it is written.
        for (const pid of result.heldBy) assert.ok(pid === result.took[0] || pid === 0, context);
        assert.ok(!existsSync(join(out, '.lock')), `the holder's release leaves no lock file: ${context}`);
      }
    });

    it('two sample runs started together into one new --out: one writes, the other exits 2 naming the holder', async () => {
      const out = join(dir, 'race');
      // Long enough (64 samples, 8 steps) that the winner still holds the lock when the other arrives.
      const args = ['sample', '--model', fixture, '--steps', '8', '--count', '64', '--out', out, '--format', 'npz'];
      const [a, b] = await Promise.all([runCli(args), runCli(args)]);
      const statuses = [a.status, b.status].sort();
      assert.deepEqual(statuses, [0, 2], `${describeChild(a)}\n${describeChild(b)}`);
      const loser = a.status === 2 ? a : b;
      assert.match(loser.stderr, /another run \(pid \d+\) is writing there/);
    });
  });

  describe("someone else's directory", () => {
    it('a non-empty --out without a manifest of ours: exit 2, nothing written, nothing deleted (not even files named like temporaries)', async () => {
      const out = join(dir, 'user-folder');
      mkdirSync(out);
      const theirs = ['notes.txt', 'shard-00000.npz.tmp-123-abcdefabcdef', 'holiday.png.tmp-1-aaaaaaaaaaaa'];
      for (const name of theirs) writeFileSync(join(out, name), 'theirs');
      const run = await runCli(['sample', '--model', fixture, '--steps', '1', '--count', '2', '--out', out]);
      assert.equal(run.status, 2, describeChild(run));
      assert.match(run.stderr, /--out .*: is not empty \(.*\) and holds no torch-guidance run \(no manifest\.json\); choose a new or empty directory/);
      assert.deepEqual(readdirSync(out).sort(), [...theirs].sort());
    });

    it('in a run of ours, only temporaries of our own files are removed', async () => {
      const out = join(dir, 'own-run');
      const args = ['sample', '--model', fixture, '--steps', '1', '--count', '2', '--out', out, '--format', 'both'];
      const first = await runCli(args);
      assert.equal(first.status, 0, describeChild(first));
      const ours = ['shard-00000.npz.tmp-99-0123456789ab', 'manifest.json.tmp-99-0123456789ab'];
      const theirs = ['notes.txt.tmp-99-0123456789ab', 'shard-1.npz.tmp-99-0123456789ab'];
      for (const name of [...ours, ...theirs]) writeFileSync(join(out, name), 'x');
      writeFileSync(join(out, 'png', 'cat.png.tmp-99-0123456789ab'), 'x');
      const again = await runCli(args);
      assert.equal(again.status, 0, describeChild(again));
      const left = readdirSync(out);
      for (const name of ours) assert.ok(!left.includes(name), `${name} was ours and stale`);
      for (const name of theirs) assert.ok(left.includes(name), `${name} is not a file a run writes, so it stays`);
      assert.ok(readdirSync(join(out, 'png')).includes('cat.png.tmp-99-0123456789ab'));
    });
  });
});

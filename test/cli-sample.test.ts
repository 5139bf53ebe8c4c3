/**
 * `torch-guidance sample`: a batch run killed with SIGKILL
 * after its first shard lands resumes to a complete output that is byte-equal
 * to an uninterrupted run with the same seed; a partial shard is redone and
 * stale temporary files removed; the .npz files read back through numpy
 * (Debian's /usr/bin/python3); bad flags exit 2 naming the flag and leave no
 * files; a resume with other settings is refused and changes nothing.
 *
 * Runs that write go through the CLI as a child process from source (node
 * --import tsx), as a user runs it; the tiny fixture with 2 steps keeps each
 * to a few seconds. Flag errors are checked in process through
 * sampleCommand() (the same code without the ~2 s start of a child), and two
 * of them through the CLI for the exit code.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { buildStrategy, parseGuidanceSpec } from '../src/guidance/spec.js';
import { config } from '../src/core/config.js';
import { sampleCommand } from '../src/cli/sample.js';
import { UsageError } from '../src/core/usage-error.js';
import { type Strategy, apg, cfg, cfgpp, pag, rescale, runtimeInfo, sag, seg } from '../src/index.js';
import { decodePng } from '../src/image/index.js';
import { writeNpz } from '../src/io/npz.js';
import { python, repoRoot } from './helpers/python.js';

const MAIN = join(repoRoot, 'src', 'cli', 'main.ts');

function cli(...args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: repoRoot, encoding: 'utf8' });
}

/** Every file under `dir` (relative paths, sorted). */
function listFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .sort();
}

/** The UsageError (or parseArgs error) sampleCommand throws for `argv`; fails if it throws nothing or something else. */
async function usageError(argv: string[]): Promise<Error> {
  try {
    await sampleCommand(argv);
  } catch (error) {
    const ok = error instanceof UsageError || String((error as { code?: string }).code).startsWith('ERR_PARSE_ARGS');
    assert.ok(ok, `${argv.join(' ')}: expected a usage error, got ${String(error)}`);
    return error as Error;
  }
  assert.fail(`${argv.join(' ')}: no error`);
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** What numpy sees in an .npz: keys, shapes, dtypes, and a hash of each array's bytes. */
function numpyView(path: string): Record<string, { shape: number[]; dtype: string; sha256: string; values?: number[] }> {
  const script = `
import hashlib, json, sys
import numpy as np
with np.load(sys.argv[1]) as data:
    out = {}
    for key in data.files:
        a = data[key]
        out[key] = {'shape': list(a.shape), 'dtype': str(a.dtype), 'sha256': hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()}
        if a.ndim == 1:
            out[key]['values'] = a.tolist()
print(json.dumps(out))
`;
  return JSON.parse(execFileSync(python, ['-c', script, path], { encoding: 'utf8' }));
}

const COUNT = 8;
const SHARD = 2;
const SHARDS = COUNT / SHARD;
const RUN = [
  'sample',
  '--model', 'models/fixtures/tiny-unet.pt',
  '--device', 'cpu',
  '--guidance', 'cfg:3',
  '--guidance', 'pag:scale=2,sites=mid.*',
  '--steps', '2',
  '--count', String(COUNT),
  '--batch-size', '2',
  '--shard-size', String(SHARD),
  '--seed', '1234',
  '--format', 'both',
];
const EXPECTED_FILES = [
  'manifest.json',
  ...Array.from({ length: COUNT }, (_, i) => `png/${String(i).padStart(8, '0')}.png`),
  'samples.npz',
  ...Array.from({ length: SHARDS }, (_, i) => `shard-${String(i).padStart(5, '0')}.npz`),
].sort();

describe('CLI sample', function () {
  let root: string;
  /** The uninterrupted run, made once. */
  let reference: string;

  before(function () {
    root = mkdtempSync(join(tmpdir(), 'tg-sample-'));
    reference = join(root, 'reference');
    const result = cli(...RUN, '--out', reference);
    assert.equal(result.status, 0, result.stderr);
    // Not a terminal: one plain line per shard.
    assert.equal(result.stderr.match(/^shard \d+\/4 written/gm)?.length, SHARDS, result.stderr);
    assert.match(result.stdout, /wrote samples\.npz/);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('writes shards, PNGs, a merged samples.npz and a manifest, and nothing else', () => {
    assert.deepEqual(listFiles(reference), EXPECTED_FILES);
    const manifest = JSON.parse(readFileSync(join(reference, 'manifest.json'), 'utf8'));
    assert.equal(manifest.settings.count, COUNT);
    assert.equal(manifest.settings.seed, '1234');
    assert.deepEqual(manifest.settings.guidance.map((g: { name: string }) => g.name), ['cfg', 'pag']);
    // --parallel auto is stored with the torch threads it splits over (on the CPU).
    assert.equal(manifest.settings.parallel, 'auto');
    assert.equal(manifest.settings.parallelThreads, config.jobThreads);
    assert.ok(manifest.completedAt);
  });

  it('the .npz files read back through numpy: uint8 NHWC arr_0 equal to the PNGs, int64 labels in arr_1', () => {
    const merged = numpyView(join(reference, 'samples.npz'));
    assert.deepEqual(Object.keys(merged).sort(), ['arr_0', 'arr_1']);
    assert.deepEqual(merged.arr_0!.shape, [COUNT, 28, 28, 1]);
    assert.equal(merged.arr_0!.dtype, 'uint8');
    assert.equal(merged.arr_1!.dtype, 'int64');
    assert.equal(merged.arr_1!.values!.length, COUNT);
    assert.ok(merged.arr_1!.values!.every((l) => Number.isInteger(l) && l >= 0 && l < 10), String(merged.arr_1!.values));
    // The same pixels as the PNGs (decoded by our own decoder), in sample order.
    const pixels = Buffer.concat(
      Array.from({ length: COUNT }, (_, i) => decodePng(readFileSync(join(reference, 'png', `${String(i).padStart(8, '0')}.png`))).data),
    );
    assert.equal(pixels.length, COUNT * 28 * 28);
    assert.equal(merged.arr_0!.sha256, sha256(pixels));
    assert.ok(new Set(pixels).size > 10, 'images are not blank');
    // Each shard holds its slice.
    const labels: number[] = [];
    for (let i = 0; i < SHARDS; i++) {
      const shard = numpyView(join(reference, `shard-${String(i).padStart(5, '0')}.npz`));
      assert.deepEqual(shard.arr_0!.shape, [SHARD, 28, 28, 1]);
      assert.equal(shard.arr_0!.sha256, sha256(pixels.subarray(i * SHARD * 784, (i + 1) * SHARD * 784)));
      labels.push(...shard.arr_1!.values!);
    }
    assert.deepEqual(labels, merged.arr_1!.values);
  });

  it('a run killed after its first shard resumes to files byte-equal to an uninterrupted run', async function () {
    const out = join(root, 'killed');
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...RUN, '--out', out], { cwd: repoRoot });
    let stderr = '';
    const exited = new Promise<NodeJS.Signals | null>((done) => child.on('exit', (_code, signal) => done(signal)));
    await new Promise<void>((landed, failed) => {
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (/^shard 1\/4 written/m.test(stderr)) {
          child.kill('SIGKILL');
          landed();
        }
      });
      child.on('exit', () => failed(new Error(`the run ended before its first shard landed:\n${stderr}`)));
    });
    assert.equal(await exited, 'SIGKILL');
    const afterKill = listFiles(out);
    assert.ok(afterKill.includes('shard-00000.npz'), afterKill.join(' '));
    assert.ok(!afterKill.includes('samples.npz') && !afterKill.includes(`shard-0000${SHARDS - 1}.npz`), `killed too late: ${afterKill.join(' ')}`);
    // What a kill leaves is whole: every shard present reads back through numpy.
    for (const file of afterKill.filter((f) => /^shard-\d+\.npz$/.test(f))) {
      assert.deepEqual(numpyView(join(out, file)).arr_0!.shape, [SHARD, 28, 28, 1], file);
    }

    // Make it harder: a truncated shard (as a disk-full or foreign writer could
    // leave), a deleted PNG, and stale temporaries from an earlier kill.
    truncateSync(join(out, 'shard-00000.npz'), 500);
    rmSync(join(out, 'png', '00000001.png'));
    writeFileSync(join(out, 'shard-00001.npz.tmp-99999-0123456789ab'), 'half a shard');
    writeFileSync(join(out, 'png', '00000003.png.tmp-99999-0123456789ab'), 'half a png');

    const resumed = cli(...RUN, '--out', out);
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr, /resuming/);
    assert.match(resumed.stderr, /2 stale temporary file\(s\) removed/);
    assert.match(resumed.stderr, /redoing partial shard 1: shard-00000\.npz: .*1 of its 2 PNGs missing/);
    // Shard 1 is redone, so this process wrote at least 2 shards' worth.
    assert.equal(resumed.stderr.match(/^shard 1\/4 written/gm)?.length, 1, resumed.stderr);

    // Complete, no duplicates or leftovers (lock and temporaries gone), and byte-equal.
    assert.deepEqual(listFiles(out), EXPECTED_FILES);
    for (const file of EXPECTED_FILES) {
      if (file === 'manifest.json') continue;
      assert.ok(readFileSync(join(out, file)).equals(readFileSync(join(reference, file))), `${file} differs from the uninterrupted run`);
    }
    const settings = (dir: string) => JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')).settings;
    assert.deepEqual(settings(out), settings(reference));

    // Once complete, a rerun writes nothing.
    const again = cli(...RUN, '--out', out);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /already complete/);
  });

  it('Ctrl-C (SIGINT) stops cleanly: exit 1 with ERR_ABORTED, whole files only, no lock left', async () => {
    const out = join(root, 'interrupted');
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...RUN, '--out', out], { cwd: repoRoot });
    let stderr = '';
    const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
    child.stderr.on('data', (chunk: Buffer) => {
      const before = stderr;
      stderr += chunk.toString();
      if (!/^shard 1\/4 written/m.test(before) && /^shard 1\/4 written/m.test(stderr)) child.kill('SIGINT');
    });
    assert.equal(await exited, 1, stderr);
    assert.match(stderr, /ERR_ABORTED: interrupted: \d of 4 shard\(s\) are complete/);
    const files = listFiles(out);
    assert.ok(files.every((f) => EXPECTED_FILES.includes(f)), `unexpected files: ${files.join(' ')}`);
    assert.ok(!files.includes('samples.npz'));
    for (const file of files.filter((f) => f.startsWith('shard-'))) {
      assert.ok(readFileSync(join(out, file)).equals(readFileSync(join(reference, file))), file);
    }
  });

  it('refuses to resume with other settings and leaves the directory as it was', async () => {
    const before = new Map(listFiles(reference).map((f) => [f, sha256(readFileSync(join(reference, f)))]));
    // Through the CLI: exit 2, the differing setting named.
    const otherSeed = cli(...RUN.map((a) => (a === '1234' ? '99' : a)), '--out', reference);
    assert.equal(otherSeed.status, 2, otherSeed.stderr);
    assert.match(otherSeed.stderr, /--out .*different settings/);
    assert.match(otherSeed.stderr, /seed: was "1234", now "99"/);
    // More torch threads would split each forward into more chunks (round-off moves): refused too.
    const moreThreads = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...RUN, '--out', reference], {
      cwd: repoRoot,
      encoding: 'utf8',
      env: { ...process.env, TORCH_GUIDANCE_JOB_THREADS: String(config.jobThreads + 1) },
    });
    assert.equal(moreThreads.status, 2, moreThreads.stderr);
    assert.match(moreThreads.stderr, new RegExp(`parallelThreads: was ${config.jobThreads}, now ${config.jobThreads + 1}`));
    // In process (same code, faster): other guidance, format, batch size.
    const differing: [string, string, RegExp][] = [
      ['cfg:3', 'cfg:4', /guidance\.0\.settings\.scale: was 3, now 4/],
      ['both', 'npz', /format: was "both", now "npz"/],
      ['pag:scale=2,sites=mid.*', 'pag:scale=2,sites=mid.*,sigmaMax=5', /guidance\.1\.settings\.window/],
    ];
    for (const [from, to, message] of differing) {
      const error = await usageError(RUN.slice(1).map((a) => (a === from ? to : a)).concat('--out', reference));
      assert.match(error.message, message);
    }
    const after = new Map(listFiles(reference).map((f) => [f, sha256(readFileSync(join(reference, f)))]));
    assert.deepEqual(after, before);
  });

  it('a run grows to a larger --count: its shards are kept, the short last one redone, and the files equal a run made at that count', async () => {
    const out = join(root, 'grown');
    // 5 samples in shards of 2: the third shard holds one sample, a partial shard of the 8-sample layout.
    const small = cli(...RUN.map((a) => (a === String(COUNT) ? '5' : a)), '--out', out);
    assert.equal(small.status, 0, small.stderr);
    const keptShards = ['shard-00000.npz', 'shard-00001.npz'].map((f) => sha256(readFileSync(join(out, f))));

    const grown = cli(...RUN, '--out', out);
    assert.equal(grown.status, 0, grown.stderr);
    assert.match(grown.stderr, /growing the run from 5 images/);
    assert.match(grown.stderr, /redoing partial shard 3: /);
    // Shards 1 and 2 were kept, not remade; 3 and 4 were made now.
    assert.equal(grown.stderr.match(/^shard \d\/4 written/gm)?.join(','), 'shard 3/4 written,shard 4/4 written');
    assert.match(grown.stdout, /: 4 image\(s\) made in .*, 4 kept from before\./);
    assert.deepEqual(['shard-00000.npz', 'shard-00001.npz'].map((f) => sha256(readFileSync(join(out, f)))), keptShards);

    assert.deepEqual(listFiles(out), EXPECTED_FILES);
    for (const file of EXPECTED_FILES) {
      if (file === 'manifest.json') continue;
      assert.ok(readFileSync(join(out, file)).equals(readFileSync(join(reference, file))), `${file} differs from the run made at --count ${COUNT}`);
    }
    const manifest = (dir: string) => JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    assert.deepEqual(manifest(out).settings, manifest(reference).settings);
    assert.deepEqual(manifest(out).info.grown.map((g: { from: number; to: number }) => [g.from, g.to]), [[5, COUNT]]);
    assert.ok(manifest(out).completedAt);

    // It cannot shrink: refused naming --count, nothing touched.
    const before = new Map(listFiles(out).map((f) => [f, sha256(readFileSync(join(out, f)))]));
    const error = await usageError(RUN.slice(1).map((a) => (a === String(COUNT) ? '6' : a)).concat('--out', out));
    assert.match(error.message, /^--count 6: .* was started with --count 8, and a run can grow but not shrink/);
    // Another setting changed with the count: refused as any other mismatch, both named.
    const both = await usageError(RUN.slice(1).map((a) => (a === String(COUNT) ? '12' : a === '1234' ? '7' : a)).concat('--out', out));
    assert.match(both.message, /different settings/);
    assert.match(both.message, /count: was 8, now 12/);
    assert.match(both.message, /seed: was "1234", now "7"/);
    assert.deepEqual(new Map(listFiles(out).map((f) => [f, sha256(readFileSync(join(out, f)))])), before);
  });

  it('bad flags exit 2 with a message naming the flag, and write nothing', async () => {
    const base = ['--model', 'models/fixtures/tiny-unet.pt', '--device', 'cpu', '--steps', '2', '--count', '2'];
    const cases: [string[], RegExp][] = [
      [['--guidance', 'pag:scale=abc'], /^--guidance pag:scale=abc: scale must be a number$/],
      [['--guidance', 'pag:bogus=1'], /^--guidance pag:bogus=1: unknown option 'bogus'/],
      [['--guidance', 'nonsense:3'], /^--guidance nonsense:3: unknown strategy/],
      [['--guidance', 'cfg:3,sigmaMin=5,sigmaMax=1'], /^--guidance cfg:3,sigmaMin=5,sigmaMax=1: .*sigmaMin must be below sigmaMax/],
      [['--guidance', 'sag:kernelSize=4'], /^--guidance sag:kernelSize=4: kernelSize: must be odd/],
      [['--guidance', 'slg:3,start=0.6,stop=0.5'], /^--guidance slg:3,start=0\.6,stop=0\.5: start: start must be below stop/],
      [['--guidance', 'cfg:3,3'], /^--guidance cfg:3,3: '3' is not key=value/],
      [['--guidance', 'pag:sites=nowhere.*'], /^--guidance pag:sites=nowhere\.\*: .*matches no attention site/],
      [['--guidance', 'autoguidance:2'], /^--guidance autoguidance:2: .*--guide/],
      [['--guidance', 'cfgpp:0.6', '--sampler', 'heun'], /^--guidance cfgpp:0\.6: .*not a first-order sampler/],
      [['--guide', 'models/fixtures/tiny-unet-v.pt'], /^--guide models\/fixtures\/tiny-unet-v\.pt: no --guidance/],
      [['--sampler', 'heun:churn=lots'], /^--sampler heun:churn=lots: churn must be a number/],
      [['--sampler', 'rk4'], /^--sampler rk4: unknown sampler/],
      [['--schedule', 'karras:rho=0'], /^--schedule karras:rho=0: rho: /],
      [['--schedule', 'discrete', '--steps', '5000'], /^--sampler euler --steps 5000 --schedule discrete: steps \(5000\) exceeds/],
      [['--count', '0'], /^--count 0: must be a whole number/],
      [['--batch-size', 'many'], /^--batch-size many: must be a whole number/],
      [['--shard-size', '-'], /^--shard-size -: must be a whole number/],
      [['--parallel', '0'], /^--parallel 0: give auto, or a whole number of chunks/],
      [['--parallel', 'many'], /^--parallel many: give auto, or a whole number of chunks/],
      [['--label', '12'], /^--label 12: this model's classes are 0\.\.9/],
      [['--label', 'cat'], /^--label cat: must be a class number/],
      [['--format', 'jpg'], /^--format jpg: must be png, npz or both/],
      [['--device', 'tpu'], /^--device tpu: must be auto, cpu, cuda/],
      [['--seed', '1.5'], /^--seed 1\.5: must be a whole number/],
      [['--clip=1,-1'], /^--clip 1,-1: must be LOW,HIGH/],
      [['--colour', 'red'], /'--colour'/],
      [['--model', 'models/no-such-model.pt'], /^--model models\/no-such-model\.pt: no readable file/],
      [['--model', 'models/fixtures/tiny-uncond.pt', '--label', '3'], /^--label 3: .* is unconditional/],
    ];
    for (const [i, [flags, message]] of cases.entries()) {
      const out = join(root, `bad-${i}`);
      const error = await usageError([...base, ...flags, '--out', out]);
      assert.match(error.message, message, flags.join(' '));
      assert.ok(!existsSync(out), `${flags.join(' ')} left ${out} behind`);
    }
    // Through the CLI: exit 2 and the message first, for a flag caught before and one after the model loads.
    for (const [flags, message] of [cases[0]!, cases.find(([f]) => f.join(' ') === '--label 12')!]) {
      const out = join(root, 'bad-cli');
      const result = cli('sample', ...base, ...flags, '--out', out);
      assert.equal(result.status, 2, `${flags.join(' ')}: exit ${result.status}\n${result.stderr}`);
      assert.match(result.stderr.split('\n')[0]!.replace(/^torch-guidance sample: /, ''), message);
      assert.ok(!existsSync(out));
    }
  });

  it('--guidance specs build the same strategies as the API calls they stand for', () => {
    const same: [string, Strategy][] = [
      ['cfg:3', cfg({ scale: 3 })],
      ['cfg:2.5,sigmaMin=0.3,sigmaMax=5', cfg({ scale: 2.5, window: { sigmaMin: 0.3, sigmaMax: 5 } })],
      ['pag:scale=3,sites=mid.*', pag({ scale: 3, sites: 'mid.*' })],
      ['pag:2,layers=mid.attn+up.2', pag({ scale: 2, sites: ['mid.attn', 'up.2'] })],
      ['sag:0.5,kernelSize=5,blurSigma=2,branch=given', sag({ scale: 0.5, kernelSize: 5, blurSigma: 2, branch: 'given' })],
      ['seg:sigma=inf,sites=1', seg({ sigma: Infinity, sites: 1 })],
      ['rescale:0.7', rescale({ phi: 0.7 })],
      ['cfg++:0.6', cfgpp({ scale: 0.6 })],
      ['apg:5,momentum=-0.5,eta=0', apg({ scale: 5, momentum: -0.5, eta: 0 })],
    ];
    for (const [spec, expected] of same) {
      const built = buildStrategy(parseGuidanceSpec(spec), undefined);
      assert.equal(built.name, expected.name, spec);
      assert.deepEqual(built.settings, expected.settings, spec);
    }
  });

  it('--format npz --rgb: one .npz per shard and the merge, 3 equal channels', () => {
    const out = join(root, 'rgb');
    const result = cli('sample', '--model', 'models/fixtures/tiny-unet.pt', '--device', 'cpu', '--steps', '2', '--count', '3',
      '--batch-size', '2', '--shard-size', '2', '--label', 'null', '--format', 'npz', '--rgb', '--out', out);
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(listFiles(out), ['manifest.json', 'samples.npz', 'shard-00000.npz', 'shard-00001.npz']);
    const script = `
import sys, json
import numpy as np
a = np.load(sys.argv[1])
x = a['arr_0']
print(json.dumps({'shape': list(x.shape), 'dtype': str(x.dtype), 'equal': bool((x[..., 0] == x[..., 1]).all() and (x[..., 1] == x[..., 2]).all()), 'labels': a['arr_1'].tolist()}))
`;
    const seen = JSON.parse(execFileSync(python, ['-c', script, join(out, 'samples.npz')], { encoding: 'utf8' }));
    assert.deepEqual(seen, { shape: [3, 28, 28, 3], dtype: 'uint8', equal: true, labels: [-1, -1, -1] });
  });

  it('--device cuda: without CUDA, exit 1 with ERR_CUDA_UNAVAILABLE naming the device and nothing written; with it, the CPU run\'s images', () => {
    const flags = ['--model', 'models/fixtures/tiny-unet.pt', '--steps', '2', '--count', '3', '--label', 'random', '--guidance', 'cfg:2'];
    const onCuda = join(root, 'cuda');
    const result = cli('sample', ...flags, '--device', 'cuda', '--out', onCuda);
    if (!runtimeInfo().cudaAvailable) {
      assert.equal(result.status, 1, result.stderr);
      assert.match(result.stderr.split('\n')[0]!, /^torch-guidance sample: ERR_CUDA_UNAVAILABLE: device 'cuda' asked for, but CUDA is not available/);
      assert.ok(!existsSync(onCuda), 'nothing written');
      return;
    }
    assert.equal(result.status, 0, result.stderr);
    const onCpu = join(root, 'cuda-vs-cpu');
    assert.equal(cli('sample', ...flags, '--device', 'cpu', '--out', onCpu).status, 0);
    // Same seeds, same noise (drawn on the CPU either way); kernels differ, so allow a level here and there.
    for (const name of listFiles(join(onCpu, 'png'))) {
      const a = decodePng(readFileSync(join(onCpu, 'png', name))).data;
      const b = decodePng(readFileSync(join(onCuda, 'png', name))).data;
      let off = 0;
      for (let i = 0; i < a.length; i++) if (Math.abs(a[i]! - b[i]!) > 2) off++;
      assert.ok(off <= a.length / 100, `${name}: ${off} of ${a.length} pixels differ by more than 2 levels between CPU and CUDA`);
    }
  });

  it('the .npz writer\'s ZIP64 path (for files past 4 GiB) reads back through numpy', async () => {
    const path = join(root, 'zip64.npz');
    const images = Uint8Array.from({ length: 2 * 5 * 3 * 1 }, (_, i) => (i * 37) % 256);
    const labels = new BigInt64Array([7n, -1n]);
    await writeNpz(path, [
      { name: 'arr_0', dtype: 'uint8', shape: [2, 5, 3, 1], data: images },
      { name: 'arr_1', dtype: 'int64', shape: [2], data: new Uint8Array(labels.buffer) },
    ], { forceZip64: true });
    const seen = numpyView(path);
    assert.deepEqual(seen.arr_0!.shape, [2, 5, 3, 1]);
    assert.equal(seen.arr_0!.sha256, sha256(images));
    assert.deepEqual(seen.arr_1!.values, [7, -1]);
  });
});

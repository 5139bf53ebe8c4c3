/**
 * `torch-guidance evaluate`: FD, precision/recall and accuracy of a set of
 * samples against real images, checked against an independent computation
 * (test/reference/evaluate_images.py: numpy reads the files, Python torch runs
 * the classifier, numpy computes the metrics) on fresh random images each run;
 * the same samples read from a run's png/ directory, from RGB and from an
 * .npz all score alike; bad input exits with a message naming the flag or
 * the problem, and the process never crashes.
 *
 * The images are synthetic (random Gaussian blobs), so the test needs no
 * dataset; the two sets differ in blob count, so their FD is far from zero.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

import { liveHandles } from '../src/index.js';
import { evaluateImages, loadClassifier } from '../src/metrics/index.js';
import { readImageSet } from '../src/io/index.js';
import { encodePng } from '../src/image/png-encode.js';
import { writeNpz } from '../src/io/npz.js';
import { shardArrays } from '../src/io/shards.js';
import { python, repoRoot } from './helpers/python.js';
import { freshRandom, type Rng } from './helpers/random.js';

const MAIN = join(repoRoot, 'src', 'cli', 'main.ts');
const CLASSIFIER = join(repoRoot, 'models', 'fashion-classifier.pt');

function cli(...args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', MAIN, 'evaluate', ...args], { cwd: repoRoot, encoding: 'utf8' });
}

/** `count` 28×28 images, each a sum of `blobs` Gaussian blobs with random centres, widths and heights, as uint8. */
function blobImages(rng: Rng, count: number, blobs: number, side = 28): Uint8Array {
  const out = new Uint8Array(count * side * side);
  for (let n = 0; n < count; n++) {
    const field = new Float64Array(side * side);
    for (let b = 0; b < blobs; b++) {
      const cx = rng.next() * side;
      const cy = rng.next() * side;
      const w = 1.5 + 5 * rng.next();
      const h = 80 + 175 * rng.next();
      for (let y = 0; y < side; y++) for (let x = 0; x < side; x++) field[y * side + x]! += h * Math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * w * w));
    }
    for (let p = 0; p < side * side; p++) out[n * side * side + p] = Math.min(255, Math.round(field[p]!));
  }
  return out;
}

/** An MNIST-style IDX file of uint8 images [count, side, side], gzipped. */
function idxGz(images: Uint8Array, count: number, side = 28): Buffer {
  const header = Buffer.alloc(16);
  header.writeUInt32BE(0x00000803, 0);
  header.writeUInt32BE(count, 4);
  header.writeUInt32BE(side, 8);
  header.writeUInt32BE(side, 12);
  return gzipSync(Buffer.concat([header, images]));
}

interface Result {
  fd: number;
  precision: number;
  recall: number;
  accuracy: number | null;
  sampleCount: number;
  referenceCount: number;
  manifoldSize: number;
}

describe('CLI evaluate', function () {
  const SAMPLES = 300; // more than the 256 feature dimensions: full-rank covariances
  const REFERENCE = 280;
  const K = 3;
  const M = 120;
  let dir: string;
  let rng: Rng;
  let samples: Uint8Array;
  let labels: (number | null)[];

  before(async function () {
    dir = mkdtempSync(join(tmpdir(), 'tg-evaluate-'));
    rng = freshRandom();
    samples = blobImages(rng, SAMPLES, 2);
    labels = Array.from({ length: SAMPLES }, () => (rng.next() < 0.1 ? null : Math.floor(rng.next() * 10)));
    const geometry = { height: 28, width: 28, channels: 1 as const };
    await writeNpz(join(dir, 'samples.npz'), shardArrays({ data: samples, count: SAMPLES, ...geometry }, labels));
    writeFileSync(join(dir, 'reference.idx.gz'), idxGz(blobImages(rng, REFERENCE, 4), REFERENCE));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** The independent numbers for samples.npz against reference.idx.gz. */
  function pythonReference(): Result {
    return JSON.parse(
      execFileSync(python, [join(repoRoot, 'test', 'reference', 'evaluate_images.py'), join(dir, 'samples.npz'), join(dir, 'reference.idx.gz'), CLASSIFIER, String(K), String(M)], {
        encoding: 'utf8',
      }),
    ) as Result;
  }

  /** Asserts `ours` equals the Python reference `theirs` up to the stated round-off. */
  function assertMatches(ours: Result, theirs: Result) {
    const seed = `(seed ${rng.seed})`;
    assert.equal(ours.sampleCount, SAMPLES);
    assert.equal(ours.referenceCount, REFERENCE);
    assert.equal(ours.manifoldSize, M);
    assert.ok(theirs.fd > 1, `the two sets should differ: FD ${theirs.fd} ${seed}`);
    assert.ok(Math.abs(ours.fd - theirs.fd) <= 1e-3 * theirs.fd, `FD ${ours.fd} vs ${theirs.fd} ${seed}`);
    // Float32 features from two runtimes: a point on a manifold's boundary may flip, one of M at most.
    assert.ok(Math.abs(ours.precision - theirs.precision) <= 1 / M + 1e-12, `precision ${ours.precision} vs ${theirs.precision} ${seed}`);
    assert.ok(Math.abs(ours.recall - theirs.recall) <= 1 / M + 1e-12, `recall ${ours.recall} vs ${theirs.recall} ${seed}`);
    const labelled = labels.filter((l) => l !== null).length;
    assert.ok(Math.abs(ours.accuracy! - theirs.accuracy!) <= 1 / labelled + 1e-12, `accuracy ${ours.accuracy} vs ${theirs.accuracy} ${seed}`);
  }

  it('the metrics equal an independent numpy + Python torch computation on fresh random images', function () {
    const run = cli(join(dir, 'samples.npz'), '--reference', join(dir, 'reference.idx.gz'), '--k', String(K), '--manifold-size', String(M), '--device', 'cpu', '--json');
    assert.equal(run.status, 0, run.stderr);
    assertMatches(JSON.parse(run.stdout) as Result, pythonReference());
  });

  it('the API (readImageSet, loadClassifier, evaluateImages) gives the same numbers, and leaves no native job running', async function () {
    const samplesSet = await readImageSet(join(dir, 'samples.npz'));
    const referenceSet = await readImageSet(join(dir, 'reference.idx.gz'));
    assert.deepEqual(samplesSet.labels, labels);
    using classifier = await loadClassifier(CLASSIFIER, { device: 'cpu' });
    const ours = await evaluateImages({ classifier, samples: samplesSet.images, labels: samplesSet.labels, reference: referenceSet.images, k: K, manifoldSize: M });
    assertMatches(ours, pythonReference());
    assert.equal(liveHandles().jobs, 0);
    // Bad metric options are refused before the classifier runs.
    const forwards = classifier.model.forwardCount;
    const options = { classifier, samples: samplesSet.images, reference: referenceSet.images };
    await assert.rejects(evaluateImages({ ...options, k: 0 }), /k 0: must be a whole number ≥ 1/);
    await assert.rejects(evaluateImages({ ...options, manifoldSize: 3 }), /manifoldSize 3: needs a whole number above k = 3/);
    assert.equal(classifier.model.forwardCount, forwards);
  });

  it('a run directory of PNGs, RGB samples and the .npz score the same; without labels there is no accuracy', async function () {
    // A png-only run directory (what `sample --format png` leaves), and the same samples as RGB in an .npz.
    const pngRun = join(dir, 'png-run');
    mkdirSync(join(pngRun, 'png'), { recursive: true });
    const rgb = new Uint8Array(SAMPLES * 784 * 3);
    for (let i = 0; i < SAMPLES; i++) {
      const image = samples.subarray(i * 784, (i + 1) * 784);
      writeFileSync(join(pngRun, 'png', `${String(i).padStart(8, '0')}.png`), encodePng({ width: 28, height: 28, channels: 1, data: image }));
      for (let p = 0; p < 784; p++) rgb.fill(image[p]!, (i * 784 + p) * 3, (i * 784 + p) * 3 + 3);
    }
    await writeNpz(join(dir, 'rgb.npz'), shardArrays({ data: rgb, count: SAMPLES, height: 28, width: 28, channels: 3 }, undefined));
    const flags = ['--reference', join(dir, 'reference.idx.gz'), '--manifold-size', String(M), '--device', 'cpu', '--json'];
    const results = [join(dir, 'samples.npz'), pngRun, join(dir, 'rgb.npz')].map((path) => {
      const run = cli(path, ...flags);
      assert.equal(run.status, 0, `${path}: ${run.stderr}`);
      return JSON.parse(run.stdout) as Result;
    });
    for (const result of results.slice(1)) {
      assert.equal(result.fd, results[0]!.fd);
      assert.equal(result.precision, results[0]!.precision);
      assert.equal(result.recall, results[0]!.recall);
      assert.equal(result.accuracy, null);
    }
    assert.equal(typeof results[0]!.accuracy, 'number');
  });

  it('bad input exits 2 naming the flag, or 1 with a typed error naming the problem', function () {
    writeFileSync(join(dir, 'not-images.bin'), 'not an image file');
    const cases: [string[], number, RegExp][] = [
      [[join(dir, 'missing.npz'), '--reference', join(dir, 'reference.idx.gz')], 2, /^torch-guidance evaluate: <samples>: .*missing\.npz: no such file/],
      [[join(dir, 'samples.npz'), '--reference', join(dir, 'not-images.bin')], 2, /^torch-guidance evaluate: --reference: .*not-images\.bin: neither \.npz nor an IDX image file/],
      [[join(dir, 'samples.npz'), '--reference', join(dir, 'reference.idx.gz'), '--k', '0'], 2, /^torch-guidance evaluate: --k 0: must be a whole number from 1 to 1,000/],
      [[join(dir, 'samples.npz'), '--reference', join(dir, 'reference.idx.gz'), '--manifold-size', '3'], 2, /--manifold-size 3: needs more than --k 3 images/],
      [[join(dir, 'samples.npz'), '--reference', join(dir, 'reference.idx.gz'), '--classifier', join(dir, 'nope.pt')], 2, /--classifier .*nope\.pt: no such file/],
      // A denoiser is not a classifier.
      [[join(dir, 'samples.npz'), '--reference', join(dir, 'reference.idx.gz'), '--classifier', 'models/fixtures/tiny-unet.pt', '--device', 'cpu'], 1, /ERR_INVALID_ARGUMENT: .*tiny-unet\.pt is not an evaluation classifier/],
    ];
    for (const [args, status, message] of cases) {
      const run = cli(...args);
      assert.equal(run.status, status, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr.split('\n')[0]!, message);
      assert.equal(run.stdout, '');
    }
  });

  it('images of another size than the classifier takes: exit 1 with ERR_INPUT_SHAPE naming both', async function () {
    const small = new Uint8Array(20 * 16 * 16).map(() => Math.floor(rng.next() * 256));
    await writeNpz(join(dir, 'small.npz'), shardArrays({ data: small, count: 20, height: 16, width: 16, channels: 1 }, undefined));
    const run = cli(join(dir, 'small.npz'), '--reference', join(dir, 'reference.idx.gz'), '--device', 'cpu');
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /ERR_INPUT_SHAPE: .*fashion-classifier\.pt takes 1×28×28 images; got 1×16×16/);
  });
});

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { arch, platform, tmpdir } from 'node:os';
import { join } from 'node:path';

import { repoRoot } from './helpers/python.js';

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const SHIPPED_MODELS = ['fashion-unet.pt', 'fashion-unet-weak.pt', 'fashion-unet-sims.pt', 'fashion-classifier.pt'];

/** What both apps print: a short CFG run on the shipped model, found through the package. */
const SAMPLE_REPORT = `
  const model = await loadModel(modelPath, { device: 'cpu' });
  const result = await sample({ model, guidance: [cfg({ scale: 2 })], labels: [1, 7], seed: 3,
    sampler: { name: 'euler', steps: 2 }, clipDenoised: [-1, 1] });
  const report = { modelPath, shape: result.images.shape, forwards: result.forwards, pixels: Array.from(await result.images.toArray()) };
  result.images.dispose();
  model.dispose();`;

/**
 * What both apps print about the entries: the names each one exports, and one
 * call through each tool entry on a tensor or error of the root entry (so the
 * entries share one copy of the addon and of the error class).
 */
const ENTRY_REPORT = `
  const entries = { root, image, io, metrics, queue };
  const names = Object.fromEntries(Object.entries(entries).map(([k, m]) => [k, Object.keys(m).sort()]));
  const x = root.full([1, 1, 2, 2], 0.5);
  const pixels = Array.from((await image.toUint8Batch(x)).data);
  x.dispose();
  const png = image.decodePng(image.encodePng({ width: 1, height: 1, channels: 1, data: new Uint8Array([7]) })).data[0];
  const set = { data: Float32Array.from({ length: 40 * 2 }, (_, i) => Math.cos(i * i)), count: 40, dim: 2 };
  const { precision } = await metrics.featureMetrics(set, set);
  const missing = await io.readImageSet('no-such-run').catch((e) => (root.isTorchGuidanceError(e) ? e.code : String(e)));
  const report = { names, pixels, png, precision, missing, queueName: queue.DEFAULT_QUEUE_NAME };`;

/**
 * Whether prebuilds/ already holds the current build: the build facts copied
 * from build/Release unchanged, and the binary made after that build's. Then
 * `npm run prebuild` would only run cmake-js and prebuildify again over the
 * same build.
 */
function prebuildIsCurrent(): boolean {
  const prebuild = join(repoRoot, 'prebuilds', `${platform()}-${arch()}`);
  const build = join(repoRoot, 'build', 'Release');
  try {
    const sameFacts = readFileSync(join(prebuild, 'torch-guidance.json'), 'utf8') === readFileSync(join(build, 'torch_guidance.json'), 'utf8');
    return sameFacts && statSync(join(prebuild, 'torch-guidance.node')).mtimeMs >= statSync(join(build, 'torch_guidance.node')).mtimeMs;
  } catch {
    return false;
  }
}

interface EntryReport {
  names: Record<string, string[]>;
  pixels: number[];
  png: number;
  precision: number;
  missing: string;
  queueName: string;
}

// The published package: `npm run prebuild`, `npm pack`, then an install into
// an empty folder where every compiler and build tool is a trap that records
// its use. The install must load the prebuild and build nothing; an ES module
// app and a CommonJS app must both sample with the model the package ships,
// and the command line's defaults must work from the app's folder.
describe('packed package', function () {
  this.timeout(900_000);
  let scratch: string;
  let tarball: string;
  let app: string;
  let installed: string;
  let marker: string;
  let env: NodeJS.ProcessEnv;
  let installLog: string;

  before(() => {
    scratch = mkdtempSync(join(tmpdir(), 'tg-pack-'));
    if (!prebuildIsCurrent()) execFileSync(npm, ['run', 'prebuild'], { cwd: repoRoot, stdio: 'pipe' });
    execFileSync(npm, ['pack', '--pack-destination', scratch], { cwd: repoRoot, stdio: 'pipe' });
    const name = readdirSync(scratch).find((f) => f.endsWith('.tgz'));
    assert.ok(name, 'npm pack made no tarball');
    tarball = join(scratch, name);

    const traps = join(scratch, 'traps');
    marker = join(scratch, 'compiler-ran');
    mkdirSync(traps);
    for (const tool of ['cmake', 'c++', 'g++', 'gcc', 'cc', 'clang', 'make', 'ninja', 'node-gyp']) {
      const path = join(traps, tool);
      writeFileSync(path, `#!/bin/sh\necho "${tool} $*" >> "${marker}"\nexit 1\n`);
      chmodSync(path, 0o755);
    }
    // An app folder that is neither ES module nor CommonJS by default: each app says so by its extension.
    app = join(scratch, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }));
    env = { ...process.env, PATH: `${traps}:${process.env.PATH}` };
    // The dependencies come from npm's cache where it has them; the registry is asked only for what it lacks.
    const install = spawnSync(npm, ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts'], {
      cwd: app,
      env,
      encoding: 'utf8',
    });
    installLog = `${install.stdout}\n${install.stderr}`;
    assert.equal(install.status, 0, installLog);
    installed = join(app, 'node_modules', 'torch-guidance');
  });
  after(() => rmSync(scratch, { recursive: true, force: true }));

  it('installs from its tarball into an empty folder and loads the prebuild without compiling', () => {
    const prebuildDir = join(repoRoot, 'prebuilds', `${platform()}-${arch()}`);
    assert.ok(existsSync(join(prebuildDir, 'torch-guidance.node')));
    assert.ok(existsSync(join(prebuildDir, 'torch-guidance.json')));
    assert.match(installLog, /no build needed/);
    assert.ok(!existsSync(marker), 'a compiler or build tool ran during install');
    assert.ok(!existsSync(join(installed, 'build')), 'the install built the addon');

    const script = `
      import { loadModel, runtimeInfo, randn, tensor } from 'torch-guidance';
      import { featureMetrics } from 'torch-guidance/metrics';
      const info = runtimeInfo();
      const model = await loadModel('node_modules/torch-guidance/models/fashion-unet.pt', { device: 'cpu' });
      const out = await model.forward(randn([2, 1, 28, 28], { seed: 1 }), tensor(new Float32Array([1, 2]), [2]),
        tensor(new BigInt64Array([0n, 10n]), [2]));
      // The statistics run in a worker thread loaded from the compiled package (dist/metrics/*.js).
      const set = { data: Float32Array.from({ length: 40 * 4 }, (_, i) => Math.sin(i * i)), count: 40, dim: 4 };
      const metrics = await featureMetrics(set, set);
      console.log(JSON.stringify({ binaryPath: info.binaryPath, shape: out.shape, metrics }));`;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: app, env, encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const result = JSON.parse(run.stdout);
    assert.equal(result.binaryPath, join(installed, 'prebuilds', `${platform()}-${arch()}`, 'torch-guidance.node'));
    assert.deepEqual(result.shape, [2, 1, 28, 28]);
    // A set against itself: FD 0 up to round-off, every point inside the other manifold.
    assert.ok(Math.abs(result.metrics.fd) < 1e-9, `FD of a set with itself: ${result.metrics.fd}`);
    assert.deepEqual([result.metrics.precision, result.metrics.recall], [1, 1]);
    assert.ok(!existsSync(marker), 'a compiler or build tool ran while loading');
  });

  it('ships the demo models, the licence and no test fixtures or dangling source maps', () => {
    const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map((f) => f.replace(/^package\//, ''));
    for (const model of SHIPPED_MODELS) assert.ok(files.includes(`models/${model}`), `models/${model} is not in the tarball`);
    assert.ok(files.includes('LICENSE'));
    assert.deepEqual(files.filter((f) => f.startsWith('models/fixtures/')), []);
    // Source maps would point at src/, which is not published.
    assert.deepEqual(files.filter((f) => f.endsWith('.map')), []);
    assert.deepEqual(files.filter((f) => f.startsWith('src/') || f.startsWith('test/')), []);
    const megabytes = statSync(tarball).size / 2 ** 20;
    assert.ok(megabytes < 25, `the tarball is ${megabytes.toFixed(1)} MiB`);

    const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8'));
    assert.equal(manifest.license, 'MIT');
    assert.match(readFileSync(join(installed, 'LICENSE'), 'utf8'), /^MIT License/);
    for (const field of ['repository', 'homepage', 'bugs']) assert.ok(manifest[field], `package.json has no ${field}`);
  });

  it('an ES module app and a CommonJS app both sample with the shipped model, found through the package', () => {
    writeFileSync(
      join(app, 'esm-app.mjs'),
      `import { fileURLToPath } from 'node:url';
import { cfg, loadModel, sample } from 'torch-guidance';
const modelPath = fileURLToPath(import.meta.resolve('torch-guidance/models/fashion-unet.pt'));
${SAMPLE_REPORT}
console.log(JSON.stringify(report));
`,
    );
    // require() of the package (an ES module without top-level await) needs Node >= 20.19, the supported minimum.
    writeFileSync(
      join(app, 'cjs-app.cjs'),
      `const { cfg, loadModel, sample } = require('torch-guidance');
const modelPath = require.resolve('torch-guidance/models/fashion-unet.pt');
(async () => {
${SAMPLE_REPORT}
  console.log(JSON.stringify(report));
})().catch((error) => { console.error(error); process.exitCode = 1; });
`,
    );
    const reports = ['esm-app.mjs', 'cjs-app.cjs'].map((file) => {
      const run = spawnSync(process.execPath, [file], { cwd: app, env, encoding: 'utf8' });
      assert.equal(run.status, 0, `${file}: ${run.stderr}`);
      return JSON.parse(run.stdout) as { modelPath: string; shape: number[]; forwards: number; pixels: number[] };
    });
    const [esm, cjs] = reports as [(typeof reports)[0], (typeof reports)[0]];
    assert.equal(esm.modelPath, join(installed, 'models', 'fashion-unet.pt'));
    assert.equal(cjs.modelPath, esm.modelPath);
    assert.deepEqual(esm.shape, [2, 1, 28, 28]);
    assert.equal(esm.forwards, 2);
    assert.ok(esm.pixels.every((v) => Number.isFinite(v) && v >= -1 && v <= 1));
    // One package, two module systems: the same seeds give the same samples.
    assert.deepEqual(cjs.pixels, esm.pixels);
    assert.ok(!existsSync(marker), 'a compiler or build tool ran while sampling');
  });

  it('the tool entries (image, io, metrics, queue) resolve from both module systems, their types too, and stay out of the root', () => {
    writeFileSync(
      join(app, 'esm-entries.mjs'),
      `import * as root from 'torch-guidance';
import * as image from 'torch-guidance/image';
import * as io from 'torch-guidance/io';
import * as metrics from 'torch-guidance/metrics';
import * as queue from 'torch-guidance/queue';
${ENTRY_REPORT}
console.log(JSON.stringify(report));
`,
    );
    writeFileSync(
      join(app, 'cjs-entries.cjs'),
      `const root = require('torch-guidance');
const image = require('torch-guidance/image');
const io = require('torch-guidance/io');
const metrics = require('torch-guidance/metrics');
const queue = require('torch-guidance/queue');
(async () => {
${ENTRY_REPORT}
  console.log(JSON.stringify(report));
})().catch((error) => { console.error(error); process.exitCode = 1; });
`,
    );
    const [esm, cjs] = ['esm-entries.mjs', 'cjs-entries.cjs'].map((file) => {
      const run = spawnSync(process.execPath, [file], { cwd: app, env, encoding: 'utf8' });
      assert.equal(run.status, 0, `${file}: ${run.stderr}`);
      return JSON.parse(run.stdout) as EntryReport;
    }) as [EntryReport, EntryReport];
    // require() of an ES module yields its namespace with the module marker; the names are the same.
    const exported = (r: EntryReport) => Object.fromEntries(Object.entries(r.names).map(([k, v]) => [k, v.filter((n) => n !== '__esModule' && n !== 'module.exports')]));
    assert.deepEqual(exported(cjs), exported(esm));
    const { root, image, io, metrics, queue } = exported(esm) as Record<string, string[]>;
    for (const name of ['loadModel', 'sample', 'explain', 'cfg', 'pag', 'tensor', 'runtimeInfo', 'TorchGuidanceError']) assert.ok(root!.includes(name), `the root lacks ${name}`);
    for (const [entry, names, wanted] of [
      ['image', image!, ['toImages', 'toUint8Batch', 'writePng', 'imageGrid', 'Canvas']],
      ['io', io!, ['readImageSet']],
      ['metrics', metrics!, ['featureMetrics', 'evaluateImages', 'loadClassifier']],
      ['queue', queue!, ['createSamplingQueue', 'runWorker', 'DEFAULT_QUEUE_NAME']],
    ] as const) {
      for (const name of wanted) assert.ok(names.includes(name), `torch-guidance/${entry} lacks ${name}`);
      const leaked = names.filter((n) => root!.includes(n));
      assert.deepEqual(leaked, [], `the root also exports torch-guidance/${entry}'s ${leaked.join(', ')}`);
    }
    for (const report of [esm, cjs]) {
      assert.deepEqual(report.pixels, [191, 191, 191, 191]); // 0.5 in [-1, 1] as 8 bits
      assert.equal(report.png, 7);
      assert.equal(report.precision, 1);
      assert.equal(report.missing, 'ERR_INVALID_ARGUMENT');
      assert.equal(report.queueName, 'torch-guidance');
    }

    // The types condition: an app type-checks against the shipped declarations, and a tool taken from the root is an error.
    const types = join(app, 'types');
    mkdirSync(types);
    writeFileSync(
      join(types, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, skipLibCheck: true, types: [] } }),
    );
    writeFileSync(
      join(types, 'app.mts'),
      `import { cfg, loadModel, type Tensor } from 'torch-guidance';
import { toImages, type RasterImage } from 'torch-guidance/image';
import { readImageSet, type ImageSet } from 'torch-guidance/io';
import { featureMetrics, type FeatureMetrics } from 'torch-guidance/metrics';
import { createSamplingQueue, type SamplingRunOptions } from 'torch-guidance/queue';
export type All = [Tensor, RasterImage, ImageSet, FeatureMetrics, SamplingRunOptions];
export const all = [cfg, loadModel, toImages, readImageSet, featureMetrics, createSamplingQueue];
`,
    );
    writeFileSync(join(types, 'wrong.mts'), `import { featureMetrics } from 'torch-guidance';\nexport const f = featureMetrics;\n`);
    const tsc = join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');
    const checked = spawnSync(process.execPath, [tsc, '-p', types], { cwd: app, encoding: 'utf8' });
    const errors = checked.stdout.split('\n').filter((line) => /error TS/.test(line));
    assert.equal(errors.length, 1, checked.stdout);
    assert.match(errors[0]!, /wrong\.mts\(1,10\): error TS2305: .*'featureMetrics'/);
  });

  it("the command line's defaults find the shipped models from the app's folder", () => {
    const bin = join(app, 'node_modules', '.bin', 'torch-guidance');
    const cli = (...args: string[]) => spawnSync(bin, args, { cwd: app, env, encoding: 'utf8' });
    assert.ok(!existsSync(join(app, 'models')), 'the app has a models/ folder of its own');

    const version = cli('--version');
    assert.equal(version.status, 0, version.stderr);
    assert.equal(version.stdout.trim(), JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')).version);

    // sample: the default --model.
    const run = join(app, 'run');
    const sampled = cli('sample', '--count', '8', '--steps', '2', '--guidance', 'cfg:2', '--device', 'cpu', '--format', 'npz', '--out', run);
    assert.equal(sampled.status, 0, sampled.stderr);
    assert.ok(existsSync(join(run, 'samples.npz')));

    // evaluate: the default --classifier (the run against itself, so no data set is needed).
    const scored = cli('evaluate', run, '--reference', run, '--device', 'cpu', '--json');
    assert.equal(scored.status, 0, scored.stderr);
    const scores = JSON.parse(scored.stdout);
    // 8 samples in 256-d features: FD 0 up to the round-off of a rank-8 covariance's square root.
    assert.ok(Math.abs(scores.fd) < 1e-3, `FD of a run against itself: ${scores.fd}`);
    assert.deepEqual([scores.precision, scores.recall], [1, 1]);
    assert.equal(typeof scores.accuracy, 'number');

    // compare: the default main model, guide, SIMS negative and classifier (rows and column are left out when missing).
    const compared = cli('compare', '--only', 'autoguidance,sims', '--steps', '1', '--device', 'cpu', '--out', join(app, 'compare'));
    assert.equal(compared.status, 0, compared.stderr);
    const report = readFileSync(join(app, 'compare', 'compare.md'), 'utf8');
    assert.match(report, /^\| autoguidance \|/m);
    assert.match(report, /^\| sims \|/m);
    assert.match(report, /Classifier: node_modules\/torch-guidance\/models\/fashion-classifier\.pt/);

    // attention: the default --model.
    const attention = cli('attention', '--labels', '0', '--steps', '1', '--device', 'cpu', '--out', join(app, 'attention'));
    assert.equal(attention.status, 0, attention.stderr);
    assert.ok(existsSync(join(app, 'attention', 'attention.png')));
  });
});

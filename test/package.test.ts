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
    execFileSync(npm, ['run', 'prebuild'], { cwd: repoRoot, stdio: 'pipe' });
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
    const install = spawnSync(npm, ['install', tarball, '--no-audit', '--no-fund', '--foreground-scripts'], {
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

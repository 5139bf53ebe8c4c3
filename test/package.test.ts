import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { arch, platform, tmpdir } from 'node:os';
import { join } from 'node:path';

import { repoRoot } from './helpers/python.js';

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

// The published package: `npm run prebuild`, `npm pack`, then an install into
// an empty folder where every compiler and build tool is a trap that records
// its use. The install must load the prebuild and build nothing.
describe('packed package', function () {
  this.timeout(600_000);
  let scratch: string;
  before(() => {
    scratch = mkdtempSync(join(tmpdir(), 'tg-pack-'));
  });
  after(() => rmSync(scratch, { recursive: true, force: true }));

  it('installs from its tarball into an empty folder and loads the prebuild without compiling', () => {
    execFileSync(npm, ['run', 'prebuild'], { cwd: repoRoot, stdio: 'pipe' });
    const prebuildDir = join(repoRoot, 'prebuilds', `${platform()}-${arch()}`);
    assert.ok(existsSync(join(prebuildDir, 'torch-guidance.node')));
    assert.ok(existsSync(join(prebuildDir, 'torch-guidance.json')));

    execFileSync(npm, ['pack', '--pack-destination', scratch], { cwd: repoRoot, stdio: 'pipe' });
    const tarball = readdirSync(scratch).find((f) => f.endsWith('.tgz'));
    assert.ok(tarball, 'npm pack made no tarball');

    const traps = join(scratch, 'traps');
    const marker = join(scratch, 'compiler-ran');
    mkdirSync(traps);
    for (const tool of ['cmake', 'c++', 'g++', 'gcc', 'cc', 'clang', 'make', 'ninja', 'node-gyp']) {
      const path = join(traps, tool);
      writeFileSync(path, `#!/bin/sh\necho "${tool} $*" >> "${marker}"\nexit 1\n`);
      chmodSync(path, 0o755);
    }
    const app = join(scratch, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    const env = { ...process.env, PATH: `${traps}:${process.env.PATH}` };
    const install = spawnSync(npm, ['install', join(scratch, tarball), '--no-audit', '--no-fund', '--foreground-scripts'], {
      cwd: app,
      env,
      encoding: 'utf8',
    });
    assert.equal(install.status, 0, `${install.stdout}\n${install.stderr}`);
    assert.match(install.stdout + install.stderr, /no build needed/);
    assert.ok(!existsSync(marker), 'a compiler or build tool ran during install');
    const installed = join(app, 'node_modules', 'torch-guidance');
    assert.ok(!existsSync(join(installed, 'build')), 'the install built the addon');

    const script = `
      import { featureMetrics, loadModel, runtimeInfo, randn, tensor } from 'torch-guidance';
      const info = runtimeInfo();
      const model = await loadModel('node_modules/torch-guidance/models/fixtures/tiny-unet.pt', { device: 'cpu' });
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
});

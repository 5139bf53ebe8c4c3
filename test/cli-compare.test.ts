import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { cfg, explain, loadModel, pag } from '../src/index.js';
import { decodePng } from '../src/image/index.js';
import { repoRoot } from './helpers/python.js';
import { freshRandom } from './helpers/random.js';

function cli(...args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'src', 'cli', 'main.ts'), ...args], { cwd: repoRoot, encoding: 'utf8' });
}

describe('CLI compare', () => {
  let out: string;
  beforeEach(() => {
    out = mkdtempSync(join(tmpdir(), 'tg-compare-'));
  });
  afterEach(() => rmSync(out, { recursive: true, force: true }));

  it('writes a labelled picture and a report whose forward counts are the planned ones', async () => {
    const steps = 2 + Math.floor(freshRandom().next() * 3);
    const fixture = 'models/fixtures/tiny-unet.pt';
    const result = cli('compare', '--model', fixture, '--guide', 'models/fixtures/tiny-unet-v.pt', '--only', 'none,cfg+pag,autoguidance',
      '--steps', String(steps), '--device', 'cpu', '--out', out);
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(readdirSync(out).sort(), ['compare.md', 'compare.png']);
    const picture = decodePng(readFileSync(join(out, 'compare.png')));
    // Ten 28x28 tiles at scale 2 in each of three rows, plus labels: wider than the tiles, taller than three rows.
    assert.ok(picture.width > 10 * 56 && picture.height > 3 * 56, `${picture.width}x${picture.height}`);
    const report = readFileSync(join(out, 'compare.md'), 'utf8');
    using model = await loadModel(fixture, { device: 'cpu' });
    const labels = Array.from({ length: 10 }, (_, i) => i);
    const planned = explain({ model, guidance: [cfg({ scale: 3 }), pag({ scale: 3 })], sampler: { name: 'euler', steps }, labels, batchSize: 10 });
    assert.match(report, new RegExp(`\\| cfg\\+pag \\| cfg\\(scale=3[^|]*\\) \\+ pag\\(scale=3[^|]*\\) \\| ${planned.forwards} \\(1/step\\) \\| 3 \\|`));
    assert.match(report, new RegExp(`\\| none \\| unguided \\| ${steps} \\(1/step\\) \\| 1 \\|`));
    assert.match(report, new RegExp(`\\| autoguidance \\| autoguidance\\(scale=2\\) \\| ${2 * steps} \\(2/step\\) \\| 2 \\|`));
    assert.match(report, /\| (\d+)\/10 \|/, 'classifier column');
  });

  it('refuses bad flags with exit 2, naming the flag, and writes nothing', () => {
    for (const [args, pattern] of [
      [['--steps', '0'], /--steps 0: must be a whole number from 1 to 10,000/],
      [['--only', 'cfg,nonsense'], /--only: no row named 'nonsense'/],
      [['--bogus'], /bogus/],
    ] as const) {
      const result = cli('compare', ...args, '--out', out);
      assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, pattern);
      assert.deepEqual(readdirSync(out), []);
    }
  });
});

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { decodePng } from '../src/image/index.js';
import { repoRoot } from './helpers/python.js';

function cli(...args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'src', 'cli', 'main.ts'), ...args], { cwd: repoRoot, encoding: 'utf8' });
}

describe('CLI attention', () => {
  let out: string;
  beforeEach(() => {
    out = mkdtempSync(join(tmpdir(), 'tg-attention-'));
  });
  afterEach(() => rmSync(out, { recursive: true, force: true }));

  it('draws the samples, one row per chosen site and the SAG mask', () => {
    const result = cli('attention', '--model', 'models/fixtures/tiny-unet.pt', '--labels', '1,4,null', '--steps', '2', '--sites', 'mid.attn,up.2',
      '--device', 'cpu', '--out', out);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /2 site\(s\), 3 sample\(s\)/);
    const picture = decodePng(readFileSync(join(out, 'attention.png')));
    // Rows: samples, mid.attn, up.2, SAG mask; three 28x28 tiles at scale 3 each.
    assert.ok(picture.height >= 4 * 84 && picture.height < 5 * 84 + 60, `height ${picture.height}`);
    assert.ok(picture.width >= 3 * 84, `width ${picture.width}`);
  });

  it('refuses an unknown site or a bad flag with exit 2 and writes nothing', () => {
    for (const [args, pattern] of [
      [['--sites', 'mid.attn,nowhere'], /--sites: no self-attention site 'nowhere'; sites: down\.3, mid\.attn, up\.2/],
      [['--sigma=-1'], /--sigma must be a positive number/],
      [['--labels', '1,x'], /--labels: 'x'/],
    ] as const) {
      const result = cli('attention', '--model', 'models/fixtures/tiny-unet.pt', '--device', 'cpu', ...args, '--out', out);
      assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, pattern);
      assert.deepEqual(readdirSync(out), []);
    }
  });
});

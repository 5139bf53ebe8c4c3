import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

import { loadModel } from '../src/index.js';
import { python, repoRoot } from './helpers/python.js';

interface ReferenceSite {
  path: string;
  selfAttention: boolean;
  grid: [number, number] | null;
}

const models = [
  ...readdirSync(join(repoRoot, 'models')).filter((f) => f.endsWith('.pt')).map((f) => `models/${f}`),
  ...readdirSync(join(repoRoot, 'models', 'fixtures')).filter((f) => f.endsWith('.pt')).map((f) => `models/fixtures/${f}`),
];

function inspect(path: string) {
  return spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'src', 'cli', 'main.ts'), 'inspect', path, '--device', 'cpu', '--json'], {
    cwd: repoRoot,
    encoding: 'utf8',
  });
}

describe('inspect on every shipped model and fixture', function () {
  this.timeout(300_000);
  // Independent list: the scripted modules' own hierarchy and class names, grids
  // from eager twins with forward pre-hooks (test/reference/attention_sites.py).
  let reference: Record<string, ReferenceSite[]>;
  before(() => {
    reference = JSON.parse(
      execFileSync(python, [join(repoRoot, 'test', 'reference', 'attention_sites.py'), ...models], { cwd: repoRoot, encoding: 'utf8' }),
    ) as Record<string, ReferenceSite[]>;
  });

  it('covers the four trained models and every fixture', () => {
    for (const name of ['fashion-unet', 'fashion-unet-weak', 'fashion-unet-sims', 'fashion-classifier']) assert.ok(models.includes(`models/${name}.pt`), name);
    assert.ok(models.filter((m) => m.startsWith('models/fixtures/')).length >= 10);
  });

  it('lists the hookable module outputs (TSG, skip-layer guidance) in the JSON and the table', async () => {
    const path = 'models/fixtures/tiny-unet.pt';
    using model = await loadModel(join(repoRoot, path), { device: 'cpu' });
    const printed = (JSON.parse(inspect(path).stdout) as { model: { moduleSites: unknown } }).model.moduleSites;
    assert.deepEqual(printed, JSON.parse(JSON.stringify(model.moduleSites)));
    const table = spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'src', 'cli', 'main.ts'), 'inspect', path, '--device', 'cpu'], {
      cwd: repoRoot,
      encoding: 'utf8',
    }).stdout;
    assert.match(table, new RegExp(`modules +${model.moduleSites.length} hookable output`));
    for (const site of model.moduleSites) assert.match(table, new RegExp(`\\b${site.id} +${site.path.replace(/[.#]/g, '\\$&')} +(skippable|no skip)`));
    assert.ok(model.moduleSites.some((s) => s.path === 'time_embed'), 'the card\'s time embedding is tagged');
  });

  for (const path of models) {
    it(`${path}: the sites, their self/cross kind and query grids`, () => {
      const result = inspect(path);
      if (path.endsWith('broken-card.pt')) {
        // Its card is not JSON: inspect refuses it with the card error, exit 1.
        assert.equal(result.status, 1, result.stderr);
        assert.match(result.stderr, /ERR_MODEL_CARD/);
        return;
      }
      assert.equal(result.status, 0, result.stderr);
      const printed = (JSON.parse(result.stdout) as { model: { attentionSites: ReferenceSite[]; card: unknown } }).model;
      const expected = reference[path]!;
      assert.deepEqual(printed.attentionSites.map((s) => [s.path, s.selfAttention]), expected.map((s) => [s.path, s.selfAttention]));
      printed.attentionSites.forEach((site, i) => {
        if (expected[i]!.grid) assert.deepEqual(site.grid, expected[i]!.grid, site.path);
        // Every site of a model with a card is probed: no unknown grid on self-attention whose tokens
        // tile the (square) sample; a ViT's class token makes 1 + 7² tokens, which tile nothing.
        const tokens = (site as { tokens?: { queries: number } | null }).tokens?.queries ?? 0;
        if (printed.card && site.selfAttention && Number.isInteger(Math.sqrt(tokens))) assert.ok(site.grid, `${site.path} has no grid`);
      });
    });
  }
});

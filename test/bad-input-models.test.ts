/**
 * Bad input, model files: files whose code reaches outside the model (refused
 * unless trusted, and nothing of theirs runs first), truncated and garbled
 * archives, cards and records that declare absurd sizes, and paths that are
 * no regular file. Every load runs in a child process, whose exit status,
 * typed error and peak memory are checked.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { type ChildResult, describeChild, runCli, runTs } from './helpers/child.js';
import { type HostileFiles, makeHostileFiles } from './helpers/hostile-files.js';
import { repoRoot } from './helpers/python.js';
import { freshRandom } from './helpers/random.js';

/** A loaded tiny model in a child stays far below this; a bomb or a probe of an absurd sample would not. */
const PEAK_RSS_MIB = 600;

interface LoadReport {
  ok?: boolean;
  sites?: number;
  probed?: number;
  code?: string | null;
  message?: string;
}

async function load(path: string, ...flags: string[]): Promise<{ run: ChildResult; report: LoadReport }> {
  const run = await runTs('test/children/load-model.ts', [path, ...flags], { timeoutMs: 120_000 });
  const context = describeChild(run);
  assert.equal(run.signal, null, `killed: ${context}`);
  assert.equal(run.status, 0, context);
  assert.ok(run.json, `no report: ${context}`);
  assert.ok(run.peakRssMiB < PEAK_RSS_MIB, `peak ${run.peakRssMiB} MiB: ${context}`);
  return { run, report: run.json as LoadReport };
}

function expectRefused(report: LoadReport, code: string, message: RegExp, context = ''): void {
  assert.equal(report.code, code, `${report.message} ${context}`);
  assert.match(report.message ?? '', message, context);
}

describe('bad input: model files', function () {
  this.timeout(600_000);
  let files: HostileFiles;
  before(() => {
    files = makeHostileFiles([
      'save.pt',
      'save-unet.pt',
      'save-in-branch.pt',
      'save-in-helper.pt',
      'print.pt',
      'from-file.pt',
      'fork-print.pt',
      'manual-seed.pt',
      'setstate.pt',
      'warn.pt',
      'truncated-weight.pt',
      'card-bomb.pt',
      'card-huge-shape.pt',
      'card-big-shape.pt',
      'card-timesteps.pt',
      'version-garbled.pt',
    ]);
  });
  after(() => files.remove());
  afterEach(() => assert.deepEqual(readdirSync(files.markers), [], 'a side-effect model wrote a file: its code ran'));

  describe('untrusted code', () => {
    const cases: [string, RegExp][] = [
      ['save.pt', /aten::save.*writes a tensor to a file.*Save\.forward/],
      ['save-in-branch.pt', /aten::save/],
      ['save-in-helper.pt', /aten::save.*Helper\.keep/],
      ['print.pt', /prim::Print.*prints/],
      ['from-file.pt', /aten::from_file.*maps a file/],
      ['fork-print.pt', /prim::Print.*shout/],
      ['manual-seed.pt', /aten::manual_seed.*global random generator/],
      ['setstate.pt', /__setstate__.*runs while the file loads/],
    ];
    for (const [name, message] of cases) {
      it(`${name}: refused with ERR_UNTRUSTED_MODEL naming the operator and the opt-in`, async () => {
        const { report } = await load(files.path(name));
        expectRefused(report, 'ERR_UNTRUSTED_MODEL', message);
        assert.match(report.message!, /trust: 'full'.*--trust/);
      });
    }

    it('warnings.warn is allowed (torch\'s own modules warn); trust: full loads the others', async () => {
      assert.equal((await load(files.path('warn.pt'))).report.ok, true);
      assert.equal((await load(files.path('print.pt'), '--trust')).report.ok, true);
    });

    it('inspect runs none of an untrusted file\'s code; with --trust its probe runs, which proves the scan is what stopped it', async () => {
      const refused = await runCli(['inspect', files.path('save-unet.pt'), '--device', 'cpu']);
      assert.equal(refused.status, 1, describeChild(refused));
      assert.match(refused.stderr, /ERR_UNTRUSTED_MODEL: .*aten::save/);
      assert.deepEqual(readdirSync(files.markers), [], 'the probe at load ran the model');
      const trusted = await runCli(['inspect', files.path('save-unet.pt'), '--device', 'cpu', '--trust']);
      assert.equal(trusted.status, 0, describeChild(trusted));
      assert.match(trusted.stdout, /3 site\(s\)/);
      assert.ok(existsSync(join(files.markers, 'saved.pt')), 'with --trust the probe forward ran torch.save');
      rmSync(join(files.markers, 'saved.pt'));
    });

    it('the shipped models and every fixture pass the scan', async () => {
      const models = [...readdirSync(join(repoRoot, 'models')).filter((n) => n.endsWith('.pt')).map((n) => join(repoRoot, 'models', n))];
      const fixtures = readdirSync(join(repoRoot, 'models', 'fixtures'))
        .filter((n) => n.endsWith('.pt') && n !== 'broken-card.pt')
        .map((n) => join(repoRoot, 'models', 'fixtures', n));
      for (const path of [...models, ...fixtures]) {
        const { report } = await load(path);
        assert.equal(report.ok, true, `${path}: ${report.message}`);
      }
    });
  });

  describe('archives', () => {
    it('a weight record shorter than its tensor: ERR_NOT_TORCHSCRIPT naming the record, trusted or not', async () => {
      for (const flags of [[], ['--trust']]) {
        const { report } = await load(files.path('truncated-weight.pt'), ...flags);
        expectRefused(report, 'ERR_NOT_TORCHSCRIPT', /record 'tiny-unet\/data\/\d+' holds .* its tensor needs .*truncated/);
      }
    });

    it('a model.json that inflates to 1 GiB: ERR_MODEL_CARD before it is read', async () => {
      const { report } = await load(files.path('card-bomb.pt'));
      expectRefused(report, 'ERR_MODEL_CARD', /declares 1\.0 GiB; a card is at most 1\.0 MiB/);
    });

    it('an archive larger than the memory limit: ERR_TOO_LARGE naming the limit and how to raise it', async () => {
      const run = await runTs('test/children/load-model.ts', [join(repoRoot, 'models', 'fashion-unet.pt')], {
        env: { TORCH_GUIDANCE_MEMORY_LIMIT: '100KiB' },
      });
      assert.equal(run.status, 0, describeChild(run));
      expectRefused(run.json as LoadReport, 'ERR_TOO_LARGE', /memory limit of 100\.0 KiB.*TORCH_GUIDANCE_MEMORY_LIMIT/);
    });

    it('a version record that is not a number, and random damage anywhere: ERR_NOT_TORCHSCRIPT, never another code or a crash', async () => {
      const { report } = await load(files.path('version-garbled.pt'));
      expectRefused(report, 'ERR_NOT_TORCHSCRIPT', /version seven/);
      const { seed } = freshRandom();
      const dir = mkdtempSync(join(tmpdir(), 'tg-garble-'));
      try {
        const run = await runTs('test/children/garble.ts', [join(repoRoot, 'models', 'fixtures', 'tiny-unet.pt'), String(seed), '60', dir], {
          timeoutMs: 300_000,
        });
        const context = `seed ${seed}: ${describeChild(run)}`;
        assert.equal(run.signal, null, context);
        assert.equal(run.status, 0, context);
        const { outcomes } = run.json as { outcomes: Record<string, number> };
        // A damaged byte that no reader looks at (padding, a field libtorch ignores) loads; everything else is refused alike.
        assert.deepEqual(Object.keys(outcomes).filter((k) => k !== 'ok' && k !== 'ERR_NOT_TORCHSCRIPT'), [], context);
        assert.ok((outcomes.ERR_NOT_TORCHSCRIPT ?? 0) >= 40, context);
        assert.ok(run.peakRssMiB < PEAK_RSS_MIB, context);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe('cards', () => {
    it('a sampleShape of 50000x50000: ERR_MODEL_CARD, no probe', async () => {
      const { report } = await load(files.path('card-huge-shape.pt'));
      expectRefused(report, 'ERR_MODEL_CARD', /sampleShape: the sizes' product must be at most/);
    });

    it('timesteps 1e12: ERR_MODEL_CARD (was a RangeError)', async () => {
      const { report } = await load(files.path('card-timesteps.pt'));
      expectRefused(report, 'ERR_MODEL_CARD', /schedule\.timesteps/);
    });

    it('a sample too large to probe within the memory limit loads unprobed instead of allocating', async () => {
      const run = await runTs('test/children/load-model.ts', [files.path('card-big-shape.pt')], { env: { TORCH_GUIDANCE_MEMORY_LIMIT: '1GiB' } });
      assert.equal(run.status, 0, describeChild(run));
      const report = run.json as LoadReport;
      assert.equal(report.ok, true, report.message);
      assert.equal(report.sites, 3);
      assert.equal(report.probed, 0, 'probed a 4096x4096 sample');
      assert.ok(run.peakRssMiB < PEAK_RSS_MIB, describeChild(run));
    });
  });

  describe('paths that are no regular file', () => {
    let dir: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'tg-special-'));
      execFileSync('mkfifo', [join(dir, 'model.fifo')]);
      mkdirSync(join(dir, 'model-dir.pt'));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    const cases: [string, RegExp][] = [
      ['model.fifo', /is a FIFO \(named pipe\), not a model file: models load from regular files only/],
      ['model-dir.pt', /is a directory, not a model file/],
    ];
    for (const [name, message] of cases) {
      it(`${name}: ERR_MODEL_NOT_FOUND at once, saying regular files only`, async () => {
        const { run, report } = await load(join(dir, name));
        expectRefused(report, 'ERR_MODEL_NOT_FOUND', message);
        assert.ok(run.wallMs < 60_000, describeChild(run));
      });
    }

    it('/dev/zero (a device that never ends): refused before a byte is read', async () => {
      const { report } = await load('/dev/zero');
      expectRefused(report, 'ERR_MODEL_NOT_FOUND', /is a character device/);
    });

    it('sample --model on a FIFO: a usage error (exit 2), not a hang while hashing it', async () => {
      const run = await runCli(['sample', '--model', join(dir, 'model.fifo'), '--count', '1', '--out', join(dir, 'out')], { timeoutMs: 60_000 });
      assert.equal(run.status, 2, describeChild(run));
      assert.match(run.stderr, /not a regular file/);
    });
  });
});

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  ErrorCodes,
  autoguidance,
  cfg,
  checkModelCard,
  explain,
  icg,
  loadModel,
  pag,
  randn,
  sample,
  seg,
  tensor,
  type Model,
  type Strategy,
  type Tensor,
} from '../src/index.js';
import { Denoiser } from '../src/guidance/denoiser.js';
import { decodePng } from '../src/image/index.js';
import { GuidedDenoiser } from '../src/guidance/guided-denoiser.js';
import { expectCode } from './helpers/errors.js';
import { precondition, refOf, timestepOf } from './helpers/guidance-reference.js';
import { python, repoRoot } from './helpers/python.js';
import { freshRandom, randomFloat32, relativeError } from './helpers/random.js';

// The real-size architectures of models/architectures in their narrow
// configurations, exported with scripts/export (test/reference/export_roundtrip.py):
// an SD 1.x-style UNet with a [77, 768] text context and a VAE decoder beside
// it (scripted and traced), an SDXL-style UNet with three named conditions,
// and a class-conditional DiT.
const MID = 'mid_block.attentions.0.transformer_blocks.0.attn1';
const LATENT = [4, 16, 16];
const CONTEXT = [77, 768];

describe('real architectures: named conditions, a decoder stage, version 2 cards', function () {
  this.timeout(600_000);
  let dir: string;
  const rng = freshRandom();
  const file = (name: string) => join(dir, `${name}.pt`);

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tg-real-'));
    execFileSync(python, [join(repoRoot, 'test', 'reference', 'export_roundtrip.py'), dir, String(rng.seed)], { stdio: 'pipe', maxBuffer: 1 << 26 });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const exported of ['scripted', 'traced'] as const) {
    describe(`SD-style UNet (${exported})`, () => {
      let model: Model;
      before(async () => {
        model = await loadModel(file(`sd15-narrow-${exported}`), { device: 'cpu' });
      });
      after(() => model?.dispose());

      it('finds and names all 32 attention sites, with the grids of every level, probed at a reduced size', async () => {
        const sites = model.attentionSites;
        assert.equal(sites.length, 32);
        const grids = new Map(sites.map((s) => [s.path, s.grid]));
        assert.deepEqual(grids.get('down_blocks.0.attentions.0.transformer_blocks.0.attn1'), [16, 16]);
        assert.deepEqual(grids.get('down_blocks.1.attentions.1.transformer_blocks.0.attn2'), [8, 8]);
        assert.deepEqual(grids.get('down_blocks.2.attentions.0.transformer_blocks.0.attn1'), [4, 4]);
        assert.deepEqual(grids.get(MID), [2, 2]);
        assert.deepEqual(grids.get('up_blocks.3.attentions.2.transformer_blocks.0.attn2'), [16, 16]);
        for (const site of sites) {
          assert.equal(site.selfAttention, site.path.endsWith('attn1'), site.path);
          if (!site.selfAttention) assert.equal(site.tokens!.keys, 77, site.path);
        }
        // The reduced probe gives what a full-size probe gives.
        const scaled = sites.map((s) => ({ ...s }));
        const inputs = [randn([1, ...LATENT], { seed: 1 }), tensor(new Float32Array([500]), [1]), tensor(new Float32Array(77 * 768), [1, ...CONTEXT])];
        try {
          assert.deepEqual(await model.probe(...inputs), scaled);
        } finally {
          for (const t of inputs) t.dispose();
        }
      });

      it('loads the null condition the archive stores, to the bit', async () => {
        const stored = new Float32Array(readFileSync(join(dir, 'sd15-null.bin')).buffer.slice(0));
        const null_ = model.nullConditions.get('encoder_hidden_states')!;
        assert.deepEqual(null_.shape, [1, ...CONTEXT]);
        assert.deepEqual(await null_.toArray(), stored);
      });

      it('explains a CFG+PAG plan on the card\'s default sites', () => {
        const plan = explain({ model, guidance: [cfg({ scale: 5 }), pag({ scale: 2 })], conditions: { encoder_hidden_states: zeros([2, ...CONTEXT]) }, sampler: { name: 'euler', steps: 2 } });
        const text = JSON.stringify(plan);
        assert.match(text, new RegExp(MID.replace(/\./g, '\\.')));
        assert.doesNotMatch(text, /\*\*\.mid\.\*/);
      });
    });
  }

  function zeros(shape: number[]): Tensor {
    return tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape);
  }

  /**
   * One guided prediction of the engine against the formula computed
   * independently: one forward per branch (model.run with that branch's
   * hooks), x0 from the card's preconditioning in JS, the mix in float64.
   */
  async function checkPrediction(main: Model, strategies: Strategy[], formula: (d: Record<string, Float64Array>) => Float64Array, branches: Record<string, { model: Model; condition: 'given' | 'null'; hooks?: object[] }>) {
    const n = 2;
    const ref = refOf('sd', main);
    const sigma = 0.5 + 5 * rng.next();
    const x = randomFloat32(n * 4 * 16 * 16, rng).map((v) => v * sigma);
    const ehs = randomFloat32(n * 77 * 768, rng);
    const { cIn, time, x0 } = precondition(ref, sigma);
    const nullValues = (await main.nullConditions.get('encoder_hidden_states')!.toArray()) as Float32Array;
    const d: Record<string, Float64Array> = {};
    for (const [name, branch] of Object.entries(branches)) {
      const condition = branch.condition === 'given' ? ehs : Float32Array.from({ length: n * 77 * 768 }, (_, i) => nullValues[i % (77 * 768)]!);
      const inputs = [tensor(x.map((v) => v * cIn), [n, ...LATENT]), tensor(new Float32Array(n).fill(time), [n]), tensor(condition, [n, ...CONTEXT])];
      try {
        const { output } = await branch.model.run<Tensor>({ inputs, hooks: (branch.hooks ?? []) as never });
        const f = (await output.toArray()) as Float32Array;
        output.dispose();
        d[name] = Float64Array.from(f, (v, i) => x0(x[i]!, v));
      } finally {
        for (const t of inputs) t.dispose();
      }
    }
    const expected = formula(d);
    const main_ = Denoiser.of(main);
    const given = tensor(ehs, [n, ...CONTEXT]);
    const nulls = main.nullConditions.get('encoder_hidden_states')!.repeat(n);
    const guided = new GuidedDenoiser({ main: main_, strategies, conditions: { given: [given], null: [nulls] }, unconditional: false, seeds: [1n, 2n] });
    const xt = tensor(x, [n, ...LATENT]);
    try {
      const { denoised } = await guided.predict(xt, guided.stepInfo(0, 10, sigma));
      const ours = (await denoised.toArray()) as Float32Array;
      denoised.dispose();
      const error = relativeError(ours, expected);
      assert.ok(error < 1e-4, `relative error ${error} (seed ${rng.seed}, sigma ${sigma}, t ${timestepOf(ref, sigma)})`);
    } finally {
      guided.dispose();
      for (const t of [given, nulls, xt]) t.dispose();
    }
  }

  describe('every strategy\'s prediction on the SD-style UNet equals its formula', () => {
    let main: Model;
    let weak: Model;
    before(async () => {
      main = await loadModel(file('sd15-narrow-traced'), { device: 'cpu' });
      weak = await loadModel(file('sd15-narrow-scripted'), { device: 'cpu' });
    });
    after(() => {
      main?.dispose();
      weak?.dispose();
    });
    const mix = (f: (a: number[]) => number, ...parts: Float64Array[]) => Float64Array.from(parts[0]!, (_, i) => f(parts.map((p) => p[i]!)));
    const pagHook = [{ sites: MID, action: 'identity' }];
    const segHook = [{ sites: MID, action: 'blur', sigma: Infinity }];

    it('CFG: D(c) + (w - 1)(D(c) - D(null)), with the stored empty-prompt null', () =>
      checkPrediction(main, [cfg({ scale: 4 })], (d) => mix(([c, u]) => c! + 3 * (c! - u!), d.c!, d.u!), {
        c: { model: main, condition: 'given' },
        u: { model: main, condition: 'null' },
      }));
    it('PAG on the card\'s default site: D(c) + s(D(c) - D_identity(c))', () =>
      checkPrediction(main, [pag({ scale: 2 })], (d) => mix(([c, p]) => c! + 2 * (c! - p!), d.c!, d.p!), {
        c: { model: main, condition: 'given' },
        p: { model: main, condition: 'given', hooks: pagHook },
      }));
    it('SEG on the card\'s default site: D(c) + s(D(c) - D_blur(c))', () =>
      checkPrediction(main, [seg({ scale: 3 })], (d) => mix(([c, p]) => c! + 3 * (c! - p!), d.c!, d.p!), {
        c: { model: main, condition: 'given' },
        p: { model: main, condition: 'given', hooks: segHook },
      }));
    it('CFG + PAG stacked', () =>
      checkPrediction(main, [cfg({ scale: 3 }), pag({ scale: 1.5 })], (d) => mix(([c, u, p]) => c! + 2 * (c! - u!) + 1.5 * (c! - p!), d.c!, d.u!, d.p!), {
        c: { model: main, condition: 'given' },
        u: { model: main, condition: 'null' },
        p: { model: main, condition: 'given', hooks: pagHook },
      }));
    it('autoguidance with the other export as the guide: D(c) + (w - 1)(D(c) - D_guide(c))', () =>
      checkPrediction(main, [autoguidance({ guide: weak, scale: 2 })], (d) => mix(([c, g]) => c! + (c! - g!), d.c!, d.g!), {
        c: { model: main, condition: 'given' },
        g: { model: weak, condition: 'given' },
      }));
  });

  it('samples with named conditions, runs the decoder after the last step, and returns the latents it decoded', async () => {
    await using model = await loadModel(file('sd15-narrow-traced'), { device: 'cpu' });
    const decoder = (await model.loadDecoder())!;
    assert.equal((decoder.card as { kind?: string } | null)?.kind, 'decoder');
    using context = tensor(randomFloat32(2 * 77 * 768, rng), [2, ...CONTEXT]);
    const result = await sample({ model, guidance: [cfg({ scale: 3 })], conditions: { encoder_hidden_states: context }, sampler: { name: 'euler', steps: 2 }, keepLatents: true, seed: 7 });
    try {
      assert.deepEqual(result.images.shape, [2, 3, 128, 128]);
      assert.deepEqual(result.latents!.shape, [2, ...LATENT]);
      using z = result.latents!.div(0.18215);
      const { output } = await decoder.run<Tensor>({ inputs: [z] });
      using expected = output;
      assert.ok(relativeError((await result.images.toArray()) as Float32Array, (await expected.toArray()) as Float32Array) < 1e-5);
      // decode: false returns the same latents.
      const raw = await sample({ model, guidance: [cfg({ scale: 3 })], conditions: { encoder_hidden_states: context }, sampler: { name: 'euler', steps: 2 }, decode: false, seed: 7 });
      using latents = raw.images;
      assert.deepEqual(await latents.toArray(), await result.latents!.toArray());
    } finally {
      result.images.dispose();
      result.latents?.dispose();
    }
  });

  it('refuses named conditions that do not fit the card, naming the field', async () => {
    await using model = await loadModel(file('sd15-narrow-traced'), { device: 'cpu' });
    using wrong = tensor(new Float32Array(2 * 77 * 10), [2, 77, 10]);
    using right = tensor(new Float32Array(2 * 77 * 768), [2, ...CONTEXT]);
    const cases: [object, RegExp][] = [
      [{ conditions: right }, /named conditions \{ encoder_hidden_states \}/],
      [{ conditions: { encoder_hidden_states: wrong } }, /conditions\.encoder_hidden_states: has shape \[2, 77, 10\]/],
      [{ conditions: { encoder_hidden_states: right, pooled: right } }, /conditions\.pooled: the model has no condition input/],
      [{ conditions: {} }, /conditions\.encoder_hidden_states: missing/],
      [{ conditions: { encoder_hidden_states: right }, count: 3 }, /count: 3, but the conditions hold 2/],
    ];
    for (const [options, message] of cases) {
      const error = await expectCode(ErrorCodes.INVALID_OPTION, () => sample({ model, sampler: { name: 'euler', steps: 1 }, decode: false, ...options } as never));
      assert.match(error.message, message);
    }
  });

  it('SDXL-style conditions: a shared [1, ...] condition, a negative prompt, and ICG keeping the size ids', async () => {
    await using model = await loadModel(file('sdxl-narrow-traced'), { device: 'cpu' });
    assert.equal(model.attentionSites.length > 0, true);
    using ehs = tensor(randomFloat32(2 * 77 * 64, rng), [2, 77, 64]);
    using pooled = tensor(randomFloat32(48, rng), [1, 48]);
    using ids = tensor(new Float32Array([64, 64, 0, 0, 64, 64]), [1, 6]);
    using negative = tensor(randomFloat32(77 * 64, rng), [1, 77, 64]);
    const run = (guidance: Strategy[], nullConditions?: Record<string, Tensor>) =>
      sample({ model, guidance, conditions: { encoder_hidden_states: ehs, text_embeds: pooled, time_ids: ids }, ...(nullConditions ? { nullConditions } : {}), sampler: { name: 'euler', steps: 2 }, seed: 3 });
    const plain = await run([cfg({ scale: 3 })]);
    const negated = await run([cfg({ scale: 3 })], { encoder_hidden_states: negative });
    const random = await run([icg({ scale: 3 })]);
    try {
      assert.deepEqual(plain.images.shape, [2, 4, 16, 16]);
      const a = (await plain.images.toArray()) as Float32Array;
      assert.ok(relativeError((await negated.images.toArray()) as Float32Array, a) > 1e-3, 'a negative prompt changes the samples');
      assert.ok(((await random.images.toArray()) as Float32Array).every(Number.isFinite));
    } finally {
      for (const r of [plain, negated, random]) r.images.dispose();
    }
  });

  it('a class-conditional DiT: sites per block on the 8x8 patch grid, sampled with CFG and PAG', async () => {
    await using model = await loadModel(file('dit-narrow-scripted'), { device: 'cpu' });
    assert.deepEqual(model.attentionSites.map((s) => [s.path, s.grid]), [0, 1, 2, 3].map((i) => [`blocks.${i}.attn`, [8, 8]]));
    const result = await sample({ model, guidance: [cfg({ scale: 2 }), pag({ sites: 'blocks.2.attn', scale: 1 })], labels: [1, 2], sampler: { name: 'euler', steps: 2 } });
    using images = result.images;
    assert.deepEqual(images.shape, [2, 4, 16, 16]);
  });

  it('the attention command draws a latent model with named conditions: captured on the latents, over the decoded images', () => {
    const out = mkdtempSync(join(tmpdir(), 'tg-real-attention-'));
    try {
      const levels = ['down_blocks.0.attentions.0', 'down_blocks.1.attentions.0', 'down_blocks.2.attentions.0'].map((b) => `${b}.transformer_blocks.0.attn1`);
      const result = spawnSync(
        process.execPath,
        ['--import', 'tsx', join(repoRoot, 'src', 'cli', 'main.ts'), 'attention', '--model', file('sd15-narrow-traced'), '--count', '2', '--steps', '2', '--tile', '32',
          '--sites', [...levels, MID].join(','), '--device', 'cpu', '--out', out],
        { cwd: repoRoot, encoding: 'utf8' },
      );
      assert.equal(result.status, 0, result.stderr);
      assert.match(result.stdout, /4 site\(s\), 2 sample\(s\)/);
      const picture = decodePng(readFileSync(join(out, 'attention.png')));
      // Rows: samples, four sites (16x16 to 2x2 grids), SAG's mask; tiles: the decoder's 128x128 images drawn 32 wide.
      assert.ok(picture.height >= 6 * 32 && picture.height < 7 * 32 + 80, `height ${picture.height}`);
      // Two 32-pixel tiles per row after the label column (as wide as the longest site path).
      assert.ok(picture.width >= 2 * 32, `width ${picture.width}`);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('checks version 2 cards, naming the field; version 1 cards stay valid', () => {
    const base = {
      name: 'x',
      version: '1',
      prediction: 'eps',
      sampleShape: [4, 8, 8],
      schedule: { kind: 'discrete', betas: 'scaled_linear', betaStart: 0.00085, betaEnd: 0.012, timesteps: 1000 },
    };
    const named = { kind: 'named', inputs: { encoder_hidden_states: { shape: [77, 768], null: 'zeros' } } };
    assert.ok('card' in checkModelCard({ ...base, conditioning: { kind: 'none' } }));
    assert.ok('card' in checkModelCard({ ...base, cardVersion: 2, conditioning: named, decoder: { file: 'vae.pt', scalingFactor: 0.18215 } }));
    const problems = (card: object) => {
      const checked = checkModelCard(card);
      assert.ok('problems' in checked, JSON.stringify(card));
      return checked.problems.join('; ');
    };
    assert.match(problems({ ...base, conditioning: named }), /cardVersion: .*need cardVersion: 2/);
    assert.match(problems({ ...base, cardVersion: 2, conditioning: { kind: 'none' }, decoder: { file: '../vae.pt', scalingFactor: 1 } }), /decoder\.file: must be a path inside/);
    assert.match(problems({ ...base, cardVersion: 2, conditioning: { kind: 'none' }, decoder: { file: 'vae.pt', scalingFactor: 0 } }), /decoder\.scalingFactor/);
    assert.match(problems({ ...base, cardVersion: 2, conditioning: { kind: 'named', inputs: { 'bad name': { shape: [1], null: 'zeros' } } } }), /conditioning\.inputs/);
    assert.match(problems({ ...base, cardVersion: 2, conditioning: { kind: 'named', inputs: { a: { shape: [1], null: { file: '/etc/passwd' } } } } }), /conditioning\.inputs\.a\.null/);
    assert.match(problems({ cardVersion: 2, kind: 'decoder', name: 'v', version: '1' }), /latentShape/);
  });
});

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ErrorCodes, loadModel, tensor, type Model, type Tensor } from '../src/index.js';
import { expectCode } from './helpers/errors.js';
import { python, pythonTorchVersion, repoRoot } from './helpers/python.js';
import { freshRandom, relativeError } from './helpers/random.js';

// models/fixtures/attention_forms.py: attention written the ways real
// codebases write it, each form scripted and traced (under no_grad), checked
// against test/reference/attention_forms_reference.py, which perturbs the
// same eager modules' attention explicitly (no hook ops). Sample 1 of 3 is
// perturbed; samples 0 and 2 must stay bit-identical to the plain forward.
const BATCH = 3;
const START = 1;
const SAMPLE = 4 * 6 * 8;

interface FormCase {
  /** Every site, in order: [path, self-attention, grid]. */
  sites: [string, boolean, [number, number]][];
  /** The sites whose actions are checked, and the module skip removes for each. */
  checked: { site: string; skip: string }[];
  /** Site kinds, scripted and traced (nn.MultiheadAttention: fused op vs explicit path). */
  kinds?: { scripted: string; traced: string };
  /** Only Python torch >= 2.0 can write this form. */
  needsTorch2?: boolean;
}

const pythonTorch = pythonTorchVersion();
const torch2 = Number.parseInt(pythonTorch, 10) >= 2;
const G: [number, number] = [6, 8];
const P: [number, number] = [3, 4]; // 2x2 patches
const attn = (site: string, skip = site) => ({ site, skip });

const FORMS: Record<string, FormCase> = {
  'functional-softmax': {
    sites: [['blocks.0.attn', true, G], ['blocks.1.attn', false, G]],
    checked: [attn('blocks.0.attn'), attn('blocks.1.attn')],
  },
  'module-softmax': { sites: [['blocks.0.attn', true, G]], checked: [attn('blocks.0.attn')] },
  'softmax-dtype': { sites: [['blocks.0.attn', true, G]], checked: [attn('blocks.0.attn')] },
  'functional-softmax-dtype': { sites: [['blocks.0.attn', true, G]], checked: [attn('blocks.0.attn')] },
  'internal-softmax': { sites: [['blocks.0.attn', true, G]], checked: [attn('blocks.0.attn')] },
  'functional-dropout': { sites: [['blocks.0.attn', true, G]], checked: [attn('blocks.0.attn')] },
  'view-between': { sites: [['blocks.0.attn', true, G]], checked: [attn('blocks.0.attn')] },
  'chunked-heads': { sites: [['blocks.0.attn', true, G]], checked: [attn('blocks.0.attn')] },
  'mask-after-softmax': { sites: [['blocks.0.attn', true, G]], checked: [attn('blocks.0.attn')] },
  timm: {
    sites: Array.from({ length: 12 }, (_, i) => [`blocks.${i}.attn`, true, P] as [string, boolean, [number, number]]),
    checked: [attn('blocks.10.attn'), attn('blocks.1.attn')],
  },
  diffusers: {
    sites: [['blocks.0.attn1', true, G], ['blocks.0.attn2', false, G]],
    checked: [attn('blocks.0.attn1'), attn('blocks.0.attn2')],
  },
  'mha-batch-first': {
    sites: [['blocks.0.attn', true, G]],
    checked: [attn('blocks.0.attn')],
    kinds: { scripted: 'mha', traced: 'mha' },
  },
  'mha-seq-first': {
    sites: [['blocks.0.attn', true, G]],
    checked: [attn('blocks.0.attn')],
    kinds: { scripted: 'mha', traced: 'softmax' },
  },
  'mha-odd-heads': {
    sites: [['blocks.0.attn', true, G]],
    checked: [attn('blocks.0.attn')],
    kinds: { scripted: 'mha', traced: 'softmax' },
  },
  'mha-no-weights': { sites: [['blocks.0.attn', true, G]], checked: [attn('blocks.0.attn')] },
  'mha-cross': {
    sites: [['blocks.0.attn', true, G], ['blocks.1.attn', false, G]],
    checked: [attn('blocks.0.attn'), attn('blocks.1.attn')],
  },
  // The softmax lives in the QKVAttentionLegacy child, which takes qkv and
  // so cannot be skipped: skip removes the AttentionBlock around it.
  'adm-legacy': { sites: [['blocks.0.attention', true, G]], checked: [attn('blocks.0.attention', 'blocks.0')] },
  edm2: { sites: [['blocks.0', true, G]], checked: [attn('blocks.0')] },
  sagan: { sites: [['blocks.0', true, G]], checked: [attn('blocks.0')] },
  // Written with F.scaled_dot_product_attention, which Python torch has from 2.0.
  'timm-fused': { sites: [['blocks.0.attn', true, P], ['blocks.1.attn', true, P]], checked: [attn('blocks.1.attn')], needsTorch2: true },
};

interface ReferenceCase {
  site: string;
  action: 'identity' | 'blur' | 'capture' | 'skip';
  sigma?: number | 'inf';
  output: string;
  capture?: string;
}

interface ReferenceForm {
  files: { scripted: string; traced: string };
  x: string;
  t: string;
  label: string;
  cases: ReferenceCase[];
}

const bytesOf = (path: string) => {
  const bytes = readFileSync(path);
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
};
const floats = (path: string) => new Float32Array(bytesOf(path));

describe('attention hooks on attention as real codebases write it (scripted and traced)', function () {
  this.timeout(300_000);
  let dir: string;
  let manifest: Record<string, ReferenceForm>;
  const rng = freshRandom();

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tg-forms-'));
    const cases = Object.fromEntries(
      Object.entries(FORMS).filter(([, form]) => torch2 || !form.needsTorch2).map(([name, form]) => [
        name,
        form.checked.map(({ site, skip }) => ({ site, skip, self: form.sites.find(([path]) => path === site)![1] })),
      ]),
    );
    cases['partial'] = [];
    const spec = join(dir, 'spec.json');
    writeFileSync(spec, JSON.stringify({ seed: rng.seed, batch: BATCH, start: START, length: 1, cases }));
    const script = join(repoRoot, 'test', 'reference', 'attention_forms_reference.py');
    manifest = JSON.parse(execFileSync(python, [script, spec, join(dir, 'out')], { encoding: 'utf8', maxBuffer: 1 << 26 }));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const [name, form] of Object.entries(FORMS)) {
    if (form.needsTorch2 && !torch2) {
      it.skip(`${name}: skipped, Python torch ${pythonTorch} cannot write this form (it needs PyTorch >= 2.0)`);
      continue;
    }
    for (const exported of ['scripted', 'traced'] as const) {
      describe(`${name} (${exported})`, () => {
        let model: Model;
        let inputs: Tensor[];
        before(async () => {
          const entry = manifest[name]!;
          model = await loadModel(entry.files[exported], { device: 'cpu' });
          const x = floats(entry.x);
          const t = floats(entry.t);
          const label = new BigInt64Array(bytesOf(entry.label));
          inputs = [tensor(x, [BATCH, 4, 6, 8]), tensor(t, [BATCH]), tensor(label, [BATCH])];
        });
        after(() => {
          for (const input of inputs ?? []) input.dispose();
          model?.dispose();
        });

        it('lists every site with its module path, self/cross flag and query grid, and nothing left unhooked', () => {
          assert.deepEqual(
            model.attentionSites.map((s) => [s.path, s.selfAttention, s.grid]),
            form.sites,
          );
          if (form.kinds) assert.deepEqual(model.attentionSites.map((s) => s.kind)[0], form.kinds[exported]);
          assert.deepEqual(model.attentionReport.filter((c) => c.site === null), []);
        });

        it('every action equals the eager reference; the other samples stay bit-identical', async () => {
          using plain = await model.forward<Tensor>(...inputs);
          const base = (await plain.toArray()) as Float32Array;
          for (const reference of manifest[name]!.cases) {
            const what = `${reference.action}${reference.sigma === undefined ? '' : `(${reference.sigma})`} on ${reference.site} (seed ${rng.seed})`;
            const sigma = reference.sigma === 'inf' ? Infinity : reference.sigma;
            const hook = { sites: reference.site, action: reference.action, start: START, length: 1, self: false, ...(sigma === undefined ? {} : { sigma }) };
            const { output, captures } = await model.run<Tensor>({ inputs, hooks: [hook] });
            using _output = output;
            const ours = (await output.toArray()) as Float32Array;
            const error = relativeError(ours, floats(reference.output));
            assert.ok(error < 1e-5, `${what}: relative error ${error}`);
            assert.deepEqual(ours.subarray(0, SAMPLE), base.subarray(0, SAMPLE), `${what}: sample 0 untouched`);
            assert.deepEqual(ours.subarray(2 * SAMPLE), base.subarray(2 * SAMPLE), `${what}: sample 2 untouched`);
            if (reference.action === 'capture') {
              assert.deepEqual(ours, base, `${what}: capture changes nothing`);
              using map = captures.get(reference.site)!;
              const expected = floats(reference.capture!);
              assert.equal(map.shape[0], 1);
              assert.ok(relativeError((await map.toArray()) as Float32Array, expected) < 1e-5, `${what}: the captured map`);
            } else {
              const changed = relativeError(ours.subarray(SAMPLE, 2 * SAMPLE), base.subarray(SAMPLE, 2 * SAMPLE));
              assert.ok(changed > 1e-4, `${what}: the perturbed sample changed (${changed})`);
            }
            for (const map of captures.values()) map.dispose();
          }
        });
      });
    }
  }

  for (const exported of ['scripted', 'traced'] as const) {
    it(`reports what it left alone, and refuses a selector that would perturb part of the attention (${exported})`, async () => {
      await using model = await loadModel(manifest['partial']!.files[exported], { device: 'cpu' });
      assert.deepEqual(model.attentionSites.map((s) => s.path), ['blocks.0.attn']);
      const report = model.attentionReport.map((c) => [c.path, c.op, c.site, c.attention]);
      assert.deepEqual(report, [
        ['blocks.0.attn', 'aten::softmax', 0, true],
        ['blocks.1.attn', 'aten::softmax', null, true],
        ['blocks.2.attn', 'aten::softmax', null, false],
      ]);
      assert.match(model.attentionReport[1]!.reason!, /aten::sqrt/);
      assert.match(model.attentionReport[2]!.reason!, /not multiplied by values/);
      for (const sites of ['**', 'blocks.*.attn', ['blocks.0.attn', 'blocks.1.attn'], /attn/]) {
        const error = await expectCode(ErrorCodes.UNHOOKED_ATTENTION, () =>
          model.run({ inputs: [], hooks: [{ sites, action: 'identity' }] }),
        );
        assert.match(error.message, /blocks\.1\.attn.*aten::sqrt/);
      }
      // The hooked site alone, and the softmax gate (not attention) under a broad selector of its own, are fine.
      const x = tensor(new Float32Array(2 * SAMPLE), [2, 4, 6, 8]);
      const t = tensor(new Float32Array(2), [2]);
      const label = tensor(new BigInt64Array(2), [2]);
      const { output } = await model.run<Tensor>({ inputs: [x, t, label], hooks: [{ sites: 'blocks.0.attn', action: 'identity' }] });
      for (const h of [x, t, label, output]) h.dispose();
    });
  }

  it('selects blocks.1 without blocks.10 and blocks.11 (timm, twelve deep)', async () => {
    await using model = await loadModel(manifest['timm']!.files.scripted, { device: 'cpu' });
    const x = tensor(new Float32Array(SAMPLE), [1, 4, 6, 8]);
    const t = tensor(new Float32Array(1), [1]);
    const label = tensor(new BigInt64Array(1), [1]);
    const { captures, output } = await model.run<Tensor>({ inputs: [x, t, label], hooks: [{ sites: 'blocks.1.*', action: 'capture' }] });
    assert.deepEqual([...captures.keys()], ['blocks.1.attn']);
    for (const h of [x, t, label, output, ...captures.values()]) h.dispose();
  });

  it('inspect prints the sites and what the pass left alone', () => {
    const text = execFileSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'src', 'cli', 'main.ts'), 'inspect', manifest['partial']!.files.traced], {
      encoding: 'utf8',
    });
    assert.match(text, /not hooked {3}2 op\(s\)/);
    assert.match(text, /aten::softmax in blocks\.1\.attn \[attention\]: .*aten::sqrt/);
    assert.match(text, /aten::softmax in blocks\.2\.attn: the softmax result is not multiplied by values/);
  });
});

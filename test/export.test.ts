import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { python, repoRoot } from './helpers/python.js';
import { freshRandom } from './helpers/random.js';

// scripts/export/torch_guidance_export.py on the architectures of
// models/architectures (narrow configurations): each export is loaded back
// with torch.jit.load and compared with the eager module on fresh inputs at
// two batch sizes (test/reference/export_roundtrip.py).
const MID = 'mid_block.attentions.0.transformer_blocks.0.attn1';

interface Exported {
  card: Record<string, unknown> & { conditioning?: { kind: string; inputs?: Record<string, { shape: number[]; null: unknown }> } };
  errors: number[];
  nulls: Record<string, number>;
  parameters: number;
}

describe('the exporter (scripts/export) round-trips the architectures', function () {
  this.timeout(300_000);
  let dir: string;
  let report: Record<string, Exported>;
  const { seed } = freshRandom();

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tg-export-'));
    const script = join(repoRoot, 'test', 'reference', 'export_roundtrip.py');
    report = JSON.parse(execFileSync(python, [script, dir, String(seed)], { encoding: 'utf8', maxBuffer: 1 << 26 }));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('every export equals its eager module to 1e-5 relative, at two batch sizes', () => {
    assert.deepEqual(Object.keys(report).sort(), [
      'dit-narrow-scripted',
      'sd15-narrow-scripted',
      'sd15-narrow-traced',
      'sdxl-narrow-traced',
      'vae-narrow-traced',
    ]);
    for (const [name, entry] of Object.entries(report)) {
      assert.equal(entry.errors.length, 2, name);
      for (const error of entry.errors) assert.ok(error < 1e-5, `${name}: relative error ${error} (seed ${seed})`);
      assert.ok(entry.parameters > 50_000, `${name} has its weights`);
    }
  });

  it('writes a version 2 card with the named conditions, their nulls and the decoder', () => {
    const sd = report['sd15-narrow-traced']!.card;
    assert.equal(sd.cardVersion, 2);
    assert.deepEqual(sd.sampleShape, [4, 16, 16]);
    assert.deepEqual(sd.conditioning, {
      kind: 'named',
      inputs: { encoder_hidden_states: { shape: [77, 768], dtype: 'float32', null: { file: 'nulls/encoder_hidden_states.f32' } } },
    });
    assert.deepEqual(sd.decoder, { file: 'vae-narrow-traced.pt', scalingFactor: 0.18215 });
    assert.deepEqual(sd.guidanceSites, { pag: [MID], seg: [MID], sag: [MID] });
    assert.equal(sd.timeEmbedding, 'time_embedding');
    // The empty-prompt embedding is stored whole, as float32.
    assert.deepEqual(report['sd15-narrow-traced']!.nulls, { 'nulls/encoder_hidden_states.f32': 77 * 768 * 4 });

    const xl = report['sdxl-narrow-traced']!.card.conditioning!;
    assert.deepEqual(Object.keys(xl.inputs!), ['encoder_hidden_states', 'text_embeds', 'time_ids']);
    assert.deepEqual(Object.values(xl.inputs!).map((i) => i.null), ['zeros', 'zeros', 'same']);
    assert.deepEqual(report['dit-narrow-scripted']!.card.conditioning, { kind: 'class', numClasses: 10, nullLabel: 10 });
    assert.equal(report['vae-narrow-traced']!.card.kind, 'decoder');
    assert.deepEqual(report['vae-narrow-traced']!.card.outputShape, [3, 128, 128]);
  });

  it('refuses an export that disagrees with the eager module, and says why', () => {
    const code = `
import sys, torch
sys.path.insert(0, ${JSON.stringify(join(repoRoot, 'scripts', 'export'))})
from torch_guidance_export import export_decoder
class BatchDependent(torch.nn.Module):
    def forward(self, z):
        return z * float(z.shape[0])  # a trace bakes in the batch it saw
try:
    export_decoder(BatchDependent(), ${JSON.stringify(join(dir, 'bad.pt'))}, latent_shape=[4, 8, 8])
except RuntimeError as e:
    print("refused:", e)
`;
    const out = execFileSync(python, ['-c', code], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    assert.match(out, /refused: export check: at batch 2 the export differs from the eager module/);
    assert.match(out, /mode='script'/);
  });
});

/**
 * The Markdown report (benchmarks/results/quality.md), its charts (one PNG
 * per metric) and the picture of each strategy's best setting, from a run's
 * Results.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { labelledRows, writePng, type RasterImage } from '../../src/image/index.js';
import { bestByFamily, evaluateClaims, settingsToRepeat, spreads } from './claims.js';
import { colorFor, writeChart, type Series } from './plots.js';
import { METRICS, metricOf, type MetricName, type Results, type SettingResult } from './results.js';
import { INTERVAL, INTERVALS } from './sweep.js';

export interface Previews {
  /** Setting id → the first samples (uint8 28×28 each) of seed set A. */
  get(id: string): Uint8Array[] | undefined;
}

const cell = (v: number | null, digits: number) => (v === null ? '—' : v.toFixed(digits));

function metricCells(s: SettingResult, run: 0 | 1): string[] {
  return METRICS.map((m) => cell(metricOf(s.runs[run], m.name), m.digits));
}

function withRepeat(s: SettingResult, metric: MetricName, digits: number): string {
  const a = metricOf(s.runs[0], metric);
  const b = metricOf(s.runs[1], metric);
  if (a === null) return '—';
  return b === null ? a.toFixed(digits) : `${a.toFixed(digits)} / ${b.toFixed(digits)}`;
}

export function chartSeries(results: Results, metric: MetricName): Series[] {
  const families = results.settings.map((s) => s.family).filter((f, i, all) => all.indexOf(f) === i);
  const byFamily = (f: string) => results.settings.filter((s) => s.family === f);
  const series: Series[] = [];
  for (const family of families) {
    const rows = byFamily(family);
    const unconditional = rows[0]!.unconditional;
    if (metric === 'accuracy' && unconditional) continue;
    const baseline = results.settings.find((s) => s.family === (unconditional ? 'null: none' : 'none'));
    const points = [...(baseline && baseline.family !== family ? [baseline] : []), ...rows]
      .map((s) => ({ x: s.weight, y: metricOf(s.runs[0], metric) }))
      .filter((p): p is { x: number; y: number } => p.y !== null);
    if (points.length) series.push({ name: family, color: colorFor(family), dashed: unconditional, points });
  }
  return series;
}

export async function writeReport(results: Results, outDir: string, previews?: Previews): Promise<string> {
  const { meta } = results;
  const suffix = meta.quick ? '-quick' : '';
  const spread = spreads(results);
  const best = bestByFamily(results);
  const claims = evaluateClaims(results);
  const repeated = settingsToRepeat(results);

  const charts: string[] = [];
  for (const m of METRICS) {
    const file = `quality${suffix}-${m.name}.png`;
    await writeChart(join(outDir, file), {
      title: `${m.label} vs guidance weight (N = ${meta.n}, ${meta.sampler.name} ${meta.sampler.steps} steps, seed set A)`,
      xLabel: 'weight of the guidance term, log(1 + x) axis: w - 1 (cfg, interval, autoguidance, icg) or s (pag, seg, sag, sims); 0 = unguided',
      xScale: 'log1p',
      yLabel: `${m.label} (${m.better} is better)`,
      series: chartSeries(results, m.name),
      reference: metricOf({ seed: 0, metrics: meta.realData, seconds: 0, forwards: 0 }, m.name) === null
        ? undefined
        : { y: meta.realData[m.name]!, label: `real images (N = ${meta.realData.n})` },
    });
    charts.push(`![${m.label}](${file})`);
  }

  let picture = '';
  if (previews) {
    const rows = [...best.values()].flatMap((s) => {
      const images = previews.get(s.id);
      if (!images) return [];
      return [{ label: s.family, sublabel: s.id, images: images.map((data): RasterImage => ({ width: 28, height: 28, channels: 1, data })) }];
    });
    if (rows.length) {
      const file = `quality${suffix}-best.png`;
      const rgb = labelledRows(rows, { scale: 2, title: `Best by FD (seed set A), samples 0-${rows[0]!.images.length - 1}` });
      // Everything is gray: store one channel (a third of the bytes).
      const gray = new Uint8Array(rgb.width * rgb.height);
      for (let i = 0; i < gray.length; i++) gray[i] = rgb.data[i * 3]!;
      await writePng(join(outDir, file), { width: rgb.width, height: rgb.height, channels: 1, data: gray });
      picture = `![best settings](${file})`;
    }
  }

  const md: string[] = [];
  md.push(`# Sample quality of every guidance strategy on the shipped Fashion-MNIST models${meta.quick ? ' (quick smoke run: N too small for conclusions)' : ''}`);
  md.push('');
  md.push(`Command: \`${meta.command}\`  `);
  md.push(`Date: ${meta.date}  `);
  md.push(`Machine: ${meta.machine}; libtorch ${meta.libtorch}, ${meta.threads} intra-op threads; Node ${meta.node}  `);
  md.push(`${meta.blas ?? 'BLAS: not recorded (a run from before the BLAS was recorded)'}  `);
  md.push(`Runtime: ${(meta.timing.totalSeconds / 60).toFixed(1)} min in all (estimated beforehand: ${(meta.timing.estimateSeconds / 60).toFixed(1)} min from a measured ` +
    `${meta.timing.stepMsPerSample.toFixed(2)} ms per sample and model evaluation; reference statistics ${meta.timing.referenceSeconds.toFixed(1)} s)`);
  if (meta.history) md.push(`History: ${meta.history}  `);
  md.push('');
  md.push('## Setup');
  md.push('');
  md.push(`* Models: ${Object.entries(meta.models).map(([k, v]) => `${k} \`${v}\``).join(', ')}.`);
  md.push(`* Sampling: \`sample()\` with \`${meta.sampler.name}\`, ${meta.sampler.steps} steps (${meta.sampler.schedule}), \`clipDenoised: [-1, 1]\`, batch ${meta.batchSize}; ` +
    `N = ${meta.n} samples per setting; sample i asks for class i mod 10 (class-balanced) or the null label; ` +
    `seed set A: seeds ${meta.seeds.a}..${meta.seeds.a + meta.n - 1} (every setting), seed set B: ${meta.seeds.b}..${meta.seeds.b + meta.n - 1} (the repeat). ` +
    'Every setting uses the same seeds, so differences between settings are paired.');
  md.push(`* Metrics in the 256-d penultimate features of \`${meta.classifier.path}\` (test accuracy ${(meta.classifier.testAccuracy * 100).toFixed(2)} % measured here), samples quantised to 8 bits like the data: ` +
    `**FD** (Fréchet distance) against the Gaussian of all 10,000 Fashion-MNIST test images; **accuracy**: the classifier's label equals the requested class; ` +
    `**precision / recall**: k-NN manifolds (Kynkäänniemi et al. 2019, k = ${meta.k}) against ${meta.n} class-balanced test images (the first ${meta.n / 10} of each class).`);
  md.push(`* Guidance interval: \`cfg+interval\` guides only for ${INTERVAL.sigmaMin} < σ ≤ ${INTERVAL.sigmaMax} (the EDM2 / SDXL interval of Kynkäänniemi et al. 2024, tuned for other models); ` +
    `since the paper tunes the window per model, ${INTERVALS.slice(1).map((i) => `\`${i.family}\``).join(' and ')} widen it towards this model's higher σ (with the default 10 Karras steps they add the steps at σ 9.27 and 21.1).`);
  md.push(`* Real data at the same N (${meta.realData.n} class-balanced training images, first of each class): FD ${meta.realData.fd.toFixed(2)}, accuracy ${meta.realData.accuracy?.toFixed(3)}, ` +
    `precision ${meta.realData.precision.toFixed(3)}, recall ${meta.realData.recall.toFixed(3)}: the floor of FD at this N (the estimator is biased upwards at small N) and what real images score.`);
  md.push('');
  md.push('## Spread between seed sets');
  md.push('');
  md.push(`${spread.fd.count} settings were run again on seed set B (${repeated.join(', ')}): each family's best and the unguided rows, chosen after seed set A, plus CFG's highest scale.`);
  md.push('');
  md.push('| metric | σ (one run, pooled) | largest \\|A − B\\| | settings |');
  md.push('|---|---|---|---|');
  for (const m of METRICS) md.push(`| ${m.label} | ${cell(spread[m.name].sigma, m.digits + 1)} | ${cell(spread[m.name].maxAbs, m.digits)} | ${spread[m.name].count} |`);
  md.push('');
  md.push('A difference between two settings counts as real when its mean over the seed sets exceeds 2σ·√(2/r) (r = seed sets both were run on) and it has the same sign on each; ' +
    'conservative, because paired settings share their seeds.');
  md.push('');
  md.push('## Claims');
  md.push('');
  md.push('| claim | verdict | numbers (A: seed set A, B: the repeat; Δ = strategy − reference) |');
  md.push('|---|---|---|');
  for (const c of claims) md.push(`| ${c.claim} | **${c.verdict}** | ${c.evidence} |`);
  md.push('');
  md.push("## Each strategy's best setting (by FD on seed set A; cells A / B where repeated)");
  md.push('');
  md.push('| strategy | best setting | FD | accuracy | precision | recall |');
  md.push('|---|---|---|---|---|---|');
  for (const s of best.values()) {
    md.push(`| ${s.family} | ${s.id} | ${METRICS.map((m) => withRepeat(s, m.name, m.digits)).join(' | ')} |`);
  }
  md.push('');
  md.push('## Every setting');
  md.push('');
  md.push(`N = ${meta.n} per run. Seed set A; the B columns where the setting was repeated. Forward calls: batched model calls of run A (a CFG step is one call on 2 × batch; SAG, autoguidance and SIMS make two per step). Time: sampling seconds of run A, scoring not included, on a shared machine (noisy).`);
  md.push('');
  md.push('| setting | weight | FD | accuracy | precision | recall | FD (B) | accuracy (B) | precision (B) | recall (B) | forward calls | time |');
  md.push('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const s of results.settings) {
    const b = s.runs[1] ? metricCells(s, 1) : ['', '', '', ''];
    md.push(`| ${s.id} | ${s.weight} | ${metricCells(s, 0).join(' | ')} | ${b.join(' | ')} | ${s.runs[0]!.forwards} | ${s.runs[0]!.seconds.toFixed(1)} s |`);
  }
  md.push('');
  md.push('## Charts');
  md.push('');
  md.push('Metric against the weight of the guidance term (w − 1 for CFG, the interval, autoguidance and ICG; s for PAG, SEG, SAG and SIMS), seed set A; ' +
    'every curve starts at its unguided row (weight 0). The x axis is spaced by log(1 + weight), so that SEG\'s scales up to 20 fit beside the CFG-like curves that turn below 3. Dashed, hollow markers: null-label (unconditional) sampling. The grey dashed line: real images at the same N.');
  md.push('');
  md.push(charts.join('\n'));
  if (picture) {
    md.push('');
    md.push(picture);
  }
  md.push('');
  const path = join(outDir, `quality${suffix}.md`);
  await writeFile(path, md.join('\n'));
  return path;
}

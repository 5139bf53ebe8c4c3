/** The shape of a run's results (saved as JSON, so the report can be redrawn without sampling again). */
import type { Metrics } from './evaluate.js';

export interface Run {
  /** Seed of sample 0 (sample i uses seed + i). */
  seed: number;
  metrics: Metrics;
  /** Sampling time (s), without scoring. */
  seconds: number;
  forwards: number;
}

export interface SettingResult {
  id: string;
  family: string;
  scale: number | null;
  weight: number;
  unconditional: boolean;
  /** runs[0] is seed set A (the sweep); a second run, where present, is seed set B (the repeat). */
  runs: Run[];
}

export interface RunMeta {
  command: string;
  date: string;
  machine: string;
  libtorch: string;
  threads: number;
  /** The BLAS line (benchmarks/cli.ts blasFor); absent in runs made before it was recorded. */
  blas?: string;
  node: string;
  sampler: { name: string; steps: number; schedule: string };
  n: number;
  batchSize: number;
  seeds: { a: number; b: number };
  k: number;
  quick: boolean;
  models: Record<string, string>;
  classifier: { path: string; testAccuracy: number };
  /** Seconds: the whole run, reference statistics, the measured cost of one unguided step of a batch. */
  timing: { totalSeconds: number; referenceSeconds: number; stepMsPerSample: number; estimateSeconds: number };
  /** Metrics of N real training images (class-balanced) against the same reference: the floor. */
  realData: Metrics;
  /** How the results came together when some rows were rerun later (shown under the runtime). */
  history?: string;
}

export interface Results {
  meta: RunMeta;
  settings: SettingResult[];
}

export type MetricName = 'fd' | 'accuracy' | 'precision' | 'recall';

export const METRICS: readonly { name: MetricName; label: string; better: 'lower' | 'higher'; digits: number }[] = [
  { name: 'fd', label: 'FD', better: 'lower', digits: 2 },
  { name: 'accuracy', label: 'accuracy', better: 'higher', digits: 3 },
  { name: 'precision', label: 'precision', better: 'higher', digits: 3 },
  { name: 'recall', label: 'recall', better: 'higher', digits: 3 },
];

export function metricOf(run: Run | undefined, metric: MetricName): number | null {
  if (!run) return null;
  const v = run.metrics[metric];
  return v === null || Number.isNaN(v) ? null : v;
}

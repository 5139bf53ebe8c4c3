/**
 * The rows of the comparison picture: one guidance setting each, with the
 * settings the literature recommends for it (docs/guidance-methods.md).
 * Kept apart from the command so a row can be added without reading the CLI.
 */
import type { z } from 'zod';

import * as guidance from '../guidance/index.js';
import { FACTORIES } from '../guidance/registry.js';
import type { Strategy } from '../guidance/types.js';
import type { Model } from '../model/model.js';

export interface CompareModels {
  main: Model;
  /** The weak model for autoguidance. */
  guide?: Model;
  /** The SIMS negative (the main model fine-tuned on its own samples). */
  sims?: Model;
}

export interface CompareRow {
  name: string;
  /** What the row needs beyond the main model; rows whose model is missing are left out. */
  needs?: 'guide' | 'sims';
  /** Rows that sample with the null label (unconditional), to show what guidance does without a class. */
  unconditional?: boolean;
  strategies: (models: CompareModels) => Strategy[];
}

export const compareRows: CompareRow[] = [
  { name: 'none', strategies: () => [] },
  { name: 'cfg', strategies: () => [guidance.cfg({ scale: 3 })] },
  { name: 'pag', strategies: () => [guidance.pag({ scale: 3 })] },
  { name: 'seg', strategies: () => [guidance.seg({ scale: 3 })] },
  { name: 'sag', strategies: () => [guidance.sag({ scale: 0.75 })] },
  { name: 'autoguidance', needs: 'guide', strategies: ({ guide }) => [guidance.autoguidance({ guide: guide!, scale: 2 })] },
  { name: 'sims', needs: 'sims', strategies: ({ sims }) => [guidance.sims({ negative: sims!, scale: 1 })] },
  { name: 'icg', strategies: () => [guidance.icg({ scale: 3 })] },
  { name: 'tsg', strategies: () => [guidance.tsg({ scale: 3 })] },
  { name: 'slg', strategies: () => [guidance.slg({ scale: 3 })] },
  { name: 'cfg+pag', strategies: () => [guidance.cfg({ scale: 3 }), guidance.pag({ scale: 3 })] },
  { name: 'none, null label', unconditional: true, strategies: () => [] },
  { name: 'pag, null label', unconditional: true, strategies: () => [guidance.pag({ scale: 3 })] },
];

/** Whether `value` is the factory's default for option `key` (so the report can leave it out). */
function isDefault(strategy: Strategy, key: string, value: unknown): boolean {
  const shape = (FACTORIES[strategy.name]?.schema as unknown as { shape?: Record<string, z.ZodType> } | undefined)?.shape;
  const parsed = shape?.[key]?.safeParse(undefined);
  return parsed?.success === true && parsed.data !== undefined && JSON.stringify(parsed.data) === JSON.stringify(value);
}

/** "w=3 sites=mid.*" from a strategy's settings (models, functions and the scheduling defaults left out). */
export function describeSettings(strategies: readonly Strategy[]): string {
  if (strategies.length === 0) return 'unguided';
  return strategies
    .map((s) => {
      const parts = Object.entries(s.settings ?? {})
        .filter(([k, v]) => !(['enabled', 'start', 'stop', 'guideCondition'].includes(k) && isDefault(s, k, v)))
        .filter(([, v]) => v !== undefined && (typeof v !== 'object' || Array.isArray(v) || v instanceof RegExp))
        .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('|') : String(v)}`);
      return parts.length ? `${s.name}(${parts.join(' ')})` : s.name;
    })
    .join(' + ');
}

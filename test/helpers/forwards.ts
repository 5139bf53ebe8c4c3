/**
 * Records the forwards the guidance engine issues: every Model.run call on
 * the watched models, with its batch size, hooks and the order in which it
 * started and settled (a logical clock), next to the models' native forward
 * counters.
 */
import type { Hook, Model, RunOptions, Tensor } from '../../src/index.js';

export interface RecordedForward {
  model: string;
  /** Batch size of the forward's first input. */
  batch: number;
  hooks: Hook[];
  /** Logical clock at the call and when its promise settled. */
  started: number;
  settled: number;
  /** performance.now() at the call and at settling. */
  startedMs: number;
  settledMs: number;
}

export interface ForwardRecorder<K extends string> {
  log: RecordedForward[];
  /** Native forward counter deltas since the recorder started, per model name. */
  nativeDeltas(): Record<K, number>;
  restore(): void;
}

export function recordForwards<K extends string>(models: Record<K, Model>): ForwardRecorder<K> {
  const log: RecordedForward[] = [];
  let clock = 0;
  const entries = Object.entries(models) as [K, Model][];
  const before = new Map(entries.map(([name, model]) => [name, model.forwardCount]));
  for (const [name, model] of entries) {
    const original = model.run.bind(model);
    const wrapped = async (options: RunOptions) => {
      const entry: RecordedForward = {
        model: name,
        batch: (options.inputs[0] as Tensor).shape[0]!,
        hooks: [...(options.hooks ?? [])],
        started: clock++,
        settled: -1,
        startedMs: performance.now(),
        settledMs: -1,
      };
      log.push(entry);
      try {
        return await original(options);
      } finally {
        entry.settled = clock++;
        entry.settledMs = performance.now();
      }
    };
    Object.defineProperty(model, 'run', { value: wrapped, configurable: true, writable: true });
  }
  return {
    log,
    nativeDeltas: () => Object.fromEntries(entries.map(([name, model]) => [name, model.forwardCount - before.get(name)!])) as Record<K, number>,
    restore: () => {
      for (const [, model] of entries) delete (model as unknown as Record<string, unknown>).run;
    },
  };
}

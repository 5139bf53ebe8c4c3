/**
 * The Python side of the benchmarks, kept up between runs: a script started
 * with --serve (sample_loop.py, forward_loop.py) warms up, then times one run
 * or block per request, so a benchmark can alternate run by run with its own
 * side (on a machine whose speed drifts, neighbouring runs see the same drift).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export interface PythonLoopOptions {
  python: string;
  model: string;
  guide?: string;
  strategy: string;
  batch: number;
  sigmas: readonly number[];
  threads: number;
  device: string;
  /** The eager module for every strategy (sample_loop.py --eager). */
  eager?: boolean;
}

export interface PythonLoop {
  /** Milliseconds of one timed sampling run (ending with the images on the host). */
  run(): Promise<number>;
  /** The same, with the time spent inside the run's model calls and their number. */
  profile(): Promise<{ ms: number; forwardMs: number; forwards: number }>;
  /** The CUDA allocator's peak bytes since the warm-up (null on the CPU). */
  peakBytes(): Promise<number | null>;
  close(): void;
}

/**
 * A Python benchmark script started with --serve: it warms up, prints one JSON
 * line, then answers each command line on stdin with one JSON line.
 * ask(command) sends a command and resolves with the reply.
 */
export async function startServe(python: string, args: readonly string[]) {
  const child = spawn(python, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const replies = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const ask = async (command: string | null) => {
    if (command) child.stdin.write(`${command}\n`);
    const { value, done } = await replies.next();
    if (done) throw new Error(`${args[0]} ended early (exit ${child.exitCode})`);
    return JSON.parse(value as string) as Record<string, unknown>;
  };
  const ready = await ask(null); // {"ready": true, ...} after its warm-up
  return { ask, ready, close: () => child.stdin.end() };
}

/** Starts the sampling loop and waits for its warm-up run. */
export async function startPythonLoop(options: PythonLoopOptions): Promise<PythonLoop> {
  const script = join(import.meta.dirname, 'python', 'sample_loop.py');
  const { ask, close } = await startServe(options.python, [
    script,
    '--model', options.model,
    ...(options.guide ? ['--guide', options.guide] : []),
    '--strategy', options.strategy,
    '--batch', String(options.batch),
    '--sigmas', JSON.stringify(options.sigmas),
    '--serve',
    '--threads', String(options.threads),
    '--device', options.device,
    ...(options.eager ? ['--eager'] : []),
  ]);
  return {
    run: async () => (await ask('run')).ms as number,
    profile: async () => {
      const reply = await ask('run');
      return { ms: reply.ms as number, forwardMs: reply.forward_ms as number, forwards: reply.forwards as number };
    },
    peakBytes: async () => (await ask('peaks')).peak_bytes as number | null,
    close,
  };
}

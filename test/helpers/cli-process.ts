/**
 * The torch-guidance CLI as a child process from source (node --import tsx),
 * as a user runs it, with its stderr and stdout collected so a test can wait
 * for a line. Every process started here is tracked, and killAll() (which the
 * tests call in after() hooks) ends those still running.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';

import { repoRoot } from './python.js';

const MAIN = join(repoRoot, 'src', 'cli', 'main.ts');
const running = new Set<CliProcess>();

export class CliProcess {
  readonly child: ChildProcess;
  /** stdout and stderr so far, in arrival order. */
  output = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly #waiters = new Set<() => void>();

  constructor(args: string[], env: NodeJS.ProcessEnv = process.env) {
    this.child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(this);
    const onData = (chunk: Buffer) => {
      this.output += chunk.toString();
      for (const wake of this.#waiters) wake();
    };
    this.child.stdout!.on('data', onData);
    this.child.stderr!.on('data', onData);
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        running.delete(this);
        for (const wake of this.#waiters) wake();
        resolve({ code, signal });
      }),
    );
  }

  get done(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  /**
   * The first match of `pattern` in the output after character `from`;
   * rejects when the process exits without it or after `timeoutMs`.
   */
  waitFor(pattern: RegExp, { from = 0, timeoutMs = 120_000 }: { from?: number; timeoutMs?: number } = {}): Promise<RegExpExecArray & { end: number }> {
    const global = new RegExp(pattern.source, pattern.flags.includes('g') ? pattern.flags : `${pattern.flags}g`);
    const find = () => {
      global.lastIndex = from;
      const match = global.exec(this.output);
      return match ? Object.assign(match, { end: match.index + match[0].length }) : undefined;
    };
    return new Promise((resolve, reject) => {
      const check = () => {
        const match = find();
        if (match) finish(() => resolve(match));
        else if (this.done) finish(() => reject(new Error(`exited without ${pattern}:\n${this.output}`)));
      };
      const timer = setTimeout(() => finish(() => reject(new Error(`no ${pattern} within ${timeoutMs} ms:\n${this.output}`))), timeoutMs);
      const finish = (settle: () => void) => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        settle();
      };
      this.#waiters.add(check);
      check();
    });
  }

  kill(signal: NodeJS.Signals): void {
    if (!this.done) this.child.kill(signal);
  }
}

/** Kills every CLI process still running (SIGKILL) and waits for them to exit. */
export async function killAll(): Promise<void> {
  const left = [...running];
  for (const p of left) p.kill('SIGKILL');
  await Promise.all(left.map((p) => p.exited));
}

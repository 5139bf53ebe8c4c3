/**
 * Runs a TypeScript file (or the CLI) in a child process, for cases that
 * could crash or exhaust the process: its exit status and signal, output,
 * wall time, the JSON it printed last, and its peak resident memory
 * (test/helpers/rss-probe.mjs).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { repoRoot } from './python.js';

export interface ChildResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  wallMs: number;
  /** Peak resident memory in MiB (NaN when the child died before reporting it). */
  peakRssMiB: number;
  /** The last line of stdout that parses as JSON, if any. */
  json: Record<string, unknown> | undefined;
}

export interface ChildOptions {
  env?: Record<string, string>;
  timeoutMs?: number;
  cwd?: string;
  /** Written to the child's stdin, then closed. */
  input?: string;
}

/** Runs `node --import tsx <script> ...args` (script relative to the repository). */
export function runTs(script: string, args: readonly string[] = [], options: ChildOptions = {}): Promise<ChildResult> {
  return runNode(['--import', 'tsx', join(repoRoot, script), ...args], options);
}

/** Runs the CLI (src/cli/main.ts) with `args`. */
export function runCli(args: readonly string[], options: ChildOptions = {}): Promise<ChildResult> {
  return runTs('src/cli/main.ts', args, options);
}

/** `node` with the peak-memory probe, for command lines built elsewhere (a shell that starts node). */
export const probedNode = [process.execPath, '--import', join(repoRoot, 'test', 'helpers', 'rss-probe.mjs')];

export function runNode(nodeArgs: readonly string[], options: ChildOptions = {}): Promise<ChildResult> {
  return runProcess(probedNode[0]!, [...probedNode.slice(1), ...nodeArgs], options);
}

/** Runs any command; a node process it starts with `probedNode` reports its peak memory. */
export function runProcess(command: string, args: readonly string[], options: ChildOptions = {}): Promise<ChildResult> {
  const dir = mkdtempSync(join(tmpdir(), 'tg-child-'));
  const rssFile = join(dir, 'rss');
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? repoRoot,
      env: { ...process.env, ...options.env, TG_TEST_RSS_FILE: rssFile },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdin.end(options.input ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      let peakRssMiB = Number.NaN;
      try {
        peakRssMiB = Number(readFileSync(rssFile, 'utf8')) / 1024;
      } catch {
        // no report: the child died first
      }
      rmSync(dir, { recursive: true, force: true });
      const json = stdout
        .trim()
        .split('\n')
        .reverse()
        .map((line) => {
          try {
            return JSON.parse(line) as Record<string, unknown>;
          } catch {
            return undefined;
          }
        })
        .find((value) => value !== undefined && typeof value === 'object');
      resolve({ status, signal, stdout, stderr, wallMs: performance.now() - started, peakRssMiB, json });
    });
  });
}

/** A message for assertions: how the child ended and what it said. */
export function describeChild(result: ChildResult): string {
  return `status ${result.status}, signal ${result.signal}, ${result.wallMs.toFixed(0)} ms, peak ${result.peakRssMiB.toFixed(0)} MiB\nstdout:\n${result.stdout.slice(-3000)}\nstderr:\n${result.stderr.slice(-3000)}`;
}

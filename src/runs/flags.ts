/**
 * The command-line flags that several commands take, defined once: each is a
 * parseArgs option (name, type, default), a help line, and a check that turns
 * the text into a value or a UsageError naming the flag. Every command spreads
 * the options it takes into its parseArgs call, prints their help lines and
 * reads them with these checks, so --device, --trust, the model paths, --seed,
 * --steps, --out, --json and --queue mean the same in every command. They live
 * under the commands because a run's flags are also the form a queued run
 * travels in (src/runs/run-flags.ts).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { access, constants, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

import type { DeviceName } from '../core/tensor.js';
import { UsageError } from '../core/usage-error.js';
import { shippedModel } from './package-paths.js';
import { DEFAULT_QUEUE_NAME, queueNameProblem, queueUrlProblem } from './queue-address.js';

/** Where a help line's text starts when a command gives no column of its own. */
const HELP_WIDTH = 80;

/** Breaks `text` at spaces into lines of at most `width` characters, joined by `joiner`. */
export function wrap(text: string, width: number, joiner: string): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines.join(joiner);
}

/**
 * One option of a command's help: `  --flag ARG` padded to `column`, then
 * `text` wrapped to the help's width, continued under itself.
 */
export function helpLine(flag: string, text: string, column: number): string {
  const head = `  ${flag}`;
  const lead = head.length < column ? head.padEnd(column) : `${head}\n${' '.repeat(column)}`;
  return lead + wrap(text, HELP_WIDTH - column, `\n${' '.repeat(column)}`);
}

/** A whole-number flag value within [min, max], or a UsageError naming the flag and the range. */
export function intFlag(flag: string, raw: string, min: number, max: number): number {
  const value = /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageError(`${flag} ${raw}: must be a whole number from ${min} to ${max.toLocaleString('en')}`);
  }
  return value;
}

/**
 * parseArgs with positionals allowed, so that a command can name a stray
 * argument itself; `positionals` says how many the command takes.
 */
export function parseFlags<O extends NonNullable<Parameters<typeof parseArgs>[0]>['options']>(
  argv: string[],
  options: O,
  positionals: { count: number; what: string } = { count: 0, what: '' },
) {
  const parsed = parseArgs({ args: argv, allowPositionals: true, strict: true, options: options! });
  if (positionals.count === 0 && parsed.positionals.length > 0) {
    throw new UsageError(`unexpected argument '${parsed.positionals[0]}' (options start with --)`);
  }
  if (positionals.count > 0 && parsed.positionals.length !== positionals.count) throw new UsageError(positionals.what);
  return parsed as ReturnType<typeof parseArgs<{ args: string[]; allowPositionals: true; strict: true; options: O }>>;
}

/** --device: where models load. */
export const deviceFlag = {
  option: { device: { type: 'string', default: 'auto' } },
  help: (column: number, text = 'auto (default), cpu, cuda, cuda:N') => helpLine('--device NAME', text, column),
  read(raw: string): DeviceName {
    if (!/^(auto|cpu|cuda(:\d+)?)$/.test(raw)) throw new UsageError(`--device ${raw}: must be auto, cpu, cuda or cuda:N`);
    return raw as DeviceName;
  },
} as const;

/**
 * --trust: without it a model file is scanned and refused if its code
 * reaches outside the model (loadModel's trust option; docs/reliability.md).
 */
export const trustFlag = {
  option: { trust: { type: 'boolean', default: false } },
  help: (column: number) => helpLine('--trust', "run the model files' code unscanned (only for files you trust)", column),
  /** loadModel's trust for the flag's value. */
  read: (trust: boolean): 'full' | 'scan' => (trust ? 'full' : 'scan'),
} as const;

/** The models the package ships, by the flag that takes each role's file. */
export const SHIPPED_MODELS = {
  model: 'fashion-unet.pt',
  guide: 'fashion-unet-weak.pt',
  sims: 'fashion-unet-sims.pt',
  classifier: 'fashion-classifier.pt',
} as const;

/** A flag that takes a model file: --model, --guide, --sims or --classifier. */
export type ModelRole = keyof typeof SHIPPED_MODELS;

/**
 * The model-file flags. None has a parseArgs default, so a command can tell
 * a file that was given from the package's default (compare leaves a row
 * out when a default model is missing, but fails for a given one).
 */
export const modelFlags = {
  option: {
    model: { type: 'string' },
    guide: { type: 'string' },
    sims: { type: 'string' },
    classifier: { type: 'string' },
  },
  help: (role: ModelRole, column: number, text: string) => helpLine(`--${role} PATH`, text, column),
  /** The file the flag names, or the model the package ships for its role. */
  path: (role: ModelRole, given: string | undefined): string => given ?? shippedModel(SHIPPED_MODELS[role]),
} as const;

/** A model file a run is bound to: its path as given, resolved, and its SHA-256. */
export interface ModelFile {
  arg: string;
  path: string;
  sha256: string;
}

/** Checks that a model flag names a readable regular file and hashes it (a run records its models by hash). */
export async function modelFile(role: ModelRole, arg: string): Promise<ModelFile> {
  const flag = `--${role}`;
  const absolute = resolve(arg);
  try {
    await access(absolute, constants.R_OK);
  } catch {
    throw new UsageError(`${flag} ${arg}: no readable file there`);
  }
  // Hashing a FIFO would wait for a writer forever: regular files only.
  if (!(await stat(absolute)).isFile()) throw new UsageError(`${flag} ${arg}: not a regular file (a model is a .pt file on disk)`);
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(absolute)) hash.update(chunk as Buffer);
  return { arg, path: absolute, sha256: hash.digest('hex') };
}

/** Seeds are unsigned 64-bit; per-sample seeds wrap modulo 2^64. */
export const MASK64 = (1n << 64n) - 1n;

/** --seed: the seed of sample 0 (sample k uses seed + k). */
export const seedFlag = {
  option: { seed: { type: 'string', default: '0' } },
  help: (column: number) => helpLine('--seed S', 'seed of sample 0; sample k uses S + k (default 0)', column),
  read(raw: string, max: bigint = MASK64): bigint {
    const text = raw.trim();
    if (!/^\d+$/.test(text) || BigInt(text) > max) throw new UsageError(`--seed ${raw}: must be a whole number from 0 to ${max === MASK64 ? '2^64 - 1' : max}`);
    return BigInt(text);
  },
} as const;

/** --steps: sampler steps, with the command's own default. */
export const stepsFlag = {
  option: (steps: number) => ({ steps: { type: 'string', default: String(steps) } }) as const,
  help: (column: number, steps: number) => helpLine('--steps N', `sampler steps (default ${steps})`, column),
  read: (raw: string): number => intFlag('--steps', raw, 1, 10_000),
} as const;

/** --out: the folder a command writes to, with the command's own default. */
export const outFlag = {
  option: (dir: string) => ({ out: { type: 'string', default: dir } }) as const,
  help: (column: number, text: string) => helpLine('--out DIR', text, column),
  read(raw: string): string {
    if (raw.trim() === '') throw new UsageError('--out: give a directory');
    return raw;
  },
} as const;

/** --json: one JSON object on stdout instead of text. */
export const jsonFlag = {
  option: { json: { type: 'boolean', default: false } },
  help: (column: number) => helpLine('--json', 'print one JSON object instead of text', column),
} as const;

/** --queue and --queue-name: a sampling queue's Redis and its name there. */
export const queueFlags = {
  option: { queue: { type: 'string' }, 'queue-name': { type: 'string', default: DEFAULT_QUEUE_NAME } },
  help: (column: number, text: string) =>
    [helpLine('--queue URL', text, column), helpLine('--queue-name NAME', `the queue's name on that Redis (default ${DEFAULT_QUEUE_NAME})`, column)].join('\n'),
  /** The checked queue, or undefined when --queue is not given. */
  read(url: string | undefined, name: string): { url: string; name: string } | undefined {
    const urlProblem = url === undefined ? undefined : queueUrlProblem(url);
    if (urlProblem) throw new UsageError(`--queue ${url}: ${urlProblem}`);
    const nameProblem = queueNameProblem(name);
    if (nameProblem) throw new UsageError(`--queue-name ${name}: ${nameProblem}`);
    return url === undefined ? undefined : { url, name };
  },
} as const;

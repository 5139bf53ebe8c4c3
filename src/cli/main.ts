#!/usr/bin/env node
/**
 * The torch-guidance command line.
 *
 * Exit codes: 0 success, 1 a TorchGuidanceError (its code is printed),
 * 2 a usage error (unknown command or flag), 70 an unexpected failure (a
 * bug: the stack is printed). File-system and allocation failures that
 * escape a command untyped are still reported as ERR_IO / ERR_OUT_OF_MEMORY
 * with exit 1: they are the machine's, not the program's.
 */
import { readFileSync } from 'node:fs';

import { ErrorCodes, TorchGuidanceError, isTorchGuidanceError } from '../core/errors.js';
import { ioError, isSystemError } from '../core/io-error.js';
import { attentionCommand, attentionHelp } from './attention.js';
import { compareCommand, compareHelp } from './compare.js';
import { evaluateCommand, evaluateHelp } from './evaluate.js';
import { inspectCommand, inspectHelp } from './inspect.js';
import { packageRoot } from '../runs/package-paths.js';
import { sampleCommand, sampleHelp } from './sample.js';
import { UsageError } from '../core/usage-error.js';
import { workerCommand, workerHelp } from './worker.js';

const EXIT_USAGE = 2;
const EXIT_FAILURE = 1;
const EXIT_INTERNAL = 70;

const commands: Record<string, { help: string; run: (argv: string[]) => Promise<void> }> = {
  attention: { help: attentionHelp, run: attentionCommand },
  compare: { help: compareHelp, run: compareCommand },
  evaluate: { help: evaluateHelp, run: evaluateCommand },
  inspect: { help: inspectHelp, run: inspectCommand },
  sample: { help: sampleHelp, run: sampleCommand },
  worker: { help: workerHelp, run: workerCommand },
};

const mainHelp = `Usage: torch-guidance <command> [options]

Commands:
  attention            heat maps of the self-attention each site captures over the samples, and SAG's mask
  compare              every guidance method on the same seeds and classes: a labelled picture and a report
  evaluate <samples>   FD, precision/recall and class accuracy of samples against real images (an evaluation classifier)
  inspect <model.pt>   the runtime (libtorch, CUDA, threads) and the model: card, methods, signatures
  sample               guided samples as PNGs and/or .npz shards; resumable batch runs (--count 50000 --out dir),
                       also spread over many machines (--queue redis://HOST:PORT/DB)
  worker               samples shards of queued runs (sample --queue) on this machine until stopped

Run 'torch-guidance help <command>' (or '<command> --help') for a command's options,
'torch-guidance --version' for the version.
Exit codes: 0 success, 1 error (code printed), 2 usage error.`;

/** The version in the package's package.json. */
function version(): string {
  return (JSON.parse(readFileSync(`${packageRoot}package.json`, 'utf8')) as { version: string }).version;
}

/** JS engine messages for allocations that cannot be made. */
const ALLOCATION_FAILURES = /Array buffer allocation failed|Invalid typed array length|Invalid array length|Invalid string length|ERR_BUFFER_TOO_LARGE|ERR_STRING_TOO_LONG/;

/** The error as a TorchGuidanceError, when it is one or a failure of the machine (file system, memory). */
function asTypedError(error: unknown): TorchGuidanceError | undefined {
  if (isTorchGuidanceError(error)) return error;
  if (isSystemError(error)) return ioError(error, 'a file operation') as TorchGuidanceError;
  const code = (error as { code?: unknown })?.code;
  if (error instanceof RangeError && (ALLOCATION_FAILURES.test(error.message) || (typeof code === 'string' && ALLOCATION_FAILURES.test(code)))) {
    return new TorchGuidanceError(ErrorCodes.OUT_OF_MEMORY, `an allocation failed (${error.message}). Fix: ask for less at once.`, { cause: error });
  }
  return undefined;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-v') {
    console.log(version());
    return 0;
  }
  if (name === 'help' && rest.length > 0) {
    const topic = commands[rest[0]!];
    if (!topic || rest.length > 1) {
      console.error(`torch-guidance help: no command '${rest.join(' ')}'.\n\n${mainHelp}`);
      return EXIT_USAGE;
    }
    console.log(topic.help);
    return 0;
  }
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(mainHelp);
    return name === undefined ? EXIT_USAGE : 0;
  }
  const command = commands[name];
  if (!command) {
    console.error(`torch-guidance: unknown command '${name}'.\n\n${mainHelp}`);
    return EXIT_USAGE;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(command.help);
    return 0;
  }
  try {
    await command.run(rest);
    return 0;
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      // The message names the flag; the full help would bury it, so point to it instead.
      console.error(`torch-guidance ${name}: ${(error as Error).message}\nRun 'torch-guidance ${name} --help' for the options.`);
      return EXIT_USAGE;
    }
    const typed = asTypedError(error);
    if (typed) {
      console.error(`torch-guidance ${name}: ${typed.code}: ${typed.message}`);
      return EXIT_FAILURE;
    }
    console.error(error);
    return EXIT_INTERNAL;
  }
}

process.exitCode = await main(process.argv.slice(2));

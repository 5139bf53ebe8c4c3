#!/usr/bin/env node
/**
 * The torch-guidance command line.
 *
 * Exit codes: 0 success, 1 a TorchGuidanceError (its code is printed),
 * 2 a usage error (unknown command or flag), 70 an unexpected failure.
 */
import { isTorchGuidanceError } from '../errors.js';
import { compareCommand, compareHelp } from './compare.js';
import { inspectCommand, inspectHelp } from './inspect.js';
import { UsageError } from './usage-error.js';

const EXIT_USAGE = 2;
const EXIT_FAILURE = 1;
const EXIT_INTERNAL = 70;

const commands: Record<string, { help: string; run: (argv: string[]) => Promise<void> }> = {
  compare: { help: compareHelp, run: compareCommand },
  inspect: { help: inspectHelp, run: inspectCommand },
};

const mainHelp = `Usage: torch-guidance <command> [options]

Commands:
  compare              every guidance method on the same seeds and classes: a labelled picture and a report
  inspect <model.pt>   the runtime (libtorch, CUDA, threads) and the model: card, methods, signatures

Run 'torch-guidance <command> --help' for a command's options.
Exit codes: 0 success, 1 error (code printed), 2 usage error.`;

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
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
      console.error(`torch-guidance ${name}: ${(error as Error).message}\n\n${command.help}`);
      return EXIT_USAGE;
    }
    if (isTorchGuidanceError(error)) {
      console.error(`torch-guidance ${name}: ${error.code}: ${error.message}`);
      return EXIT_FAILURE;
    }
    console.error(error);
    return EXIT_INTERNAL;
  }
}

process.exitCode = await main(process.argv.slice(2));

/** A mistake in the command line: the CLI prints the command's help and exits 2. */
export class UsageError extends Error {}

/**
 * Files the package ships, found from the package's own folder, so that the
 * command line's defaults work from any working directory, including an app
 * that installed the package under node_modules.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root: two folders above this file, in src/cli/ and dist/cli/ alike. */
export const packageRoot = fileURLToPath(new URL('../../', import.meta.url));

/** The path of a model in the package's models/ folder. */
export function shippedModel(file: string): string {
  return join(packageRoot, 'models', file);
}

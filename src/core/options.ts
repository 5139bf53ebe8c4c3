import type { z } from 'zod';

import { ErrorCodes, TorchGuidanceError } from './errors.js';

/**
 * Validates `value` against `schema`; a failure becomes ERR_INVALID_OPTION
 * with every offending field named by its path.
 */
export function parseOptions<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const path = issue.path.length > 0 ? issue.path.join('.') : '(value)';
    return `${path}: ${issue.message}`;
  });
  throw new TorchGuidanceError(ErrorCodes.INVALID_OPTION, `invalid ${what}: ${problems.join('; ')}`);
}

/**
 * --trust, shared by every command that loads a model: without it a model
 * file is scanned and refused if its code reaches outside the model
 * (loadModel's trust option; docs/reliability.md).
 */
export const trustFlag = { trust: { type: 'boolean', default: false } } as const;

/** The help line, aligned with the other options at `width` columns. */
export function trustHelp(width: number): string {
  return `  ${'--trust'.padEnd(width - 2)}run the model files' code unscanned (only for files you trust)`;
}

/** loadModel's trust for the flag's value. */
export function trustLevel(trust: boolean): 'full' | 'scan' {
  return trust ? 'full' : 'scan';
}

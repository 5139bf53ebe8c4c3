/**
 * sample()'s named conditions: a version 2 card's condition inputs (a text
 * model's `encoder_hidden_states`, SDXL's `text_embeds` and `time_ids`), given
 * as `{ name: Tensor }`, each [count, ...shape] (one per sample) or
 * [1, ...shape] (shared by every sample). The unconditional branch gets
 * `nullConditions` where given (a negative prompt), else the card's null:
 * zeros, the given value ('same'), or the record the archive stores.
 */
import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import type { DenoiserCard } from '../model/model-card.js';
import { isTensor, type Tensor } from '../core/tensor.js';

type Named = Extract<DenoiserCard['conditioning'], { kind: 'named' }>;

/** A condition tensor per input name, as sample() takes them. */
export type NamedConditions = Readonly<Record<string, Tensor>>;

function invalid(message: string): TorchGuidanceError {
  return new TorchGuidanceError(ErrorCodes.INVALID_OPTION, `invalid sample options: ${message}`);
}

function checkOne(field: string, value: unknown, shape: readonly number[]): number {
  if (!isTensor(value)) throw invalid(`${field}: must be a Tensor [count or 1, ${shape.join(', ')}].`);
  const rest = value.shape.slice(1);
  if (value.shape.length !== shape.length + 1 || rest.some((d, i) => d !== shape[i])) {
    throw invalid(`${field}: has shape [${value.shape.join(', ')}], but the model takes [count or 1, ${shape.join(', ')}].`);
  }
  return value.shape[0]!;
}

function checkRecord(field: string, value: unknown, conditioning: Named, required: boolean, counts: number[]): void {
  if (value === undefined && !required) return;
  const names = Object.keys(conditioning.inputs);
  if (typeof value !== 'object' || value === null || isTensor(value)) {
    throw invalid(`${field}: this model takes named conditions { ${names.join(', ')} }; pass an object of Tensors.`);
  }
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!(key in conditioning.inputs)) throw invalid(`${field}.${key}: the model has no condition input '${key}' (it takes ${names.join(', ')}).`);
  }
  for (const [name, input] of Object.entries(conditioning.inputs)) {
    if (record[name] === undefined) {
      if (required) throw invalid(`${field}.${name}: missing; the model takes ${names.join(', ')}.`);
      continue;
    }
    counts.push(checkOne(`${field}.${name}`, record[name], input.shape));
  }
}

/**
 * Checks `conditions` (every input, required) and `nullConditions` (any
 * subset) against the card and returns the sample count: the leading size
 * the per-sample tensors share, or `count` when every tensor is shared.
 */
export function namedCount(conditioning: Named, conditions: unknown, nullConditions: unknown, count: number | undefined): number {
  const counts: number[] = [];
  checkRecord('conditions', conditions, conditioning, true, counts);
  checkRecord('nullConditions', nullConditions, conditioning, false, counts);
  const perSample = [...new Set(counts.filter((c) => c !== 1))];
  if (perSample.length > 1) throw invalid(`conditions: the per-sample tensors disagree on the count (${perSample.join(' vs ')}).`);
  const fromTensors = perSample[0];
  if (count !== undefined && fromTensors !== undefined && count !== fromTensors) {
    throw invalid(`count: ${count}, but the conditions hold ${fromTensors} samples.`);
  }
  return count ?? fromTensors ?? 1;
}

/** Samples [first, first + n) of a [count or 1, ...] condition (owned: the new tensor). */
function slice(t: Tensor, first: number, n: number): Tensor {
  return t.shape[0] === 1 ? t.repeat(n) : t.narrow(first, n);
}

/**
 * The given and null condition inputs of samples [first, first + n), in the
 * card's input order; every returned tensor is new (the caller disposes them).
 */
export function namedBatch(
  conditioning: Named,
  conditions: NamedConditions,
  nullConditions: NamedConditions | undefined,
  stored: ReadonlyMap<string, Tensor>,
  first: number,
  n: number,
): { given: Tensor[]; null: Tensor[] } {
  const given: Tensor[] = [];
  const nulls: Tensor[] = [];
  try {
    for (const [name, input] of Object.entries(conditioning.inputs)) {
      const value = slice(conditions[name]!, first, n);
      given.push(value);
      const negative = nullConditions?.[name];
      if (negative) nulls.push(slice(negative, first, n));
      else if (input.null === 'zeros') nulls.push(value.mul(0));
      else if (input.null === 'same') nulls.push(value.clone());
      else nulls.push(stored.get(name)!.repeat(n));
    }
  } catch (error) {
    for (const t of [...given, ...nulls]) t.dispose();
    throw error;
  }
  return { given, null: nulls };
}

/**
 * The model card: a JSON stored inside the TorchScript archive as the extra
 * file `model.json` (`torch.jit.save(m, path, _extra_files={"model.json": ...})`).
 * It states the contract the samplers rely on. models/README.md documents the
 * fields for people exporting their own models; this schema is the one
 * source of truth and is checked when a model loads.
 */
import { z } from 'zod';

const positiveInt = z.number().int().positive();

export const discreteScheduleSchema = z
  .object({
    kind: z.literal('discrete'),
    /** How the betas are spaced between betaStart and betaEnd. */
    betas: z.enum(['linear', 'scaled_linear']),
    betaStart: z.number().positive().lt(1),
    betaEnd: z.number().positive().lt(1),
    timesteps: positiveInt,
  })
  .strict()
  .refine((s) => s.betaStart < s.betaEnd, { message: 'betaStart must be below betaEnd', path: ['betaStart'] });

export const edmScheduleSchema = z
  .object({
    kind: z.literal('edm'),
    sigmaMin: z.number().positive(),
    sigmaMax: z.number().positive(),
    sigmaData: z.number().positive(),
  })
  .strict()
  .refine((s) => s.sigmaMin < s.sigmaMax, { message: 'sigmaMin must be below sigmaMax', path: ['sigmaMin'] });

export const conditioningSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('none') }).strict(),
  z
    .object({
      kind: z.literal('class'),
      numClasses: positiveInt,
      /** The label that means "no class" (classifier-free guidance's unconditional branch). */
      nullLabel: z.number().int().nonnegative(),
    })
    .strict(),
  z.object({ kind: z.literal('tensor'), shape: z.array(positiveInt).min(1) }).strict(),
]);

/** The zod schema of a denoiser's card (`model.json` in the archive); see docs/model-cards.md. */
export const denoiserCardSchema = z
  .object({
    name: z.string().min(1),
    version: z.string().min(1),
    /** What forward predicts: the noise, v, the clean sample, or an EDM-preconditioned denoiser's output. */
    prediction: z.enum(['eps', 'v', 'x0', 'edm']),
    schedule: z.union([discreteScheduleSchema, edmScheduleSchema]),
    /** One sample's shape, without the batch axis, e.g. [1, 28, 28]. */
    sampleShape: z.array(positiveInt).min(1),
    conditioning: conditioningSchema,
    /** The module path of the time embedding (time-step guidance perturbs its output). */
    timeEmbedding: z.string().min(1).optional(),
    notes: z.string().optional(),
  })
  .strict()
  .refine((card) => (card.prediction === 'edm') === (card.schedule.kind === 'edm'), {
    message: "prediction 'edm' goes with schedule.kind 'edm', and only with it",
    path: ['prediction'],
  });

/** The zod schema of an evaluation classifier's card (`kind: 'classifier'`). */
export const classifierCardSchema = z
  .object({
    name: z.string().min(1),
    version: z.string().min(1),
    kind: z.literal('classifier'),
    sampleShape: z.array(positiveInt).min(1),
    numClasses: positiveInt,
    /** Width of the vector the `features` method returns. */
    featureDim: positiveInt,
    testAccuracy: z.number().min(0).max(1).optional(),
    notes: z.string().optional(),
  })
  .strict();

/** A denoiser's card: prediction type, noise schedule, sample shape, conditioning. */
export type DenoiserCard = z.output<typeof denoiserCardSchema>;
/** An evaluation classifier's card: class count and feature width. */
export type ClassifierCard = z.output<typeof classifierCardSchema>;
/** Either kind of card. */
export type ModelCard = DenoiserCard | ClassifierCard;

/**
 * Checks a parsed card: a classifier card when `kind` says so, else a
 * denoiser card. Returns the problems, each naming its field, or the card.
 */
export function checkModelCard(value: unknown): { card: ModelCard } | { problems: string[] } {
  const isClassifier = typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'classifier';
  const result = (isClassifier ? classifierCardSchema : denoiserCardSchema).safeParse(value);
  if (result.success) return { card: result.data };
  return {
    problems: result.error.issues.map((issue) => {
      const keys = issue.code === 'unrecognized_keys' ? ` (${issue.keys.join(', ')})` : '';
      return `${issue.path.length > 0 ? issue.path.join('.') : '(card)'}: ${issue.message}${keys}`;
    }),
  };
}

/**
 * The model card: a JSON stored inside the TorchScript archive as the extra
 * file `model.json` (`torch.jit.save(m, path, _extra_files={"model.json": ...})`).
 * It states the contract the samplers rely on. models/README.md documents the
 * fields for people exporting their own models; this schema is the one
 * source of truth and is checked when a model loads.
 */
import { z } from 'zod';

const positiveInt = z.number().int().positive();

/**
 * Bounds on what a card may declare, so that no number in a card makes the
 * loader or a sampler allocate in proportion to it: the schedule's sigma
 * table has `timesteps` entries, the probe at load draws one sample.
 * Generous for real models (a 4K RGB image is 25M elements; DDPM uses 1000
 * timesteps).
 */
const MAX_TIMESTEPS = 1_000_000;
const MAX_DIM = 1 << 16;
const MAX_SAMPLE_ELEMENTS = 1 << 28;
const MAX_CLASSES = 1 << 24;

/** A tensor shape without the batch axis, each size and their product bounded. */
const shapeSchema = z
  .array(positiveInt.max(MAX_DIM, `each size must be at most ${MAX_DIM}`))
  .min(1)
  .max(8, 'at most 8 axes')
  .refine((shape) => shape.reduce((a, b) => a * b, 1) <= MAX_SAMPLE_ELEMENTS, {
    message: `the sizes' product must be at most ${MAX_SAMPLE_ELEMENTS} elements (1 GiB of float32)`,
  });

export const discreteScheduleSchema = z
  .object({
    kind: z.literal('discrete'),
    /** How the betas are spaced between betaStart and betaEnd. */
    betas: z.enum(['linear', 'scaled_linear']),
    betaStart: z.number().positive().lt(1),
    betaEnd: z.number().positive().lt(1),
    timesteps: positiveInt.max(MAX_TIMESTEPS),
  })
  .strict()
  .refine((s) => s.betaStart < s.betaEnd, { message: 'betaStart must be below betaEnd', path: ['betaStart'] });

export const edmScheduleSchema = z
  .object({
    kind: z.literal('edm'),
    // Bounded so that sigma² and the scalings stay finite in float32.
    sigmaMin: z.number().min(1e-6).max(1e6),
    sigmaMax: z.number().min(1e-6).max(1e6),
    sigmaData: z.number().min(1e-6).max(1e6),
  })
  .strict()
  .refine((s) => s.sigmaMin < s.sigmaMax, { message: 'sigmaMin must be below sigmaMax', path: ['sigmaMin'] });

export const conditioningSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('none') }).strict(),
  z
    .object({
      kind: z.literal('class'),
      numClasses: positiveInt.max(MAX_CLASSES),
      /** The label that means "no class" (classifier-free guidance's unconditional branch). */
      nullLabel: z.number().int().nonnegative().max(MAX_CLASSES),
    })
    .strict(),
  z.object({ kind: z.literal('tensor'), shape: shapeSchema }).strict(),
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
    sampleShape: shapeSchema,
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
    sampleShape: shapeSchema,
    numClasses: positiveInt.max(MAX_CLASSES),
    /** Width of the vector the `features` method returns. */
    featureDim: positiveInt.max(MAX_DIM),
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

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

/**
 * One named condition input: its shape (no batch axis), dtype, and its null:
 * 'zeros', 'same' (the unconditional branch gets the given value: SDXL's size
 * ids), or a float32 record in the archive (`{ file: 'nulls/x.f32' }`, the
 * empty prompt's embedding).
 */
export const namedInputSchema = z
  .object({
    shape: shapeSchema,
    dtype: z.enum(['float32', 'float16', 'bfloat16', 'int64', 'int32']).default('float32'),
    null: z.union([
      z.enum(['zeros', 'same']),
      z.object({ file: z.string().regex(/^nulls\/[A-Za-z0-9_.-]+$/, "must be a record under 'nulls/'") }).strict(),
    ]),
  })
  .strict();

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
  z
    .object({
      kind: z.literal('named'),
      /**
       * The forward's condition inputs after (x, t), in forward order, by
       * argument name: each with one sample's shape and what the
       * unconditional branch gets.
       */
      inputs: z
        .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a forward argument name'), namedInputSchema)
        .refine((inputs) => Object.keys(inputs).length > 0 && Object.keys(inputs).length <= 16, {
          message: 'must name 1 to 16 inputs',
        }),
    })
    .strict(),
]);

/** A decoder beside the denoiser (a latent model): its file and the latents' scaling. */
export const decoderRefSchema = z
  .object({
    /** The decoder's TorchScript file, relative to the denoiser's file. */
    file: z
      .string()
      .min(1)
      .refine((f) => !f.startsWith('/') && !f.split(/[\\/]/).includes('..'), 'must be a path inside the model\'s folder'),
    /** z = latents / scalingFactor + shiftFactor goes to the decoder (SD 1.x: 0.18215; SDXL: 0.13025). */
    scalingFactor: z.number().positive().max(1e6),
    shiftFactor: z.number().min(-1e6).max(1e6).default(0),
  })
  .strict();

/**
 * Default attention or module sites per strategy (`pag`, `seg`, `sag`,
 * `slg`, ...), for strategies given without `sites`/`blocks`: the sites that
 * suit this architecture instead of the generic `**.mid.*`.
 */
export const guidanceSitesSchema = z
  .record(z.string().min(1), z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]))
  .refine((sites) => Object.keys(sites).length <= 64, { message: 'at most 64 strategies' });

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
    /** 2: the fields below may be present (version 1 cards have none of them). */
    cardVersion: z.union([z.literal(1), z.literal(2)]).default(1),
    /** A latent model's decoder (version 2). */
    decoder: decoderRefSchema.optional(),
    /** Default sites per strategy (version 2). */
    guidanceSites: guidanceSitesSchema.optional(),
    notes: z.string().optional(),
  })
  .strict()
  .refine((card) => (card.prediction === 'edm') === (card.schedule.kind === 'edm'), {
    message: "prediction 'edm' goes with schedule.kind 'edm', and only with it",
    path: ['prediction'],
  })
  .refine((card) => card.cardVersion === 2 || (card.decoder === undefined && card.guidanceSites === undefined && card.conditioning.kind !== 'named'), {
    message: "decoder, guidanceSites and conditioning.kind 'named' need cardVersion: 2",
    path: ['cardVersion'],
  });

/** The zod schema of a latent decoder's card (`kind: 'decoder'`): forward(z) -> image. */
export const decoderCardSchema = z
  .object({
    cardVersion: z.literal(2),
    kind: z.literal('decoder'),
    name: z.string().min(1),
    version: z.string().min(1),
    /** One latent's shape, without the batch axis (the denoiser's sampleShape). */
    latentShape: shapeSchema,
    /** One decoded image's shape, e.g. [3, 512, 512]. */
    outputShape: shapeSchema.optional(),
    notes: z.string().optional(),
  })
  .strict();

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
/** A latent decoder's card. */
export type DecoderCard = z.output<typeof decoderCardSchema>;
/** Any kind of card. */
export type ModelCard = DenoiserCard | ClassifierCard | DecoderCard;
/** One named condition input of a version 2 card. */
export type NamedInput = z.output<typeof namedInputSchema>;

/**
 * Checks a parsed card: a classifier or decoder card when `kind` says so,
 * else a denoiser card (version 1, or 2 with named conditions, a decoder and
 * default sites). Returns the problems, each naming its field, or the card.
 */
export function checkModelCard(value: unknown): { card: ModelCard } | { problems: string[] } {
  const kind = typeof value === 'object' && value !== null ? (value as { kind?: unknown }).kind : undefined;
  const schema = kind === 'classifier' ? classifierCardSchema : kind === 'decoder' ? decoderCardSchema : denoiserCardSchema;
  const result = schema.safeParse(value);
  if (result.success) return { card: result.data };
  return {
    problems: result.error.issues.map((issue) => {
      const keys = issue.code === 'unrecognized_keys' ? ` (${issue.keys.join(', ')})` : '';
      return `${issue.path.length > 0 ? issue.path.join('.') : '(card)'}: ${issue.message}${keys}`;
    }),
  };
}

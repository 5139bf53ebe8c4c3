/**
 * Every strategy factory of the package by the name its strategies carry
 * (Strategy.name), with its options schema: what guidance documents
 * (serialize.ts) and the command line build strategies from.
 */
import type { z } from 'zod';

import { apg, apgSchema } from './strategies/apg.js';
import { apgMix, apgMixSchema } from './strategies/apg-mix.js';
import { autoguidance, autoguidanceSchema } from './strategies/autoguidance.js';
import { cfg, cfgSchema } from './strategies/cfg.js';
import { cfgZeroStar, cfgZeroStarSchema } from './strategies/cfg-zero-star.js';
import { cfgpp, cfgppSchema } from './strategies/cfgpp.js';
import { fdg, fdgSchema } from './strategies/fdg.js';
import { icg, icgSchema } from './strategies/icg.js';
import { magnitudeAware, magnitudeAwareSchema } from './strategies/magnitude-aware.js';
import { pag, pagSchema } from './strategies/pag.js';
import { rescale, rescaleSchema } from './strategies/rescale.js';
import {
  blurGuidance,
  blurGuidanceSchema,
  highPassGuidance,
  highPassGuidanceSchema,
  lowPassGuidance,
  lowPassGuidanceSchema,
  randomResetGuidance,
  resetGuidanceSchema,
  sag,
  sagSchema,
  squareResetGuidance,
} from './strategies/sag.js';
import { seg, segSchema } from './strategies/seg.js';
import { sims, simsSchema } from './strategies/sims.js';
import { slg, slgSchema } from './strategies/slg.js';
import { tcfg, tcfgSchema } from './strategies/tcfg.js';
import { tsg, tsgSchema } from './strategies/tsg.js';
import type { Strategy } from './types.js';

export interface FactoryEntry {
  make: (options: never) => Strategy;
  schema: z.ZodType;
}

export const FACTORIES: Readonly<Record<string, FactoryEntry>> = {
  cfg: { make: cfg, schema: cfgSchema },
  pag: { make: pag, schema: pagSchema },
  seg: { make: seg, schema: segSchema },
  sag: { make: sag, schema: sagSchema },
  blur: { make: blurGuidance, schema: blurGuidanceSchema },
  lowpass: { make: lowPassGuidance, schema: lowPassGuidanceSchema },
  highpass: { make: highPassGuidance, schema: highPassGuidanceSchema },
  'random-reset': { make: randomResetGuidance, schema: resetGuidanceSchema },
  'square-reset': { make: squareResetGuidance, schema: resetGuidanceSchema },
  autoguidance: { make: autoguidance, schema: autoguidanceSchema },
  sims: { make: sims, schema: simsSchema },
  icg: { make: icg, schema: icgSchema },
  tsg: { make: tsg, schema: tsgSchema },
  slg: { make: slg, schema: slgSchema },
  apg: { make: apg, schema: apgSchema },
  'apg-mix': { make: apgMix, schema: apgMixSchema },
  tcfg: { make: tcfg, schema: tcfgSchema },
  fdg: { make: fdg, schema: fdgSchema },
  'magnitude-aware': { make: magnitudeAware, schema: magnitudeAwareSchema },
  'cfg-zero-star': { make: cfgZeroStar, schema: cfgZeroStarSchema },
  cfgpp: { make: cfgpp, schema: cfgppSchema },
  rescale: { make: rescale, schema: rescaleSchema },
};

export const factoryNames = Object.keys(FACTORIES);

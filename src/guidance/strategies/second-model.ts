/** A Model option for strategies that guide with a second model. */
import { z } from 'zod';

import { Model } from '../../model/model.js';

export const modelSchema = z.custom<Model>((v) => v instanceof Model, 'a loaded Model (await loadModel(path))');

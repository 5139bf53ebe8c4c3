/**
 * Reading sample sets from disk: a folder of PNGs, a run's samples.npz or an
 * IDX file, as 8-bit images for the metrics.
 *
 * @module
 */
export { readImageSet, type ImageSet, type ImageSetOptions } from './image-sets.js';

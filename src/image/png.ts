/**
 * The PNG codec in one import: the encoder (png-encode.ts), the decoder
 * (png-decode.ts) and the pixel type both use (raster.ts).
 */
export { decodePng } from './png-decode.js';
export { encodePng, writePng, type EncodePngOptions, type PngFilter } from './png-encode.js';
export { checkRaster, type RasterImage } from './raster.js';

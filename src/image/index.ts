/**
 * Image utilities for saving samples and drawing labelled comparison figures,
 * with no dependencies beyond node:zlib.
 */
export { BLACK, Canvas, WHITE, type Color } from './canvas.js';
export { MAGMA, VIRIDIS, colormapColor, heatmap, overlay, type HeatmapOptions } from './colormap.js';
export { ADVANCE, GLYPH_HEIGHT, GLYPH_WIDTH, LINE_HEIGHT, drawText, fitText, glyphBitmap, measureText, type TextStyle } from './font.js';
export { toImages, toUint8Batch, type ToImagesOptions, type UInt8Batch } from './from-tensor.js';
export { imageGrid, labelledRows, type GridOptions, type LabelledRow, type LabelledRowsOptions } from './grid.js';
export { decodePng } from './png-decode.js';
export { encodePng, writePng, type EncodePngOptions, type PngFilter } from './png-encode.js';
export { checkRaster, type RasterImage } from './raster.js';

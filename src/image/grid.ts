/**
 * Figure layouts for comparing samples: a plain grid of images, and rows of
 * images each introduced by a readable label (a guidance strategy and its
 * settings), the picture a guidance comparison is read from.
 */
import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import { BLACK, Canvas, WHITE, type Color } from './canvas.js';
import { drawText, fitText, measureText } from './font.js';
import { checkRaster, type RasterImage } from './raster.js';

/** Options of {@link imageGrid}. */
export interface GridOptions {
  /** Tiles per row; default ceil(sqrt(count)), never more than the count. */
  columns?: number;
  /** Pixels around and between tiles (default 2). */
  padding?: number;
  /** Default white. */
  background?: Color;
  /** Integer nearest-neighbour upscaling of every tile (default 1). */
  scale?: number;
}

function checkInt(value: number, what: string, min: number): number {
  if (!Number.isInteger(value) || value < min) {
    throw new TorchGuidanceError(ErrorCodes.INVALID_ARGUMENT, `${what} must be an integer >= ${min}, got ${value}`);
  }
  return value;
}

/** The cell every tile is centred in: the largest tile's scaled size. */
function cellSize(images: RasterImage[], scale: number): { cellW: number; cellH: number } {
  images.forEach((image, i) => checkRaster(image, `image ${i}`));
  return {
    cellW: Math.max(0, ...images.map((image) => image.width * scale)),
    cellH: Math.max(0, ...images.map((image) => image.height * scale)),
  };
}

/**
 * Tiles `images` left to right, top to bottom. Tile i sits in column
 * c = i % columns, row r = floor(i / columns), in a cell of the largest
 * (scaled) tile's size whose top-left is (padding + c * (cellW + padding),
 * padding + r * (cellH + padding)); a smaller tile is centred in its cell
 * (offsets rounded down).
 */
export function imageGrid(images: RasterImage[], options: GridOptions = {}): RasterImage {
  if (images.length === 0) throw new TorchGuidanceError(ErrorCodes.INVALID_ARGUMENT, 'imageGrid: no images');
  const scale = checkInt(options.scale ?? 1, 'grid scale', 1);
  const padding = checkInt(options.padding ?? 2, 'grid padding', 0);
  const columns = Math.min(images.length, checkInt(options.columns ?? Math.ceil(Math.sqrt(images.length)), 'grid columns', 1));
  const rows = Math.ceil(images.length / columns);
  const { cellW, cellH } = cellSize(images, scale);
  const canvas = new Canvas(columns * cellW + (columns + 1) * padding, rows * cellH + (rows + 1) * padding, options.background ?? WHITE);
  images.forEach((image, i) => {
    const x = padding + (i % columns) * (cellW + padding) + Math.floor((cellW - image.width * scale) / 2);
    const y = padding + Math.floor(i / columns) * (cellH + padding) + Math.floor((cellH - image.height * scale) / 2);
    canvas.blit(image, x, y, scale);
  });
  return canvas.toImage();
}

/** One row of {@link labelledRows}: a label and its images. */
export interface LabelledRow {
  /** Drawn at the left, at `textScale` (e.g. "cfg+pag"). */
  label: string;
  /** Drawn smaller under the label (e.g. "w=3 s=2"). */
  sublabel?: string;
  images: RasterImage[];
}

/** Options of {@link labelledRows}. */
export interface LabelledRowsOptions {
  /** Integer nearest-neighbour upscaling of the images (default 1). */
  scale?: number;
  /** Pixels around everything and between cells, rows and the label column (default 4). */
  padding?: number;
  /**
   * Label column width in pixels; default the widest label or sublabel.
   * Labels too long for a given width are cut to fit.
   */
  labelWidth?: number;
  /** Drawn across the top at `textScale`. */
  title?: string;
  /** Text size multiplier for labels and title (default 2); sublabels use textScale - 1 (at least 1). */
  textScale?: number;
  /** Default white. */
  background?: Color;
  /** Default black. */
  textColor?: Color;
}

/**
 * One row per entry: its label (and sublabel below it) vertically centred in
 * a left column, then its images left to right in cells of the largest
 * image's scaled size, each image centred in its cell. All rows share one
 * height (the tallest of cell and label block), so columns line up.
 */
export function labelledRows(rows: LabelledRow[], options: LabelledRowsOptions = {}): RasterImage {
  if (rows.length === 0) throw new TorchGuidanceError(ErrorCodes.INVALID_ARGUMENT, 'labelledRows: no rows');
  const scale = checkInt(options.scale ?? 1, 'labelledRows scale', 1);
  const padding = checkInt(options.padding ?? 4, 'labelledRows padding', 0);
  const textScale = checkInt(options.textScale ?? 2, 'labelledRows textScale', 1);
  const subScale = Math.max(1, textScale - 1);
  const textColor = options.textColor ?? BLACK;
  const { cellW, cellH } = cellSize(
    rows.flatMap((row) => row.images),
    scale,
  );
  const labelWidth =
    options.labelWidth === undefined
      ? Math.max(
          ...rows.map((row) => Math.max(measureText(row.label, textScale).width, measureText(row.sublabel ?? '', subScale).width)),
        )
      : checkInt(options.labelWidth, 'labelledRows labelWidth', 0);
  const texts = rows.map((row) => {
    const fit = (text: string, s: number) =>
      options.labelWidth === undefined ? text : text.split('\n').map((line) => fitText(line, labelWidth, s)).join('\n');
    const label = fit(row.label, textScale);
    const sublabel = fit(row.sublabel ?? '', subScale);
    const gap = label !== '' && sublabel !== '' ? 3 * subScale : 0;
    const height = measureText(label, textScale).height + gap + measureText(sublabel, subScale).height;
    return { label, sublabel, gap, height };
  });
  const rowH = Math.max(cellH, ...texts.map((t) => t.height));
  const maxCount = Math.max(...rows.map((row) => row.images.length));
  const contentX = labelWidth > 0 ? 2 * padding + labelWidth : padding;
  const gridW = maxCount * cellW + Math.max(0, maxCount - 1) * padding;
  const title = options.title ?? '';
  const titleBox = measureText(title, textScale);
  const titleH = title === '' ? 0 : titleBox.height + padding;
  const width = Math.max(contentX + gridW + padding, title === '' ? 0 : 2 * padding + titleBox.width, 1);
  const height = 2 * padding + titleH + rows.length * rowH + (rows.length - 1) * padding;
  const canvas = new Canvas(width, height, options.background ?? WHITE);
  if (title !== '') drawText(canvas, padding, padding, title, { scale: textScale, color: textColor });
  rows.forEach((row, r) => {
    const top = padding + titleH + r * (rowH + padding);
    const text = texts[r]!;
    const labelTop = top + Math.floor((rowH - text.height) / 2);
    drawText(canvas, padding, labelTop, text.label, { scale: textScale, color: textColor });
    const subTop = labelTop + measureText(text.label, textScale).height + text.gap;
    drawText(canvas, padding, subTop, text.sublabel, { scale: subScale, color: textColor });
    row.images.forEach((image, j) => {
      const x = contentX + j * (cellW + padding) + Math.floor((cellW - image.width * scale) / 2);
      const y = top + Math.floor((rowH - image.height * scale) / 2);
      canvas.blit(image, x, y, scale);
    });
  });
  return canvas.toImage();
}

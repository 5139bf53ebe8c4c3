/**
 * Line charts as PNG, drawn with the package's own image utilities (Canvas,
 * drawText, writePng): one chart per metric, one curve per strategy, metric
 * against the weight of the guidance term (w − 1 or s; 0 = unguided, where
 * every curve starts from its unguided row). Null-label curves are dashed.
 */
import { Canvas, drawText, measureText, writePng, type Color, type RasterImage } from '../../src/image/index.js';

export interface Series {
  name: string;
  color: Color;
  dashed: boolean;
  points: { x: number; y: number }[];
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  width?: number;
  height?: number;
  /**
   * 'log1p' spaces x by log(1 + x) (x ≥ 0): weights from 0.25 to 20 on one
   * axis without squeezing the CFG-like curves, which turn below 3, into its first tenth.
   */
  xScale?: 'linear' | 'log1p';
  /** A horizontal reference line (e.g. real data), with its label. */
  reference?: { y: number; label: string };
}

const PALETTE: Record<string, Color> = {
  none: [0, 0, 0],
  cfg: [31, 119, 180],
  'cfg+interval': [23, 190, 207],
  'cfg+interval (0.28,15]': [0, 128, 128],
  'cfg+interval (0.28,30]': [110, 220, 170],
  pag: [255, 127, 14],
  seg: [44, 160, 44],
  sag: [214, 39, 40],
  autoguidance: [148, 103, 189],
  sims: [140, 86, 75],
  icg: [227, 119, 194],
  'null: none': [127, 127, 127],
};

/** The colour of a family's curve: null-label families share their method's colour (and are dashed). */
export function colorFor(family: string): Color {
  return PALETTE[family] ?? PALETTE[family.replace(/^null: /, '')] ?? [100, 100, 100];
}

function niceStep(range: number, target: number): number {
  const raw = range / target;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const residual = raw / magnitude;
  return (residual >= 5 ? 10 : residual >= 2 ? 5 : residual >= 1 ? 2 : 1) * magnitude;
}

function ticks(min: number, max: number, target: number): { values: number[]; digits: number } {
  const step = niceStep(max - min || 1, target);
  const values: number[] = [];
  for (let v = Math.ceil(min / step - 1e-9) * step; v <= max + step * 1e-9; v += step) values.push(Number(v.toPrecision(12)));
  return { values, digits: Math.max(0, -Math.floor(Math.log10(step) + 1e-9)) };
}

/** A thick line from (x0, y0) to (x1, y1), dashed if asked. */
function line(canvas: Canvas, x0: number, y0: number, x1: number, y1: number, color: Color, dashed: boolean, thickness = 2): void {
  const length = Math.hypot(x1 - x0, y1 - y0);
  const steps = Math.max(1, Math.ceil(length));
  for (let i = 0; i <= steps; i++) {
    if (dashed && i % 10 >= 6) continue;
    const t = i / steps;
    canvas.fillRect(Math.round(x0 + (x1 - x0) * t - thickness / 2), Math.round(y0 + (y1 - y0) * t - thickness / 2), thickness, thickness, color);
  }
}

function marker(canvas: Canvas, x: number, y: number, color: Color, hollow: boolean): void {
  const r = 3;
  canvas.fillRect(Math.round(x) - r, Math.round(y) - r, 2 * r + 1, 2 * r + 1, color);
  if (hollow) canvas.fillRect(Math.round(x) - r + 2, Math.round(y) - r + 2, 2 * r - 3, 2 * r - 3, [255, 255, 255]);
}

export function lineChart(options: ChartOptions): RasterImage {
  const width = options.width ?? 980;
  const height = options.height ?? 620;
  const canvas = new Canvas(width, height);
  const legendWidth = 190;
  const left = 80;
  const top = 50;
  const right = width - legendWidth - 20;
  const bottom = height - 60;

  const log1p = options.xScale === 'log1p';
  const fx = log1p ? Math.log1p : (x: number) => x;
  const all = options.series.flatMap((s) => s.points);
  const ys = all.map((p) => p.y).concat(options.reference ? [options.reference.y] : []);
  const xs = all.map((p) => fx(p.x));
  let [xMin, xMax] = [Math.min(...xs), Math.max(...xs)];
  let [yMin, yMax] = [Math.min(...ys), Math.max(...ys)];
  if (xMax === xMin) [xMin, xMax] = [xMin - 1, xMax + 1];
  if (yMax === yMin) [yMin, yMax] = [yMin - 1, yMax + 1];
  const yPad = (yMax - yMin) * 0.06;
  const xPad = (xMax - xMin) * 0.03;
  [xMin, xMax, yMin, yMax] = [xMin - xPad, xMax + xPad, yMin - yPad, yMax + yPad];
  // px takes x in data units; xMin/xMax are in axis units (after fx).
  const px = (x: number) => left + ((fx(x) - xMin) / (xMax - xMin)) * (right - left);
  const py = (y: number) => bottom - ((y - yMin) / (yMax - yMin)) * (bottom - top);

  drawText(canvas, left, 12, options.title, { scale: 2 });
  const grid: Color = [225, 225, 225];
  const xt = log1p
    ? { values: [0, 0.25, 0.5, 1, 2, 3, 5, 8, 12, 20, 50, 100].filter((v) => fx(v) >= xMin && fx(v) <= xMax), digits: -1 }
    : ticks(xMin, xMax, 8);
  for (const v of xt.values) {
    canvas.fillRect(Math.round(px(v)), top, 1, bottom - top, grid);
    const label = xt.digits < 0 ? String(v) : v.toFixed(xt.digits);
    drawText(canvas, Math.round(px(v) - measureText(label).width / 2), bottom + 6, label);
  }
  const yt = ticks(yMin, yMax, 8);
  for (const v of yt.values) {
    canvas.fillRect(left, Math.round(py(v)), right - left, 1, grid);
    const label = v.toFixed(yt.digits);
    drawText(canvas, left - 6 - measureText(label).width, Math.round(py(v)) - 4, label);
  }
  canvas.fillRect(left, top, 1, bottom - top + 1, [0, 0, 0]);
  canvas.fillRect(left, bottom, right - left + 1, 1, [0, 0, 0]);
  drawText(canvas, Math.round((left + right) / 2 - measureText(options.xLabel).width / 2), bottom + 24, options.xLabel);
  drawText(canvas, 8, top - 16, options.yLabel);

  if (options.reference) {
    const y = Math.round(py(options.reference.y));
    for (let x = left; x < right; x += 8) canvas.fillRect(x, y, 4, 1, [90, 90, 90]);
    drawText(canvas, right - measureText(options.reference.label).width - 4, y - 12, options.reference.label, { color: [90, 90, 90] });
  }

  for (const s of options.series) {
    const pts = [...s.points].sort((a, b) => a.x - b.x);
    for (let i = 1; i < pts.length; i++) line(canvas, px(pts[i - 1]!.x), py(pts[i - 1]!.y), px(pts[i]!.x), py(pts[i]!.y), s.color, s.dashed);
    for (const p of pts) marker(canvas, px(p.x), py(p.y), s.color, s.dashed);
  }

  let ly = top;
  for (const s of options.series) {
    const lx = right + 20;
    line(canvas, lx, ly + 4, lx + 28, ly + 4, s.color, s.dashed);
    marker(canvas, lx + 14, ly + 4, s.color, s.dashed);
    drawText(canvas, lx + 36, ly, s.name);
    ly += 16;
  }
  return canvas.toImage();
}

export async function writeChart(path: string, options: ChartOptions): Promise<void> {
  await writePng(path, lineChart(options));
}

/**
 * An RGB drawing surface for composing figures (grids, labelled comparisons):
 * rectangles, nearest-neighbour image blits and, through font.ts, text.
 * Everything clips to the canvas, so layout code never has to.
 */
import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import { checkRaster, type RasterImage } from './raster.js';

/** An RGB colour, each component 0..255. */
export type Color = readonly [number, number, number];

export const BLACK: Color = [0, 0, 0];
export const WHITE: Color = [255, 255, 255];

function checkInteger(value: number, what: string, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new TorchGuidanceError(ErrorCodes.INVALID_ARGUMENT, `${what} must be an integer >= ${min}, got ${value}`);
  }
}

export class Canvas {
  readonly width: number;
  readonly height: number;
  /** RGB bytes, row-major; drawn on in place. */
  readonly data: Uint8Array;

  constructor(width: number, height: number, background: Color = WHITE) {
    checkInteger(width, 'canvas width', 1);
    checkInteger(height, 'canvas height', 1);
    this.width = width;
    this.height = height;
    this.data = new Uint8Array(width * height * 3);
    this.fillRect(0, 0, width, height, background);
  }

  /** Fills the rectangle [x, x+w) x [y, y+h), clipped to the canvas. */
  fillRect(x: number, y: number, w: number, h: number, color: Color): void {
    const x0 = Math.max(0, Math.floor(x));
    const y0 = Math.max(0, Math.floor(y));
    const x1 = Math.min(this.width, Math.floor(x + w));
    const y1 = Math.min(this.height, Math.floor(y + h));
    const [r, g, b] = color;
    for (let py = y0; py < y1; py++) {
      for (let px = x0; px < x1; px++) {
        const i = (py * this.width + px) * 3;
        this.data[i] = r;
        this.data[i + 1] = g;
        this.data[i + 2] = b;
      }
    }
  }

  /** The RGB colour at (x, y); throws outside the canvas. */
  pixel(x: number, y: number): Color {
    if (!(x >= 0 && x < this.width && y >= 0 && y < this.height)) {
      throw new TorchGuidanceError(ErrorCodes.INVALID_ARGUMENT, `pixel (${x}, ${y}) is outside the ${this.width}x${this.height} canvas`);
    }
    const i = (y * this.width + x) * 3;
    return [this.data[i]!, this.data[i + 1]!, this.data[i + 2]!];
  }

  /**
   * Draws `image` with its top-left corner at (x, y), each source pixel as a
   * `scale` x `scale` block (nearest neighbour: sample pixels stay crisp).
   * Gray is replicated to RGB; RGBA is alpha-blended over what is there.
   */
  blit(image: RasterImage, x: number, y: number, scale = 1): void {
    checkRaster(image);
    checkInteger(scale, 'blit scale', 1);
    if (!Number.isInteger(x) || !Number.isInteger(y)) {
      throw new TorchGuidanceError(ErrorCodes.INVALID_ARGUMENT, `blit position must be integers, got (${x}, ${y})`);
    }
    const { width, height, channels, data } = image;
    const x0 = Math.max(0, x);
    const y0 = Math.max(0, y);
    const x1 = Math.min(this.width, x + width * scale);
    const y1 = Math.min(this.height, y + height * scale);
    for (let py = y0; py < y1; py++) {
      const sy = Math.floor((py - y) / scale);
      for (let px = x0; px < x1; px++) {
        const s = (sy * width + Math.floor((px - x) / scale)) * channels;
        const d = (py * this.width + px) * 3;
        if (channels === 1) {
          this.data[d] = this.data[d + 1] = this.data[d + 2] = data[s]!;
        } else if (channels === 3) {
          this.data[d] = data[s]!;
          this.data[d + 1] = data[s + 1]!;
          this.data[d + 2] = data[s + 2]!;
        } else {
          const alpha = data[s + 3]!;
          for (let c = 0; c < 3; c++) {
            this.data[d + c] = Math.round((data[s + c]! * alpha + this.data[d + c]! * (255 - alpha)) / 255);
          }
        }
      }
    }
  }

  /** A copy of the canvas as an RGB RasterImage (later drawing does not change it). */
  toImage(): RasterImage {
    return { width: this.width, height: this.height, channels: 3, data: this.data.slice() };
  }
}

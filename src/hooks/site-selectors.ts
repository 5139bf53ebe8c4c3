/**
 * Choosing hook sites by module path: shared by attention sites and module
 * outputs (both are named as PyTorch's named_modules() names modules).
 */
import { z } from 'zod';

/** Which sites a hook applies to: a path glob, a RegExp, a site index, or a list of these. */
export type SiteSelector = string | RegExp | number | readonly (string | RegExp | number)[];

const one = z.union([z.string().min(1), z.instanceof(RegExp), z.number().int().nonnegative()]);

export const selectorSchema = z.union([one, z.array(one).min(1).readonly()]);

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A path glob as a RegExp over whole segments: `*` within one segment, `**` any number of segments. */
export function globToRegExp(glob: string): RegExp {
  if (glob === '**') return /^.*$/;
  const segments = glob.split('.');
  let pattern = '';
  segments.forEach((segment, i) => {
    if (segment === '**') {
      pattern += i === 0 ? '(?:[^.]+\\.)*' : '(?:\\.[^.]+)*';
      return;
    }
    const dot = i > 0 && !(i === 1 && segments[0] === '**') ? '\\.' : '';
    pattern += dot + segment.split('*').map(escapeRegExp).join('[^.]*');
  });
  return new RegExp(`^${pattern}(?:#\\d+)?$`);
}

function matches(selector: string | RegExp | number, site: { id: number; path: string }): boolean {
  if (typeof selector === 'number') return site.id === selector;
  if (selector instanceof RegExp) return new RegExp(selector.source, selector.flags.replace('g', '')).test(site.path);
  return globToRegExp(selector).test(site.path);
}

/** The sites any of the selectors matches, in site order. */
export function selectSites<S extends { id: number; path: string }>(selector: SiteSelector, sites: readonly S[]): S[] {
  const selectors = Array.isArray(selector) ? selector : [selector as string | RegExp | number];
  return sites.filter((site) => selectors.some((s) => matches(s, site)));
}

/** A selector as text for messages (`mid.*`, `/^up\./`, `[down.*, 3]`). */
export function selectorText(selector: SiteSelector): string {
  const list = Array.isArray(selector) ? selector : [selector];
  const text = list.map((s) => String(s)).join(', ');
  return list.length > 1 ? `[${text}]` : text;
}

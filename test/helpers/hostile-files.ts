/**
 * The hostile inputs of test/reference/hostile_models.py, made once per test
 * file into a temporary directory (with Python torch), and the directory the
 * side-effect models would write into if their code ran.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { python, repoRoot } from './python.js';

export interface HostileFiles {
  dir: string;
  markers: string;
  path(name: string): string;
  remove(): void;
}

/** Makes the files named in `only` (all when omitted). */
export function makeHostileFiles(only?: readonly string[]): HostileFiles {
  const root = mkdtempSync(join(tmpdir(), 'tg-hostile-'));
  const dir = join(root, 'files');
  const markers = join(root, 'markers');
  execFileSync(python, [join(repoRoot, 'test', 'reference', 'hostile_models.py'), dir, markers, ...(only ?? [])], { stdio: 'pipe', timeout: 300_000 });
  return { dir, markers, path: (name) => join(dir, name), remove: () => rmSync(root, { recursive: true, force: true }) };
}

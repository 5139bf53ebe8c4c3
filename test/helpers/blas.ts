/**
 * What the BLAS tests share: the check that libtorch runs on a fast BLAS, and
 * where to find the reference BLAS to force a child process onto.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { BlasInfo } from '../../src/index.js';

/**
 * Null when the BLAS is fine to run on; otherwise why not, and the fix. The
 * reference BLAS passes only when the user opted out
 * (TORCH_GUIDANCE_ALLOW_REFERENCE_BLAS=1).
 */
export function fastBlasProblem(blas: BlasInfo, allowReference: boolean): string | null {
  if (blas.name !== 'reference' || allowReference) return null;
  return (
    `libtorch runs on the reference BLAS (${blas.library}): matrix multiplies ~20x slower. Install OpenBLAS ` +
    '(sudo apt-get install libopenblas0-pthread; bash scripts/setup.sh does), or set TORCH_GUIDANCE_ALLOW_REFERENCE_BLAS=1 to accept it.'
  );
}

/** The files mapped into this process (from /proc/self/maps). */
export function mappedFiles(): Set<string> {
  const lines = readFileSync('/proc/self/maps', 'utf8').split('\n');
  return new Set(lines.map((line) => line.split(/\s+/).slice(5).join(' ')).filter((path) => path.startsWith('/')));
}

/** The file the dynamic loader resolves `soname` to for `library` (ldd's view, same environment), or null. */
export function resolvedDependency(library: string, soname: string): string | null {
  let listing: string;
  try {
    listing = execFileSync('ldd', [library], { encoding: 'utf8' });
  } catch {
    return null;
  }
  const line = listing.split('\n').find((l) => l.trim().startsWith(`${soname} =>`));
  const path = line?.split('=>')[1]?.trim().split(/\s+/)[0];
  return path && path.startsWith('/') ? path : null;
}

const multiarch: Record<string, string> = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' };
const debianArch: Record<string, string> = { x64: 'amd64', arm64: 'arm64' };

/**
 * A directory holding Netlib's reference libblas.so.3, for LD_LIBRARY_PATH:
 * TORCH_GUIDANCE_TEST_REFERENCE_BLAS (a directory, or the file in it); else
 * Debian's libblas3 where installed; else libblas3 unpacked from apt's
 * package cache into the temporary directory (a machine switched to OpenBLAS
 * may have removed libblas3 but kept the package). Null when none is at hand.
 */
export function referenceBlasDir(): string | null {
  const given = process.env.TORCH_GUIDANCE_TEST_REFERENCE_BLAS;
  if (given) return given.endsWith('.so.3') ? join(given, '..') : given;
  const arch = multiarch[process.arch];
  if (!arch) return null;
  const installed = `/usr/lib/${arch}/blas`;
  if (existsSync(join(installed, 'libblas.so.3'))) return installed;
  const cache = '/var/cache/apt/archives';
  const deb = existsSync(cache) ? readdirSync(cache).find((f) => f.startsWith('libblas3_') && f.endsWith(`_${debianArch[process.arch]}.deb`)) : undefined;
  if (!deb) return null;
  const unpacked = join(tmpdir(), `torch-guidance-${deb.replace(/\.deb$/, '')}`);
  const dir = join(unpacked, 'usr', 'lib', arch, 'blas');
  if (!existsSync(join(dir, 'libblas.so.3'))) {
    mkdirSync(unpacked, { recursive: true });
    try {
      execFileSync('dpkg-deb', ['-x', join(cache, deb), unpacked], { stdio: 'pipe' });
    } catch {
      return null;
    }
  }
  return existsSync(join(dir, 'libblas.so.3')) ? dir : null;
}

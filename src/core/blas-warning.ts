/**
 * The one warning about the BLAS: libtorch from a distribution (Debian's
 * libtorch, python3-torch) calls whatever libblas.so.3 the system selects, and
 * on a fresh install that is Netlib's reference BLAS: one thread, no cache
 * blocking, matrix multiplies ~20x slower than OpenBLAS on the same machine.
 * Nothing fails, everything is just slow, so the package says so once per
 * process (a process warning, not an error) and names the fix.
 */
import type { BlasInfo } from './native/binding.js';

/** The warning's `code` (process.on('warning') sees it; `--disable-warning=` takes it). */
export const REFERENCE_BLAS_WARNING = 'TORCH_GUIDANCE_REFERENCE_BLAS';

const multiarch: Record<string, string> = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu', ppc64: 'powerpc64le-linux-gnu', s390x: 's390x-linux-gnu' };

/** The warning's text for this BLAS, or null when there is nothing to warn about. */
export function referenceBlasMessage(blas: BlasInfo): string | null {
  if (blas.name !== 'reference') return null;
  const alternative = `libblas.so.3-${multiarch[process.arch] ?? `${process.arch}-linux-gnu`}`;
  return (
    `libtorch is running on the reference BLAS (${blas.library ?? 'libblas.so.3'}): one thread and no cache blocking, so matrix ` +
    'multiplies run ~20x slower than on OpenBLAS. Fix: `sudo apt-get install libopenblas0-pthread` (it becomes the ' +
    `system's libblas.so.3), or select an installed one with \`sudo update-alternatives --config ${alternative}\`; ` +
    '`torch-guidance inspect <model>` shows the BLAS in use. Set TORCH_GUIDANCE_ALLOW_REFERENCE_BLAS=1 to accept it without this warning.'
  );
}

let warned = false;

/** Emits the warning once per process when libtorch runs on the reference BLAS, unless `allowed`. */
export function warnOnReferenceBlas(blas: BlasInfo, allowed: boolean): void {
  const message = referenceBlasMessage(blas);
  if (message === null || allowed || warned) return;
  warned = true;
  process.emitWarning(message, { type: 'TorchGuidanceWarning', code: REFERENCE_BLAS_WARNING });
}

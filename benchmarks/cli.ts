/** What every benchmark script parses and computes the same way. */
import { cpus } from 'node:os';

import { runtimeInfo } from '../src/index.js';

/** The command line after the script: `flag('batch', '16')` reads `--batch 16`, else the fallback. */
export const argv = process.argv.slice(2);

export function flag(name: string, fallback: string): string {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] ? argv[i + 1]! : fallback;
}

/** The q-quantile of values, interpolating linearly between neighbours (numpy's default). */
export function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  return sorted[lo]! + (sorted[Math.min(lo + 1, sorted.length - 1)]! - sorted[lo]!) * (at - lo);
}

export function median(values: readonly number[]): number {
  return quantile(values, 0.5);
}

/**
 * The Python that runs the reference side: TORCH_GUIDANCE_PYTHON, else Debian's
 * (python3-torch, the same libtorch as ours) on the CPU and the PATH's on a machine with a GPU.
 */
export function pythonFor(device: string): string {
  return process.env.TORCH_GUIDANCE_PYTHON ?? (device === 'cpu' ? '/usr/bin/python3' : 'python3');
}

/**
 * The BLAS line of every report: which BLAS libtorch's matrix multiplies ran
 * on, from which file, with how many threads. CPU numbers depend on it more
 * than on anything else here (the reference BLAS, a fresh Debian's default,
 * makes matrix multiplies ~20x slower), so a table without it cannot be
 * compared with another. `python`: the report has a Python side (its torch
 * loads its own BLAS; Debian's python3-torch the same libblas.so.3).
 */
export function blasFor({ python = false }: { python?: boolean } = {}): string {
  const { blas, intraOpThreads, jobThreads } = runtimeInfo();
  const n = blas.threads === null ? 'unknown' : String(blas.threads);
  const threads = {
    auto: `${n} threads per matrix multiply (auto: max(1, floor(${intraOpThreads} intra-op / ${jobThreads} torch threads)))`,
    fixed: `${n} threads (pinned: TORCH_GUIDANCE_BLAS_THREADS or setBlasThreads)`,
    external: `${n} threads (OPENBLAS_NUM_THREADS)`,
    'intra-op': `the intra-op threads (${intraOpThreads})`,
    none: blas.name === 'reference' ? '1 thread' : 'threads unknown',
  }[blas.control];
  const pinned = process.env.OPENBLAS_NUM_THREADS;
  const pythonBlas = pinned
    ? `OPENBLAS_NUM_THREADS=${pinned}, inherited from this run`
    : "OpenBLAS's default of all cores, as OPENBLAS_NUM_THREADS is unset";
  const pythonSide = python ? `; the Python side's torch (Debian's python3-torch: the same libblas.so.3): ${pythonBlas}` : '';
  return `BLAS: ${blas.name}${blas.config ? ` (${blas.config})` : ''}, ${blas.library ?? 'no library found'}; ours: ${threads}${pythonSide}`;
}

/** The machine a report was measured on: the GPU (when the device is one) and the CPU. */
export function machineFor(device: string): string {
  const cpu = `${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length}`;
  if (device === 'cpu') return cpu;
  const index = Number(device.split(':')[1] ?? 0);
  return `${runtimeInfo().cudaDevices[index]?.model ?? 'CUDA device'}, CPU ${cpu}`;
}

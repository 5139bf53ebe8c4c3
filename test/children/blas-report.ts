// Prints one JSON line: the BLAS this process runs on, what the fast-BLAS
// check says of it, what a worker thread of the same process sees, and the
// files mapped (test/blas.test.ts runs it forced onto the reference BLAS).
import { Worker } from 'node:worker_threads';

import { config } from '../../src/core/config.js';
import { runtimeInfo } from '../../src/index.js';
import { fastBlasProblem, mappedFiles } from '../helpers/blas.js';

const { blas } = runtimeInfo();
const worker = new Worker(new URL('./worker-entry.mjs', import.meta.url), {
  workerData: { body: new URL('./blas-worker.ts', import.meta.url).href },
});
const workerBlas = await new Promise((resolve, reject) => {
  worker.once('message', resolve);
  worker.once('error', reject);
});
await worker.terminate();
console.log(JSON.stringify({ blas, problem: fastBlasProblem(blas, config.allowReferenceBlas), workerBlas, mapped: [...mappedFiles()] }));

// Runs in a worker thread (test/children/blas-report.ts): loads the package
// again in the same process and posts the BLAS it sees.
import { parentPort } from 'node:worker_threads';

import { runtimeInfo } from '../../src/index.js';

parentPort!.postMessage(runtimeInfo().blas.name);

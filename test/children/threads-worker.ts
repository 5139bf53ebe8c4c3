// Runs in a worker thread (test/children/threads.ts): setThreads() with the
// job count in force, then with another; posts the outcome of each.
import { parentPort } from 'node:worker_threads';

import { setThreads } from '../../src/index.js';

const codeOf = (fn: () => unknown): string => {
  try {
    fn();
    return 'ok';
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  }
};
parentPort!.postMessage([codeOf(() => setThreads({ jobs: 4 })), codeOf(() => setThreads({ jobs: 1 }))]);

/** Worker-thread entry of `featureMetrics` (./feature-metrics.ts): one request, one reply, then it exits. */
import { parentPort } from 'node:worker_threads';

import { isTorchGuidanceError } from '../core/errors.js';
import type { WorkerReply } from '../core/worker-task.js';
import { featureMetricsSync, type FeatureMetrics, type FeatureMetricsRequest } from './feature-metrics.js';

parentPort!.once('message', (request: FeatureMetricsRequest) => {
  let reply: WorkerReply<FeatureMetrics>;
  try {
    reply = { ok: true, value: featureMetricsSync(request.samples, request.reference, request.options) };
  } catch (error) {
    reply = { ok: false, code: isTorchGuidanceError(error) ? error.code : null, message: (error as Error).message };
  }
  parentPort!.postMessage(reply);
});

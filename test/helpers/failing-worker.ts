/** A worker entry for test/worker-task.test.ts: fails the way its request asks. */
import { parentPort } from 'node:worker_threads';

parentPort!.once('message', (how: 'throw' | 'exit' | 'reply-error' | 'echo') => {
  if (how === 'throw') throw new Error('boom in the worker');
  if (how === 'exit') process.exit(3);
  if (how === 'reply-error') parentPort!.postMessage({ ok: false, code: 'ERR_INVALID_ARGUMENT', message: 'refused in the worker' });
  else parentPort!.postMessage({ ok: true, value: 'echo' });
});

/**
 * One request to a module run in a worker thread, for CPU work that would
 * otherwise hold the event loop for seconds.
 *
 * The worker lives for one request: it is started, sent the request, and
 * terminated before the promise settles, so nothing outlives the call. An
 * abort terminates it at once. Errors come back as TorchGuidanceErrors with
 * the worker's code and message.
 *
 * Started from the TypeScript sources (tests, `tsx`), a worker does not
 * inherit tsx's loader, so it is started through a small bootstrap that
 * registers tsx first; from the compiled package it loads the .js sibling.
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

import { abortError, ErrorCodes, TorchGuidanceError, type ErrorCode } from './errors.js';

/** What a worker entry posts back: a result, or an error to rethrow on the caller's side. */
export type WorkerReply<T> = { ok: true; value: T } | { ok: false; code: ErrorCode | null; message: string };

/**
 * The URL of the module `name` (no extension) beside the module at
 * `importMetaUrl`: `name.ts` when that module runs from its .ts source, else `name.js`.
 */
export function siblingModule(importMetaUrl: string, name: string): URL {
  return new URL(`./${name}${importMetaUrl.endsWith('.ts') ? '.ts' : '.js'}`, importMetaUrl);
}

function startWorker(entry: URL): Worker {
  // No inherited Node flags: the worker imports only this package's modules, and flags like
  // --input-type (of `node --input-type=module -e ...`) would make a file worker fail to start.
  const options = { execArgv: [] };
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, options);
  // tsx is a devDependency: present wherever the sources run. Its ESM API's register() installs
  // its loader in this thread. createRequire finds the package also where tsx compiled the
  // sources to CommonJS (under mocha, which has no import.meta.resolve); it resolves the API's
  // CommonJS build, whose ESM twin sits beside it.
  const api = createRequire(entry).resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs');
  const bootstrap = `import(${JSON.stringify(pathToFileURL(api).href)}).then(({ register }) => { register(); return import(${JSON.stringify(entry.href)}); });`;
  return new Worker(bootstrap, { ...options, eval: true });
}

/** Runs `entry` in a fresh worker thread with `request` as its one message and resolves with its reply. */
export function runWorkerTask<Request, Result>(entry: URL, request: Request, signal?: AbortSignal): Promise<Result> {
  if (signal?.aborted) return Promise.reject(abortError(signal));
  return new Promise<Result>((resolve, reject) => {
    const worker = startWorker(entry);
    let settled = false;
    // Settles only after the worker is gone, so no thread or handle outlives the promise.
    const finish = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      void worker.terminate().then(outcome, outcome);
    };
    const onAbort = () => finish(() => reject(abortError(signal!)));
    signal?.addEventListener('abort', onAbort, { once: true });
    worker.once('message', (reply: WorkerReply<Result>) =>
      finish(() =>
        reply.ok ? resolve(reply.value) : reject(new TorchGuidanceError(reply.code ?? ErrorCodes.WORKER_FAILED, reply.message)),
      ),
    );
    worker.once('error', (error) =>
      finish(() => reject(new TorchGuidanceError(ErrorCodes.WORKER_FAILED, `the worker thread failed: ${error.message}`, { cause: error }))),
    );
    worker.once('exit', (code) =>
      finish(() => reject(new TorchGuidanceError(ErrorCodes.WORKER_FAILED, `the worker thread exited (code ${code}) without a result`))),
    );
    worker.postMessage(request);
  });
}

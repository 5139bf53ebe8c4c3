/**
 * Sampling runs spread over worker processes on a real Redis (BullMQ): the
 * files equal a single-process run byte for byte after a worker is killed
 * with SIGKILL mid-shard, another stopped with SIGTERM and the coordinator
 * killed and restarted; a worker with another model file refuses the run;
 * a stopped worker hands its shard back; planning twice adds each job once;
 * bad input fails with typed errors and writes nothing.
 *
 * redis-server (Debian's) runs on a free loopback port for the whole file
 * and is stopped after it, as is every process a test started. The runs use
 * the tiny fixture with 3 steps, so a shard of 20 samples takes about a
 * second, long enough to be killed in the middle.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Queue } from 'bullmq';

import { sampleCommand } from '../src/cli/sample.js';
import { readFlags } from '../src/runs/run-flags.js';
import { UsageError } from '../src/core/usage-error.js';
import { workerCommand } from '../src/cli/worker.js';
import { isTorchGuidanceError, liveHandles } from '../src/index.js';
import { type QueuedRunEvent, type SamplingRunOptions, type WorkerEvent, createSamplingQueue, runWorker } from '../src/queue/index.js';
import { portableArgv, runModels, workerArgv } from '../src/queue/run-spec.js';
import { CliProcess, killAll } from './helpers/cli-process.js';
import { repoRoot } from './helpers/python.js';
import { type RedisServer, startRedisServer } from './helpers/redis-server.js';

const COUNT = 300;
const SHARD = 20;
const SHARDS = COUNT / SHARD;
/** The run every test samples (or a prefix of it: the first shards of a smaller --count are the same files). */
const RUN = [
  '--model', 'models/fixtures/tiny-unet.pt',
  '--device', 'cpu',
  '--guidance', 'cfg:3',
  '--steps', '3',
  '--batch-size', '10',
  '--shard-size', String(SHARD),
  '--seed', '77',
  '--format', 'both',
];
/** The same run as API options, at a given count. */
const apiRun = (count: number, out: string): SamplingRunOptions => ({
  model: join(repoRoot, 'models/fixtures/tiny-unet.pt'),
  device: 'cpu',
  guidance: ['cfg:3'],
  steps: 3,
  batchSize: 10,
  shardSize: SHARD,
  seed: 77,
  format: 'both',
  count,
  out,
});
const shardFile = (i: number) => `shard-${String(i).padStart(5, '0')}.npz`;

/** Every file under `dir` (relative paths, sorted). */
function listFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .sort();
}

/** Resolves with the first event `accept` returns a value for; rejects after `timeoutMs`. */
function nextEvent<E, T>(subscribe: (listener: (event: E) => void) => () => void, accept: (event: E) => T | undefined, timeoutMs = 60_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`no such event within ${timeoutMs} ms`));
    }, timeoutMs);
    const unsubscribe = subscribe((event) => {
      const value = accept(event);
      if (value === undefined) return;
      clearTimeout(timer);
      unsubscribe();
      resolve(value);
    });
  });
}

/** A fan-out of events to listeners added and removed by tests. */
class Events<E> {
  readonly seen: E[] = [];
  readonly #listeners = new Set<(event: E) => void>();
  readonly emit = (event: E): void => {
    this.seen.push(event);
    for (const listener of [...this.#listeners]) listener(event);
  };
  readonly subscribe = (listener: (event: E) => void): (() => void) => {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  };
}

describe('sampling on a Redis queue', function () {
  this.timeout(300_000);
  let redis: RedisServer;
  let root: string;
  /** The single-process run: no queue. */
  let reference: string;

  before(async function () {
    root = mkdtempSync(join(tmpdir(), 'tg-queue-'));
    redis = await startRedisServer();
    reference = join(root, 'reference');
    const single = new CliProcess(['sample', ...RUN, '--count', String(COUNT), '--out', reference]);
    assert.equal((await single.exited).code, 0, single.output);
  });

  after(async () => {
    await killAll();
    await redis?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('3 worker processes, one killed with SIGKILL mid-shard, one stopped with SIGTERM, the coordinator killed and restarted: the files equal the single-process run', async () => {
    const out = join(root, 'queued');
    const queue = ['--queue', redis.url, '--queue-name', 'acceptance'];
    const coordinate = () => new CliProcess(['sample', ...queue, ...RUN, '--count', String(COUNT), '--out', out]);
    const worker = (id: string) => new CliProcess(['worker', ...queue, '--id', id, '--lock-duration', '3', '--stalled-interval', '1', '--grace', '60']);
    const first = coordinate();
    const [a, b, c] = [worker('A'), worker('B'), worker('C')];
    const sampling = /shard (\d+)\/15 of .*: sampling/;

    // A dies in the middle of a shard: its lock expires and another worker's stalled check hands the shard on.
    const killedAt = await a.waitFor(sampling);
    a.kill('SIGKILL');
    const killedShard = Number(killedAt[1]) - 1;
    assert.equal((await a.exited).signal, 'SIGKILL');
    assert.ok(!existsSync(join(out, shardFile(killedShard))), `shard ${killedShard + 1} was complete when A was killed:\n${a.output}`);

    // B is stopped in the middle of its next shard: it finishes that shard (60 s grace) and takes no other.
    const stoppedAt = await b.waitFor(sampling, { from: b.output.length });
    b.kill('SIGTERM');
    assert.equal((await b.exited).code, 0, b.output);
    const afterSignal = b.output.slice(b.output.indexOf('SIGTERM'));
    assert.match(afterSignal, new RegExp(`shard ${stoppedAt[1]}/15 of .*: written`));
    assert.doesNotMatch(afterSignal, sampling, 'B took a shard after SIGTERM');
    assert.match(b.output, /stopped: \d+ shard\(s\) written, .* 0 handed back/);

    // The coordinator is killed mid-run, and a new one resumes: it adds no job, since every missing shard has one.
    for (let seen = 0, from = 0; seen < 3; seen++) from = (await first.waitFor(/^shard \d+\/15 done/m, { from })).end;
    first.kill('SIGKILL');
    assert.equal((await first.exited).signal, 'SIGKILL');
    assert.ok(!existsSync(join(out, 'samples.npz')), 'the run ended before the coordinator was killed');
    const second = coordinate();
    const resumed = await second.waitFor(/resuming: (\d+) shard\(s\) done; 0 job\(s\) added, (\d+) already queued/);
    assert.equal(Number(resumed[1]) + Number(resumed[2]), SHARDS, second.output);
    assert.equal((await second.exited).code, 0, second.output);
    // (Where the workers finished while no coordinator watched, the new one only merges.)
    assert.match(second.output, /(wrote samples\.npz and 15 shard\(s\), 300 PNGs in png\/ to .*: \d+ image\(s\) made by the queue's workers|is complete \(samples\.npz rewritten from the shards\))/);
    c.kill('SIGTERM');
    assert.equal((await c.exited).code, 0, c.output);

    // Each shard counted once: the second coordinator's done lines are distinct and, with the kept ones, all 15.
    const doneLines = [...second.output.matchAll(/^shard (\d+)\/15 done/gm)].map((m) => Number(m[1]));
    assert.equal(new Set(doneLines).size, doneLines.length, second.output);
    assert.equal(doneLines.length + Number(resumed[1]), SHARDS, second.output);
    // The shard A died in was sampled again from its start by a live worker.
    assert.match(b.output + c.output, new RegExp(`shard ${killedShard + 1}/15 of .*: written`));

    // Byte for byte the single-process run: every shard, every PNG, the merge; the same settings; nothing else left.
    assert.deepEqual(listFiles(out), listFiles(reference));
    for (const file of listFiles(reference)) {
      if (file === 'manifest.json') continue;
      assert.ok(readFileSync(join(out, file)).equals(readFileSync(join(reference, file))), `${file} differs from the single-process run`);
    }
    const manifest = (dir: string) => JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    assert.deepEqual(manifest(out).settings, manifest(reference).settings);
    assert.ok(manifest(out).completedAt);
  });

  it('a worker whose model file differs refuses the run: the shard goes back unattempted, the coordinator shows why, and a worker with the right file does it', async () => {
    const models = join(root, 'other-models');
    mkdirSync(models);
    // Another model under the run's file name.
    copyFileSync(join(repoRoot, 'models/fixtures/tiny-unet-v.pt'), join(models, 'tiny-unet.pt'));
    const out = join(root, 'refused');
    const handles = liveHandles().models;
    const workerEvents = new Events<WorkerEvent>();
    const coordinatorEvents = new Events<QueuedRunEvent>();
    const name = 'refusal';
    const mismatched = await runWorker({ url: redis.url, name, id: 'mismatched', models, refusalBackoffMs: 60_000, onEvent: workerEvents.emit });
    await using queue = await createSamplingQueue({ url: redis.url, name, pollMs: 100 });
    const run = queue.run(apiRun(2 * SHARD, out), { onEvent: coordinatorEvents.emit });
    run.catch(() => undefined);

    const refusal = await nextEvent(coordinatorEvents.subscribe, (e) => (e.type === 'refused' ? e.refusal : undefined));
    assert.equal(refusal.worker, 'mismatched');
    assert.equal(refusal.code, 'ERR_MODEL_MISMATCH');
    assert.match(refusal.message, new RegExp(`the model file ${join(models, 'tiny-unet.pt').replaceAll('.', '\\.')} on this worker has SHA-256 [0-9a-f]{16}…, but the run was planned with .*tiny-unet\\.pt of SHA-256`));
    assert.ok(workerEvents.seen.some((e) => e.type === 'refused' && e.code === 'ERR_MODEL_MISMATCH'));
    assert.ok(!workerEvents.seen.some((e) => e.type === 'started'), 'the mismatched worker sampled');
    const summary = await mismatched.stop();
    assert.equal(summary.written, 0);
    assert.ok(summary.refused >= 1);
    // The refused shard is back in the queue without an attempt counted against it.
    const bull = new Queue(name, { connection: { host: '127.0.0.1', port: redis.port } });
    try {
      const jobs = await bull.getJobs(['waiting', 'delayed', 'prioritized']);
      assert.equal(jobs.length, 2, 'both shards are still queued');
      assert.ok(jobs.every((job) => job.attemptsMade === 0));
    } finally {
      await bull.close();
    }
    assert.ok(!listFiles(out).some((f) => f.startsWith('shard-') || f.startsWith('png/')), 'nothing was sampled');
    assert.equal(liveHandles().models, handles, 'the refusing worker left no model loaded');

    const good = await runWorker({ url: redis.url, name, id: 'good', onEvent: workerEvents.emit });
    try {
      const result = await run;
      assert.deepEqual([result.complete, result.kept, result.shards], [true, 0, 2]);
    } finally {
      await good.stop();
    }
    // The good worker took the run: its refusal list is empty now, and the shards are the single-process run's.
    for (const file of [shardFile(0), shardFile(1)]) {
      assert.ok(readFileSync(join(out, file)).equals(readFileSync(join(reference, file))), file);
    }
    assert.equal(liveHandles().models, handles, 'every model the workers loaded was disposed');
  });

  it('a stopped worker hands its shard back at once (the job waits again, unattempted); run() then finishes the run', async () => {
    const out = join(root, 'handed-back');
    const name = 'hand-back';
    const events = new Events<WorkerEvent>();
    await using queue = await createSamplingQueue({ url: redis.url, name, pollMs: 100 });
    const submitted = await queue.submit(apiRun(2 * SHARD, out));
    assert.deepEqual([submitted.added, submitted.complete], [2, false]);
    const worker = await runWorker({ url: redis.url, name, graceMs: 0, onEvent: events.emit });
    const started = await nextEvent(events.subscribe, (e) => (e.type === 'started' ? e : undefined));
    const summary = await worker.stop();
    assert.equal(summary.handedBack, 1);
    assert.ok(events.seen.some((e) => e.type === 'handed-back' && e.shard === started.shard));
    assert.ok(!existsSync(join(out, shardFile(started.shard))));
    const bull = new Queue(name, { connection: { host: '127.0.0.1', port: redis.port } });
    try {
      const job = await bull.getJob(started.jobId);
      assert.equal(await job!.getState(), 'waiting');
      assert.equal(job!.attemptsMade, 0);
    } finally {
      await bull.close();
    }

    const again = await runWorker({ url: redis.url, name });
    try {
      const result = await queue.run(apiRun(2 * SHARD, out));
      assert.deepEqual([result.complete, result.added], [true, 0]);
    } finally {
      await again.stop();
    }
    for (const file of [shardFile(0), shardFile(1)]) {
      assert.ok(readFileSync(join(out, file)).equals(readFileSync(join(reference, file))), file);
    }
  });

  it('planning a run again adds no job twice; a complete run adds none', async () => {
    const out = join(root, 'twice');
    const name = 'twice';
    await using queue = await createSamplingQueue({ url: redis.url, name });
    const first = await queue.submit(apiRun(3 * SHARD, out));
    const second = await queue.submit(apiRun(3 * SHARD, out));
    assert.deepEqual([first.added, second.added, second.kept], [3, 0, 0]);
    const bull = new Queue(name, { connection: { host: '127.0.0.1', port: redis.port } });
    try {
      assert.equal(await bull.getWaitingCount(), 3);
      // A complete run (the reference's first two shards, copied in) gets no jobs and is merged without a worker.
      const done = join(root, 'twice-complete');
      await queue.submit(apiRun(2 * SHARD, done)); // writes the manifest
      await bull.obliterate({ force: true });
      for (const file of [shardFile(0), shardFile(1), ...listFiles(reference).filter((f) => f.startsWith('png/') && Number(f.slice(4, 12)) < 2 * SHARD)]) {
        mkdirSync(join(done, file, '..'), { recursive: true });
        copyFileSync(join(reference, file), join(done, file));
      }
      const result = await queue.run(apiRun(2 * SHARD, done));
      assert.deepEqual([result.added, result.kept, result.complete, result.merged], [0, 2, true, true]);
      assert.equal(await bull.getWaitingCount(), 0);
    } finally {
      await bull.close();
    }
  });

  it('a portable run argv gives a worker the same flags the coordinator checked', async () => {
    const argv = [
      '--model', 'models/fixtures/tiny-unet.pt', '--guide', 'models/fixtures/tiny-unet-v.pt',
      '--guidance', 'autoguidance:2', '--guidance', 'pag:scale=3,sites=mid.*,sigmaMax=5',
      '--sampler', 'heun:churn=10', '--steps', '4', '--schedule', 'karras:rho=5', '--clip=none',
      '--count', '33', '--label', 'null', '--seed', '18446744073709551615', '--batch-size', '5', '--parallel', '3',
      '--shard-size', '7', '--format', 'npz', '--rgb', '--device', 'cpu', '--out', join(root, 'portable'),
    ];
    const flags = await readFlags(argv);
    const again = await readFlags(workerArgv(portableArgv(flags), runModels(flags), flags.out, 'cpu'));
    // What the flags decide, with the model files by path and hash (a worker names them by absolute path).
    const decided = ({ argv: _argv, outArg: _outArg, model, guide, sims, ...rest }: typeof flags) => ({
      ...rest,
      files: [model, guide, sims].map((f) => f && { path: f.path, sha256: f.sha256 }),
    });
    assert.deepEqual(decided(again), decided(flags));
    assert.equal(again.guide?.path, join(repoRoot, 'models/fixtures/tiny-unet-v.pt'));
  });

  it('bad input: typed errors naming the problem, and nothing written', async () => {
    const out = join(root, 'bad');
    // CLI: a URL that is not Redis's (exit 2), a Redis that is not there (exit 1, fast).
    const notRedis = new CliProcess(['sample', ...RUN, '--count', '20', '--queue', 'http://127.0.0.1:1/0', '--out', out]);
    assert.equal((await notRedis.exited).code, 2);
    assert.match(notRedis.output, /^torch-guidance sample: --queue http:\/\/127\.0\.0\.1:1\/0: the scheme is http; give redis:\/\/HOST:PORT\/DB/m);
    const started = performance.now();
    const nobody = new CliProcess(['sample', ...RUN, '--count', '20', '--queue', 'redis://127.0.0.1:1/0', '--out', out]);
    assert.equal((await nobody.exited).code, 1);
    assert.match(nobody.output, /ERR_QUEUE_UNREACHABLE: cannot reach the queue's Redis at redis:\/\/127\.0\.0\.1:1\/0: .*Start Redis there/);
    assert.ok(performance.now() - started < 60_000);
    // The same checks in process (the code the CLI runs, without a child's start).
    const usage = async (work: Promise<unknown>, message: RegExp) => {
      await assert.rejects(work, (error: unknown) => error instanceof UsageError && message.test(error.message));
    };
    await usage(workerCommand(['--queue', redis.url, '--grace', 'soon']), /^--grace soon: give a number of seconds/);
    await usage(workerCommand([]), /^--queue: give the queue's Redis/);
    await usage(workerCommand(['--queue', redis.url, '--device', 'tpu']), /^--device tpu: must be auto, cpu, cuda or cuda:N/);
    await usage(sampleCommand([...RUN, '--queue', 'redis://127.0.0.1:1/x', '--out', out]), /^--queue redis:\/\/127\.0\.0\.1:1\/x: the database 'x' is not a number/);
    await usage(sampleCommand([...RUN, '--queue', redis.url, '--queue-name', 'a:b', '--out', out]), /^--queue-name a:b: use 1 to 100 letters/);
    assert.ok(!existsSync(out));

    // API: options, then run options, checked before anything is written.
    const rejects = async (work: () => Promise<unknown>, code: string, message: RegExp) => {
      await assert.rejects(work, (error: unknown) => isTorchGuidanceError(error) && error.code === code && message.test(error.message));
    };
    await rejects(() => createSamplingQueue({ url: 'redis:/nowhere' as string }), 'ERR_INVALID_OPTION', /url: give redis:\/\/HOST:PORT\/DB/);
    await rejects(() => createSamplingQueue({ url: 'redis://127.0.0.1:1/0', connectTimeoutMs: 2000 }), 'ERR_QUEUE_UNREACHABLE', /127\.0\.0\.1:1/);
    await rejects(() => runWorker({ url: redis.url, concurrency: 0 }), 'ERR_INVALID_OPTION', /concurrency/);
    await rejects(() => runWorker({ url: redis.url, device: 'tpu' }), 'ERR_INVALID_OPTION', /device: auto, cpu, cuda or cuda:N/);
    await using queue = await createSamplingQueue({ url: redis.url, name: 'bad' });
    await rejects(() => queue.run({ ...apiRun(20, out), count: 0 }), 'ERR_INVALID_OPTION', /count/);
    await rejects(() => queue.run({ ...apiRun(20, out), guidance: ['nonsense:3'] }), 'ERR_INVALID_OPTION', /--guidance nonsense:3: unknown strategy/);
    await rejects(() => queue.submit({ ...apiRun(20, out), label: 12 }), 'ERR_INVALID_OPTION', /--label 12: this model's classes are 0\.\.9/);
    assert.ok(!existsSync(out));

    // A job that is not a shard of a run fails at once (no retries) with ERR_INVALID_JOB.
    const bull = new Queue('bad', { connection: { host: '127.0.0.1', port: redis.port } });
    const events = new Events<WorkerEvent>();
    const worker = await runWorker({ url: redis.url, name: 'bad', onEvent: events.emit });
    try {
      const job = await bull.add('shard', { hello: 'world' }, { attempts: 3 });
      await nextEvent(events.subscribe, (e) => (e.type === 'failed' ? e : undefined));
      for (let i = 0; i < 50 && (await job.getState()) !== 'failed'; i++) await new Promise((r) => setTimeout(r, 100));
      const failed = await bull.getJob(job.id!);
      assert.equal(await failed!.getState(), 'failed');
      assert.equal(failed!.attemptsMade, 1);
      assert.match(failed!.failedReason, /^ERR_INVALID_JOB: job \S+ is not a shard of a torch-guidance sampling run/);
    } finally {
      await worker.stop();
      await bull.close();
    }
  });
});

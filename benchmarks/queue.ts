/**
 * Queued sampling against one process: throughput with 1, 2 and 4 worker
 * processes on this machine, each limited to its share of the cores through
 * the thread settings, and what the queue costs per shard.
 *
 *   npx tsx benchmarks/queue.ts [--count 512] [--steps 20] [--workers 1,2,4] [--shard-size 64]
 *       [--batch-size 16] [--parallel 2] [--guidance cfg:3] [--model models/fashion-unet.pt]
 *       [--format npz] [--noop-jobs 500] [--report benchmarks/results/queue-cpu.md]
 *
 * Starts its own redis-server on a free loopback port (stopped at the end).
 * Every run samples the same command into a new folder:
 * - single: `torch-guidance sample` without a queue, one process on every core;
 * - N workers: N `torch-guidance worker` processes started (and ready) first,
 *   then `torch-guidance sample --queue` as the coordinator. A process with a
 *   share of S cores runs TORCH_GUIDANCE_JOB_THREADS = min(2, S) torch threads
 *   of TORCH_GUIDANCE_INTRAOP_THREADS = max(1, S / job threads) each; the
 *   single process follows the same rule with S = all cores. --parallel is a
 *   number, not auto, so the runs' settings (and so the workers) do not depend
 *   on the thread counts.
 * Throughput is the commands' own images/s (sampling until the last shard
 * lands; the single run's excludes its model load, the queued run's includes
 * each worker's first load), plus wall time of the command. Per shard: the
 * workers' own times (sampling, writing, the whole job), the time workers
 * spent outside jobs (fetching, waiting, idle at the end: N × the
 * coordinator's sampling time − Σ jobs), and Redis's work from INFO before
 * and after the run: commands executed (BullMQ's scripts' inner commands
 * included) and Redis CPU time; also Redis commands per second while the
 * workers wait for jobs (5 s before the run).
 * Last, the queue alone: --noop-jobs jobs with a real shard job's payload
 * through one BullMQ worker whose processor does nothing, one at a time.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';

import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';

import { startRedisServer } from '../test/helpers/redis-server.js';
import { argv, blasFor, flag, machineFor, median } from './cli.js';

const root = join(import.meta.dirname, '..');
const MAIN = join(root, 'src', 'cli', 'main.ts');
const count = Number(flag('count', '512'));
const steps = flag('steps', '20');
const shardSize = Number(flag('shard-size', '64'));
const batchSize = flag('batch-size', '16');
const parallel = flag('parallel', '2');
const guidance = flag('guidance', 'cfg:3');
const model = flag('model', 'models/fashion-unet.pt');
const format = flag('format', 'npz');
const workerCounts = flag('workers', '1,2,4').split(',').map(Number);
const noopJobs = Number(flag('noop-jobs', '500'));
const reportPath = flag('report', join(root, 'benchmarks', 'results', 'queue-cpu.md'));
const cores = availableParallelism();
const shards = Math.ceil(count / shardSize);

/** The thread settings of a process with `share` cores. */
function threadsFor(share: number): { TORCH_GUIDANCE_JOB_THREADS: string; TORCH_GUIDANCE_INTRAOP_THREADS: string } {
  const jobs = Math.min(2, Math.max(1, share));
  return { TORCH_GUIDANCE_JOB_THREADS: String(jobs), TORCH_GUIDANCE_INTRAOP_THREADS: String(Math.max(1, Math.floor(share / jobs))) };
}

interface Child {
  process: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function start(args: string[], env: Record<string, string>): Child {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  return { process: child, output: () => output, exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
}

async function waitForOutput(child: Child, pattern: RegExp, timeoutMs = 300_000): Promise<void> {
  const until = performance.now() + timeoutMs;
  while (!pattern.test(child.output())) {
    if (child.process.exitCode !== null) throw new Error(`exited before ${pattern}:\n${child.output()}`);
    if (performance.now() > until) throw new Error(`no ${pattern} within ${timeoutMs} ms:\n${child.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Redis's counters: commands executed (script-internal included), script calls, CPU seconds. */
async function redisCounters(redis: Redis): Promise<{ commands: number; scripts: number; cpu: number; commandUsec: number }> {
  const stats = await redis.info('commandstats');
  let commands = 0;
  let scripts = 0;
  let commandUsec = 0;
  for (const line of stats.split('\n')) {
    const match = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line.trim());
    if (!match || match[1] === 'info') continue;
    commands += Number(match[2]);
    commandUsec += Number(match[3]);
    if (/^(evalsha|eval|fcall)/.test(match[1]!)) scripts += Number(match[2]);
  }
  const cpu = await redis.info('cpu');
  const seconds = (key: string) => Number(new RegExp(`^${key}:([\\d.]+)`, 'm').exec(cpu)?.[1] ?? 0);
  return { commands, scripts, cpu: seconds('used_cpu_user') + seconds('used_cpu_sys'), commandUsec };
}

const common = ['--model', model, '--device', 'cpu', '--guidance', guidance, '--steps', steps, '--count', String(count), '--batch-size', batchSize,
  '--shard-size', String(shardSize), '--parallel', parallel, '--seed', '0', '--format', format];
const madePattern = /(\d+) image\(s\) made(?: by the queue's workers)? in \S+ \(([\d.]+) images\/s\)/;

interface Row {
  name: string;
  threads: string;
  wall: number;
  rate: number;
  sameBytes: boolean | null;
  perShard?: { sample: number; write: number; job: number; outside: number; commands: number; scripts: number; redisCpuMs: number };
  /** Redis commands per second while the workers wait for jobs. */
  idleCommands?: number;
}

const redisServer = await startRedisServer();
const redis = new Redis(redisServer.url);
const dir = mkdtempSync(join(tmpdir(), 'tg-bench-queue-'));
const rows: Row[] = [];
let jobPayload = 0;
try {
  // One process on every core: the reference.
  const singleEnv = threadsFor(cores);
  const singleOut = join(dir, 'single');
  let startedAt = performance.now();
  const single = start(['sample', ...common, '--out', singleOut], singleEnv);
  if ((await single.exited) !== 0) throw new Error(`the single-process run failed:\n${single.output()}`);
  const singleMade = madePattern.exec(single.output());
  rows.push({
    name: 'single process',
    threads: `1 × ${singleEnv.TORCH_GUIDANCE_JOB_THREADS}×${singleEnv.TORCH_GUIDANCE_INTRAOP_THREADS}`,
    wall: (performance.now() - startedAt) / 1000,
    rate: Number(singleMade?.[2]),
    sameBytes: null,
  });
  const reference = format === 'png' ? undefined : readFileSync(join(singleOut, 'samples.npz'));

  for (const n of workerCounts) {
    const env = threadsFor(Math.max(1, Math.floor(cores / n)));
    const name = `bench-${n}`;
    const queueFlags = ['--queue', redisServer.url, '--queue-name', name];
    const workers = Array.from({ length: n }, (_, k) => start(['worker', ...queueFlags, '--id', `w${k + 1}`], env));
    try {
      await Promise.all(workers.map((w) => waitForOutput(w, /ready: queue/)));
      const idleStart = await redisCounters(redis);
      await new Promise((r) => setTimeout(r, 5000));
      const idleCommands = ((await redisCounters(redis)).commands - idleStart.commands) / 5;
      const out = join(dir, `queue-${n}`);
      const before = await redisCounters(redis);
      startedAt = performance.now();
      const coordinator = start(['sample', ...queueFlags, ...common, '--out', out], {});
      if ((await coordinator.exited) !== 0) throw new Error(`the queued run with ${n} worker(s) failed:\n${coordinator.output()}`);
      const wall = (performance.now() - startedAt) / 1000;
      const after = await redisCounters(redis);
      const made = madePattern.exec(coordinator.output());
      const times = workers.flatMap((w) =>
        [...w.output().matchAll(/written in ([\d.]+) s \(sampling ([\d.]+) s, writing ([\d.]+) s\)/g)].map((m) => ({ job: Number(m[1]), sample: Number(m[2]), write: Number(m[3]) })),
      );
      const jobs = times.reduce((sum, t) => sum + t.job, 0);
      // The coordinator's own sampling time (from its plan to the last shard), without its start and planning.
      const sampling = Number(made?.[1]) / Number(made?.[2]);
      rows.push({
        name: `${n} worker(s)`,
        threads: `${n} × ${env.TORCH_GUIDANCE_JOB_THREADS}×${env.TORCH_GUIDANCE_INTRAOP_THREADS}`,
        wall,
        rate: Number(made?.[2]),
        sameBytes: reference ? readFileSync(join(out, 'samples.npz')).equals(reference) : null,
        perShard: {
          sample: median(times.map((t) => t.sample)),
          write: median(times.map((t) => t.write)),
          job: median(times.map((t) => t.job)),
          outside: (n * sampling - jobs) / shards,
          commands: (after.commands - before.commands) / shards,
          scripts: (after.scripts - before.scripts) / shards,
          redisCpuMs: ((after.cpu - before.cpu) * 1000) / shards,
        },
        idleCommands,
      });
    } finally {
      for (const w of workers) w.process.kill('SIGTERM');
      await Promise.all(workers.map((w) => w.exited));
    }
  }

  // The queue alone: jobs with a shard job's payload, a processor that does nothing.
  const payload = {
    version: 1,
    runKey: '0123456789abcdef',
    fingerprint: '0'.repeat(64),
    location: join(dir, 'queue-1'),
    argv: common.slice(2).filter((a) => a !== '--device' && a !== 'cpu'),
    models: [{ role: 'model', path: join(root, model), sha256: 'f'.repeat(64) }],
    device: 'cpu',
    shard: { index: 0, first: 0, count: shardSize, of: shards },
  };
  jobPayload = JSON.stringify(payload).length;
  const connection = { host: '127.0.0.1', port: redisServer.port, maxRetriesPerRequest: null };
  const noopQueue = new Queue('bench-noop', { connection });
  const before = await redisCounters(redis);
  const addStart = performance.now();
  await noopQueue.addBulk(Array.from({ length: noopJobs }, (_, i) => ({ name: 'shard', data: { ...payload, shard: { ...payload.shard, index: i } }, opts: { jobId: `noop-${i}`, removeOnComplete: true } })));
  const addMs = performance.now() - addStart;
  let processed = 0;
  let allDone!: () => void;
  const finished = new Promise<void>((resolve) => (allDone = resolve));
  const processStart = performance.now();
  const noopWorker = new Worker(
    'bench-noop',
    async () => {
      if (++processed === noopJobs) setImmediate(allDone);
      return { status: 'written' };
    },
    { connection, concurrency: 1 },
  );
  noopWorker.on('error', () => undefined);
  await finished;
  const processMs = performance.now() - processStart;
  await noopWorker.close();
  await noopQueue.close();
  const after = await redisCounters(redis);

  const fmt = (v: number, digits = 2) => (Number.isFinite(v) ? v.toFixed(digits) : '—');
  const singleRate = rows[0]!.rate;
  const report = `# Queued sampling: workers on one machine against one process

Command: \`npx tsx benchmarks/queue.ts ${argv.join(' ')}\`
Date: ${new Date().toISOString()}
Machine: ${machineFor('cpu')}; ${cores} cores
${blasFor()}  
Run: ${model}, --guidance ${guidance}, ${steps} steps, ${count} samples in ${shards} shards of ${shardSize}, batch ${batchSize}, --parallel ${parallel}, --format ${format}
Threads: processes × torch threads × intra-op threads each (TORCH_GUIDANCE_JOB_THREADS × TORCH_GUIDANCE_INTRAOP_THREADS).

| run | threads | wall s | images/s | vs single | same bytes as single |
|---|---|---|---|---|---|
${rows.map((r) => `| ${r.name} | ${r.threads} | ${fmt(r.wall, 1)} | ${fmt(r.rate)} | ${fmt(r.rate / singleRate)} | ${r.sameBytes === null ? '—' : r.sameBytes ? 'yes' : 'no'} |`).join('\n')}

Per shard (medians of the workers' own times; the rest are totals over the run divided by ${shards} shards):

| run | sampling s | writing s | whole job s | workers outside jobs s | Redis commands | of them script calls | Redis CPU ms | idle Redis commands/s |
|---|---|---|---|---|---|---|---|---|
${rows
  .filter((r) => r.perShard)
  .map((r) => {
    const p = r.perShard!;
    return `| ${r.name} | ${fmt(p.sample)} | ${fmt(p.write, 3)} | ${fmt(p.job)} | ${fmt(p.outside)} | ${fmt(p.commands, 0)} | ${fmt(p.scripts, 0)} | ${fmt(p.redisCpuMs, 3)} | ${fmt(r.idleCommands ?? NaN, 1)} |`;
  })
  .join('\n')}

The queue alone: ${noopJobs} jobs of ${jobPayload} bytes of data (a shard job's), added in one addBulk (${fmt(addMs / noopJobs, 3)} ms per job), then taken, done and removed one at a time by one worker that does nothing: ${fmt(processMs / noopJobs, 3)} ms per job, ${fmt((after.commands - before.commands) / noopJobs, 1)} Redis commands and ${fmt(((after.cpu - before.cpu) * 1e6) / noopJobs, 0)} µs of Redis CPU per job (${fmt((after.commandUsec - before.commandUsec) / noopJobs, 0)} µs inside commands).
`;
  writeFileSync(reportPath, report);
  console.log(report);
  console.log(`wrote ${reportPath}`);
} finally {
  await redis.quit();
  await redisServer.stop();
  rmSync(dir, { recursive: true, force: true });
}

// fanout: N tiny tasks (x => x + 1) from the main thread to 2 workers, every result back to the main
// thread and checked (their sum must be N(N+1)/2). tasks/s = N / time from the first task to the last result.
//   raw            one postMessage per task to 2 raw workers, round-robin; one message per result
//   raw-batched    arrays of 1,000 tasks, round-robin; one array of results per array
//   joinablequeue  main: `await tasks.put(i)` × N, then `await results.get()` × N, then `await tasks.join()`;
//                  2 Processes loop tasks.get() -> results.put(x + 1) -> tasks.taskDone()
//   piscina, tinypool, workerpool  2 threads, `run(i)`/`exec('increment', [i])` for every task at once,
//                  then awaiting them all (the way their documentation submits work)
import { MessageChannel } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import Tinypool from 'tinypool';
import workerpool from 'workerpool';
import { JoinableQueue, Queue } from '../../lib/index.ts';
import { STOP } from '../tasks/control.mjs';
import { setup, teardown } from './drive.ts';
import { RAW_BATCH } from './spsc.ts';
import { team, type Endpoint } from './team.ts';
import {
  repeat,
  sizeOf,
  throughput,
  withDeadline,
  type BenchCase,
  type CaseContext,
  type Measurement,
} from './types.ts';

const poolTask = new URL('../tasks/pool-task.mjs', import.meta.url);
const workerpoolTask = new URL('../tasks/workerpool-task.mjs', import.meta.url);

export function fanoutCases(): BenchCase[] {
  const add = (impl: string, run: (ctx: CaseContext) => Promise<Measurement>, fullOnly = false): BenchCase => ({
    name: `${impl}/fanout/int`,
    impl,
    topology: 'fanout',
    payload: 'int',
    run,
    fullOnly,
  });
  return [
    add('raw', (ctx) => rawFanout(ctx, 0)),
    add('raw-batched', (ctx) => rawFanout(ctx, RAW_BATCH)),
    add('joinablequeue', queueFanout),
    add('piscina', (ctx) => poolFanout(ctx, piscina())),
    add('tinypool', (ctx) => poolFanout(ctx, tinypool()), true),
    add('workerpool', (ctx) => poolFanout(ctx, workerpoolPool()), true),
  ];
}

const expectedSum = (n: number) => (n * (n + 1)) / 2;

function checkResults(what: string, count: number, sum: number, n: number): void {
  if (count !== n) throw new Error(`${what}: ${count} results, expected ${n}`);
  if (sum !== expectedSum(n)) throw new Error(`${what}: results sum to ${sum}, expected ${expectedSum(n)}`);
}

// --- raw ---------------------------------------------------------------------------------------------------

async function rawFanout(ctx: CaseContext, batch: number): Promise<Measurement> {
  const impl = batch > 0 ? 'raw-batched' : 'raw';
  const size = sizeOf('fanout', 'int', ctx.quick);
  const workers = (await team('raw')).members.slice(0, 2);
  const channels = workers.map(() => new MessageChannel());
  await setup(
    workers.map((ep, w) => ({
      ep,
      role: { kind: 'fanout', ports: [channels[w]!.port2] },
      transfer: [channels[w]!.port2],
    })),
  );
  const mine = channels.map((c) => c.port1);
  try {
    const seconds = await repeat(ctx, size, async (n, timeoutMs) => {
      for (const ep of workers) ep.send({ op: 'run', n, start: 0 });
      for (const ep of workers) await ready(ep, timeoutMs);
      let count = 0,
        sum = 0;
      let finish!: () => void;
      const finished = new Promise<void>((resolve) => {
        finish = resolve;
      });
      const onResult = (v: number | number[]) => {
        if (typeof v === 'number') {
          sum += v;
          count++;
        } else {
          for (let j = 0; j < v.length; j++) sum += v[j]!;
          count += v.length;
        }
        if (count >= n) finish();
      };
      for (const port of mine) port.on('message', onResult);
      const t0 = performance.now();
      if (batch > 0) {
        for (let i = 0, k = 0; i < n; i += batch, k++) {
          const tasks: number[] = [];
          for (let j = i; j < Math.min(n, i + batch); j++) tasks.push(j);
          mine[k % 2]!.postMessage(tasks);
        }
      } else {
        for (let i = 0; i < n; i++) mine[i % 2]!.postMessage(i);
      }
      await withDeadline(finished, timeoutMs, () => `${impl}/fanout/int (${count} of ${n} results)`);
      const t1 = performance.now();
      for (const port of mine) {
        port.off('message', onResult);
        port.postMessage(STOP);
      }
      let served = 0;
      for (const ep of workers) served += (await done(ep, timeoutMs)).count;
      checkResults(`${impl}/fanout/int`, count, sum, n);
      if (served !== n) throw new Error(`${impl}/fanout/int: workers served ${served} tasks, expected ${n}`);
      return (t1 - t0) / 1000;
    });
    await teardown(workers);
    return throughput(size, seconds);
  } finally {
    for (const port of mine) port.close();
  }
}

async function ready(ep: Endpoint, timeoutMs: number): Promise<void> {
  const reply = await ep.recv(timeoutMs);
  if (reply.op !== 'ready') throw new Error(`${ep.label}: expected 'ready', got ${JSON.stringify(reply)}`);
}

async function done(ep: Endpoint, timeoutMs: number) {
  const reply = await ep.recv(timeoutMs);
  if (reply.op !== 'done') throw new Error(`${ep.label}: expected 'done', got ${JSON.stringify(reply)}`);
  return reply;
}

// --- mpthreads JoinableQueue -------------------------------------------------------------------------------

async function queueFanout(ctx: CaseContext): Promise<Measurement> {
  const size = sizeOf('fanout', 'int', ctx.quick);
  const workers = (await team('mpthreads')).members.slice(0, 2);
  const tasks = new JoinableQueue<number | null>();
  const results = new Queue<number>();
  try {
    await setup(workers.map((ep) => ({ ep, role: { kind: 'fanout', tasks, results } })));
    const seconds = await repeat(ctx, size, async (n, timeoutMs) => {
      for (const ep of workers) ep.send({ op: 'run', n, start: 0 });
      for (const ep of workers) await ready(ep, timeoutMs);
      let got = 0;
      const t0 = performance.now();
      const sum = await withDeadline(
        (async () => {
          for (let i = 0; i < n; i++) await tasks.put(i);
          let s = 0;
          for (; got < n; got++) s += await results.get();
          await tasks.join();
          return s;
        })(),
        timeoutMs,
        () => `joinablequeue/fanout/int (${got} of ${n} results)`,
      );
      const t1 = performance.now();
      for (const _ of workers) await tasks.put(null);
      let served = 0;
      for (const ep of workers) served += (await done(ep, timeoutMs)).count;
      checkResults('joinablequeue/fanout/int', n, sum, n);
      if (served !== n) throw new Error(`joinablequeue/fanout/int: workers served ${served} tasks, expected ${n}`);
      return (t1 - t0) / 1000;
    });
    await teardown(workers);
    return throughput(size, seconds);
  } finally {
    tasks.close();
    results.close();
  }
}

// --- worker pools ------------------------------------------------------------------------------------------

interface Pool {
  name: string;
  run(x: number): Promise<number>;
  destroy(): Promise<unknown>;
}

function piscina(): Pool {
  const pool = new Piscina({ filename: poolTask.href, minThreads: 2, maxThreads: 2 });
  return { name: 'piscina', run: (x) => pool.run(x), destroy: () => pool.destroy() };
}

function tinypool(): Pool {
  const pool = new Tinypool({ filename: poolTask.href, minThreads: 2, maxThreads: 2 });
  return { name: 'tinypool', run: (x) => pool.run(x), destroy: () => pool.destroy() };
}

function workerpoolPool(): Pool {
  const pool = workerpool.pool(fileURLToPath(workerpoolTask), { minWorkers: 2, maxWorkers: 2, workerType: 'thread' });
  return {
    name: 'workerpool',
    run: (x) => pool.exec('increment', [x]) as Promise<number>,
    destroy: async () => {
      await pool.terminate();
    },
  };
}

async function poolFanout(ctx: CaseContext, pool: Pool): Promise<Measurement> {
  // The pools run 4-50k tasks/s here: a warm-up of N/100 tasks starts their threads and warms the JIT, and
  // keeps the slowest pool's case from adding another 5-10 s to the run.
  const size = { ...sizeOf('fanout', 'int', ctx.quick) };
  size.warmN = Math.max(100, Math.round(size.n / 100));
  try {
    const seconds = await repeat(ctx, size, async (n, timeoutMs) => {
      const t0 = performance.now();
      const pending: Promise<number>[] = new Array(n);
      for (let i = 0; i < n; i++) pending[i] = pool.run(i);
      const results = await withDeadline(Promise.all(pending), 2 * timeoutMs, () => `${pool.name}/fanout/int`);
      const t1 = performance.now();
      let sum = 0;
      for (const r of results) sum += r;
      checkResults(`${pool.name}/fanout/int`, results.length, sum, n);
      return (t1 - t0) / 1000;
    });
    return throughput(size, seconds);
  } finally {
    await pool.destroy();
  }
}

// Pool cases: Python's Pool API on mpthreads' workers, next to the pools people use in Node and to one
// thread doing the CPU tasks alone. Every implementation runs the functions of tasks/pool-work.mjs on 2
// threads (`addOne` = x => x + 1, `cpu` = about 1 ms of integer arithmetic) and every result is checked.
//
//   pool/map/int      `await pool.map(addOne, xs)`, xs = [0, N), default options
//   pool/apply/int    N `pool.apply(addOne, [i])` calls made in one loop, awaited under one Promise.all
//   pool/imap/int     `for await (const y of pool.imap(addOne, gen()))`, gen() a generator of 0..N-1
//   pool/cpu/1ms      `await pool.map(cpu, xs)`, xs = [0, 2000)
//   single/cpu/1ms    the main thread: `for (const x of xs) cpu(x)`
//   raw-2/cpu/1ms     two raw Workers (tasks/raw-cpu.mjs), each sent one message to run half of xs in a loop:
//                     the most 2 threads do here, with no pool in between
//   piscina, tinypool, workerpool:
//     <lib>/apply/int  `run(i)` (workerpool: `exec('addOne', [i])`) for every task in one loop, then one
//                      Promise.all: their way to submit many tasks, and as they have no map, their map too
//     <lib>/imap/int   the same over a generator, consumed in order through a window of 4,096 tasks in
//                      flight (mpthreads' imap window): submit while fewer are out, await the oldest
//     <lib>/cpu/1ms    `run(i)` for each of xs, one Promise.all
//
// Each case makes its pool, warms it with one small call (its workers are up before anything is timed), runs
// the untimed warm-up repetition (N / 10 tasks; N / 100 for the three other pools on tiny tasks, as in the
// fan-out cases), then the timed ones: from the first call to the last result in hand. Then it closes the pool.
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { Piscina } from 'piscina';
import Tinypool from 'tinypool';
import workerpool from 'workerpool';
import { Pool } from '../../lib/index.ts';
import { addOne, cpu } from '../tasks/pool-work.mjs';
import {
  repeat,
  sizeOf,
  throughput,
  withDeadline,
  type BenchCase,
  type CaseContext,
  type Measurement,
  type Size,
  type Topology,
} from './types.ts';

const workUrl = new URL('../tasks/pool-work.mjs', import.meta.url);
const workerpoolTask = new URL('../tasks/workerpool-task.mjs', import.meta.url);
const rawCpuTask = new URL('../tasks/raw-cpu.mjs', import.meta.url);
const kThreads = 2;
/** The in-flight window of the other pools' imap-style loop: kImapWindow of lib/pool/pool.ts. */
const kImapWindow = 4096;

type Fn = 'addOne' | 'cpu';

export function poolCases(): BenchCase[] {
  const add = (
    impl: string,
    topology: Topology,
    run: (ctx: CaseContext) => Promise<Measurement>,
    fullOnly = false,
  ): BenchCase => {
    const payload = topology === 'cpu' ? '1ms' : 'int';
    return { name: `${impl}/${topology}/${payload}`, impl, topology, payload, run, fullOnly };
  };
  const others: [string, (fn: Fn) => OtherPool, boolean][] = [
    ['piscina', piscina, false],
    ['tinypool', tinypool, true],
    ['workerpool', workerpoolPool, true],
  ];
  return [
    add('pool', 'map', poolMap),
    add('pool', 'apply', poolApply),
    add('pool', 'imap', poolImap),
    ...others.flatMap(([name, make, fullOnly]) => [
      add(name, 'apply', (ctx) => otherApply(ctx, make('addOne')), fullOnly),
      add(name, 'imap', (ctx) => otherImap(ctx, make('addOne')), fullOnly),
    ]),
    // single/cpu first: it computes the expected results the other cpu rows are checked against.
    add('single', 'cpu', singleCpu),
    add('raw-2', 'cpu', rawCpu),
    add('pool', 'cpu', poolCpu),
    ...others.map(([name, make, fullOnly]) => add(name, 'cpu', (ctx) => otherCpu(ctx, make('cpu')), fullOnly)),
  ];
}

// --- checks ------------------------------------------------------------------------------------------------

const cpuSums = new Map<number, number>();

/** sum(cpu(x) for x in [0, n)), computed once per n in this thread (single/cpu fills it as it runs). */
function expectedCpuSum(n: number): number {
  let sum = cpuSums.get(n);
  if (sum === undefined) {
    sum = 0;
    for (let i = 0; i < n; i++) sum += cpu(i);
    cpuSums.set(n, sum);
  }
  return sum;
}

function check(what: string, results: ArrayLike<number>, n: number, expected: number): void {
  if (results.length !== n) throw new Error(`${what}: ${results.length} results, expected ${n}`);
  let sum = 0;
  for (let i = 0; i < results.length; i++) sum += results[i]!;
  if (sum !== expected) throw new Error(`${what}: results sum to ${sum}, expected ${expected}`);
}

function checkOrdered(what: string, results: ArrayLike<number>, n: number): void {
  if (results.length !== n) throw new Error(`${what}: ${results.length} results, expected ${n}`);
  for (let i = 0; i < n; i++) {
    if (results[i] !== i + 1) throw new Error(`${what}: result ${i} is ${results[i]}, expected ${i + 1}`);
  }
}

function range(n: number): number[] {
  const xs = new Array<number>(n);
  for (let i = 0; i < n; i++) xs[i] = i;
  return xs;
}

function* generate(n: number): Generator<number> {
  for (let i = 0; i < n; i++) yield i;
}

// --- mpthreads Pool ----------------------------------------------------------------------------------------

async function withPool(ctx: CaseContext, body: (pool: Pool) => Promise<number[]>): Promise<number[]> {
  ctx.progress('starting the pool');
  const pool = new Pool({ module: workUrl, processes: kThreads });
  try {
    if ((await withDeadline(pool.apply(addOne, [1]), 60_000, () => 'the first pool.apply')) !== 2)
      throw new Error('pool.apply(addOne, [1]) did not return 2');
    return await body(pool);
  } finally {
    pool.terminate();
    await withDeadline(pool.join(), 10_000, () => 'pool.join() after terminate()');
  }
}

async function poolMap(ctx: CaseContext): Promise<Measurement> {
  const size = sizeOf('map', 'int', ctx.quick);
  const seconds = await withPool(ctx, (pool) =>
    repeat(ctx, size, async (n, timeoutMs) => {
      const xs = range(n);
      const t0 = performance.now();
      const ys = await withDeadline(pool.map(addOne, xs), timeoutMs, () => 'pool/map/int');
      const t1 = performance.now();
      checkOrdered('pool/map/int', ys, n);
      return (t1 - t0) / 1000;
    }),
  );
  return throughput(size, seconds);
}

async function poolApply(ctx: CaseContext): Promise<Measurement> {
  const size = sizeOf('apply', 'int', ctx.quick);
  const seconds = await withPool(ctx, (pool) =>
    repeat(ctx, size, async (n, timeoutMs) => {
      const t0 = performance.now();
      const pending: Promise<number>[] = new Array(n);
      for (let i = 0; i < n; i++) pending[i] = pool.apply(addOne, [i]);
      const ys = await withDeadline(Promise.all(pending), timeoutMs, () => 'pool/apply/int');
      const t1 = performance.now();
      checkOrdered('pool/apply/int', ys, n);
      return (t1 - t0) / 1000;
    }),
  );
  return throughput(size, seconds);
}

async function poolImap(ctx: CaseContext): Promise<Measurement> {
  const size = sizeOf('imap', 'int', ctx.quick);
  const seconds = await withPool(ctx, (pool) =>
    repeat(ctx, size, async (n, timeoutMs) => {
      const ys: number[] = [];
      const t0 = performance.now();
      await withDeadline(
        (async () => {
          for await (const y of pool.imap(addOne, generate(n))) ys.push(y);
        })(),
        timeoutMs,
        () => `pool/imap/int (${ys.length} of ${n} results)`,
      );
      const t1 = performance.now();
      checkOrdered('pool/imap/int', ys, n);
      return (t1 - t0) / 1000;
    }),
  );
  return throughput(size, seconds);
}

async function poolCpu(ctx: CaseContext): Promise<Measurement> {
  const size = sizeOf('cpu', '1ms', ctx.quick);
  const seconds = await withPool(ctx, (pool) =>
    repeat(ctx, size, async (n, timeoutMs) => {
      const xs = range(n);
      const t0 = performance.now();
      const ys = await withDeadline(pool.map(cpu, xs), timeoutMs, () => 'pool/cpu/1ms');
      const t1 = performance.now();
      check('pool/cpu/1ms', ys, n, expectedCpuSum(n));
      return (t1 - t0) / 1000;
    }),
  );
  return throughput(size, seconds);
}

// --- one thread --------------------------------------------------------------------------------------------

async function singleCpu(ctx: CaseContext): Promise<Measurement> {
  const size = sizeOf('cpu', '1ms', ctx.quick);
  const seconds = await repeat(ctx, size, async (n) => {
    const xs = range(n);
    let sum = 0;
    const t0 = performance.now();
    for (const x of xs) sum += cpu(x);
    const t1 = performance.now();
    const known = cpuSums.get(n);
    if (known === undefined) cpuSums.set(n, sum);
    else if (known !== sum) throw new Error(`single/cpu/1ms: results sum to ${sum}, then to ${known}`);
    return (t1 - t0) / 1000;
  });
  const m = throughput(size, seconds);
  return { ...m, note: `${(1000 / m.itemsPerS!).toFixed(2)} ms per task` };
}

async function rawCpu(ctx: CaseContext): Promise<Measurement> {
  const size = sizeOf('cpu', '1ms', ctx.quick);
  const workers = Array.from({ length: kThreads }, () => new Worker(rawCpuTask));
  try {
    const seconds = await repeat(ctx, size, async (n, timeoutMs) => {
      const t0 = performance.now();
      const sums = await withDeadline(
        Promise.all(
          workers.map(async (w, k) => {
            const reply = once(w, 'message');
            w.postMessage({ from: Math.floor((k * n) / kThreads), to: Math.floor(((k + 1) * n) / kThreads) });
            return (await reply)[0] as number;
          }),
        ),
        timeoutMs,
        () => 'raw-2/cpu/1ms',
      );
      const t1 = performance.now();
      const sum = sums.reduce((a, b) => a + b, 0);
      if (sum !== expectedCpuSum(n))
        throw new Error(`raw-2/cpu/1ms: results sum to ${sum}, expected ${expectedCpuSum(n)}`);
      return (t1 - t0) / 1000;
    });
    return throughput(size, seconds);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

// --- piscina, tinypool, workerpool -------------------------------------------------------------------------

interface OtherPool {
  name: string;
  run(x: number): Promise<number>;
  destroy(): Promise<unknown>;
}

function piscina(fn: Fn): OtherPool {
  const pool = new Piscina({ filename: workUrl.href, name: fn, minThreads: kThreads, maxThreads: kThreads });
  return { name: 'piscina', run: (x) => pool.run(x), destroy: () => pool.destroy() };
}

function tinypool(fn: Fn): OtherPool {
  const pool = new Tinypool({ filename: workUrl.href, name: fn, minThreads: kThreads, maxThreads: kThreads });
  return { name: 'tinypool', run: (x) => pool.run(x), destroy: () => pool.destroy() };
}

function workerpoolPool(fn: Fn): OtherPool {
  const pool = workerpool.pool(fileURLToPath(workerpoolTask), {
    minWorkers: kThreads,
    maxWorkers: kThreads,
    workerType: 'thread',
  });
  return {
    name: 'workerpool',
    run: (x) => pool.exec(fn, [x]) as Promise<number>,
    destroy: async () => {
      await pool.terminate();
    },
  };
}

/** Warms `pool` with one call, runs `body`, and destroys the pool. */
async function withOther<T>(ctx: CaseContext, pool: OtherPool, body: () => Promise<T>): Promise<T> {
  try {
    ctx.progress(`starting ${pool.name}`);
    await withDeadline(pool.run(1), 60_000, () => `the first ${pool.name} task`);
    return await body();
  } finally {
    await pool.destroy();
  }
}

/** The other pools run 4-50k tiny tasks/s here: a warm-up of N / 100 tasks, as in the fan-out cases. */
function tinyTaskSize(topology: Topology, quick: boolean): Size {
  const size = { ...sizeOf(topology, 'int', quick) };
  size.warmN = Math.max(100, Math.round(size.n / 100));
  return size;
}

async function otherApply(ctx: CaseContext, pool: OtherPool): Promise<Measurement> {
  const what = `${pool.name}/apply/int`;
  const size = tinyTaskSize('apply', ctx.quick);
  const seconds = await withOther(ctx, pool, () =>
    repeat(ctx, size, async (n, timeoutMs) => {
      const t0 = performance.now();
      const pending: Promise<number>[] = new Array(n);
      for (let i = 0; i < n; i++) pending[i] = pool.run(i);
      const ys = await withDeadline(Promise.all(pending), 2 * timeoutMs, () => what);
      const t1 = performance.now();
      checkOrdered(what, ys, n);
      return (t1 - t0) / 1000;
    }),
  );
  return throughput(size, seconds);
}

/** The results of `run` over `source`, in order, with at most `window` tasks submitted and not yet taken. */
async function* windowed(run: (x: number) => Promise<number>, source: Iterable<number>, window: number) {
  const out: Promise<number>[] = [];
  let head = 0;
  for (const x of source) {
    const p = run(x);
    p.catch(() => {}); // awaited below, in its turn; a failure is not unhandled meanwhile
    out.push(p);
    if (out.length - head >= window) yield await out[head++]!;
    if (head >= 65_536) {
      out.splice(0, head);
      head = 0;
    }
  }
  while (head < out.length) yield await out[head++]!;
}

async function otherImap(ctx: CaseContext, pool: OtherPool): Promise<Measurement> {
  const what = `${pool.name}/imap/int`;
  const size = tinyTaskSize('imap', ctx.quick);
  const seconds = await withOther(ctx, pool, () =>
    repeat(ctx, size, async (n, timeoutMs) => {
      const ys: number[] = [];
      const t0 = performance.now();
      await withDeadline(
        (async () => {
          for await (const y of windowed(pool.run, generate(n), kImapWindow)) ys.push(y);
        })(),
        2 * timeoutMs,
        () => `${what} (${ys.length} of ${n} results)`,
      );
      const t1 = performance.now();
      checkOrdered(what, ys, n);
      return (t1 - t0) / 1000;
    }),
  );
  return throughput(size, seconds);
}

async function otherCpu(ctx: CaseContext, pool: OtherPool): Promise<Measurement> {
  const what = `${pool.name}/cpu/1ms`;
  const size = sizeOf('cpu', '1ms', ctx.quick);
  const seconds = await withOther(ctx, pool, () =>
    repeat(ctx, size, async (n, timeoutMs) => {
      const xs = range(n);
      const t0 = performance.now();
      const ys = await withDeadline(Promise.all(xs.map((x) => pool.run(x))), timeoutMs, () => what);
      const t1 = performance.now();
      check(what, ys, n, expectedCpuSum(n));
      return (t1 - t0) / 1000;
    }),
  );
  return throughput(size, seconds);
}

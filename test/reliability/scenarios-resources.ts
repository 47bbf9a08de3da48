// Resources, as functions of their size: a soak through one queue, and churn (creating and closing many pipes,
// queues and processes). Both sample the heap after a full GC (run them in a child started with --expose-gc:
// test/stress/child.ts) and fit a line through the samples; a leak shows as a slope. Their processes are not
// tracked for the harness's cleanup(): the child program joins them itself, and the tracking set would hold
// every churned Process, which is what the churn's heap slope measures.
import { JoinableQueue, Pipe, Queue, SimpleQueue } from '../../lib/index.ts';
import { intact, type Item } from '../fixtures/reliability-tasks.ts';
import { startTask } from '../_support/harness.ts';
import { tasks } from './agents.ts';
import { fitLine } from './figures.ts';

const gc = (globalThis as { gc?: () => void }).gc;

/** Heap and RSS after a full GC. Turns the event loop first: closed handles are released by their close callbacks. */
async function heapNow(): Promise<{ heap: number; rss: number }> {
  for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  return { heap: m.heapUsed + m.external, rss: m.rss };
}

/** The active resources that keep the program alive (ref'd handles and requests), counted by type. */
export function resources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) counts[r] = (counts[r] ?? 0) + 1;
  return counts;
}

const same = (a: Record<string, number>, b: Record<string, number>) =>
  JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());

/** Waits (turn by turn, up to `ms`) until the active resources equal `baseline`; returns what it saw last. */
export async function settleResources(baseline: Record<string, number>, ms = 3000): Promise<Record<string, number>> {
  const end = performance.now() + ms;
  let now = resources();
  while (!same(now, baseline) && performance.now() < end) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    now = resources();
  }
  return now;
}

export interface SlopeResult {
  /** Bytes of heap (used + external) per operation, fitted over the samples after warm-up. */
  heapSlope: number;
  rssSlope: number;
  heapFirstMiB: number;
  heapLastMiB: number;
  rssFirstMiB: number;
  rssLastMiB: number;
  samples: number;
}

function slopes(points: { x: number; heap: number; rss: number }[]): SlopeResult {
  const used = points.slice(Math.min(2, Math.max(0, points.length - 3))); // skip warm-up samples
  const MiB = 2 ** 20;
  return {
    heapSlope: fitLine(used.map((p) => [p.x, p.heap])).slope,
    rssSlope: fitLine(used.map((p) => [p.x, p.rss])).slope,
    heapFirstMiB: points[0]!.heap / MiB,
    heapLastMiB: points[points.length - 1]!.heap / MiB,
    rssFirstMiB: points[0]!.rss / MiB,
    rssLastMiB: points[points.length - 1]!.rss / MiB,
    samples: points.length,
  };
}

export interface SoakResult extends SlopeResult {
  n: number;
  pad: number;
  ms: number;
  perSecond: number;
  received: number;
  outOfOrder: number;
  corrupt: number;
  gcExposed: boolean;
  resourcesBefore: Record<string, number>;
  resourcesAfter: Record<string, number>;
}

/** `n` items of `pad` bytes from one worker through a queue of maxsize 1000 to the main thread. */
export async function soak(options: {
  n: number;
  pad?: number;
  samples?: number;
  maxsize?: number;
}): Promise<SoakResult> {
  const n = options.n;
  const pad = options.pad ?? 1024;
  const every = Math.max(1, Math.floor(n / (options.samples ?? 20)));
  const before = resources();
  const q = new Queue<Item>({ maxsize: options.maxsize ?? 1000 });
  const [done, theirs] = Pipe<unknown>();
  const started = performance.now();
  const p = startTask(tasks, 'produceMany', [q, 0, n, pad, theirs], { name: 'soak-producer', track: false });
  const points: { x: number; heap: number; rss: number }[] = [];
  let received = 0,
    outOfOrder = 0,
    corrupt = 0;
  for (let i = 0; i < n; i++) {
    const item = await q.get({ timeout: 30_000 });
    received++;
    if (item.s !== i) outOfOrder++;
    if (!intact(item, pad)) corrupt++;
    if (i % every === 0) points.push({ x: i, ...(await heapNow()) });
  }
  const ms = performance.now() - started;
  points.push({ x: n, ...(await heapNow()) });
  await done.recv();
  await p.join();
  done.close();
  q.close();
  const after = await settleResources(before);
  return {
    n,
    pad,
    ms,
    perSecond: (n / ms) * 1000,
    received,
    outOfOrder,
    corrupt,
    gcExposed: gc !== undefined,
    resourcesBefore: before,
    resourcesAfter: after,
    ...slopes(points),
  };
}

export interface ChurnResult {
  gcExposed: boolean;
  pipes: SlopeResult & { n: number; ms: number };
  queues: SlopeResult & { n: number; ms: number };
  processes: SlopeResult & { n: number; ms: number; exitCodes: Record<string, number> };
  errors: string[];
  resourcesBefore: Record<string, number>;
  resourcesAfter: Record<string, number>;
}

/** Creates, uses and closes `pipes` pipes, `queues` queues (all three kinds) and `processes` processes. */
export async function churn(options: {
  pipes: number;
  queues: number;
  processes: number;
  samples?: number;
}): Promise<ChurnResult> {
  const samples = options.samples ?? 10;
  const errors: string[] = [];
  // Warm up: this thread's queue hub and the first worker exist before the baseline.
  await onePipe(-1, errors);
  await oneQueue(-1, errors);
  await oneProcess(-1, errors, {});
  const before = await settleResources({}, 3000);
  const phase = async (n: number, body: (i: number) => Promise<void>) => {
    const every = Math.max(1, Math.floor(n / samples));
    const points: { x: number; heap: number; rss: number }[] = [{ x: 0, ...(await heapNow()) }];
    const started = performance.now();
    for (let i = 0; i < n; i++) {
      await body(i);
      if ((i + 1) % every === 0) points.push({ x: i + 1, ...(await heapNow()) });
    }
    return { n, ms: performance.now() - started, ...slopes(points) };
  };
  const pipes = await phase(options.pipes, (i) => onePipe(i, errors));
  const queues = await phase(options.queues, (i) => oneQueue(i, errors));
  const exitCodes: Record<string, number> = {};
  const processes = { ...(await phase(options.processes, (i) => oneProcess(i, errors, exitCodes))), exitCodes };
  const after = await settleResources(before, 5000);
  return {
    gcExposed: gc !== undefined,
    pipes,
    queues,
    processes,
    errors: errors.slice(0, 20),
    resourcesBefore: before,
    resourcesAfter: after,
  };
}

async function onePipe(i: number, errors: string[]): Promise<void> {
  const [a, b] = Pipe<number>();
  a.send(i);
  const x = await b.recv({ timeout: 10_000 });
  b.send(x + 1);
  const y = await a.recv({ timeout: 10_000 });
  if (x !== i || y !== i + 1) errors.push(`pipe ${i}: got ${x}, ${y}`);
  a.close();
  b.close();
}

async function oneQueue(i: number, errors: string[]): Promise<void> {
  const kind = ((i % 3) + 3) % 3;
  const q = kind === 0 ? new Queue<number>() : kind === 1 ? new JoinableQueue<number>() : new SimpleQueue<number>();
  await q.put(i);
  await q.put(i + 1);
  const x = await q.get({ timeout: 10_000 });
  const y = await q.get({ timeout: 10_000 });
  if (q instanceof JoinableQueue) {
    q.taskDone();
    q.taskDone();
    await q.join();
  }
  if (x !== i || y !== i + 1) errors.push(`queue ${i}: got ${x}, ${y}`);
  q.close();
}

async function oneProcess(i: number, errors: string[], exitCodes: Record<string, number>): Promise<void> {
  const q = new Queue<number>();
  const [a, b] = Pipe<number>();
  const p = startTask(tasks, 'touch', [b, q], { name: `churn-${i}`, track: false });
  a.send(i);
  const x = await q.get({ timeout: 30_000 });
  const y = await a.recv({ timeout: 30_000 });
  await p.join();
  const code = String(p.exitCode);
  exitCodes[code] = (exitCodes[code] ?? 0) + 1;
  if (x !== i + 1 || y !== i + 2 || p.exitCode !== 0)
    errors.push(`process ${i}: got ${x}, ${y}, exit code ${p.exitCode}`);
  a.close();
  q.close();
}

// Process targets of the reference rows: the local mpthreads queues between worker threads of ONE process
// (bench/redis/child.ts roles local-*). The same loops as the Redis roles, on `Queue` / `JoinableQueue` from
// lib/index.ts. Each target reports on `results` (a local Queue).
import type { JoinableQueue, Queue } from '../../lib/index.ts';
import { checkTerm, expectedSum, latencyStats, makeItem, type Payload } from './common.ts';

export async function localProducer(q: Queue<unknown>, n: number, payload: Payload): Promise<void> {
  for (let i = 0; i < n; i++) await q.put(makeItem(payload, i));
}

/** Says 'ready' with its first get pending, then times the first get to the last. */
export async function localConsumer(
  q: Queue<unknown>,
  results: Queue<unknown>,
  n: number,
  payload: Payload,
): Promise<void> {
  const first = q.get();
  await results.put('ready');
  let sum = checkTerm(payload, await first);
  const t0 = performance.now();
  for (let k = 1; k < n; k++) sum += checkTerm(payload, await q.get());
  const seconds = (performance.now() - t0) / 1000;
  await results.put({ seconds, ok: sum === expectedSum(n) });
}

/** get -> taskDone until a null task; reports how many non-null tasks it did. */
export async function localFanoutWorker(tasks: JoinableQueue<number | null>, results: Queue<unknown>): Promise<void> {
  await results.put('ready');
  let count = 0;
  for (;;) {
    const x = await tasks.get();
    tasks.taskDone();
    if (x === null) break;
    count++;
  }
  await results.put({ count });
}

export async function localPonger(ping: Queue<number>, pong: Queue<number>): Promise<void> {
  for (;;) {
    const x = await ping.get();
    if (x < 0) return;
    await pong.put(x);
  }
}

export async function localPinger(
  ping: Queue<number>,
  pong: Queue<number>,
  results: Queue<unknown>,
  n: number,
  warmup: number,
): Promise<void> {
  for (let i = 0; i < warmup; i++) {
    await ping.put(i);
    await pong.get();
  }
  const ms = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await ping.put(i);
    const v = await pong.get();
    ms[i] = performance.now() - t;
    if (v !== i) throw new Error(`round trip ${i} came back as ${v}`);
  }
  await ping.put(-1);
  await results.put(latencyStats(ms));
}

// What bench/redis.ts and its child processes share: the payloads (so every implementation sends the same
// values and checks them the same way), the line protocol between the main process and a child, and the
// percentile helper. No top-level side effects: the local-queue Process targets import this module too.

/** `int`: i. `object`: `{ id: i, name: 'item-' + i, tags: ['a', 'b'], at: 1.5 }`, a fresh one per item. */
export type Payload = 'int' | 'object';

export function makeItem(payload: Payload, i: number): unknown {
  return payload === 'int' ? i : { id: i, name: `item-${i}`, tags: ['a', 'b'], at: 1.5 };
}

/** A consumer sums this over what it got; NaN (which poisons the sum) for a malformed item. */
export function checkTerm(payload: Payload, x: unknown): number {
  if (payload === 'int') return typeof x === 'number' ? x : Number.NaN;
  const o = x as { id: number; name: string; tags: string[]; at: number };
  return o !== null && typeof o === 'object' && o.tags.length === 2 && o.at === 1.5 && o.name.length > 5
    ? o.id
    : Number.NaN;
}

/** The sum of checkTerm over items 0..n-1: a lost, repeated or corrupted item changes it. */
export function expectedSum(n: number): number {
  return (n * (n - 1)) / 2;
}

/** Every line a child means for the main process starts with this; anything else it prints is passed on. */
export const TAG = '@@bench ';

/** What a child reports: `ready` (set up, waiting for `go` or blocked in its first get), its result, or why it failed. */
export type ChildMessage =
  | ({ ev: 'ready' } & Record<string, unknown>)
  | ({ ev: 'result' } & Record<string, unknown>)
  | { ev: 'error'; message: string };

export interface LatencyStats {
  p50us: number;
  p99us: number;
  meanUs: number;
  n: number;
}

/** p50 and p99 (nearest rank) of round-trip times in ms, in µs. */
export function latencyStats(ms: Float64Array): LatencyStats {
  const sorted = Float64Array.from(ms).sort();
  const rank = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
  let total = 0;
  for (const v of sorted) total += v;
  return {
    p50us: rank(0.5) * 1000,
    p99us: rank(0.99) * 1000,
    meanUs: (total / sorted.length) * 1000,
    n: sorted.length,
  };
}

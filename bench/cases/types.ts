// What a case is, what it measures, and how big it is. Case names are `<impl>/<topology>/<payload>`
// (bench/README.md defines every one).
import type { Payload } from '../tasks/payloads.mjs';
import { kRepTimeoutMs, kWarmUpTimeoutMs } from './team.ts';

export type Topology = 'spsc' | 'mpmc' | 'roundtrip' | 'fanout' | 'map' | 'apply' | 'imap' | 'cpu' | 'start';

/** The implementations of this library; every other impl is a baseline. */
export const MPTHREADS_IMPLS = [
  'pipe',
  'queue',
  'simplequeue',
  'joinablequeue',
  'pool',
  'process-js',
  'process-ts',
] as const;

export interface CaseContext {
  readonly quick: boolean;
  /** Shows what the case is doing now on the progress line. */
  progress(detail: string): void;
}

/** One case's result: medians over the timed repetitions (each metric on its own, as python_mp.py does). */
export interface Measurement {
  /** Items (or round trips, or tasks) per timed repetition; for start rows, the number of starts. */
  n: number;
  reps: number;
  itemsPerS: number | null;
  p50us: number | null;
  p99us: number | null;
  /** items/s of every timed repetition (for start rows: µs of every start), in order. */
  perRep: number[];
  note?: string;
}

export interface BenchCase {
  readonly name: string;
  readonly impl: string;
  readonly topology: Topology;
  /** '1ms': the cpu topology's task (tasks/pool-work.mjs `cpu`), not a payload that travels. */
  readonly payload: Payload | 'int' | '1ms' | '-';
  /** Not run with --quick (said so in the output). */
  readonly fullOnly?: boolean;
  run(ctx: CaseContext): Promise<Measurement>;
}

export interface Size {
  n: number;
  warmN: number;
  reps: number;
}

/** Items per timed repetition, warm-up items, and repetitions for a topology and payload. */
export function sizeOf(topology: Topology, payload: string, quick: boolean): Size {
  // Buffer cases are short (0.1-0.5 s) and noisy (each repetition allocates up to 650 MB): 5 reps. So are the
  // cpu cases (1-2 s, using both cores: other work on the machine skews them most).
  const reps = quick ? 2 : payload.startsWith('buf') || topology === 'cpu' ? 5 : 3;
  let n: number;
  switch (topology) {
    case 'spsc':
    case 'mpmc':
      if (payload.startsWith('buf64k')) n = 10_000;
      else if (payload.startsWith('buf1m')) n = 500;
      else n = 200_000;
      break;
    case 'roundtrip':
      n = 20_000;
      break;
    case 'fanout':
    case 'map':
    case 'apply':
    case 'imap':
      n = 200_000;
      break;
    case 'cpu':
      n = 2_000;
      break;
    case 'start':
      return { n: quick ? 3 : 10, warmN: 1, reps: quick ? 3 : 10 };
  }
  if (quick) n = Math.max(10, Math.round(n / 10));
  return { n, warmN: Math.max(10, Math.round(n / 10)), reps };
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Runs `rep(warmN)` once untimed, then `reps` timed repetitions of `rep(n)`; returns their results.
 * `timeoutMs` is how long the repetition may wait for any one reply.
 */
export async function repeat<T>(
  ctx: CaseContext,
  size: Size,
  rep: (n: number, timeoutMs: number) => Promise<T>,
): Promise<T[]> {
  ctx.progress('warm-up');
  await rep(size.warmN, kWarmUpTimeoutMs);
  const results: T[] = [];
  for (let r = 0; r < size.reps; r++) {
    ctx.progress(`rep ${r + 1}/${size.reps}`);
    results.push(await rep(size.n, kRepTimeoutMs));
  }
  return results;
}

/** Resolves or rejects as `promise` does, or rejects after `ms` (the work itself is not stopped). */
export function withDeadline<T>(promise: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what()}: not finished within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** A throughput measurement from the seconds each repetition took. */
export function throughput(size: Size, seconds: readonly number[], note?: string): Measurement {
  const perRep = seconds.map((s) => size.n / s);
  return {
    n: size.n,
    reps: size.reps,
    itemsPerS: median(perRep),
    p50us: null,
    p99us: null,
    perRep,
    ...(note ? { note } : {}),
  };
}

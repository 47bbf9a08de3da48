// Waiting on a cell in shared memory (a queue's size, a lock's owner, an event's flag) until an attempt
// succeeds: asynchronously with Atomics.waitAsync, or blocking the thread with Atomics.wait. A wake-up is only
// a hint (a notify meant for an earlier wait can end a later one early, esbuild#590), so both re-check in a
// loop. The order that makes them lose no wake-up: read the cell, then attempt, then wait for the cell to
// differ from what was read; a writer changes the cell before it notifies, so the wait returns at once.
import { onAbort } from './abort.ts';
import { watchForStall } from './stall.ts';
const kForever = 2 ** 30;

/**
 * Spins before a blocking wait: a futex sleep and wake cost 15-18 µs a round trip here, while a thread on the
 * other core often answers within a microsecond. bench/sync-spin.mjs (two workers ping-ponging one cell,
 * 2026-12-02): 0, 16 or 64 loads 52-76 k round trips/s; 256 loads 1.96-2.03 M/s (0.3 µs p50); 1,024 no
 * better (2.11-2.24 M/s); 4,096 and 16,384 lower again in one of two runs (1.33-1.59 M/s).
 */
const kSpin = 256;

/** Options of one wait: `slice` bounds each sleep, for waits that must look again without a notify. */
interface Bounds {
  /** Milliseconds; Infinity waits forever. */
  timeout: number;
  /** Longest single sleep (a lock re-checks whether its holder died this often). */
  slice?: number;
  /** waitUntil: false when the caller keeps the program alive itself (a ref'd port), so no timer is needed. */
  keepAlive?: boolean;
  /**
   * waitUntil, with no timeout or signal: the error that ends the wait once this thread has nothing left to do,
   * when only this thread could end it (a primitive no other thread holds); undefined when another thread may
   * end it. A wait no other thread could end keeps the program alive no longer, and fails when it runs dry.
   */
  lonely?: () => Error | undefined;
}

/**
 * Resolves true once `attempt()` succeeds, false when `timeout` ms pass first; rejects with the signal's
 * reason on abort. Writers must `Atomics.notify(cells, index)` after changing the cell. A pending waitAsync
 * does not keep Node's event loop alive, so a timer holds it open while someone waits.
 */
export async function waitUntil(
  cells: Int32Array,
  index: number,
  attempt: () => boolean,
  { timeout, slice = Infinity, keepAlive: keepingAlive = true, lonely }: Bounds,
  signal: AbortSignal | undefined,
): Promise<boolean> {
  // An aborted signal rejects first, even when the attempt would succeed now (as Queue.get and recv() do).
  if (signal?.aborted) throw signal.reason;
  if (attempt()) return true;
  const deadline = timeout === Infinity ? Infinity : performance.now() + timeout;
  const alone = keepingAlive && timeout === Infinity && signal === undefined && lonely?.() !== undefined;
  let keepAlive = keepingAlive && !alone ? setInterval(() => {}, kForever) : undefined;
  let unwatch: (() => void) | undefined;
  let stallError: Error | undefined;
  const stalled = !alone
    ? undefined
    : new Promise<never>((_, reject) => {
        unwatch = watchForStall(() => {
          stallError = lonely?.();
          if (stallError !== undefined) return reject(stallError);
          // Another thread holds it now: it may end the wait, which keeps the program alive from here on.
          unwatch?.();
          unwatch = undefined;
          keepAlive = setInterval(() => {}, kForever);
        });
      });
  stalled?.catch(() => {});
  let unlisten: (() => void) | undefined;
  const aborted =
    signal === undefined
      ? undefined
      : new Promise<never>((_, reject) => {
          unlisten = onAbort(signal, () => reject(signal.reason));
        });
  aborted?.catch(() => {});
  try {
    for (;;) {
      const value = Atomics.load(cells, index);
      if (attempt()) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      const remaining = Math.min(left, slice);
      const result = Atomics.waitAsync(
        cells,
        index,
        value,
        remaining === Infinity ? undefined : Math.min(remaining, kForever),
      );
      if (!result.async) continue;
      try {
        await (aborted === undefined && stalled === undefined
          ? result.value
          : Promise.race([result.value, ...(aborted ? [aborted] : []), ...(stalled ? [stalled] : [])]));
      } catch (error) {
        // Ended a beforeExit listener's way, say: what it did counts.
        if (error === stallError && attempt()) return true;
        throw error;
      }
    }
  } finally {
    clearInterval(keepAlive);
    unlisten?.();
    unwatch?.();
  }
}

/**
 * What must happen before this thread blocks: work its event loop owes to others. `last` hooks run after the
 * others, which may start workers (a queue's hub, a pool's): compile.ts's tells workers still waiting for their
 * compiled module not to wait for this thread, and those must be among them.
 */
const blockingHooks: (() => void)[] = [];
const lastHooks: (() => void)[] = [];
export function beforeBlocking(hook: () => void, last = false): void {
  (last ? lastHooks : blockingHooks).push(hook);
}

/** Runs the hooks of beforeBlocking(): this thread is about to block (Atomics.wait). */
export function runBlockingHooks(): void {
  for (const hook of blockingHooks) hook();
  for (const hook of lastHooks) hook();
}

/** As waitUntil, blocking the thread (a bounded spin, then Atomics.wait); true unless `timeout` passed. */
export function blockUntil(
  cells: Int32Array,
  index: number,
  attempt: () => boolean,
  { timeout, slice = Infinity }: Bounds,
): boolean {
  for (let i = 0; i < kSpin; i++) {
    if (attempt()) return true;
    if (timeout === 0) return false;
  }
  const deadline = timeout === Infinity ? Infinity : performance.now() + timeout;
  runBlockingHooks();
  for (;;) {
    const value = Atomics.load(cells, index);
    if (attempt()) return true;
    const now = performance.now();
    if (deadline - now <= 0) return false;
    const remaining = Math.min(deadline - now, slice);
    Atomics.wait(cells, index, value, remaining === Infinity ? undefined : Math.min(remaining, kForever));
  }
}

/**
 * Resolves true once `ready(cells[index])` holds, false when `timeout` ms pass first; rejects with the
 * signal's reason on abort. Writers must `Atomics.notify(cells, index)` after changing the cell.
 */
export function waitForCell(
  cells: Int32Array,
  index: number,
  ready: (value: number) => boolean,
  timeout: number,
  signal: AbortSignal | undefined,
): Promise<boolean> {
  return waitUntil(cells, index, () => ready(Atomics.load(cells, index)), { timeout }, signal);
}

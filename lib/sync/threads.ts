// Which threads have died, for the locks: a lock whose holder exited or was terminated is taken over by the
// next acquire instead of deadlocking everyone (README: "Synchronization and shared memory").
//
// A terminated thread runs no code, so it cannot say it died. The thread that started it can: a Process's
// 'exit' event records the death here, and a worker that exits by itself (return, throw, process.exit())
// records its own in its 'exit' event, which also covers a parent that is blocked just then.
//
// Invariants:
//   One table per Node process, shared by every thread the library starts (it travels in BootData) and
//   adopted from the first primitive a thread receives when it has none (a Worker the user started).
//   kDead[id & kMask] === id exactly when thread `id` died and no later thread of the same slot died since;
//   a thread never recorded is alive. The slot is written once per death, by whichever side sees it first.
//   Thread ids are never reused (Node counts them up), so a dead id never comes back to life.
import { threadId } from 'node:worker_threads';

const kSlots = 1 << 14;
const kMask = kSlots - 1;

const kTable = Symbol.for('mpthreads.deadThreads');
type GlobalWithTable = typeof globalThis & { [kTable]?: Int32Array };

/** This process's table of dead threads, made on first use (the main thread, or a thread the user started). */
export function deadThreads(): SharedArrayBuffer {
  const g = globalThis as GlobalWithTable;
  g[kTable] ??= new Int32Array(new SharedArrayBuffer(kSlots * 4));
  return g[kTable].buffer as SharedArrayBuffer;
}

/** A worker adopts its parent's table (BootData) or, failing that, the one a primitive it received carries. */
export function adoptDeadThreads(buffer: SharedArrayBuffer | undefined): void {
  const g = globalThis as GlobalWithTable;
  if (buffer !== undefined && g[kTable] === undefined) g[kTable] = new Int32Array(buffer);
}

/** Records that thread `id` died. The main thread (0) never dies while others run. */
export function recordDeath(id: number): void {
  if (id <= 0) return;
  const g = globalThis as GlobalWithTable;
  if (g[kTable] !== undefined) Atomics.store(g[kTable], id & kMask, id);
}

/** True when thread `id` is known to have died. */
export function isDead(id: number): boolean {
  if (id <= 0) return false;
  const table = (globalThis as GlobalWithTable)[kTable];
  return table !== undefined && Atomics.load(table, id & kMask) === id;
}

/** This thread's id as the primitives store it: never 0, so 0 can mean "nobody". */
export const me = threadId + 1;

/** The thread id stored as `owner` (the inverse of `me`). */
export function threadOf(owner: number): number {
  return owner - 1;
}

// Which threads have died, for the locks: a lock whose holder exited or was terminated is taken over by the
// next acquire instead of deadlocking everyone (README: "Synchronization and shared memory").
//
// A terminated thread runs no code, so it cannot say it died. The thread that started it can: a Process's
// 'exit' event records the death here, and a worker that exits by itself (return, throw, process.exit())
// records its own in its 'exit' event, which also covers a parent that is blocked just then.
//
// A worker's workers die with it, without a word from either: so each thread the library starts records its
// parent at boot, and a thread whose parent (or grandparent, ...) died is dead too.
//
// Invariants:
//   One table per Node process, shared by every thread the library starts (it travels in BootData) and
//   adopted from the first primitive a thread receives when it has none (a Worker the user started).
//   Three regions of kSlots cells, indexed by id & kMask: kDead, kIds, kParents; then one cell, kNonce.
//   kDead[slot] === id exactly when thread `id` died and no later thread of the same slot died since;
//   a thread never recorded is alive, unless an ancestor is. The slot is written once per death, by whichever
//   side sees it first. kIds[slot] === id when kParents[slot] is the parent of thread `id` (written at its
//   boot, before it can hold anything). Thread ids are never reused (Node counts them up), so a dead id never
//   comes back to life.
import { threadId } from 'node:worker_threads';

const kSlots = 1 << 14;
const kMask = kSlots - 1;

const kTable = Symbol.for('mpthreads.deadThreads');
type GlobalWithTable = typeof globalThis & { [kTable]?: Int32Array };

/** The cell after the three regions: a random number, the same for every thread that shares the table. */
const kNonce = 3 * kSlots;

/** This process's table of dead threads, made on first use (the main thread, or a thread the user started). */
export function deadThreads(): SharedArrayBuffer {
  const g = globalThis as GlobalWithTable;
  if (g[kTable] === undefined) {
    const table = new Int32Array(new SharedArrayBuffer((kNonce + 1) * 4));
    table[kNonce] = (Math.random() * 0x7fffffff) | 1;
    g[kTable] = table;
  }
  return g[kTable].buffer as SharedArrayBuffer;
}

/**
 * A number that tells this process's threads (those that share the table) from another process's with the same
 * pid: two containers on one host both run node as pid 1. Made with the table if this thread has none yet.
 */
export function processNonce(): number {
  const table = new Int32Array(deadThreads());
  return table.length > kNonce ? Atomics.load(table, kNonce) : 0;
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

/** Records that thread `id` was started by thread `parent` (the main thread is 0). */
export function recordParent(id: number, parent: number): void {
  const table = (globalThis as GlobalWithTable)[kTable];
  if (id <= 0 || !hasLineage(table)) return;
  Atomics.store(table, 2 * kSlots + (id & kMask), parent);
  Atomics.store(table, kSlots + (id & kMask), id);
}

/** The table has the parents' regions (one made by an older copy of the library in this process may not). */
function hasLineage(table: Int32Array | undefined): table is Int32Array {
  return table !== undefined && table.length >= 3 * kSlots;
}

/** Lineages deeper than this are not followed (a guard; Process nesting is never that deep). */
const kMaxDepth = 64;

/** True when thread `id`, or a thread it descends from, is known to have died. */
export function isDead(id: number): boolean {
  const table = (globalThis as GlobalWithTable)[kTable];
  if (table === undefined) return false;
  for (let thread = id, depth = 0; thread > 0 && depth < kMaxDepth; depth++) {
    const slot = thread & kMask;
    if (Atomics.load(table, slot) === thread) return true;
    if (!hasLineage(table) || Atomics.load(table, kSlots + slot) !== thread) return false; // no parent on record
    thread = Atomics.load(table, 2 * kSlots + slot);
  }
  return false;
}

/** This thread's id as the primitives store it: never 0, so 0 can mean "nobody". */
export const me = threadId + 1;

/** The thread id stored as `owner` (the inverse of `me`). */
export function threadOf(owner: number): number {
  return owner - 1;
}

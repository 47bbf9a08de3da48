// Condition (Python's multiprocessing.Condition): a lock, and a queue of waiters that notify() wakes in the
// order they started waiting, as threading.Condition's deque does, in shared memory.
//
// Invariants:
//   Every slot is free, waiting or notified; slots change only while the condition's lock is held, except
//   that a waiter reads its own slot's state without it. A waiter takes a free slot (with the next ticket,
//   its place in line) while it holds the lock, then releases the lock and waits for its slot to be notified.
//   notify(n), under the lock, marks the n waiting slots with the lowest tickets notified and wakes them; a
//   waiter that starts waiting later has a higher ticket and cannot take a wake-up meant for an earlier one.
//   A waiter frees its slot once it holds the lock again: notified means woken, still waiting means its time
//   ran out (it withdraws). A slot whose waiter's thread died is freed by the next notify that finds it, and
//   is not counted as one woken.
//   cells[kWaiting] is the number of slots in the waiting state (notify skips the scan when it is 0).
import { describe, ErrorCode, ProcessError } from '../errors.ts';
import { checkTimeout } from '../options.ts';
import { blockUntil, waitUntil } from '../shared-wait.ts';
import { isDead, me, threadOf } from './threads.ts';
import { kIsMine, kReleaseAll, kRestore, kRestoreSync, Lock, type AcquireOptions, type RLock } from './lock.ts';
import {
  checkReachable,
  lonelyWait,
  kKind,
  kState,
  nestedState,
  newCells,
  Primitive,
  registerPrimitive,
  reviveNested,
  takeAdopted,
  type NestedState,
} from './primitive.ts';

const kTicket = 0;
const kWaiting = 1;
const kSlots = 2;
/** Most waits (threads, or async waits of one thread) that can be in one Condition at once. */
const kMaxWaiters = 256;
// Each slot: its state, its ticket, the waiting thread (`me`).
const kSlotSize = 3;
const kSlotState = 0;
const kSlotTicket = 1;
const kSlotOwner = 2;

const kFree = 0;
const kWaitingSlot = 1;
const kNotified = 2;

const at = (slot: number, field: number) => kSlots + slot * kSlotSize + field;

/** @internal True when this thread holds the condition's lock (for Barrier). */
export const kHoldsLock: unique symbol = Symbol('mpthreads.condition.holdsLock');

/**
 * A condition variable shared by threads (Python's `multiprocessing.Condition`): with its lock held, `wait`
 * releases the lock until another thread calls `notify`, then takes it back. The lock is a `Lock` unless one
 * is given (Python's default is an RLock; see the README). Pass it in `Process`/`Pool` args, or through a pipe or queue.
 */
export class Condition extends Primitive {
  readonly #cells: Int32Array;
  readonly #lock: Lock | RLock;

  constructor(lock?: Lock | RLock) {
    super();
    const adopted = takeAdopted<{ cells: SharedArrayBuffer; lock: NestedState }>();
    if (adopted !== undefined) {
      this.#cells = new Int32Array(adopted.cells);
      this.#lock = reviveNested(adopted.lock);
      return;
    }
    if (lock !== undefined && !(typeof lock === 'object' && lock !== null && kIsMine in lock)) {
      throw new TypeError(`lock must be a Lock or an RLock, got ${describe(lock)}`);
    }
    // A Lock, where Python's default is an RLock: an RLock is held per thread, so two async functions of one
    // thread would both hold it at once, and their waits would tangle (README: Synchronization).
    this.#lock = lock ?? new Lock();
    this.#cells = newCells(kSlots + kMaxWaiters * kSlotSize);
  }

  get [kKind](): string {
    return 'Condition';
  }

  [kState](): Record<string, unknown> {
    return { cells: this.#cells.buffer, lock: nestedState(this.#lock) };
  }

  /** Acquires the underlying lock. */
  acquire(options?: AcquireOptions): Promise<boolean> {
    return this.#lock.acquire(options);
  }
  acquireSync(options?: Omit<AcquireOptions, 'signal'>): boolean {
    return this.#lock.acquireSync(options);
  }
  /** Releases the underlying lock. */
  release(): void {
    this.#lock.release();
  }
  [Symbol.dispose](): void {
    this.#lock.release();
  }

  [kHoldsLock](): boolean {
    return this.#lock[kIsMine]();
  }

  #checkHeld(what: string): void {
    if (!this.#lock[kIsMine]()) {
      throw new ProcessError(`${what} on a Condition whose lock this thread does not hold`, ErrorCode.LockNotHeld);
    }
  }

  /** Under the lock: takes a slot in line; returns it with the lock's depth, the lock released. */
  #enter(): { slot: number; depth: number } {
    this.#checkHeld('wait()');
    const cells = this.#cells;
    let slot = 0;
    while (slot < kMaxWaiters && !this.#reclaimable(slot)) slot++;
    if (slot === kMaxWaiters) throw new RangeError(`a Condition takes at most ${kMaxWaiters} waits at once`);
    Atomics.store(cells, at(slot, kSlotTicket), Atomics.add(cells, kTicket, 1));
    Atomics.store(cells, at(slot, kSlotOwner), me);
    Atomics.store(cells, at(slot, kSlotState), kWaitingSlot);
    Atomics.add(cells, kWaiting, 1);
    return { slot, depth: this.#lock[kReleaseAll]() };
  }

  /** Under the lock: true when `slot` is free, or made free because the thread that waited in it died. */
  #reclaimable(slot: number): boolean {
    const cells = this.#cells;
    const state = Atomics.load(cells, at(slot, kSlotState));
    if (state === kFree) return true;
    if (!isDead(threadOf(Atomics.load(cells, at(slot, kSlotOwner))))) return false;
    if (state === kWaitingSlot) Atomics.sub(cells, kWaiting, 1);
    Atomics.store(cells, at(slot, kSlotState), kFree);
    return true;
  }

  /** Under the lock again: frees the slot; true when it was notified, false when it withdraws. */
  #leave(slot: number): boolean {
    const cells = this.#cells;
    const notified = Atomics.load(cells, at(slot, kSlotState)) === kNotified;
    if (!notified) Atomics.sub(cells, kWaiting, 1);
    Atomics.store(cells, at(slot, kSlotState), kFree);
    return notified;
  }

  /**
   * Releases the lock, waits for a notify (or `timeout` ms), takes the lock back: true when notified, false
   * when the time ran out. Throws a ProcessError (ERR_LOCK_NOT_HELD) when this thread does not hold the lock.
   */
  async wait(timeout?: number): Promise<boolean> {
    const ms = checkTimeout(timeout, 'timeout');
    const { slot, depth } = this.#enter();
    const state = at(slot, kSlotState);
    try {
      await waitUntil(
        this.#cells,
        state,
        () => Atomics.load(this.#cells, state) === kNotified,
        { timeout: ms, lonely: lonelyWait(this.#cells, 'Condition', 'wait()') },
        undefined,
      );
    } finally {
      await this.#lock[kRestore](depth);
    }
    return this.#leave(slot);
  }

  /** As wait(), blocking the thread. */
  waitSync(timeout?: number): boolean {
    const ms = checkTimeout(timeout, 'timeout');
    if (ms === Infinity) {
      this.#checkHeld('waitSync()');
      checkReachable(this.#cells, 'Condition', 'waitSync()');
    }
    const { slot, depth } = this.#enter();
    const state = at(slot, kSlotState);
    try {
      blockUntil(this.#cells, state, () => Atomics.load(this.#cells, state) === kNotified, { timeout: ms });
    } finally {
      this.#lock[kRestoreSync](depth);
    }
    return this.#leave(slot);
  }

  /** Waits until `predicate()` is truthy, or `timeout` ms pass; returns its last result (Python's `wait_for`). */
  async waitFor<R>(predicate: () => R, timeout?: number): Promise<R> {
    checkPredicate(predicate);
    const ms = checkTimeout(timeout, 'timeout');
    const deadline = performance.now() + ms;
    let result = predicate();
    while (!result) {
      const left = deadline - performance.now();
      if (left <= 0) break;
      await this.wait(left);
      result = predicate();
    }
    return result;
  }

  /** As waitFor(), blocking the thread. */
  waitForSync<R>(predicate: () => R, timeout?: number): R {
    checkPredicate(predicate);
    const ms = checkTimeout(timeout, 'timeout');
    const deadline = performance.now() + ms;
    let result = predicate();
    while (!result) {
      const left = deadline - performance.now();
      if (left <= 0) break;
      this.waitSync(left);
      result = predicate();
    }
    return result;
  }

  /** Wakes up to `n` of the threads waiting now, the longest-waiting first. The lock must be held. */
  notify(n = 1): void {
    this.#checkHeld('notify()');
    if (typeof n !== 'number') throw new TypeError(`n must be a number, got ${describe(n)}`);
    if (n !== Infinity && (!Number.isSafeInteger(n) || n < 0)) {
      throw new RangeError(`n must be a non-negative integer, got ${String(n)}`);
    }
    const cells = this.#cells;
    for (let woken = 0; woken < n && Atomics.load(cells, kWaiting) > 0; ) {
      // The waiting slot with the lowest ticket (tickets compared as differences: they may wrap).
      let first = -1;
      for (let slot = 0; slot < kMaxWaiters; slot++) {
        if (Atomics.load(cells, at(slot, kSlotState)) !== kWaitingSlot) continue;
        if (first === -1 || ((cells[at(slot, kSlotTicket)]! - cells[at(first, kSlotTicket)]!) | 0) < 0) first = slot;
      }
      if (first === -1) break;
      Atomics.sub(cells, kWaiting, 1);
      const owner = Atomics.load(cells, at(first, kSlotOwner));
      if (isDead(threadOf(owner))) {
        Atomics.store(cells, at(first, kSlotState), kFree);
        continue;
      }
      Atomics.store(cells, at(first, kSlotState), kNotified);
      Atomics.notify(cells, at(first, kSlotState));
      woken++;
    }
  }

  /** Wakes every thread waiting now. The lock must be held. */
  notifyAll(): void {
    this.notify(Infinity);
  }
}

registerPrimitive('Condition', () => new Condition());

function checkPredicate(predicate: unknown): void {
  if (typeof predicate !== 'function') throw new TypeError(`predicate must be a function, got ${describe(predicate)}`);
}

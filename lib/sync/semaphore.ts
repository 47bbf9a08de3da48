// Semaphore and BoundedSemaphore (Python's multiprocessing.Semaphore and BoundedSemaphore) on one shared
// counter.
//
// Invariants:
//   cells[kValue] >= 0 is the number of acquires that would succeed now; acquire takes one by a CAS from a
//   positive value, release adds one (a BoundedSemaphore by a CAS that refuses to pass cells[kBound]).
//   cells[kWaiters] counts threads inside a wait; release adds and then reads it, a waiter adds itself and
//   then reads the value (see lock.ts): no wake-up is lost. Release wakes every waiter (lock.ts says why).
//   Of this thread's async acquires of this object, only the one with the turn waits on the cell (turns.ts).
//   A semaphore has no owner: a permit taken by a thread that dies is not given back.
import { postBufferedPuts } from '../context.ts';
import { ErrorCode, ProcessError } from '../errors.ts';
import { checkOptions, checkSignal, checkTimeout } from '../options.ts';
import { blockUntil, waitUntil } from '../shared-wait.ts';
import type { AcquireOptions } from './lock.ts';
import { Turns } from './turns.ts';
import {
  checkCount,
  checkReachable,
  lonelyWait,
  kKind,
  kState,
  newCells,
  Primitive,
  registerPrimitive,
  takeAdopted,
} from './primitive.ts';

const kValue = 0;
const kWaiters = 1;
const kBound = 2;
/** cells[kBound] of a Semaphore: no bound. */
const kUnbounded = -1;

/**
 * A counter of permits shared by threads (Python's `multiprocessing.Semaphore`): `acquire` takes one, waiting
 * while there is none; `release` gives one back. Pass it in `Process`/`Pool` args, or through a pipe or queue.
 */
export class Semaphore extends Primitive {
  readonly #cells: Int32Array;
  /** This thread's async acquires, one at a time on the cell (turns.ts). */
  readonly #turns = new Turns();

  constructor(value = 1) {
    super();
    const adopted = takeAdopted<{ cells: SharedArrayBuffer }>();
    if (adopted !== undefined) {
      this.#cells = new Int32Array(adopted.cells);
      return;
    }
    const start = checkCount(value, 'value', 0);
    if (start > 0x7fffffff) throw new RangeError(`value must be at most 2147483647, got ${start}`);
    this.#cells = newCells(3);
    this.#cells[kValue] = start;
    this.#cells[kBound] = this[kKind] === 'BoundedSemaphore' ? start : kUnbounded;
  }

  get [kKind](): string {
    return 'Semaphore';
  }

  [kState](): Record<string, unknown> {
    return { cells: this.#cells.buffer };
  }

  readonly #attempt = (): boolean => {
    const value = Atomics.load(this.#cells, kValue);
    return value > 0 && Atomics.compareExchange(this.#cells, kValue, value, value - 1) === value;
  };

  /** Takes a permit, waiting while there is none: true, or false when `timeout` ms pass first. */
  async acquire(options?: AcquireOptions): Promise<boolean> {
    const o = checkOptions(options, 'options', ['timeout', 'signal']);
    const timeout = checkTimeout(o.timeout);
    const signal = checkSignal(o.signal);
    if (signal?.aborted) throw signal.reason;
    // While others of this thread wait, a new acquire goes behind them, unless it only tries (timeout 0).
    if ((this.#turns.idle || timeout === 0) && this.#attempt()) return true;
    const deadline = performance.now() + timeout;
    if (!(await this.#turns.take(deadline, signal))) return false;
    Atomics.add(this.#cells, kWaiters, 1);
    try {
      const left = Math.max(0, deadline - performance.now());
      const lonely = lonelyWait(this.#cells, this[kKind], 'acquire()');
      return await waitUntil(this.#cells, kValue, this.#attempt, { timeout: left, lonely }, signal);
    } finally {
      Atomics.sub(this.#cells, kWaiters, 1);
      this.#turns.pass();
    }
  }

  /** As acquire(), blocking the thread. */
  acquireSync(options?: Omit<AcquireOptions, 'signal'>): boolean {
    const o = checkOptions(options, 'options', ['timeout']);
    const timeout = checkTimeout(o.timeout);
    if (this.#attempt()) return true;
    if (timeout === Infinity) checkReachable(this.#cells, this[kKind], 'acquireSync()');
    Atomics.add(this.#cells, kWaiters, 1);
    try {
      return blockUntil(this.#cells, kValue, this.#attempt, { timeout });
    } finally {
      Atomics.sub(this.#cells, kWaiters, 1);
    }
  }

  /**
   * Gives a permit back. A BoundedSemaphore throws a ProcessError (ERR_RELEASED_TOO_MANY) rather than pass
   * its initial value.
   */
  release(): void {
    postBufferedPuts(); // what this thread put before is numbered before what the next holder puts
    const cells = this.#cells;
    const bound = Atomics.load(cells, kBound);
    for (;;) {
      const value = Atomics.load(cells, kValue);
      if (value >= (bound === kUnbounded ? 0x7fffffff : bound)) {
        throw new ProcessError(`${this[kKind]} released too many times`, ErrorCode.ReleasedTooMany);
      }
      if (Atomics.compareExchange(cells, kValue, value, value + 1) === value) break;
    }
    if (Atomics.load(cells, kWaiters) > 0) Atomics.notify(cells, kValue);
  }

  /** The number of permits free now (Python's `get_value()`). */
  getValue(): number {
    return Atomics.load(this.#cells, kValue);
  }

  /** Releases: `sem.acquireSync(); using _ = sem;` holds a permit to the end of the block. */
  [Symbol.dispose](): void {
    this.release();
  }
}

/** A Semaphore that refuses to be released above its initial value (Python's `BoundedSemaphore`). */
export class BoundedSemaphore extends Semaphore {
  override get [kKind](): string {
    return 'BoundedSemaphore';
  }
}

registerPrimitive('Semaphore', () => new Semaphore());
registerPrimitive('BoundedSemaphore', () => new BoundedSemaphore());

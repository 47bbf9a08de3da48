// Lock and RLock (Python's multiprocessing.Lock and RLock) on one shared word: who holds the lock.
//
// Invariants:
//   cells[kOwner] is 0 when the lock is free, else the holder's `me` (threads.ts). It leaves 0 only by a CAS
//   from 0 (an acquire) or from a holder recorded dead (a takeover: the next acquire gets the lock); only the
//   holder stores 0 (release).
//   Of this thread's async acquires of this object, only the one with the turn waits on the cell (turns.ts).
//   cells[kDepth] (RLock) is how many times the holder has acquired it; only the holder writes it.
//   cells[kWaiters] counts threads inside a wait. release() stores 0 and then reads it, a waiter adds itself
//   and then reads the owner (sequentially consistent atomics): either the releaser sees the waiter and
//   notifies, or the waiter sees the lock free. Release wakes every waiter, not one: an async waiter that
//   gave up (abort) cannot withdraw its Atomics.waitAsync and would swallow a single wake-up.
//   Ownership is per thread: two async functions of one thread share it, as two calls of one Python thread do.
import { postBufferedPuts } from '../context.ts';
import { ErrorCode, ProcessError } from '../errors.ts';
import { checkOptions, checkSignal, checkTimeout } from '../options.ts';
import { blockUntil, waitUntil } from '../shared-wait.ts';
import { kKind, kState, lonelyWait, newCells, Primitive, registerPrimitive, takeAdopted } from './primitive.ts';
import { isDead, me, threadOf } from './threads.ts';
import { Turns } from './turns.ts';

const kOwner = 0;
const kWaiters = 1;
const kDepth = 2;

/** How often (ms) a waiter looks whether the holder died: a death notifies no one. */
const kDeathCheck = 50;

/** @internal For Condition: give the lock up entirely, and take it back as deep as it was. */
export const kReleaseAll: unique symbol = Symbol('mpthreads.lock.releaseAll');
export const kRestore: unique symbol = Symbol('mpthreads.lock.restore');
export const kRestoreSync: unique symbol = Symbol('mpthreads.lock.restoreSync');
export const kIsMine: unique symbol = Symbol('mpthreads.lock.isMine');

/** Options of `acquire()`. */
export interface AcquireOptions {
  /** Milliseconds to wait; 0 tries once; `Infinity` or omitted waits forever. */
  timeout?: number;
  /** Aborting rejects the acquire with the signal's reason. */
  signal?: AbortSignal;
}

abstract class Mutex extends Primitive {
  readonly #cells: Int32Array;
  readonly #recursive: boolean;
  /** This thread's async waits on the lock, one at a time on its cell (turns.ts). */
  readonly #turns = new Turns();

  constructor(recursive: boolean) {
    super();
    const adopted = takeAdopted<{ cells: SharedArrayBuffer }>();
    this.#cells = adopted === undefined ? newCells(3) : new Int32Array(adopted.cells);
    this.#recursive = recursive;
  }

  [kState](): Record<string, unknown> {
    return { cells: this.#cells.buffer };
  }

  /**
   * One try at a lock nobody holds (or whose holder died): for Condition, taking the lock back after a wait
   * must wait for it even when another async function of this thread holds it meanwhile.
   */
  readonly #attemptFresh = (): boolean => {
    const cells = this.#cells;
    const owner = Atomics.load(cells, kOwner);
    if (owner !== 0 && (owner === me || !isDead(threadOf(owner)))) return false;
    return Atomics.compareExchange(cells, kOwner, owner, me) === owner;
  };

  /** One try: true when this thread now holds the lock (once more, for an RLock it held). */
  readonly #attempt = (): boolean => {
    const cells = this.#cells;
    const owner = Atomics.load(cells, kOwner);
    if (owner === 0 || (owner !== me && isDead(threadOf(owner)))) {
      if (Atomics.compareExchange(cells, kOwner, owner, me) !== owner) return false;
      if (this.#recursive) Atomics.store(cells, kDepth, 1);
      return true;
    }
    if (owner === me && this.#recursive) {
      Atomics.store(cells, kDepth, Atomics.load(cells, kDepth) + 1);
      return true;
    }
    return false;
  };

  /**
   * Waits until this thread holds the lock: true, or false when `timeout` ms pass first. A lock whose holder
   * died is taken over (true). Rejects with the signal's reason on abort.
   */
  async acquire(options?: AcquireOptions): Promise<boolean> {
    const o = checkOptions(options, 'options', ['timeout', 'signal']);
    return this.#acquire(checkTimeout(o.timeout), checkSignal(o.signal));
  }

  /**
   * As acquire(), blocking the thread. Throws a ProcessError (ERR_DEADLOCK) instead of blocking forever
   * on a Lock this thread already holds: only this thread could release it.
   */
  acquireSync(options?: Omit<AcquireOptions, 'signal'>): boolean {
    const o = checkOptions(options, 'options', ['timeout']);
    const timeout = checkTimeout(o.timeout);
    if (timeout === Infinity && !this.#recursive && Atomics.load(this.#cells, kOwner) === me) {
      throw new ProcessError(
        `acquireSync() on a ${this[kKind]} this thread holds would block forever: release it first, or use acquire()`,
        ErrorCode.Deadlock,
      );
    }
    return this.#acquireSync(timeout);
  }

  async #acquire(timeout: number, signal: AbortSignal | undefined, attempt = this.#attempt): Promise<boolean> {
    if (signal?.aborted) throw signal.reason;
    // While others of this thread wait, a new acquire goes behind them (it would take the lock a release freed
    // for the oldest): unless it only tries (timeout 0), or this thread holds the RLock it asks for again.
    const mine = this.#recursive && attempt === this.#attempt && Atomics.load(this.#cells, kOwner) === me;
    if ((this.#turns.idle || timeout === 0 || mine) && attempt()) return true;
    const deadline = performance.now() + timeout;
    if (!(await this.#turns.take(deadline, signal))) return false;
    Atomics.add(this.#cells, kWaiters, 1);
    try {
      const left = Math.max(0, deadline - performance.now());
      const lonely = () =>
        !this.#recursive && Atomics.load(this.#cells, kOwner) === me
          ? new ProcessError(
              `acquire() on a ${this[kKind]} this thread holds can never end: this thread has nothing left to do that could release it`,
              ErrorCode.Deadlock,
            )
          : lonelyWait(this.#cells, this[kKind], 'acquire()')();
      return await waitUntil(this.#cells, kOwner, attempt, { timeout: left, slice: kDeathCheck, lonely }, signal);
    } finally {
      Atomics.sub(this.#cells, kWaiters, 1);
      this.#turns.pass();
    }
  }

  #acquireSync(timeout: number, attempt = this.#attempt): boolean {
    if (attempt()) return true;
    Atomics.add(this.#cells, kWaiters, 1);
    try {
      return blockUntil(this.#cells, kOwner, attempt, { timeout, slice: kDeathCheck });
    } finally {
      Atomics.sub(this.#cells, kWaiters, 1);
    }
  }

  /** Lets the lock go (an RLock: once). Throws a ProcessError when this thread does not hold it. */
  release(): void {
    const cells = this.#cells;
    if (Atomics.load(cells, kOwner) !== me) {
      throw new ProcessError(`release() of a ${this[kKind]} this thread does not hold`, ErrorCode.LockNotHeld);
    }
    if (this.#recursive) {
      const depth = Atomics.load(cells, kDepth) - 1;
      Atomics.store(cells, kDepth, depth);
      if (depth > 0) return;
    }
    this.#free();
  }

  #free(): void {
    postBufferedPuts(); // what this thread put under the lock is numbered before what the next holder puts
    Atomics.store(this.#cells, kOwner, 0);
    if (Atomics.load(this.#cells, kWaiters) > 0) Atomics.notify(this.#cells, kOwner);
  }

  /** True while any thread holds the lock. */
  locked(): boolean {
    return Atomics.load(this.#cells, kOwner) !== 0;
  }

  /** Releases: `lock.acquireSync(); using _ = lock;` holds it to the end of the block. */
  [Symbol.dispose](): void {
    this.release();
  }

  /** @internal True when this thread holds the lock. */
  [kIsMine](): boolean {
    return Atomics.load(this.#cells, kOwner) === me;
  }

  /** @internal Releases the lock however deep this thread holds it; returns the depth, for kRestore. */
  [kReleaseAll](): number {
    if (!this[kIsMine]())
      throw new ProcessError(`the ${this[kKind]} is not held by this thread`, ErrorCode.LockNotHeld);
    const depth = this.#recursive ? Atomics.load(this.#cells, kDepth) : 1;
    this.#free();
    return depth;
  }

  /** @internal Takes the lock back at `depth` (after kReleaseAll). */
  async [kRestore](depth: number): Promise<void> {
    await this.#acquire(Infinity, undefined, this.#attemptFresh);
    if (this.#recursive) Atomics.store(this.#cells, kDepth, depth);
  }

  /** @internal As kRestore, blocking. */
  [kRestoreSync](depth: number): void {
    this.#acquireSync(Infinity, this.#attemptFresh);
    if (this.#recursive) Atomics.store(this.#cells, kDepth, depth);
  }
}

/**
 * A lock shared by threads (Python's `multiprocessing.Lock`): one holder at a time; only the holder releases.
 * Pass it in `Process`/`Pool` args, or through a pipe or queue. If the holder's thread exits or is
 * terminated, the next `acquire` gets the lock.
 *
 * @example
 * const lock = new Lock();
 * await lock.acquire();
 * try { ... } finally { lock.release(); }
 */
export class Lock extends Mutex {
  constructor() {
    super(false);
  }
  get [kKind](): string {
    return 'Lock';
  }
}

/** A lock its holder may acquire again (Python's `multiprocessing.RLock`); it is free once released as often. */
export class RLock extends Mutex {
  constructor() {
    super(true);
  }
  get [kKind](): string {
    return 'RLock';
  }
}

registerPrimitive('Lock', () => new Lock());
registerPrimitive('RLock', () => new RLock());

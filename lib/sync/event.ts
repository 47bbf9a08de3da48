// Event (Python's multiprocessing.Event): one shared flag that waiters wait to see set.
//
// Invariants:
//   cells[kFlag] is 1 while the event is set, 0 while clear. set() stores 1, bumps cells[kSets] and then wakes
//   every waiter; a wait ends (true) once it sees the flag set or kSets moved since it began, so a set() that a
//   clear() follows at once still releases everyone waiting then, as threading.Event's does.
import { postBufferedPuts } from '../context.ts';
import { checkTimeout } from '../options.ts';
import { blockUntil, waitUntil } from '../shared-wait.ts';
import {
  checkReachable,
  lonelyWait,
  kKind,
  kState,
  newCells,
  Primitive,
  registerPrimitive,
  takeAdopted,
} from './primitive.ts';

const kFlag = 0;
const kSets = 1;

/**
 * A flag shared by threads (Python's `multiprocessing.Event`): `wait` until another thread calls `set`.
 * Pass it in `Process`/`Pool` args, or through a pipe or queue.
 */
export class Event extends Primitive {
  readonly #cells: Int32Array;

  constructor() {
    super();
    const adopted = takeAdopted<{ cells: SharedArrayBuffer }>();
    this.#cells = adopted === undefined ? newCells(2) : new Int32Array(adopted.cells);
  }

  get [kKind](): string {
    return 'Event';
  }

  [kState](): Record<string, unknown> {
    return { cells: this.#cells.buffer };
  }

  readonly #isSet = (): boolean => Atomics.load(this.#cells, kFlag) === 1;

  /** Set now, or set since `sets` was read. */
  #setSince(sets: number): () => boolean {
    return () => Atomics.load(this.#cells, kFlag) === 1 || Atomics.load(this.#cells, kSets) !== sets;
  }

  /** True while the flag is set. */
  isSet(): boolean {
    return this.#isSet();
  }

  /** Sets the flag and wakes every waiter. */
  set(): void {
    postBufferedPuts(); // what this thread put before is numbered before what a waiter puts once woken
    Atomics.store(this.#cells, kFlag, 1);
    Atomics.add(this.#cells, kSets, 1);
    Atomics.notify(this.#cells, kSets);
  }

  /** Clears the flag: later waits wait again. */
  clear(): void {
    Atomics.store(this.#cells, kFlag, 0);
  }

  /** Resolves true once the flag is set, or false when `timeout` ms pass first (Python's `wait(timeout)`). */
  wait(timeout?: number): Promise<boolean> {
    try {
      const ms = checkTimeout(timeout, 'timeout');
      return waitUntil(
        this.#cells,
        kSets,
        this.#setSince(Atomics.load(this.#cells, kSets)),
        { timeout: ms, lonely: lonelyWait(this.#cells, 'Event', 'wait()') },
        undefined,
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** As wait(), blocking the thread. */
  waitSync(timeout?: number): boolean {
    const ms = checkTimeout(timeout, 'timeout');
    const set = this.#setSince(Atomics.load(this.#cells, kSets));
    if (ms === Infinity && !set()) checkReachable(this.#cells, 'Event', 'waitSync()');
    return blockUntil(this.#cells, kSets, set, { timeout: ms });
  }
}

registerPrimitive('Event', () => new Event());

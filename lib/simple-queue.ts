// SimpleQueue: Python's multiprocessing.SimpleQueue, exactly its methods (put, get, empty, close), on the same
// machinery as Queue, unbounded. Not a subclass of Queue, as in Python: it has no size, no nowait forms, no
// flush. (One addition: get() takes a timeout and a signal.) A handle travels and is shared between threads
// as a Queue's does.
import { kAbort, kCommit, kMarshal, type Handle, type WireHandle } from './handles.ts';
import type { WaitOptions } from './options.ts';
import { adopt, backendFor, Queue, registerQueueKind } from './queue.ts';

/**
 * An unbounded queue with Python's SimpleQueue API: `put`, `get`, `empty`, `close`.
 *
 * @example
 * const q = new SimpleQueue<number>();
 * await q.put(1);
 * await q.get(); // 1
 */
export class SimpleQueue<T = unknown> implements Handle {
  readonly #q: Queue<T>;

  constructor(...none: []) {
    // Python's SimpleQueue takes no options; one passed anyway is a TypeError, not silently ignored.
    this.#q = new Queue<T>(backendFor('SimpleQueue', (none as unknown[])[0]));
  }

  /** Adds `item`, copied now; resolves once it is in this holder's buffer. */
  put(item: T): Promise<void> {
    return this.#q.put(item);
  }

  /**
   * Resolves with the oldest item. Python's takes no arguments; this one also takes `{ timeout, signal }`
   * (`Empty` on timeout), because a wait that cannot be bounded is a hang.
   */
  get(options?: WaitOptions): Promise<T> {
    return this.#q.get(options);
  }

  /** True if the queue is empty (approximately, across threads). */
  empty(): boolean {
    return this.#q.empty();
  }

  /** This handle will be used no more: items it put are still delivered; waiting gets reject with ClosedError. */
  close(): void {
    this.#q.close();
  }

  [kMarshal](transfer: unknown[]): WireHandle {
    return this.#q[kMarshal](transfer);
  }

  [kCommit](): void {
    this.#q[kCommit]();
  }

  [kAbort](): void {
    this.#q[kAbort]();
  }
}

registerQueueKind('SimpleQueue', (backend) => adopt(backend, () => new SimpleQueue()));

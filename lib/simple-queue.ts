// SimpleQueue: Python's multiprocessing.SimpleQueue, the small API (put, get, empty, close) on the same
// machinery as Queue, unbounded.
import { registerHandle } from './handles.ts';
import { Queue, reviveQueue } from './queue.ts';

/**
 * An unbounded queue with Python's SimpleQueue API: `put`, `get`, `empty`, `close`.
 *
 * @example
 * const q = new SimpleQueue<number>();
 * await q.put(1);
 * await q.get(); // 1
 */
export class SimpleQueue<T = unknown> extends Queue<T> {
  static wireKind = 'SimpleQueue';

  constructor() {
    super({ maxsize: 0 });
  }
}

registerHandle('SimpleQueue', (wire) => reviveQueue(SimpleQueue, wire));

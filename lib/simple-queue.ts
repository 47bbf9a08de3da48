// SimpleQueue: Python's multiprocessing.SimpleQueue, the small API (put, get, empty, close) on the same
// machinery as Queue, unbounded. A handle rebuilt in another thread goes through the same constructor, which
// must hand the wire record on to Queue (else the other thread would get a new, unrelated queue).
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

  constructor();
  /** @internal Rebuilt from the wire (see Queue). */
  constructor(...wire: ConstructorParameters<typeof Queue>);
  constructor(...wire: unknown[]) {
    if (wire.length === 3) super(...(wire as ConstructorParameters<typeof Queue>));
    else super({ maxsize: 0 });
  }
}

registerHandle('SimpleQueue', (wire) => reviveQueue(SimpleQueue, wire));

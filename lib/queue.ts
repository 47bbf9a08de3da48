// Queue: Python's multiprocessing.Queue across worker threads. Each thread that holds the queue has its own
// Queue object with a port to the hub (queue/hub.ts), which keeps the items between threads. This class is a
// facade: queue/holder.ts holds a holder's state, queue/put-side.ts and queue/get-side.ts do the work, the
// design is in queue/protocol.ts and the shared cells are in queue/cells.ts.
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { flushOnExit } from './context.ts';
import { bug, ClosedError, describe } from './errors.ts';
import { kAbort, kCommit, kMarshal, registerHandle, WIRE_TAG, type Handle, type WireHandle } from './handles.ts';
import { checkNonNegativeInteger, checkOptions, type WaitOptions } from './options.ts';
import { kAttaching, newHolderCells, newLeaseRing, newQueueCells, size } from './queue/cells.ts';
import { Holder, type QueueKind } from './queue/holder.ts';
import { createQueue } from './queue/hub-client.ts';
import { Op } from './queue/protocol.ts';
import type { PutOptions } from './queue/put-side.ts';

export type { PutOptions };

/** Options of `new Queue()`. */
export interface QueueOptions {
  /** Most items the queue holds; `put` waits while it is full. 0 means unbounded. @default 0 */
  maxsize?: number;
}

/** How a holder travels to another thread. */
interface QueueWire extends WireHandle {
  kind: QueueKind;
  port: MessagePort;
  queueCells: Int32Array;
  holderCells: Int32Array;
  ring: Int32Array | null;
  maxsize: number;
}

/** Makes a new queue in the hub, or (`wire`) a new holder of one that came from another thread. */
export function openHolder(kind: QueueKind, options: unknown, wire?: QueueWire): Holder {
  if (wire !== undefined) {
    return new Holder(kind, wire.maxsize, wire.queueCells, wire.holderCells, wire.ring, wire.port);
  }
  const o = checkOptions(options, 'options', kind === 'SimpleQueue' ? [] : ['maxsize']);
  const maxsize = o.maxsize === undefined ? 0 : checkNonNegativeInteger(o.maxsize, 'options.maxsize');
  const queueCells = newQueueCells();
  const holderCells = newHolderCells();
  const ring = kind === 'JoinableQueue' ? newLeaseRing() : null;
  const { port1, port2 } = new MessageChannel();
  createQueue(queueCells, kind === 'JoinableQueue', { port: port2, cells: holderCells, ring });
  return new Holder(kind, maxsize, queueCells, holderCells, ring, port1);
}

/** The holder behind a Queue, JoinableQueue or SimpleQueue (for the subclasses and for tests). */
export let holderOf: (queue: Queue<any>) => Holder;

// The public constructors take options only; a facade over a given holder (one that arrived from another
// thread, or a subclass's) is made by handing the holder over in this slot for the constructor to take.
let adopting: Holder | undefined;
/** Makes a facade (`make` calls a queue constructor) over `holder`. */
export function adopt<Q>(holder: Holder, make: () => Q): Q {
  adopting = holder;
  try {
    return make();
  } finally {
    adopting = undefined;
  }
}

/**
 * For the constructor of another kind of queue, just before it makes its Queue: the holder that Queue will
 * take (the one being adopted, or a new queue of `kind`). Returns the options to pass on: none.
 */
export function holderFor(kind: QueueKind, options: unknown): undefined {
  adopting ??= openHolder(kind, options);
  return undefined;
}

/** Marks the records a queue's handles travel as, so that the receiving thread rebuilds the same class. */
const kinds = new Map<QueueKind, (holder: Holder) => object>();
/** @internal Each class of queue says how to wrap a holder of its kind that arrived from another thread. */
export function registerQueueKind(kind: QueueKind, wrap: (holder: Holder) => object): void {
  kinds.set(kind, wrap);
}

/**
 * A FIFO queue shared by any number of threads: pass it in `Process` args (or through a Connection or
 * another queue) and every thread can `put` and `get`. Each item goes to exactly one `get`.
 *
 * @example
 * const q = new Queue<number>();
 * await q.put(1);
 * await q.get(); // 1
 */
export class Queue<T = unknown> implements Handle {
  readonly #h: Holder;
  #unregisterExit: () => void;
  /** The port a handover made, until the post carrying it commits or aborts. */
  #handedOver: MessagePort | undefined;

  static {
    holderOf = (queue) => queue.#h;
  }

  constructor(options?: QueueOptions) {
    const holder = adopting;
    adopting = undefined;
    this.#h = holder ?? openHolder('Queue', options);
    this.#unregisterExit = flushOnExit(this.#h);
  }

  /** The `maxsize` the queue was created with (0: unbounded). */
  get maxsize(): number {
    return this.#h.maxsize;
  }

  /**
   * Adds `item`, copied now. Resolves as soon as it is in this holder's buffer (for a bounded queue, once a
   * slot is free); rejects with `Full` if `timeout` passes first, and with `DataCloneError` (nothing added)
   * if the item cannot be copied.
   */
  put(item: T, options?: PutOptions): Promise<void> {
    return this.#h.puts.put(item, options);
  }

  /** Adds `item` now or throws `Full`. */
  putNowait(item: T): void {
    this.#h.puts.putNowait(item);
  }

  /** Resolves with the oldest item; rejects with `Empty` if `timeout` passes first. */
  get(options?: WaitOptions): Promise<T> {
    return this.#h.gets.get(options) as Promise<T>;
  }

  /**
   * Returns an item available now or throws `Empty`. It sees what the hub already pushed to this holder, and
   * otherwise hands this holder's unsent items over and asks the hub synchronously (a few ms at most).
   */
  getNowait(): T {
    return this.#h.gets.getNowait() as T;
  }

  /** Approximate number of items in the queue (exact when one handle is the only one in use). */
  qsize(): number {
    const n = size(this.#h.queueCells);
    const maxsize = this.#h.maxsize;
    return n < 0 ? 0 : maxsize > 0 && n > maxsize ? maxsize : n;
  }

  empty(): boolean {
    return this.qsize() === 0;
  }

  full(): boolean {
    return this.#h.maxsize > 0 && this.qsize() >= this.#h.maxsize;
  }

  /**
   * Hands every item this holder put so far to the hub. Once it resolves they are delivered even if this
   * thread is terminated right after.
   */
  flush(): Promise<void> {
    try {
      this.#h.puts.flush();
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * This holder will put no more. Items already put are still delivered; an item it was fetching goes back
   * to the queue for other holders; waiting calls (get, put, join) reject with `ClosedError`. Idempotent.
   */
  close(): void {
    if (this.#h.closed) return;
    this.#unregisterExit();
    this.#h.close(new ClosedError('queue is closed'));
  }

  /** Resolves when this holder's buffered items have been handed over (Python's `join_thread`). */
  joinThread(): Promise<void> {
    if (!this.#h.closed) this.#h.puts.flush();
    return Promise.resolve();
  }

  /** Lets this thread exit without handing over buffered items (they are lost). */
  cancelJoinThread(): void {
    this.#h.joinCancelled = true;
  }

  [kMarshal](transfer: unknown[]): WireHandle {
    const h = this.#h;
    h.checkOpen();
    h.puts.flush(); // what we put before the handover comes before what the receiver puts
    const { port1, port2 } = new MessageChannel();
    const holderCells = newHolderCells();
    const ring = h.joinable ? newLeaseRing() : null;
    // Until the hub has handled this Attach, the new holder's puts count in kReserved and in cells the hub
    // cannot see yet: it must not settle meanwhile (see queue/protocol.ts).
    Atomics.add(h.holderCells, kAttaching, 1);
    try {
      h.post({ op: Op.Attach, holder: { port: port1, cells: holderCells, ring } }, [port1]);
    } catch (error) {
      Atomics.sub(h.holderCells, kAttaching, 1);
      throw error;
    }
    this.#handedOver = port2;
    transfer.push(port2);
    const wire: QueueWire = {
      [WIRE_TAG]: 'Queue', kind: h.kind, port: port2, queueCells: h.queueCells, holderCells, ring, maxsize: h.maxsize,
    };
    return wire;
  }

  [kCommit](): void {
    // Queues are shared by design: the sender keeps using its handle.
    this.#handedOver = undefined;
  }

  [kAbort](): void {
    // The message carrying the new holder's port was not sent: the hub sees that holder leave at once.
    this.#handedOver?.close();
    this.#handedOver = undefined;
  }
}

registerQueueKind('Queue', (holder) => adopt(holder, () => new Queue()));
registerHandle('Queue', (wire) => {
  const record = wire as QueueWire;
  const wrap = kinds.get(record.kind);
  if (wrap === undefined) throw bug(`cannot rebuild a queue of kind ${describe(record.kind)}`);
  return wrap(openHolder(record.kind, undefined, record));
});

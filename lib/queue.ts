// Queue: Python's multiprocessing.Queue across worker threads. Each thread that holds the queue has its own
// Queue object, a facade over a QueueBackend (queue/backend.ts): locally a holder (queue/holder.ts) with a port
// to the process's hub (queue/hub.ts), which keeps the items between threads. The put and get sides are
// queue/put-side.ts and queue/get-side.ts, the design is in queue/protocol.ts, the shared cells in
// queue/cells.ts. JoinableQueue and SimpleQueue are facades over the same backend.
import { MessageChannel } from 'node:worker_threads';
import { flushAll, flushOnExit } from './context.ts';
import { beforeBlocking } from './shared-wait.ts';
import { bug, ClosedError, describe } from './errors.ts';
import { kAbort, kCommit, kMarshal, registerHandle, type Handle, type WireHandle } from './handles.ts';
import { checkNonNegativeInteger, checkOptions, checkTimeout, checkTransferList, type WaitOptions } from './options.ts';
import type { QueueBackend, QueueKind } from './queue/backend.ts';
import { newHolderCells, newLeaseRing, newQueueCells } from './queue/cells.ts';
import { Holder, type HolderRecord } from './queue/holder.ts';
import { createQueue } from './queue/hub-client.ts';
import type { PutOptions } from './queue/put-side.ts';

export type { PutOptions };

/** Options of `new Queue()`. */
export interface QueueOptions {
  /** Most items the queue holds; `put` waits while it is full. 0 means unbounded. @default 0 */
  maxsize?: number;
}

// A thread about to block hands over what its queues buffer first: a put() that resolved must reach the
// others even when the thread blocks right after it.
beforeBlocking(flushAll);

/** Makes a new local queue in the hub, with this thread's first holder of it. */
function openLocal(kind: QueueKind, options: unknown): QueueBackend {
  const o = checkOptions(options, 'options', kind === 'SimpleQueue' ? [] : ['maxsize']);
  const maxsize = o.maxsize === undefined ? 0 : checkNonNegativeInteger(o.maxsize, 'options.maxsize');
  const queueCells = newQueueCells();
  const holderCells = newHolderCells(queueCells);
  const ring = kind === 'JoinableQueue' ? newLeaseRing() : null;
  const { port1, port2 } = new MessageChannel();
  createQueue(queueCells, kind === 'JoinableQueue', { port: port2, cells: holderCells, ring });
  return new Holder(kind, maxsize, queueCells, holderCells, ring, port1);
}

/** The backend behind a Queue or JoinableQueue (for the subclass, SimpleQueue and tests). */
export let backendOf: (queue: Queue<any>) => QueueBackend;

// The public constructors take options only; a facade over a given backend (one that arrived from another
// thread, or a subclass's) is made by handing the backend over in this slot for the constructor to take.
let adopting: QueueBackend | undefined;
/** Makes a facade (`make` calls a queue constructor) over `backend`. */
export function adopt<Q>(backend: QueueBackend, make: () => Q): Q {
  adopting = backend;
  try {
    return make();
  } finally {
    adopting = undefined;
  }
}

/**
 * For the constructor of another kind of queue, just before it makes its Queue: the backend that Queue will
 * take (the one being adopted, or a new local queue of `kind`). Returns the options to pass on: none.
 */
export function backendFor(kind: QueueKind, options: unknown): undefined {
  adopting ??= openLocal(kind, options);
  return undefined;
}

/** How each kind of queue wraps a backend of its kind that arrived from another thread. */
const kinds = new Map<QueueKind, (backend: QueueBackend) => object>();
/** @internal Each class of queue says how to wrap a backend of its kind (so the receiver rebuilds the same class). */
export function registerQueueKind(kind: QueueKind, wrap: (backend: QueueBackend) => object): void {
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
  readonly #b: QueueBackend;
  readonly #unregisterExit: () => void;
  /** A handover in flight, until the post carrying it commits or aborts. */
  #handOver: { commit(): void; abort(): void } | undefined;

  static {
    backendOf = (queue) => queue.#b;
  }

  constructor(options?: QueueOptions) {
    const backend = adopting;
    adopting = undefined;
    this.#b = backend ?? openLocal('Queue', options);
    this.#unregisterExit = flushOnExit(this.#b as unknown as { flushOnExit(): void; flushPuts(): void });
  }

  /** The `maxsize` the queue was created with (0: unbounded). */
  get maxsize(): number {
    return this.#b.maxsize;
  }

  /**
   * Adds `item`, copied now. Resolves as soon as it is in this holder's buffer (for a bounded queue, once a
   * slot is free); rejects with `Full` if `timeout` passes first, and with `DataCloneError` (nothing added)
   * if the item cannot be copied.
   */
  put(item: T, options?: PutOptions): Promise<void> {
    return this.#b.put(item, options);
  }

  /**
   * As put(), blocking the thread (in the main thread, the event loop too) while a bounded queue is full:
   * throws `Full` when `timeout` passes first. The item is handed to the hub before it returns.
   */
  putSync(item: T, options?: Omit<PutOptions, 'signal'>): void {
    const o = checkOptions(options, 'options', ['timeout', 'transfer']);
    this.#b.putSync(item, checkTimeout(o.timeout), checkTransferList(o.transfer));
  }

  /** Adds `item` now or throws `Full`. */
  putNowait(item: T): void {
    this.#b.putNowait(item);
  }

  /** Resolves with the oldest item; rejects with `Empty` if `timeout` passes first. */
  get(options?: WaitOptions): Promise<T> {
    return this.#b.get(options) as Promise<T>;
  }

  /** As get(), blocking the thread (in the main thread, the event loop too); throws `Empty` after `timeout` ms. */
  getSync(options?: Omit<WaitOptions, 'signal'>): T {
    return this.#b.getSync(checkTimeout(checkOptions(options, 'options', ['timeout']).timeout)) as T;
  }

  /**
   * Returns an item available now or throws `Empty`. It sees what the hub already pushed to this holder, and
   * otherwise hands this holder's unsent items over and asks the hub synchronously (a few ms at most).
   */
  getNowait(): T {
    return this.#b.getNowait() as T;
  }

  /** Approximate number of items in the queue (exact when one handle is the only one in use). */
  qsize(): number {
    const n = this.#b.size();
    const maxsize = this.#b.maxsize;
    return n < 0 ? 0 : maxsize > 0 && n > maxsize ? maxsize : n;
  }

  /** True if the queue has no item (approximately, across threads). After this handle's close(), ClosedError. */
  empty(): boolean {
    // As Python's, whose empty() polls the pipe that close() closed (qsize() and full() still answer there).
    if (this.#b.closed) throw new ClosedError('queue is closed');
    return this.qsize() === 0;
  }

  full(): boolean {
    return this.#b.maxsize > 0 && this.qsize() >= this.#b.maxsize;
  }

  /**
   * Hands every item this holder put so far to the hub. Once it resolves they are delivered even if this
   * thread is terminated right after.
   */
  flush(): Promise<void> {
    try {
      this.#b.flush();
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
    if (this.#b.closed) return;
    this.#unregisterExit();
    this.#b.close(new ClosedError('queue is closed'));
  }

  /** Resolves when this holder's buffered items have been handed over (Python's `join_thread`). */
  joinThread(): Promise<void> {
    if (!this.#b.closed) this.#b.flush();
    return Promise.resolve();
  }

  /** Lets this thread exit without handing over buffered items (they are lost). */
  cancelJoinThread(): void {
    this.#b.cancelJoinThread();
  }

  [kMarshal](transfer: unknown[]): WireHandle {
    const handOver = this.#b.handOver(transfer);
    this.#handOver = handOver;
    return handOver.record;
  }

  [kCommit](): void {
    // Queues are shared by design: the sender keeps using its handle.
    this.#handOver?.commit();
    this.#handOver = undefined;
  }

  [kAbort](): void {
    this.#handOver?.abort();
    this.#handOver = undefined;
  }
}

registerQueueKind('Queue', (backend) => adopt(backend, () => new Queue()));
registerHandle('Queue', (wire) => {
  const record = wire as HolderRecord;
  const wrap = kinds.get(record.kind);
  if (wrap === undefined) throw bug(`cannot rebuild a queue of kind ${describe(record.kind)}`);
  const holder = new Holder(
    record.kind,
    record.maxsize,
    record.queueCells,
    record.holderCells,
    record.ring,
    record.port,
  );
  holder.shared = true;
  return wrap(holder);
});

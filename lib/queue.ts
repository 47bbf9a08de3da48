// Queue: Python's multiprocessing.Queue across worker threads. Each thread that holds the queue has its own
// Queue object (a holder) with a port to the hub (hub.ts) that keeps the items between threads.
//
// Put: the item is encoded into the holder's current batch at once (captured: later mutation does not
// change it; an uncloneable value throws here and nothing is counted), the size is counted in shared memory,
// and the feeder posts the batch to the hub when the thread yields (setImmediate), when it is big, or on
// flush(). Get: items leased by the hub sit in #inbox; a get takes the oldest, and records it in shared
// memory (kTakenSeq) so that if this thread dies the hub knows exactly which leased items were not taken.
//
// Invariants:
//   kSize counts items put (reserved, for a bounded queue) and not yet taken: put adds before resolving,
//     get subtracts when it takes; so 0 <= kSize <= maxsize for a bounded queue.
//   kPutCount (this holder) counts the items this holder counted in kSize; the hub subtracts those it never
//     received if this holder goes away.
//   #inbox[i] has lease sequence number #inboxSeq + i; kTakenSeq == #inboxSeq.
//   #getWaiters is served oldest first; a get() finding #inbox non-empty takes at once only when nobody
//     waits before it. Blocked puts (bounded queue full) are served in call order, one at a time.
//   The port has our 'message' listener for the holder's lifetime, but is ref'd only while a get, a blocked
//     put or a join waits, so an idle queue never keeps the program alive.
import { MessageChannel, receiveMessageOnPort, type MessagePort, type TransferListItem } from 'node:worker_threads';
import { addExitHook } from './context.ts';
import { ClosedError, Empty, Full, ProcessError, describe } from './errors.ts';
import { kCommit, kMarshal, marshal, mayHoldHandles, registerHandle, revive, WIRE_TAG, type Handle, type WireHandle } from './handles.ts';
import { createQueueInHub } from './hub-client.ts';
import { checkNonNegativeInteger, checkOptionsObject, checkSignal, checkTimeout, checkTransferList, type WaitOptions } from './options.ts';
import {
  kHolderFields, kPutCount, kQueueFields, kReply, kSize, kStarving, kTakenSeq, kUnfinished, Op,
  type Batch, type HolderMessage, type HubMessage,
} from './queue-protocol.ts';
import { waitForCell } from './shared-wait.ts';
import { wait, type Waiter } from './wait.ts';
import { BatchEncoder, decodeBatch } from './wire.ts';

/** Options of `new Queue()`. */
export interface QueueOptions {
  /** Most items the queue holds; `put` waits while it is full. 0 means unbounded. @default 0 */
  maxsize?: number;
}

/** Options of `put`. */
export interface PutOptions extends WaitOptions {
  /** ArrayBuffers and MessagePorts to move with the item instead of copying them. */
  transfer?: TransferListItem[];
}

/** Items per batch, and bytes per batch, past which put() hands the batch over at once. */
const kBatchItems = 1024;
const kBatchBytes = 1 << 20;
/** How long getNowait() may block its thread for the hub's answer. */
const kNowaitReplyMs = 5_000;

/** @internal How a holder is rebuilt in another thread. */
export interface QueueWire {
  port: MessagePort;
  shared: SharedArrayBuffer;
  counters: SharedArrayBuffer;
  maxsize: number;
}

const kFromWire: unique symbol = Symbol('Queue.fromWire');

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
  readonly #maxsize: number;
  readonly #sharedBuffer: SharedArrayBuffer;
  readonly #shared: Int32Array;
  readonly #countersBuffer: SharedArrayBuffer;
  readonly #counters: Int32Array;
  readonly #port: MessagePort;
  #encoder = new BatchEncoder();
  #flushScheduled: NodeJS.Immediate | undefined;
  #inbox: unknown[] = [];
  #inboxSeq = 0;
  /** Sequence number the next leased item will carry (= #inboxSeq + #inbox.length once all arrived). */
  #wanted = 0;
  #getWaiters: Waiter<unknown>[] = [];
  #blockedPuts: { item: unknown; resolve: () => void; reject: (e: unknown) => void; timeout: number; signal: AbortSignal | undefined }[] = [];
  #waitingOthers = 0;
  #closed = false;
  #joinCancelled = false;
  #removeExitHook: () => void;

  constructor(options?: QueueOptions);
  /** @internal */
  constructor(options: QueueOptions | undefined, wire: QueueWire, token: typeof kFromWire);
  constructor(options?: QueueOptions, wire?: QueueWire, token?: typeof kFromWire) {
    if (token === kFromWire && wire !== undefined) {
      this.#maxsize = wire.maxsize;
      this.#sharedBuffer = wire.shared;
      this.#port = wire.port;
      this.#countersBuffer = wire.counters;
    } else {
      const o = checkOptionsObject(options);
      this.#maxsize = o.maxsize === undefined ? 0 : checkNonNegativeInteger(o.maxsize, 'options.maxsize');
      this.#sharedBuffer = new SharedArrayBuffer(kQueueFields * Int32Array.BYTES_PER_ELEMENT);
      const { port, counters } = createQueueInHub(this.#sharedBuffer, this.#maxsize);
      this.#port = port;
      this.#countersBuffer = counters;
    }
    this.#shared = new Int32Array(this.#sharedBuffer);
    this.#counters = new Int32Array(this.#countersBuffer);
    this.#port.on('message', this.#onMessage);
    this.#port.unref();
    this.#removeExitHook = addExitHook(() => { if (!this.#joinCancelled && !this.#closed) this.#flush(); });
  }

  /** The `maxsize` the queue was created with (0: unbounded). */
  get maxsize(): number {
    return this.#maxsize;
  }

  /**
   * Adds `item`, copied now. Resolves as soon as it is in this holder's buffer (for a bounded queue, once a
   * slot is free); rejects with `Full` if `timeout` passes first, and with `DataCloneError` (nothing added)
   * if the item cannot be copied.
   */
  put(item: T, options?: PutOptions): Promise<void> {
    let timeout: number, signal: AbortSignal | undefined, transfer: TransferListItem[] | undefined;
    try {
      const o = checkOptionsObject(options);
      timeout = checkTimeout(o.timeout);
      signal = checkSignal(o.signal);
      transfer = checkTransferList(o.transfer);
      this.#checkOpen();
      if (signal?.aborted) throw signal.reason;
      if (this.#blockedPuts.length === 0 && this.#tryReserve()) {
        this.#add(item, transfer);
        return Promise.resolve();
      }
      if (timeout === 0) throw new Full();
      // Wait for a slot with a snapshot taken now, so the value is still the one of this call.
      const snapshot = transfer === undefined && !mayHoldHandles(item) ? structuredClone(item) : item;
      return new Promise<void>((resolve, reject) => {
        this.#blockedPuts.push({ item: snapshot, resolve, reject, timeout, signal });
        if (this.#blockedPuts.length === 1) void this.#drainBlockedPuts(transfer);
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Adds `item` now or throws `Full`. */
  putNowait(item: T): void {
    this.#checkOpen();
    if (this.#blockedPuts.length > 0 || !this.#tryReserve()) throw new Full();
    this.#add(item, undefined);
  }

  /** Resolves with the oldest item; rejects with `Empty` if `timeout` passes first. */
  get(options?: WaitOptions): Promise<T> {
    let timeout: number, signal: AbortSignal | undefined;
    try {
      const o = checkOptionsObject(options);
      timeout = checkTimeout(o.timeout);
      signal = checkSignal(o.signal);
      this.#checkOpen();
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#getWaiters.length === 0 && this.#inbox.length > 0) return Promise.resolve(this.#take() as T);
    if (timeout === 0 && this.#getWaiters.length === 0) {
      try {
        return Promise.resolve(this.getNowait());
      } catch (error) {
        return Promise.reject(error);
      }
    }
    this.#flush(); // our own items must reach the hub to come back to us
    return wait<unknown>((waiter) => {
      this.#getWaiters.push(waiter);
      this.#updateWant();
      return () => {
        const i = this.#getWaiters.indexOf(waiter);
        if (i !== -1) this.#getWaiters.splice(i, 1);
        this.#updateWant();
      };
    }, timeout, signal, () => new Empty(`queue is empty: get() timed out after ${timeout} ms`)) as Promise<T>;
  }

  /**
   * Returns an item available now or throws `Empty`. It sees items already leased to this holder, this
   * holder's own unsent items when nobody else holds any, and what the hub has (asking it synchronously).
   */
  getNowait(): T {
    this.#checkOpen();
    if (this.#getWaiters.length === 0 && this.#inbox.length > 0) return this.#take() as T;
    if (this.#getWaiters.length > 0) throw new Empty();
    const size = Atomics.load(this.#shared, kSize);
    if (size === 0) throw new Empty();
    this.#flush();
    this.#askNow();
    if (this.#inbox.length > 0) return this.#take() as T;
    throw new Empty();
  }

  /** Approximate number of items in the queue (exact when one handle is the only one in use). */
  qsize(): number {
    return Math.max(0, Atomics.load(this.#shared, kSize));
  }

  empty(): boolean {
    return this.qsize() === 0;
  }

  full(): boolean {
    return this.#maxsize > 0 && this.qsize() >= this.#maxsize;
  }

  /**
   * Hands every item this holder put so far to the hub. Once it resolves they are delivered even if this
   * thread is terminated right after.
   */
  flush(): Promise<void> {
    try {
      this.#flush();
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * This holder will put no more. Items already put are still delivered; items leased to it and not taken
   * go back to the queue for other holders; waiting calls reject with `ClosedError`. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#flush();
    this.#closed = true;
    this.#removeExitHook();
    const error = new ClosedError('queue is closed');
    for (const waiter of this.#getWaiters.splice(0)) waiter.reject(error);
    for (const blocked of this.#blockedPuts.splice(0)) blocked.reject(error);
    this.#port.off('message', this.#onMessage);
    this.#port.close();
  }

  /** Resolves when this holder's buffered items have been handed over (Python's `join_thread`). */
  joinThread(): Promise<void> {
    if (!this.#closed) this.#flush();
    return Promise.resolve();
  }

  /** Lets this thread exit without handing over buffered items (they are lost). */
  cancelJoinThread(): void {
    this.#joinCancelled = true;
  }

  [kMarshal](transfer: TransferListItem[]): WireHandle {
    this.#checkOpen();
    const { port1, port2 } = new MessageChannel();
    const counters = new SharedArrayBuffer(kHolderFields * Int32Array.BYTES_PER_ELEMENT);
    this.#post({ op: Op.Attach, port: port1, counters }, [port1]);
    transfer.push(port2);
    return { [WIRE_TAG]: this.#kind(), port: port2, shared: this.#sharedBuffer, counters, maxsize: this.#maxsize };
  }

  [kCommit](): void {
    // Queues are shared by design: the sender keeps using its handle.
  }

  /** @internal Which class the other thread rebuilds. */
  #kind(): string {
    return (this.constructor as { wireKind?: string }).wireKind ?? 'Queue';
  }

  /** @internal Shared counters, for JoinableQueue. */
  protected get sharedCounters(): Int32Array {
    return this.#shared;
  }

  /** @internal For JoinableQueue: keep the port ref'd while waiting on something other than get/put. */
  protected holdOpen(delta: 1 | -1): void {
    this.#waitingOthers += delta;
    this.#updateRef();
  }

  protected checkOpen(): void {
    this.#checkOpen();
  }

  static [kFromWire]<Q extends Queue<any>>(this: new (o: QueueOptions | undefined, w: QueueWire, t: typeof kFromWire) => Q, wire: QueueWire): Q {
    return new this(undefined, wire, kFromWire);
  }

  // --- put side -------------------------------------------------------------------------------------

  #tryReserve(): boolean {
    if (this.#maxsize === 0) {
      Atomics.add(this.#shared, kSize, 1);
      return true;
    }
    for (;;) {
      const size = Atomics.load(this.#shared, kSize);
      if (size >= this.#maxsize) return false;
      if (Atomics.compareExchange(this.#shared, kSize, size, size + 1) === size) return true;
    }
  }

  #unreserve(): void {
    Atomics.sub(this.#shared, kSize, 1);
    if (this.#maxsize > 0) Atomics.notify(this.#shared, kSize);
  }

  /** Adds an item whose slot is reserved: encode it into the batch, or post it alone if it moves things. */
  #add(item: unknown, transfer: TransferListItem[] | undefined): void {
    try {
      if (transfer !== undefined || mayHoldHandles(item)) this.#postValues(item, transfer);
      else this.#encoder.put(item);
    } catch (error) {
      this.#unreserve();
      throw error;
    }
    Atomics.add(this.#counters, kPutCount, 1);
    Atomics.add(this.#shared, kUnfinished, 1);
    if (this.#encoder.count >= kBatchItems || this.#encoder.byteLength >= kBatchBytes) this.#flush();
    else if (this.#encoder.count > 0) this.#flushScheduled ??= setImmediate(this.#onFlushTimer);
  }

  /** An item that carries ports or buffers to move (or queue/connection handles) travels on its own. */
  #postValues(item: unknown, transfer: TransferListItem[] | undefined): void {
    const m = marshal(item, transfer === undefined ? [] : [...transfer]);
    this.#flush(); // keep this holder's order
    const batch: Batch = { n: 1, values: [m.value], transfer: m.transfer };
    this.#post({ op: Op.Put, batch }, m.transfer);
    // Connections inside moved with the item.
    for (const handle of m.handles) handle[kCommit]('a queue');
  }

  async #drainBlockedPuts(transfer: TransferListItem[] | undefined): Promise<void> {
    this.#updateRef();
    while (this.#blockedPuts.length > 0) {
      const head = this.#blockedPuts[0]!;
      let reserved = false;
      let failure: unknown;
      const started = performance.now();
      try {
        while (!reserved) {
          const left = head.timeout - (performance.now() - started);
          if (left <= 0) break;
          const free = await waitForCell(this.#shared, kSize, (size) => size < this.#maxsize, left, head.signal);
          if (!free || this.#closed) break;
          reserved = this.#tryReserve();
        }
      } catch (error) {
        failure = error;
      }
      if (this.#blockedPuts[0] !== head) continue; // rejected by close()
      this.#blockedPuts.shift();
      if (failure !== undefined) head.reject(failure);
      else if (!reserved) head.reject(new Full(`queue is full: put() timed out after ${head.timeout} ms`));
      else {
        try {
          this.#add(head.item, transfer);
          head.resolve();
        } catch (error) {
          head.reject(error);
        }
      }
      transfer = undefined;
    }
    this.#updateRef();
  }

  #onFlushTimer = (): void => {
    this.#flushScheduled = undefined;
    if (!this.#closed) this.#flush();
  };

  #flush(): void {
    if (this.#flushScheduled !== undefined) {
      clearImmediate(this.#flushScheduled);
      this.#flushScheduled = undefined;
    }
    if (this.#encoder.count === 0) return;
    const encoded = this.#encoder.finish();
    const batch: Batch = { n: encoded.n, bytes: encoded.bytes, side: encoded.side };
    this.#post({ op: Op.Put, batch }, encoded.transfer);
  }

  #post(message: HolderMessage, transfer?: readonly unknown[]): void {
    this.#port.postMessage(message, transfer as TransferListItem[] | undefined);
  }

  // --- get side -------------------------------------------------------------------------------------

  #take(): unknown {
    const raw = this.#inbox.shift();
    this.#inboxSeq++;
    Atomics.store(this.#counters, kTakenSeq, this.#inboxSeq);
    Atomics.sub(this.#shared, kSize, 1);
    if (this.#maxsize > 0) Atomics.notify(this.#shared, kSize);
    // Someone else waits while we sit on leased items we are not asking for: give them back.
    if (this.#inbox.length > 0 && this.#getWaiters.length === 0 && Atomics.load(this.#shared, kStarving) === 1) this.#giveBack();
    return raw;
  }

  #onMessage = (message: HubMessage): void => {
    switch (message.op) {
      case Op.Items:
        this.#receive(message.seq, message.batch);
        return;
      case Op.Recall:
        if (this.#getWaiters.length === 0 && this.#inbox.length > 0) this.#giveBack();
        return;
      default: {
        const unknown: never = message;
        throw new ProcessError(`queue: unknown message from the hub ${describe(unknown)}`);
      }
    }
  };

  #receive(seq: number, batch: Batch): void {
    const values = batch.values !== undefined ? batch.values.map((v) => revive(v)) : decodeBatch(batch.bytes!, batch.side ?? null);
    if (this.#inbox.length === 0) this.#inboxSeq = seq;
    for (const value of values) this.#inbox.push(value);
    while (this.#getWaiters.length > 0 && this.#inbox.length > 0) this.#getWaiters.shift()!.resolve(this.#take());
    this.#updateWant();
  }

  /** Tells the hub how many items this holder waits for now (it leases at least that many, maybe more). */
  #updateWant(): void {
    const need = Math.max(0, this.#getWaiters.length - this.#inbox.length);
    if (need !== this.#wanted) {
      this.#wanted = need;
      if (!this.#closed) this.#post({ op: Op.Want, n: need });
    }
    this.#updateRef();
  }

  /** getNowait(): ask the hub for one item and block this thread until it answers (bounded). */
  #askNow(): void {
    const before = Atomics.load(this.#counters, kReply);
    this.#post({ op: Op.Want, n: 1, now: true });
    this.#wanted = 0;
    if (Atomics.wait(this.#counters, kReply, before, kNowaitReplyMs) === 'timed-out') return;
    for (let entry = receiveMessageOnPort(this.#port); entry !== undefined; entry = receiveMessageOnPort(this.#port)) {
      this.#onMessage(entry.message as HubMessage);
    }
  }

  #giveBack(): void {
    const values = this.#inbox.splice(0);
    const from = this.#inboxSeq;
    this.#inboxSeq += values.length;
    const m = marshal(values);
    this.#post({ op: Op.GiveBack, from, batch: { n: values.length, values: m.value as unknown[], transfer: m.transfer } }, m.transfer);
  }

  #updateRef(): void {
    if (this.#closed) return;
    if (this.#getWaiters.length > 0 || this.#blockedPuts.length > 0 || this.#waitingOthers > 0) this.#port.ref();
    else this.#port.unref();
  }

  #checkOpen(): void {
    if (this.#closed) throw new ClosedError('queue is closed');
  }
}

export function reviveQueue<Q extends Queue<any>>(Class: { [kFromWire](wire: QueueWire): Q }, wire: WireHandle): Q {
  return Class[kFromWire](wire as unknown as QueueWire);
}

registerHandle('Queue', (wire) => reviveQueue(Queue, wire));

// Queue: Python's multiprocessing.Queue across worker threads. Each thread that holds the queue has its own
// Queue object (a holder) with a port to the hub (hub.ts) that keeps the items between threads.
//
// Put: the item is encoded into the holder's current batch at once (captured: later mutation does not
// change it; an uncloneable value throws here and nothing is counted), counted in shared memory, and the
// feeder posts the batch to the hub when the thread yields (setImmediate), when it is big, or on flush(). An
// item that moves things (transfer), holds Queue/Connection handles or holds host objects the encoder declines
// (MessagePort, Blob, ...) is posted on its own as structured values, in order.
// Get: the hub numbers items in arrival order and pushes the batches that fall in this holder's window to it
// (#segments). A get claims the next index, kClaimed, by compare-and-swap, but only when this holder already has
// that item: so the claim and the taking are one step, and a thread that stops calling get (or dies between
// gets) holds nothing anyone else needs. Items that move things are pushed as placeholders; the claimer
// fetches the real one (pinning it in the hub first, so it can be queued again if this thread dies waiting).
//
// Invariants:
//   size = kReserved - kClaimed: put adds to kReserved before it resolves (for a bounded queue by CAS, never
//     past maxsize), a get's claim adds to kClaimed. kPutCount (this holder) counts this holder's share of
//     kReserved, from the moment the slot is taken (before the item is captured), so the hub can subtract what
//     a dead holder never sent. kCounting is 1 exactly while the two differ by this holder's doing.
//   #segments are in index order, each one a batch the hub pushed; a segment leaves once kClaimed passed its end.
//     Only an index this holder has in #segments is ever claimed here.
//   The window (#windowTo) is extended by at least half its size before the claims reach its end, and after a
//     claim finds nothing: so a waiting get is always inside it and wakes when the next item is pushed.
//   #getWaiters are served oldest first; one of them at most (#fetchWaiter) has claimed an item it is fetching:
//     it is committed (no timeout or abort settles it) and the others wait behind it.
//   Blocked puts (bounded queue full) are served in call order, one at a time; each one leaves the line on its
//     own timeout or signal (wherever it stands in it) or on close(), and a slot is reserved only for the put at
//     the head, in the same synchronous step that resolves it.
//   Items this holder put before handing the queue to another thread reach the hub before that thread can
//     put anything (the handover flushes first).
//   The port has our 'message' listener for the holder's lifetime, but is ref'd only while a get, a blocked
//     put or a join waits, so an idle queue never keeps the program alive.
import { MessageChannel, receiveMessageOnPort, type MessagePort, type TransferListItem } from 'node:worker_threads';
import { addExitHook } from './context.ts';
import { ClosedError, Empty, Full, ProcessError, describe } from './errors.ts';
import { isHandle, kCommit, kMarshal, marshal, mayHoldHandles, registerHandle, revive, WIRE_TAG, type Handle, type WireHandle } from './handles.ts';
import { createQueueInHub } from './hub-client.ts';
import { checkNonNegativeInteger, checkOptionsObject, checkSignal, checkTimeout, checkTransferList, type WaitOptions } from './options.ts';
import {
  kAttaching, kClaimed, kCounting, kFetchIndex, kJoinWake, kFetching, kHolderFields, kPutCount, kQueueFields, kReply, kReserved, Op,
  type Batch, type HolderMessage, type HubMessage,
} from './queue-protocol.ts';
import { waitForCell } from './shared-wait.ts';
import { wait, type Waiter } from './wait.ts';
import { batchByteLength, BatchEncoder, BatchReader, holdsAny } from './wire.ts';

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
/** The window: how many items past the claims a holder asks the hub to push, at most and at first. */
const kWindowItems = 4096;
const kFirstWindow = 64;
/** ... and about how many bytes (the window shrinks for big items). */
const kWindowBytes = 4 << 20;
/** How long getNowait() may block its thread for the hub's answer. */
const kNowaitReplyMs = 5_000;
/** setTimeout overflows above 2^31-1 ms and fires at once; longer waits are treated as forever. */
const kMaxTimer = 0x7fffffff;

/** A put waiting for a slot in a full bounded queue. */
interface BlockedPut {
  item: unknown;
  transfer: TransferListItem[] | undefined;
  resolve: () => void;
  reject: (error: unknown) => void;
  timer: NodeJS.Timeout | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  /** Aborted when the put leaves the line without a slot: wakes the drain loop if it waits for this one. */
  gone: AbortController;
}

/** @internal How a holder is rebuilt in another thread. */
export interface QueueWire {
  port: MessagePort;
  shared: SharedArrayBuffer;
  counters: SharedArrayBuffer;
  maxsize: number;
}

/** Items the hub pushed: indexes [base, base + n) (base modulo 2^32), decoded at the first claim among them. */
interface Segment {
  base: number;
  n: number;
  batch: Batch;
  reader: BatchReader | undefined;
  /** A placeholder for an item that moves things: whoever claims it fetches it from the hub. */
  deferred: boolean;
}

const kFromWire: unique symbol = Symbol('Queue.fromWire');
const resolved = Promise.resolve();
/** #claim() found no item here for the next index. */
const kMiss: unique symbol = Symbol('miss');
/** #claim() claimed a deferred item: it is on its way (#fetchIndex). */
const kFetched: unique symbol = Symbol('fetched');

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
  readonly #joinable: boolean;
  #encoder = new BatchEncoder({ declines: isHandle });
  #flushScheduled: NodeJS.Immediate | undefined;
  #segments: Segment[] = [];
  /** One past the last index pushed to us (valid once #heard). */
  #heardTo = 0;
  #heard = false;
  /** The hub pushes us indexes below this; how far ahead of the claims we ask for (grows to kWindowItems). */
  #windowTo = 0;
  #window = kFirstWindow;
  #getWaiters: Waiter<unknown>[] = [];
  #fetchWaiter: Waiter<unknown> | undefined;
  #fetchIndex = 0;
  /** Items this holder claimed for a getNowait() that gave up waiting for them: the next gets take them first. */
  #kept: unknown[] = [];
  #asked = false;
  #blockedPuts: BlockedPut[] = [];
  #draining = false;
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
      const { port, counters } = createQueueInHub(this.#sharedBuffer, this.#kind() === 'JoinableQueue');
      this.#port = port;
      this.#countersBuffer = counters;
    }
    this.#shared = new Int32Array(this.#sharedBuffer);
    this.#counters = new Int32Array(this.#countersBuffer);
    this.#joinable = this.#kind() === 'JoinableQueue';
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
    // The hot path of a plain `await q.put(x)` loop: no options to check, a slot free, nobody ahead.
    if (options === undefined && !this.#closed && this.#blockedPuts.length === 0 && this.#tryReserve()) {
      try {
        this.#add(item, undefined);
      } catch (error) {
        return Promise.reject(error);
      }
      return resolved;
    }
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
      const snapshot = transfer === undefined && !holdsHandles(item) ? structuredClone(item) : item;
      return new Promise<void>((resolve, reject) => {
        const blocked: BlockedPut = {
          item: snapshot, transfer, resolve, reject, timer: undefined, signal, onAbort: undefined, gone: new AbortController(),
        };
        if (timeout !== Infinity && timeout <= kMaxTimer) {
          blocked.timer = setTimeout(() => this.#leaveLine(blocked, new Full(`queue is full: put() timed out after ${timeout} ms`)), timeout);
        }
        if (signal !== undefined) {
          const aborting = signal;
          blocked.onAbort = () => this.#leaveLine(blocked, aborting.reason);
          aborting.addEventListener('abort', blocked.onAbort, { once: true });
        }
        this.#blockedPuts.push(blocked);
        if (!this.#draining) void this.#drainBlockedPuts();
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
    if (options === undefined && !this.#closed && this.#getWaiters.length === 0 && this.#fetchWaiter === undefined) {
      const item = this.#claim(false);
      if (item !== kMiss) return Promise.resolve(item as T);
    }
    let timeout: number, signal: AbortSignal | undefined;
    try {
      const o = checkOptionsObject(options);
      timeout = checkTimeout(o.timeout);
      signal = checkSignal(o.signal);
      this.#checkOpen();
    } catch (error) {
      return Promise.reject(error);
    }
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
      this.#serve();
      return () => {
        const i = this.#getWaiters.indexOf(waiter);
        if (i !== -1) this.#getWaiters.splice(i, 1);
        this.#updateRef();
      };
    }, timeout, signal, () => new Empty(`queue is empty: get() timed out after ${timeout} ms`)) as Promise<T>;
  }

  /**
   * Returns an item available now or throws `Empty`. It sees what the hub already pushed to this holder, and
   * otherwise hands this holder's unsent items over and asks the hub synchronously (a few ms at most).
   */
  getNowait(): T {
    this.#checkOpen();
    if (this.#getWaiters.length > 0 || this.#fetchWaiter !== undefined) throw new Empty(); // others are ahead
    let item = this.#claim(true);
    if (item === kMiss) {
      this.#drain();
      item = this.#claim(true);
    }
    if (item === kMiss && this.#size() > 0) {
      // Maybe in the hub, or still in our own buffer: hand ours over, then ask for the window and wait for it.
      this.#flush();
      this.#askNow({ op: Op.Want, from: this.#from(), until: (Atomics.load(this.#shared, kClaimed) + this.#window) | 0, width: this.#window, now: true });
      item = this.#claim(true);
    }
    if (item === kFetched) {
      const waiter = { value: undefined as unknown, error: undefined as unknown, done: false };
      this.#fetchWaiter = {
        settled: false, committed: true,
        resolve: (value) => { waiter.value = value; waiter.done = true; },
        reject: (error) => { waiter.error = error; waiter.done = true; },
      };
      this.#askNow({ op: Op.Fetch, index: this.#fetchIndex, now: true });
      if (!waiter.done) {
        // The hub did not answer in time. The claim stands: the item, when it comes, goes to the next get.
        this.#fetchWaiter.resolve = (value) => { this.#kept.push(value); };
        this.#fetchWaiter.reject = () => {};
        throw new Empty(`queue: the hub did not answer within ${kNowaitReplyMs} ms`);
      }
      if (waiter.error !== undefined) throw waiter.error;
      return waiter.value as T;
    }
    if (item === kMiss) throw new Empty();
    return item as T;
  }

  /** Approximate number of items in the queue (exact when one handle is the only one in use). */
  qsize(): number {
    const size = this.#size();
    return size < 0 ? 0 : this.#maxsize > 0 && size > this.#maxsize ? this.#maxsize : size;
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
   * This holder will put no more. Items already put are still delivered; an item it was fetching goes back
   * to the queue for other holders; waiting calls reject with `ClosedError`. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#flush();
    this.#closed = true;
    this.#removeExitHook();
    const error = new ClosedError('queue is closed');
    for (const waiter of this.#getWaiters.splice(0)) waiter.reject(error);
    // An item being fetched goes back into the queue: the hub sees our claim when the port closes.
    this.#fetchWaiter?.reject(error);
    this.#fetchWaiter = undefined;
    for (const blocked of this.#blockedPuts.splice(0)) {
      this.#settleBlocked(blocked);
      blocked.reject(error);
    }
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
    this.#flush(); // what we put before the handover comes before what the receiver puts
    const { port1, port2 } = new MessageChannel();
    const counters = new SharedArrayBuffer(kHolderFields * Int32Array.BYTES_PER_ELEMENT);
    // Until the hub has handled this Attach, the new holder's puts count in kReserved and in counters the hub
    // cannot see yet: it must not settle (HubQueue.settle) meanwhile.
    Atomics.add(this.#counters, kAttaching, 1);
    try {
      this.#post({ op: Op.Attach, port: port1, counters }, [port1]);
    } catch (error) {
      Atomics.sub(this.#counters, kAttaching, 1);
      throw error;
    }
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

  /**
   * Takes a slot. The item is counted as put (kPutCount; for a JoinableQueue that is also its unfinished task)
   * in the same step, before it is captured: a holder terminated from here on (say, inside a getter of the item)
   * is settled by the hub, which subtracts kPutCount - received; counting only after the capture would leak the
   * slot for good. kCounting brackets the two cells, for a termination that falls between them.
   */
  #tryReserve(): boolean {
    const shared = this.#shared;
    const counters = this.#counters;
    Atomics.store(counters, kCounting, 1);
    if (this.#maxsize === 0) {
      Atomics.add(shared, kReserved, 1);
    } else {
      for (;;) {
        // kClaimed only grows, so a stale read can only make the queue look fuller than it is.
        const reserved = Atomics.load(shared, kReserved);
        if (((reserved - Atomics.load(shared, kClaimed)) | 0) >= this.#maxsize) {
          Atomics.store(counters, kCounting, 0);
          return false;
        }
        if (Atomics.compareExchange(shared, kReserved, reserved, (reserved + 1) | 0) === reserved) break;
      }
    }
    Atomics.add(counters, kPutCount, 1);
    Atomics.store(counters, kCounting, 0);
    return true;
  }

  /** Gives back a slot whose item could not be captured or sent. */
  #unreserve(): void {
    const shared = this.#shared;
    Atomics.store(this.#counters, kCounting, 1);
    Atomics.sub(this.#counters, kPutCount, 1);
    Atomics.sub(shared, kReserved, 1);
    Atomics.store(this.#counters, kCounting, 0);
    if (this.#joinable) {
      Atomics.add(shared, kJoinWake, 1);
      Atomics.notify(shared, kJoinWake);
    }
    if (this.#maxsize > 0) Atomics.notify(shared, kClaimed);
  }

  #size(): number {
    return (Atomics.load(this.#shared, kReserved) - Atomics.load(this.#shared, kClaimed)) | 0;
  }

  /** Adds an item whose slot is reserved: encode it into the batch, or post it alone if it moves things. */
  #add(item: unknown, transfer: TransferListItem[] | undefined): void {
    try {
      // Items that move things, hold handles, or hold host objects the encoder declines travel on their own.
      if (transfer !== undefined || !this.#encoder.put(item)) this.#postValues(item, transfer);
    } catch (error) {
      this.#unreserve();
      throw error;
    }
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

  /** Serves the blocked puts in call order: the head gets the next free slot. */
  async #drainBlockedPuts(): Promise<void> {
    this.#draining = true;
    this.#updateRef();
    try {
      while (this.#blockedPuts.length > 0) {
        const head = this.#blockedPuts[0]!;
        if (this.#tryReserve()) {
          this.#blockedPuts.shift();
          this.#settleBlocked(head);
          try {
            this.#add(head.item, head.transfer);
            head.resolve();
          } catch (error) {
            head.reject(error);
          }
          continue;
        }
        try {
          await waitForCell(this.#shared, kClaimed, () => this.#size() < this.#maxsize, Infinity, head.gone.signal);
        } catch {
          // The head left the line (timeout, abort, close): serve the next one.
        }
      }
    } finally {
      this.#draining = false;
      this.#updateRef();
    }
  }

  /** A blocked put gives up (its timeout or signal) wherever it stands in the line. */
  #leaveLine(blocked: BlockedPut, error: unknown): void {
    const i = this.#blockedPuts.indexOf(blocked);
    if (i === -1) return;
    this.#blockedPuts.splice(i, 1);
    this.#settleBlocked(blocked);
    blocked.reject(error);
    this.#updateRef();
  }

  #settleBlocked(blocked: BlockedPut): void {
    if (blocked.timer !== undefined) clearTimeout(blocked.timer);
    if (blocked.onAbort !== undefined) blocked.signal!.removeEventListener('abort', blocked.onAbort);
    blocked.gone.abort();
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
    // Every field but the transfer list travels: a field added to the encoding cannot be left behind here.
    const { transfer, ...batch } = this.#encoder.finish();
    this.#post({ op: Op.Put, batch: batch satisfies Batch }, transfer);
  }

  #post(message: HolderMessage, transfer?: readonly unknown[]): void {
    this.#port.postMessage(message, transfer as TransferListItem[] | undefined);
  }

  // --- get side -------------------------------------------------------------------------------------

  /**
   * Takes the item at the next index if this holder has it: returns it, or kMiss, or (a deferred item,
   * `fetch` allowed) claims it and returns kFetched, the caller then fetching #fetchIndex from the hub.
   */
  #claim(fetch: boolean): unknown {
    const shared = this.#shared;
    const segments = this.#segments;
    if (this.#kept.length > 0) return this.#kept.shift();
    for (;;) {
      const next = Atomics.load(shared, kClaimed);
      let segment = segments[0];
      while (segment !== undefined && ((next - segment.base) | 0) >= segment.n) {
        segments.shift();
        segment = segments[0];
      }
      if (segment === undefined || ((next - segment.base) | 0) < 0) return kMiss;
      if (segment.deferred) {
        if (!fetch) return kMiss;
        // Pin it before claiming: the hub must not drop it between our claim and our Fetch.
        Atomics.store(this.#counters, kFetchIndex, next);
        Atomics.store(this.#counters, kFetching, 1);
        if (Atomics.compareExchange(shared, kClaimed, next, (next + 1) | 0) !== next) {
          Atomics.store(this.#counters, kFetching, 0);
          continue;
        }
        Atomics.store(this.#counters, kFetching, 2);
        this.#fetchIndex = next;
        this.#claimed(next);
        return kFetched;
      }
      if (Atomics.compareExchange(shared, kClaimed, next, (next + 1) | 0) !== next) continue;
      const item = (segment.reader ??= new BatchReader(segment.batch)).item((next - segment.base) | 0);
      this.#claimed(next);
      return item;
    }
  }

  /** After claiming `index`: wake blocked puts, and keep the window ahead of the claims. */
  #claimed(index: number): void {
    if (this.#maxsize > 0) Atomics.notify(this.#shared, kClaimed);
    if (((this.#windowTo - index) | 0) < this.#window >> 1) this.#want(index);
  }

  /** Asks the hub to push the items up to `index` + window. */
  #want(index: number): void {
    this.#asked = true;
    this.#windowTo = (index + this.#window) | 0;
    if (!this.#closed) this.#post({ op: Op.Want, from: this.#from(), until: this.#windowTo, width: this.#window });
  }

  /** Where the hub should start pushing: after what we heard, or at the claims if we are behind them. */
  #from(): number {
    const next = Atomics.load(this.#shared, kClaimed);
    return this.#heard && ((this.#heardTo - next) | 0) > 0 ? this.#heardTo : next;
  }

  /** Serves waiting gets from what this holder has; with nothing here, makes sure the window covers the next index. */
  #serve(): void {
    let drained = false;
    while (this.#getWaiters.length > 0 && this.#fetchWaiter === undefined) {
      const item = this.#claim(true);
      if (item === kFetched) {
        const waiter = this.#getWaiters.shift()!;
        waiter.committed = true;
        this.#fetchWaiter = waiter;
        this.#post({ op: Op.Fetch, index: this.#fetchIndex });
      } else if (item !== kMiss) {
        this.#getWaiters.shift()!.resolve(item);
      } else if (!drained) {
        // Items may be queued on the port while this thread was busy: take them now, not a turn later.
        drained = true;
        this.#drain();
      } else {
        const next = Atomics.load(this.#shared, kClaimed);
        if (!this.#asked || ((this.#windowTo - next) | 0) <= 0) this.#want(next);
        break;
      }
    }
    this.#updateRef();
  }

  #onMessage = (message: HubMessage): void => {
    this.#receive(message);
    this.#serve();
  };

  #drain(): void {
    for (let entry = receiveMessageOnPort(this.#port); entry !== undefined; entry = receiveMessageOnPort(this.#port)) {
      this.#receive(entry.message as HubMessage);
    }
  }

  #receive(message: HubMessage): void {
    if (message.op !== Op.Items) throw new ProcessError(`queue: unknown message from the hub ${describe(message)}`);
    const { base, batch } = message;
    if (message.fetched === true) return this.#fetchArrived(base, batch);
    // A push: the hub sends each index once, but a Want may restart it where an earlier push already reached.
    if (this.#heard && ((base + batch.n - this.#heardTo) | 0) <= 0) return;
    this.#heard = true;
    this.#heardTo = (base + batch.n) | 0;
    this.#segments.push({ base, n: batch.n, batch, reader: undefined, deferred: message.deferred === true });
    if (message.deferred !== true) {
      const perItem = batchByteLength(batch) / batch.n;
      this.#window = Math.max(4, Math.min(kWindowItems, Math.floor(kWindowBytes / perItem)));
    }
  }

  /** The item we claimed and fetched (or word that the hub lost it: a bug, reported rather than waited on). */
  #fetchArrived(base: number, batch: Batch): void {
    const waiter = this.#fetchWaiter;
    if (waiter === undefined || base !== this.#fetchIndex) {
      throw new ProcessError(`queue: the hub sent item ${base}, which this holder did not fetch`);
    }
    this.#fetchWaiter = undefined;
    Atomics.store(this.#counters, kFetching, 0);
    if (!this.#closed) this.#post({ op: Op.Release });
    if (batch.n === 0) waiter.reject(new ProcessError(`queue: the hub lost item ${base} (a bug in mpthreads)`));
    else waiter.resolve(batch.values !== undefined ? reviveIfNeeded(batch.values[0]) : new BatchReader(batch).item(0));
  }

  /** Posts a request and blocks this thread until the hub answers it (bounded), then takes what it sent. */
  #askNow(message: HolderMessage): void {
    const before = Atomics.load(this.#counters, kReply);
    this.#post(message);
    if (message.op === Op.Want) { this.#asked = true; this.#windowTo = message.until; }
    if (Atomics.wait(this.#counters, kReply, before, kNowaitReplyMs) === 'timed-out') return;
    this.#drain();
  }

  #updateRef(): void {
    if (this.#closed) return;
    const waiting = this.#getWaiters.length > 0 || this.#fetchWaiter !== undefined;
    if (waiting || this.#blockedPuts.length > 0 || this.#waitingOthers > 0) this.#port.ref();
    else this.#port.unref();
  }

  #checkOpen(): void {
    if (this.#closed) throw new ClosedError('queue is closed');
  }
}

/**
 * True if `item` really holds a Queue or Connection handle. mayHoldHandles() answers "maybe" for cyclic and deep
 * values; those, when they hold none, still go into the batch encoding (which keeps sparse arrays sparse).
 */
function holdsHandles(item: unknown): boolean {
  return mayHoldHandles(item) && holdsAny(item, isHandle);
}

const isWireRecord = (v: object): boolean => typeof (v as Record<string, unknown>)[WIRE_TAG] === 'string';

/** revive() rewrites every array index, turning holes into undefined: only items with handle records need it. */
function reviveIfNeeded(value: unknown): unknown {
  return holdsAny(value, isWireRecord) ? revive(value) : value;
}

export function reviveQueue<Q extends Queue<any>>(Class: { [kFromWire](wire: QueueWire): Q }, wire: WireHandle): Q {
  return Class[kFromWire](wire as unknown as QueueWire);
}

registerHandle('Queue', (wire) => reviveQueue(Queue, wire));

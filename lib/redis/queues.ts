// The queue classes of mpthreads/redis: RedisQueue, RedisJoinableQueue and RedisSimpleQueue, handles over a
// StreamQueue (stream-queue.ts) with the local classes' method names, options and errors. Over a socket nothing
// can be synchronous, so the calls that are synchronous locally (qsize, putNowait, getNowait, taskDone…)
// return Promises here. A handle travels in Process and Pool args (and messages) as its URL and name: the
// receiving thread opens the same queue through its own connection (context.ts: contextFor).
import { ClosedError, describe } from '../errors.ts';
import { kAbort, kCommit, kMarshal, registerHandle, WIRE_TAG, type Handle, type WireHandle } from '../handles.ts';
import { checkOptions, checkTransferList, checkWaitOptions, type WaitOptions } from '../options.ts';
import type { PutOptions } from '../queue/put-side.ts';
import { displayUrl } from './link.ts';
import type { Owner, StreamQueue } from './stream-queue.ts';

/** Options of `Queue(name, options)` on a server. */
export interface RedisQueueOptions {
  /**
   * Most items the queue holds on the server; `put` waits while it is full. 0: unbounded. The first opener
   * sets it; omitted, a later opener takes the queue's. @default 0
   */
  maxsize?: number;
}

/** Options of `JoinableQueue(name, options)` on a server. */
export interface RedisJoinableQueueOptions extends RedisQueueOptions {
  /**
   * Milliseconds after which an item gotten by a consumer that died (it stopped renewing its lease) is
   * delivered to another get. @default 30000
   */
  visibilityTimeout?: number;
}

export type RedisQueueKind = 'Queue' | 'JoinableQueue' | 'SimpleQueue';

/** Where a handle's queue lives, for another thread to open the same. */
export interface RedisQueueRecord extends WireHandle {
  url: string;
  name: string;
  kind: RedisQueueKind;
  maxsize: number | undefined;
  visibilityTimeout: number;
}

export const kRedisQueueTag = 'mpthreads.redis-queue';

/** How a record becomes a handle in the receiving thread (set by context.ts, which owns the connections). */
let revive: (record: RedisQueueRecord) => object = () => {
  throw new Error('mpthreads/redis is not loaded');
};
export function setRedisQueueReviver(reviver: (record: RedisQueueRecord) => object): void {
  revive = reviver;
}
registerHandle(kRedisQueueTag, (record) => revive(record as RedisQueueRecord));

/** What a handle needs of its context. */
export interface QueueSource {
  readonly url: string;
  readonly closed: boolean;
  /** The handle closed: the context stops tracking it, and waits for `detached` when it closes. */
  forget(handle: { close(): Promise<void> }, detached: Promise<void>): void;
}

/** @internal What the constructors are given by the context (users open queues through a context). */
export interface QueueBinding {
  source: QueueSource;
  state: StreamQueue;
  kind: RedisQueueKind;
  maxsize: number | undefined;
  /** Resolves once the queue is open with the maxsize asked for (else rejects with why not). */
  ready(): Promise<void>;
}

let binding: QueueBinding | undefined;
/** What the subclass needs of a handle, kept off the public type. */
let internals: (q: RedisQueue<any>) => { owner: Owner; ready(): Promise<StreamQueue> };
/** @internal Makes a handle of the class `make` constructs, bound to `b`. */
export function bind<Q>(b: QueueBinding, make: () => Q): Q {
  binding = b;
  try {
    return make();
  } finally {
    binding = undefined;
  }
}

/**
 * A FIFO queue on a Redis server, shared by every thread and process that opens its name: each item goes to
 * exactly one get. Made by a context: `(await connect(url)).Queue<T>(name)`.
 */
export class RedisQueue<T = unknown> implements Handle {
  /** The queue's name on the server. */
  readonly name: string;
  readonly #b: QueueBinding;
  readonly #owner: Owner;

  /** @internal Use a context's `Queue(name)`. */
  constructor() {
    if (binding === undefined)
      throw new TypeError('open a queue on a server through its context: (await connect(url)).Queue(name)');
    this.#b = binding;
    this.name = binding.state.name;
    this.#owner = binding.state.attach();
  }

  /** The queue's maxsize (0: unbounded): as opened until the server answered, then the server's. */
  get maxsize(): number {
    return this.#b.state.maxsize;
  }

  /** The server's URL (without its password). */
  get url(): string {
    return displayUrl(this.#b.source.url);
  }

  /**
   * Adds `item`, copied now. Resolves once it is buffered in this thread (a bounded queue: once the server
   * took it); items reach the server when the thread yields, and for sure at `flush()`. Rejects with `Full`
   * after `timeout`, with the signal's reason on abort, with `DataCloneError` (nothing added) if the item
   * cannot be copied or cannot leave this process. `transfer` is taken as a local queue takes it, but an item
   * on a server is always a copy: the buffers listed stay usable here.
   */
  put(item: T, options?: PutOptions): Promise<void> {
    try {
      const { transfer, ...wait } = checkOptions(options, 'options', ['timeout', 'signal', 'transfer']);
      checkTransferList(transfer);
      const { timeout, signal } = checkWaitOptions(wait);
      // Buffered now, even before the queue is open: what a thread put before its task ended is sent.
      return this.#afterOpen(this.#open().put(this.#owner, item, timeout, signal, false, this.#b.maxsize));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** As put(), never waiting for room: rejects with `Full` when a bounded queue is full. */
  putNowait(item: T): Promise<void> {
    try {
      return this.#afterOpen(this.#open().put(this.#owner, item, Infinity, undefined, true, this.#b.maxsize));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Resolves with the oldest item; `Empty` after `timeout`, the signal's reason on abort. */
  async get(options?: WaitOptions): Promise<T> {
    const { timeout, signal } = checkWaitOptions(options);
    // As a local queue's: an aborted signal rejects at once, even when an item is there (and timeout 0).
    if (signal?.aborted) throw signal.reason;
    const state = await this.#ready();
    return (await state.get(this.#owner, timeout, signal)) as T;
  }

  /** One look at the server: the oldest item, or `Empty`. */
  async getNowait(): Promise<T> {
    const state = await this.#ready();
    return (await state.getNowait(this.#owner)) as T;
  }

  /**
   * Items on the server not yet gotten (this thread's buffered puts are sent first); never above maxsize, as
   * the contract says of every queue. (A JoinableQueue's leases given back when their handle closed count
   * again though no put made room for them: the queue holds more than maxsize until gets take them, and
   * puts wait meanwhile.)
   */
  async qsize(): Promise<number> {
    const size = await (await this.#ready()).size();
    return this.maxsize > 0 ? Math.min(size, this.maxsize) : size;
  }

  async empty(): Promise<boolean> {
    return (await this.qsize()) === 0;
  }

  async full(): Promise<boolean> {
    const size = await this.qsize();
    return this.maxsize > 0 && size >= this.maxsize;
  }

  /** Resolves once every item this thread put is on the server: the durability point. */
  async flush(): Promise<void> {
    return (await this.#ready()).flush();
  }

  /**
   * As a local queue's (Python's `join_thread`, which comes after `close()`): resolves once this thread's
   * buffered items are on the server. After `close()` too, unlike the other calls.
   */
  async joinThread(): Promise<void> {
    if (this.#detached === undefined) return this.flush();
    await this.#detached.catch(() => {});
    await this.#b.state.flush();
  }

  /**
   * As a local queue's, for code written for both; it changes nothing here: there is no feeder to join on a
   * server's queue (what a thread put is sent when its task ends, and at the context's close()).
   */
  cancelJoinThread(): void {}

  /**
   * This handle will be used no more: its waiting calls reject with `ClosedError` now, and so do later calls.
   * What it put is still sent (in the background: `flush()` first to wait for that; the context's close()
   * waits for it). Idempotent.
   */
  close(): Promise<void> {
    if (!this.#owner.closed) {
      this.#owner.closed = true;
      this.#detached = this.#b.state.detach(this.#owner);
      this.#b.source.forget(this, this.#detached);
    }
    return Promise.resolve();
  }

  /** This handle's close() under way (undefined while open). */
  #detached: Promise<void> | undefined;

  /** The state, if this handle is open; throws ClosedError. */
  #open(): StreamQueue {
    if (this.#owner.closed || this.#b.source.closed) throw new ClosedError('queue is closed');
    return this.#b.state;
  }

  /** `call`'s outcome, unless the queue could not be opened as asked (its maxsize or kind differ). */
  async #afterOpen(call: Promise<void>): Promise<void> {
    call.catch(() => {});
    await this.#b.ready();
    return call;
  }

  async #ready(): Promise<StreamQueue> {
    if (this.#owner.closed || this.#b.source.closed) throw new ClosedError('queue is closed');
    try {
      await this.#b.ready();
    } catch (error) {
      if (this.#owner.closed) throw new ClosedError('queue is closed');
      throw error;
    }
    if (this.#owner.closed) throw new ClosedError('queue is closed');
    return this.#b.state;
  }

  static {
    internals = (q) => ({ owner: q.#owner, ready: () => q.#ready() });
  }

  [kMarshal](): WireHandle {
    if (this.#owner.closed) throw new ClosedError('queue is closed');
    const record: RedisQueueRecord = {
      [WIRE_TAG]: kRedisQueueTag,
      url: this.#b.source.url,
      name: this.name,
      kind: this.#b.kind,
      maxsize: this.#b.maxsize,
      visibilityTimeout: this.#b.state.visibilityTimeout,
    };
    return record;
  }

  // The sender keeps its handle: a queue on a server is opened, not moved.
  [kCommit](): void {}
  [kAbort](): void {}
}

/**
 * A RedisQueue whose consumers mark items done, at least once: a get leases its item to its handle,
 * `taskDone()` acknowledges this handle's oldest lease, and an item whose consumer died is delivered again
 * after `visibilityTimeout`. `join()` resolves when every item put has been acknowledged.
 */
export class RedisJoinableQueue<T = unknown> extends RedisQueue<T> {
  /** Marks done the oldest item this handle got; rejects (ERR_TASK_DONE_TOO_MANY) if it holds none. */
  async taskDone(): Promise<void> {
    const { owner, ready } = internals(this);
    return (await ready()).taskDone(owner);
  }

  /** Resolves when every item put has been marked done; `TimeoutError` after `timeout`. */
  async join(options?: WaitOptions): Promise<void> {
    const { timeout, signal } = checkWaitOptions(options);
    const { owner, ready } = internals(this);
    return (await ready()).join(owner, timeout, signal);
  }
}

/** Python's SimpleQueue on a server: `put`, `get`, `empty`, `close`, unbounded. */
export class RedisSimpleQueue<T = unknown> implements Handle {
  readonly #q: RedisQueue<T>;

  /** @internal Use a context's `SimpleQueue(name)`. */
  constructor() {
    this.#q = new RedisQueue<T>();
  }

  get name(): string {
    return this.#q.name;
  }

  put(item: T): Promise<void> {
    return this.#q.put(item);
  }

  get(options?: WaitOptions): Promise<T> {
    return this.#q.get(options);
  }

  empty(): Promise<boolean> {
    return this.#q.empty();
  }

  /** Resolves once every item this thread put is on the server. */
  flush(): Promise<void> {
    return this.#q.flush();
  }

  close(): Promise<void> {
    return this.#q.close();
  }

  [kMarshal](): WireHandle {
    return this.#q[kMarshal]();
  }
  [kCommit](): void {}
  [kAbort](): void {}
}

/** Checks the options of a context's Queue/JoinableQueue/SimpleQueue(name, options). */
export function checkQueueArgs(
  kind: RedisQueueKind,
  name: unknown,
  options: unknown,
): { maxsize: number | undefined; visibilityTimeout: number; explicitVisibility: boolean } {
  if (typeof name !== 'string' || name === '')
    throw new TypeError(`${kind}(name): name must be a non-empty string, got ${describe(name)}`);
  const known = kind === 'SimpleQueue' ? [] : kind === 'Queue' ? ['maxsize'] : ['maxsize', 'visibilityTimeout'];
  const o = checkOptions(options, 'options', known);
  let maxsize: number | undefined;
  if (o.maxsize !== undefined) {
    if (typeof o.maxsize !== 'number')
      throw new TypeError(`options.maxsize must be a non-negative integer, got ${describe(o.maxsize)}`);
    if (!Number.isSafeInteger(o.maxsize) || o.maxsize < 0)
      throw new RangeError(`options.maxsize must be a non-negative integer, got ${o.maxsize}`);
    maxsize = o.maxsize;
  }
  let visibilityTimeout = 30_000;
  if (o.visibilityTimeout !== undefined) {
    // A RangeError for any value that is not a positive integer, a string included (the contract's words).
    if (
      typeof o.visibilityTimeout !== 'number' ||
      !Number.isSafeInteger(o.visibilityTimeout) ||
      o.visibilityTimeout <= 0
    )
      throw new RangeError(
        `options.visibilityTimeout must be a positive integer of milliseconds, got ${describe(o.visibilityTimeout)}`,
      );
    visibilityTimeout = o.visibilityTimeout;
  }
  return { maxsize, visibilityTimeout, explicitVisibility: o.visibilityTimeout !== undefined };
}

// Connection: one end of a Pipe, a MessagePort with Python's Connection semantics.
//
// Receiving takes messages off the port synchronously (`receiveMessageOnPort`) whenever one is there, and
// listens for 'message' only while a recv()/poll() waits, so an idle connection keeps nothing alive and
// messages not yet received stay in the port (and travel with it if the end is sent to another thread).
//
// Invariants:
//   #inbox holds messages already taken off the port (by poll), oldest first; they are received before
//     anything still in the port.
//   #waiters is non-empty only while the port has our 'message' listener; a message goes to the oldest
//     waiter, and a new recv() queues behind the waiters so concurrent receives keep the order.
//   'close' from the port means the peer is gone *and* every message it sent was dispatched (Node emits it
//     only once the port's queue is empty), so #peerGone with an empty #inbox is EOF.
//   Once #closed or #movedTo is set, #port is null and every waiter has been rejected.
//   #owned.port is #port. The port's 'close' and 'messageerror' listeners reach the end through a WeakRef, so an
//     end dropped without close() (and with no receive waiting) can be collected; `dropped` then closes its
//     port, and the other end sees EOF, as Python's Connection closes when it is deleted.
//   While #sending (marshalled into a message not yet posted: a pool task waiting for a worker, a queue item
//     not yet handed over), the end is as good as sent here: no waiter, every use throws ClosedError, close()
//     waits to see whether it comes back (kAbort) or goes (kCommit).
//   The blocking forms (recvSync, pollSync, recvBytesSync) cannot see 'close', so the two ends of a Pipe also
//     share a few cells (#sync): per end, how many messages were posted to it, whether it was closed, which
//     thread holds it (while it travels, 0 or the thread it goes to, if known), and whether a blocking receive waits on it. send() posts, then
//     counts (and wakes a blocked receiver); close() marks its end, then wakes the other. A message is in the
//     receiver's port once postMessage returned, so an end marked closed (or held by a thread on record as
//     dead) whose port is empty has nothing more to deliver: EOF.
//   A relayed end (one of the ends a pool's workers get for a shared end, pool/shared-end.ts) gets messages
//     only when it asks. A shared cell (kAsked) counts the messages asked for and not yet taken by the relay;
//     the end adds to it (and posts {[DEMAND]: n} so the relay looks) and takes back by compare-and-swap (and
//     posts {[DEMAND]: -n}, so the relay forgets them and stops reading when nobody asks); the
//     relay takes one by compare-and-swap before it delivers. #asked is what this end asked for and has not
//     received: the cell's count plus the messages on their way. A receive that gives up takes its request
//     back; if the relay took it first, its message is on its way and the receive waits for it instead, so a
//     message delivered to an end is always received there by the receive it was for (or, if the relay cannot
//     post it, that receive fails).
//   While an end is shared (kShare, until kUnshare), its relay side takes messages as they came (#raw) and the
//     other end sends in FORWARD form, with the list of what each message moves (kSharedEnd cell), so that the
//     relay posts them on untouched; receivers strip that form (unwrap).
import { postBufferedPuts } from './context.ts';
import { MessageChannel, receiveMessageOnPort, type MessagePort, type TransferListItem } from 'node:worker_threads';
import { BufferTooShort, ClosedError, EOFError, ProcessError, TimeoutError, describe, ErrorCode } from './errors.ts';
import {
  abort,
  capture,
  commit,
  isHandle,
  kAbort,
  kCommit,
  kMarshal,
  registerHandle,
  reviveRecord,
  WIRE_TAG,
  type Captured,
  type Handle,
  type WireHandle,
} from './handles.ts';
import {
  checkNonNegativeInteger,
  checkOptions,
  checkTimeout,
  checkTransferList,
  checkWaitOptions,
  type TransferItem,
  type WaitOptions,
} from './options.ts';
import { blockUntil } from './shared-wait.ts';
import { isDead, me, threadOf } from './sync/threads.ts';
import { wait, type Waiter } from './wait.ts';
import { revive, cloneForPost } from './wire/clone.ts';
import { decodeItem } from './wire/decode.ts';
import type { Batch } from './wire/format.ts';

/** Options of `send`. */
export interface SendOptions {
  /** ArrayBuffers and MessagePorts to move instead of copy; they become unusable in the sender. */
  transfer?: TransferItem[];
}

/** @internal See Connection[kShare] and [kForward]. */
export const kShare: unique symbol = Symbol('mpthreads.share');
export const kForward: unique symbol = Symbol('mpthreads.forward');
export const kUnshare: unique symbol = Symbol('mpthreads.unshare');

const NONE: unique symbol = Symbol('none');
/** #takeNow(): nothing is left and the other end is gone (EOF). */
const END: unique symbol = Symbol('end');

// The cells the two ends of one Pipe share (see the invariants above); `side` is 0 or 1.
const kSent = (side: number) => side;
const kGone = (side: number) => 2 + side;
const kHolder = (side: number) => 4 + side;
const kBlocked = (side: number) => 6 + side;
/** 1 while this side's end is shared by a pool's workers (kShare): the other end sends to it in FORWARD form. */
const kSharedEnd = (side: number) => 8 + side;
const kSyncCells = 10;
/** A relayed end's cell: the messages it asked for that the relay has not taken yet (see the invariants). */
const kAsked = kSyncCells;
/** kAsked of an end whose worker is being stopped: far below anything its requests can bring it back to. */
const kRetired = -(2 ** 30);
/** Counts a message posted to the end on `side`, and wakes it if it blocks in a receive. */
function countSent(sync: Int32Array, side: number): void {
  Atomics.add(sync, kSent(side), 1);
  if (Atomics.load(sync, kBlocked(side)) > 0) Atomics.notify(sync, kSent(side));
}

/** Marks the end on `side` closed, and wakes the other end if it blocks in a receive: it sees EOF. */
function markGone(sync: Int32Array, side: number): void {
  Atomics.store(sync, kGone(side), 1);
  Atomics.notify(sync, kSent(1 - side));
}

/** Takes one of a relayed end's requests (kAsked) by compare-and-swap, by the end or its relay: false if none. */
function takeRequest(sync: Int32Array): boolean {
  for (let n = Atomics.load(sync, kAsked); n > 0; n = Atomics.load(sync, kAsked))
    if (Atomics.compareExchange(sync, kAsked, n, n - 1) === n) return true;
  return false;
}

/** What `dropped` needs of an end: its port while it has one, and its cells. Holds nothing of the end itself. */
interface Owned {
  port: MessagePort | null;
  readonly sync: Int32Array;
  readonly side: number;
}

const dropped = new FinalizationRegistry<Owned>((owned) => {
  const port = owned.port;
  if (port === null) return;
  owned.port = null;
  port.close();
  markGone(owned.sync, owned.side);
});

/** How often (ms) a blocking receive looks whether the other end's thread died: a death notifies no one. */
const kDeathCheck = 50;

interface PollWaiter extends Waiter<boolean> {}

/**
 * One end of a `Pipe()`: `send` copies a value to the other end, `recv` resolves with the next one.
 * Create pairs with `Pipe()`; hand an end to a worker through `Process` args or another connection.
 *
 * @example
 * const [a, b] = Pipe<number>();
 * a.send(42);
 * await b.recv(); // 42
 */
export class Connection<T = unknown> implements Handle, AsyncIterable<T> {
  #port: MessagePort | null;
  readonly #owned: Owned;
  /** The port's listeners: they reach this end through a WeakRef (see the invariants). */
  readonly #portClose: () => void;
  readonly #portError: (error: unknown) => void;
  readonly #readable: boolean;
  readonly #writable: boolean;
  #inbox: unknown[];
  #waiters: Waiter<unknown>[] = [];
  #pollers: PollWaiter[] = [];
  #listening = false;
  #peerGone: boolean;
  #closed = false;
  #movedTo: string | undefined;
  /** The inbox as it was captured for the wire by kMarshal, until the post carrying it commits or aborts. */
  #inboxOut: Captured | undefined;
  /** The waiters of #waiters that are recvBytes() calls. */
  readonly #bytesWaiters = new WeakSet<Waiter<unknown>>();
  /** Marshalled for a message not yet posted (a queued pool task, a waiting put): unusable here meanwhile. */
  #sending = false;
  /** close() was called while #sending: done if the end comes back (kAbort). */
  #closeIfBack = false;
  /** Set once this end was shared (kShare): each time it is sent, it sends a new end this makes instead. */
  #makeShared: ((channel: string | undefined) => Connection) | undefined;
  /** The ends kMarshal made with #makeShared, until the post carrying each commits or aborts. */
  #sharedOut: Connection[] = [];
  // Shared by the two ends of one Pipe (and kept when an end travels), so that send() can refuse to post an
  // end through its own other end: Node would drop that message and lose the channel without an error.
  readonly #channel: string | undefined;
  readonly #sync: Int32Array;
  readonly #side: number;
  /** An end relayed by a pool's shared end: messages come only when asked for (see the invariants). */
  readonly #relayed: boolean;
  #asked = 0;
  /** A shared end's relay side (kShare): messages are taken as they came, for the relay to post on untouched. */
  #raw = false;

  /** @internal Use `Pipe()`. */
  constructor(
    port: MessagePort | null,
    readable: boolean,
    writable: boolean,
    inbox: unknown[],
    peerGone: boolean,
    channel: string | undefined,
    sync: Int32Array,
    side: number,
    relayed = false,
  ) {
    // `inbox` holds messages (and Undeliverable errors) taken off the port before the end moved here.
    this.#channel = channel;
    this.#sync = sync;
    this.#side = side;
    this.#relayed = relayed;
    Atomics.store(sync, kHolder(side), me);
    this.#port = port;
    this.#owned = { port, sync, side };
    const self = new WeakRef(this);
    this.#portClose = () => {
      const end = self.deref();
      if (end !== undefined) end.#onClose();
    };
    this.#portError = (error) => {
      const end = self.deref();
      if (end !== undefined) end.#onMessageError(error);
    };
    this.#readable = readable;
    this.#writable = writable;
    this.#inbox = inbox;
    this.#peerGone = peerGone || port === null;
    if (port !== null) {
      port.on('close', this.#portClose);
      port.on('messageerror', this.#portError);
      dropped.register(this, this.#owned);
    }
  }

  /** Sets #port, and what `dropped` would close. */
  #setPort(port: MessagePort | null): void {
    this.#port = port;
    this.#owned.port = port;
  }

  /** True after `close()`, or once this end was sent to another thread (or is on its way there). */
  get closed(): boolean {
    return this.#closed || this.#movedTo !== undefined || this.#sending;
  }
  get readable(): boolean {
    return this.#readable;
  }
  get writable(): boolean {
    return this.#writable;
  }

  /**
   * Sends a copy of `obj`, made now: later changes to `obj` do not change what arrives. A value that cannot
   * be copied throws the platform's `DataCloneError` and nothing is sent.
   */
  send(obj: T, options?: SendOptions): void {
    const transfer = checkTransferList(checkOptions(options, 'options', ['transfer']).transfer);
    const port = this.#checkOpen();
    this.#checkWritable();
    // What this thread put before is numbered before what the receiver puts once it has this message.
    postBufferedPuts();
    // To a relay (a relayed end's, or a shared end's, whose relay hands it to a worker): in FORWARD form.
    const forward = this.#relayed || Atomics.load(this.#sync, kSharedEnd(1 - this.#side)) === 1;
    postCopy(port, obj, transfer, forward, (handles) => {
      for (const handle of handles) {
        if (
          handle instanceof Connection &&
          handle !== this &&
          this.#channel !== undefined &&
          handle.#channel === this.#channel
        ) {
          throw new ProcessError(
            'cannot send a connection through its own other end: the message and the channel would be lost',
            ErrorCode.ConnectionLoop,
          );
        }
      }
    });
    this.#sent();
  }

  /** Counts a message posted to the other end, and wakes it if it blocks in a receive. */
  #sent(): void {
    countSent(this.#sync, 1 - this.#side);
  }

  /** Resolves with the next message; rejects with `EOFError` once the other end is gone and all is received. */
  recv(options?: WaitOptions): Promise<T> {
    return this.#receive(options, false) as Promise<T>;
  }

  /**
   * The next message; with `bytesOnly` (recvBytes), one that is not bytes is left for the next receive and
   * fails this one, decided when the message is taken, so that no later receive can take the one after it first.
   */
  #receive(options: WaitOptions | undefined, bytesOnly: boolean): Promise<unknown> {
    let timeout: number, signal: AbortSignal | undefined;
    try {
      ({ timeout, signal } = checkWaitOptions(options));
      this.#checkOpen();
      this.#checkReadable();
    } catch (error) {
      return Promise.reject(error);
    }
    // An aborted signal rejects before anything is taken, as Queue.get does: the message stays for the next recv().
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#waiters.length === 0) {
      const message = this.#takeNow();
      if (message instanceof Undeliverable) return Promise.reject(message.error);
      if (message === END) return Promise.reject(new EOFError());
      if (message !== NONE) {
        if (bytesOnly && !isBytes(message)) {
          this.#inbox.unshift(message);
          return Promise.reject(notBytes(message));
        }
        return Promise.resolve(message);
      }
    }
    return wait<unknown>(
      (waiter) => {
        this.#waiters.push(waiter);
        if (bytesOnly) this.#bytesWaiters.add(waiter);
        this.#listen();
        this.#ask();
        if (this.#relayed) waiter.decided = () => this.#onItsWay(this.#waiters, waiter);
        return () => this.#forget(this.#waiters, waiter);
      },
      timeout,
      signal,
      () => new TimeoutError(`recv() timed out after ${timeout} ms`),
    );
  }

  /** Resolves true when a `recv()` would settle without waiting (a message is there, or EOF). */
  poll(timeout: number = 0): Promise<boolean> {
    let ms: number;
    try {
      ms = checkTimeout(timeout, 'timeout');
      this.#checkOpen();
      this.#checkReadable();
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#inbox.length > 0 || this.#peerGone) return Promise.resolve(true);
    if (this.#waiters.length === 0) {
      const message = this.#takeNow();
      if (message === END) return Promise.resolve(true);
      if (message !== NONE) {
        this.#inbox.unshift(message);
        return Promise.resolve(true);
      }
    }
    if (ms === 0) return Promise.resolve(false);
    return wait<boolean>(
      (waiter) => {
        this.#pollers.push(waiter);
        this.#listen();
        this.#ask();
        if (this.#relayed) waiter.decided = () => this.#onItsWay(this.#pollers, waiter);
        return () => this.#forget(this.#pollers, waiter);
      },
      ms,
      undefined,
      () => new PollTimeout(),
    ).catch((error) => {
      if (error instanceof PollTimeout) return false;
      throw error;
    });
  }

  /** Sends `buf[offset .. offset+size]` (bytes) as one message; Python's `send_bytes`. */
  sendBytes(buf: ArrayBufferView | ArrayBuffer, offset = 0, size?: number): void {
    const bytes = toBytes(buf, 'buf');
    checkNonNegativeInteger(offset, 'offset');
    if (offset > bytes.byteLength)
      throw new RangeError(`offset ${offset} is beyond the buffer's ${bytes.byteLength} bytes`);
    const length = size === undefined ? bytes.byteLength - offset : checkNonNegativeInteger(size, 'size');
    if (offset + length > bytes.byteLength) {
      throw new RangeError(`offset + size (${offset} + ${length}) is beyond the buffer's ${bytes.byteLength} bytes`);
    }
    const port = this.#checkOpen();
    this.#checkWritable();
    const copy = bytes.slice(offset, offset + length);
    postBufferedPuts();
    port.postMessage(copy, [copy.buffer]);
    this.#sent();
  }

  /** Resolves with the next message as bytes; one longer than `maxLength` rejects with `BufferTooShort`. */
  async recvBytes(maxLength?: number): Promise<Uint8Array> {
    if (maxLength !== undefined) checkNonNegativeInteger(maxLength, 'maxLength');
    const bytes = await this.#recvBytes();
    if (maxLength !== undefined && bytes.byteLength > maxLength) throw new BufferTooShort(bytes, maxLength);
    return bytes;
  }

  /** Copies the next bytes message into `buf` at `offset` and resolves with its length. */
  async recvBytesInto(buf: ArrayBufferView | ArrayBuffer, offset = 0): Promise<number> {
    const target = toBytes(buf, 'buf');
    checkNonNegativeInteger(offset, 'offset');
    if (offset > target.byteLength)
      throw new RangeError(`offset ${offset} is beyond the buffer's ${target.byteLength} bytes`);
    const bytes = await this.#recvBytes();
    if (bytes.byteLength > target.byteLength - offset) throw new BufferTooShort(bytes, target.byteLength - offset);
    target.set(bytes, offset);
    return bytes.byteLength;
  }

  /**
   * The next message, blocking the thread until it comes (in the main thread, the event loop too). Throws
   * `EOFError` once the other end is gone and all is received, `TimeoutError` when `timeout` ms pass first.
   */
  recvSync(options?: Omit<WaitOptions, 'signal'>): T {
    const timeout = checkTimeout(checkOptions(options, 'options', ['timeout']).timeout);
    if (!this.#waitSync(timeout, 'recvSync()')) throw new TimeoutError(`recvSync() timed out after ${timeout} ms`);
    const message = this.#take();
    if (message instanceof Undeliverable) throw message.error;
    if (message === NONE) throw new EOFError();
    return message as T;
  }

  /** True once a `recvSync()` would return or throw EOFError without waiting; false after `timeout` ms. */
  pollSync(timeout: number = 0): boolean {
    return this.#waitSync(checkTimeout(timeout, 'timeout'), 'pollSync()');
  }

  /** As recvBytes(), blocking the thread. */
  recvBytesSync(maxLength?: number): Uint8Array {
    if (maxLength !== undefined) checkNonNegativeInteger(maxLength, 'maxLength');
    const bytes = this.#asBytes(this.recvSync());
    if (maxLength !== undefined && bytes.byteLength > maxLength) throw new BufferTooShort(bytes, maxLength);
    return bytes;
  }

  /** The other end was closed, or the thread holding it is on record as dead. */
  #otherGone(): boolean {
    const other = 1 - this.#side;
    if (Atomics.load(this.#sync, kGone(other)) === 1) return true;
    const holder = Atomics.load(this.#sync, kHolder(other));
    return holder !== 0 && isDead(threadOf(holder));
  }

  /**
   * Blocks until a message is in the inbox or the other end is gone (true), or `timeout` ms pass (false).
   * Waiting forever on an end this same thread holds would never return: that throws ERR_DEADLOCK.
   */
  #waitSync(timeout: number, what: string): boolean {
    this.#checkOpen();
    this.#checkReadable();
    if (this.#waiters.length > 0 || this.#pollers.length > 0) {
      throw new ProcessError(`${what} while a recv() or poll() waits on this connection`, ErrorCode.ConnectionBusy);
    }
    const sync = this.#sync;
    const side = this.#side;
    const other = 1 - side;
    const deadline = timeout === Infinity ? Infinity : performance.now() + timeout;
    for (;;) {
      const sent = Atomics.load(sync, kSent(side));
      const holder = Atomics.load(sync, kHolder(other));
      const gone = this.#otherGone();
      const message = this.#take();
      if (message !== NONE) {
        this.#inbox.unshift(message);
        return true;
      }
      if (gone || this.#peerGone) return true;
      if (timeout === Infinity && holder === me) {
        throw new ProcessError(
          `${what} would block forever: the other end of this connection is held by this same thread`,
          ErrorCode.Deadlock,
        );
      }
      let left = deadline - performance.now();
      if (left <= 0) {
        // A relayed end whose request the relay took: the message is on its way, for this receive.
        if (this.#asked === 0) return false;
        left = kDeathCheck;
      }
      Atomics.add(sync, kBlocked(side), 1);
      this.#ask(1);
      try {
        blockUntil(sync, kSent(side), () => Atomics.load(sync, kSent(side)) !== sent || this.#otherGone(), {
          timeout: left,
          slice: kDeathCheck,
        });
      } finally {
        Atomics.sub(sync, kBlocked(side), 1);
        this.#ask();
      }
    }
  }

  /** Closes this end; the other end sees EOF once it has received everything sent before. Idempotent. */
  close(): void {
    if (this.#closed || this.#movedTo !== undefined) return;
    if (this.#sending) {
      // On its way (a pool task not yet started, a waiting put): closed if it comes back (the call gives up).
      this.#closeIfBack = true;
      return;
    }
    this.#closed = true;
    const port = this.#port!;
    this.#setPort(null);
    port.off('close', this.#portClose);
    port.off('messageerror', this.#portError);
    this.#unlisten(port);
    port.close();
    markGone(this.#sync, this.#side);
    this.#rejectAll(new ClosedError('connection is closed'));
  }

  [Symbol.dispose](): void {
    this.close();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      try {
        yield await this.recv();
      } catch (error) {
        if (error instanceof EOFError) return;
        throw error;
      }
    }
  }

  [kMarshal](transfer: unknown[]): WireHandle {
    if (this.#makeShared !== undefined) {
      const end = this.#makeShared(this.#channel);
      this.#sharedOut.push(end);
      return end[kMarshal](transfer);
    }
    this.#checkOpen();
    if (this.#waiters.length > 0 || this.#pollers.length > 0) {
      throw new ProcessError(
        'cannot send a connection while a recv() or poll() is waiting on it',
        ErrorCode.ConnectionBusy,
      );
    }
    // Messages already taken off the port travel with the end, captured as any value is.
    let inbox: Batch | null = null;
    if (this.#inbox.length > 0) {
      const entries = this.#inbox.map((m) => (m instanceof Undeliverable ? [1, m.error] : [0, m]));
      this.#inboxOut = capture(entries);
      transfer.push(...this.#inboxOut.transfer);
      inbox = this.#inboxOut.batch;
    }
    const port = this.#peerGone ? null : this.#port;
    if (port !== null) transfer.push(port);
    this.#sending = true;
    return {
      [WIRE_TAG]: 'Connection',
      port,
      readable: this.#readable,
      writable: this.#writable,
      inbox,
      peerGone: this.#peerGone,
      channel: this.#channel,
      sync: this.#sync.buffer,
      side: this.#side,
      relayed: this.#relayed,
    };
  }

  [kCommit](destination: string, thread?: number): void {
    if (this.#makeShared !== undefined) {
      this.#sharedOut.shift()?.[kCommit](destination, thread);
      return;
    }
    if (this.#inboxOut !== undefined) commit(this.#inboxOut, destination, thread);
    this.#inboxOut = undefined;
    this.#sending = false;
    this.#closeIfBack = false;
    this.#movedTo = destination;
    // Travelling: the receiver's thread sets it. When that thread is known (a Process's args, which it takes at
    // boot) it is on record at once, so a blocking receive of the other end sees EOF if it dies first.
    Atomics.store(this.#sync, kHolder(this.#side), thread === undefined ? 0 : thread + 1);
    const port = this.#port;
    this.#setPort(null);
    if (port !== null) {
      port.off('close', this.#portClose);
      port.off('messageerror', this.#portError);
      if (this.#peerGone) port.close();
    }
    this.#inbox = [];
  }

  [kAbort](): void {
    if (this.#makeShared !== undefined) {
      const end = this.#sharedOut.shift();
      end?.[kAbort]();
      end?.close();
      return;
    }
    if (this.#inboxOut !== undefined) abort(this.#inboxOut);
    this.#inboxOut = undefined;
    this.#sending = false;
    if (this.#closeIfBack) this.close();
  }

  /**
   * @internal Shares this end with many threads (a Pool's initargs): its port, and what it received, move to
   * the connection returned, of this thread; this end is then unusable here, as one sent away is, and each time
   * it is sent again it sends an end `makeEnd()` makes instead.
   */
  [kShare](destination: string, makeEnd: (channel: string | undefined) => Connection): Connection {
    const wire = this[kMarshal]([]);
    this[kCommit](destination);
    this.#makeShared = makeEnd;
    const inner = reviveRecord(wire) as Connection;
    // What it received already was rebuilt here; what comes from now on is taken as it came.
    inner.#inbox = inner.#inbox.map((m) => (m instanceof Undeliverable ? m : new Rebuilt(m)));
    inner.#raw = true;
    Atomics.store(this.#sync, kSharedEnd(this.#side), 1);
    return inner;
  }

  /**
   * @internal Undoes kShare before any end was made from this one: `inner`, which kShare returned, gives its
   * port and what it received back, and this end is usable here again (a Pool that could not start).
   */
  [kUnshare](inner: Connection): void {
    const port = inner.#port;
    inner.#setPort(null);
    inner.#movedTo = 'the end it was shared from';
    if (port !== null) {
      port.off('close', inner.#portClose);
      port.off('messageerror', inner.#portError);
      port.on('close', this.#portClose);
      port.on('messageerror', this.#portError);
      dropped.register(this, this.#owned);
    }
    this.#setPort(port);
    this.#inbox = inner.#inbox;
    inner.#inbox = [];
    this.#peerGone = inner.#peerGone;
    this.#inbox = this.#inbox.map((m) => (m instanceof Rebuilt ? m.value : m));
    this.#makeShared = undefined;
    this.#movedTo = undefined;
    Atomics.store(this.#sync, kHolder(this.#side), me);
    Atomics.store(this.#sync, kSharedEnd(this.#side), 0);
  }

  /**
   * @internal Posts a message a relayed end sent (`data` as it came, with the ports and buffers it moved),
   * without rebuilding it here: only its receiver needs to know its handles and registered classes.
   */
  [kForward](data: unknown, transfer: readonly unknown[]): void {
    const port = this.#checkOpen();
    this.#checkWritable();
    // The other end shared too (by this pool or another): its relay needs the list of what moves as well.
    const forward = Atomics.load(this.#sync, kSharedEnd(1 - this.#side)) === 1;
    port.postMessage(forward ? { [FORWARD]: data, transfer } : data, transfer as TransferListItem[]);
    this.#sent();
  }

  /**
   * The next message if one is here; END when none is left and the other end is gone; NONE otherwise. The port's
   * 'close' comes only while the port is listened to, and never to a port moved to this thread after its peer
   * closed: the other end's record in shared memory says so first. Read before the take: whatever the other
   * end sent before it went is on the port by then.
   */
  #takeNow(): unknown {
    const gone = this.#peerGone || this.#otherGone();
    const message = this.#take();
    return message === NONE && gone ? END : message;
  }

  #take(): unknown {
    if (this.#inbox.length > 0) return this.#inbox.shift();
    if (this.#peerGone || this.#port === null) return NONE;
    try {
      // Deserializing can throw (a value deeper than this thread's stack): it takes its place in the order.
      const entry = receiveMessageOnPort(this.#port);
      if (entry === undefined) return NONE;
      this.#received();
      return this.#raw ? entry.message : unwrap(entry.message);
    } catch (error) {
      return new Undeliverable(error);
    }
  }

  async #recvBytes(): Promise<Uint8Array> {
    return bytesOf((await this.#receive(undefined, true)) as ArrayBuffer | ArrayBufferView);
  }

  /** A received message as bytes; anything else goes back to the front of the inbox, and throws. */
  /** A message a blocking receive took, as bytes; one that is not goes back for the next receive. */
  #asBytes(message: unknown): Uint8Array {
    if (isBytes(message)) return bytesOf(message);
    this.#inbox.unshift(message);
    throw notBytes(message);
  }

  // Nothing thrown here may escape (it would crash the thread): a message that cannot be rebuilt rejects the
  // recv() it was for, as a message the port could not deserialize does (#onMessageError).
  #onMessage = (data: unknown): void => {
    this.#received();
    let message: unknown;
    try {
      message = this.#raw ? data : unwrap(data);
    } catch (error) {
      this.#onMessageError(error);
      return;
    }
    let waiter = this.#waiters.shift();
    while (waiter !== undefined && !isBytes(message) && this.#bytesWaiters.has(waiter)) {
      waiter.reject(notBytes(message)); // a recvBytes(): the message stays for the next receive
      waiter = this.#waiters.shift();
    }
    if (waiter !== undefined) {
      waiter.resolve(message);
    } else {
      this.#inbox.push(message);
      for (const poller of this.#pollers.splice(0)) poller.resolve(true);
    }
    if (this.#waiters.length === 0 && this.#pollers.length === 0) this.#unlisten(this.#port);
    this.#ask();
  };

  // A message this thread could not deserialize (say, nested deeper than this thread's stack allows) takes
  // its place in the order as an error: the recv() that would have got it rejects, nothing hangs.
  #onMessageError = (error: unknown): void => {
    this.#received();
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) {
      waiter.reject(error);
    } else {
      this.#inbox.push(new Undeliverable(error));
      for (const poller of this.#pollers.splice(0)) poller.resolve(true);
    }
    if (this.#waiters.length === 0 && this.#pollers.length === 0) this.#unlisten(this.#port);
    this.#ask();
  };

  #onClose = (): void => {
    if (this.#closed || this.#movedTo !== undefined) return;
    // Node emits 'close' only once the port's queue is empty, so nothing is left to drain; and
    // receiveMessageOnPort() inside a 'close' handler crashes Node 20 (segfault), so it must not be tried.
    this.#peerGone = true;
    this.#unlisten(this.#port);
    for (const poller of this.#pollers.splice(0)) poller.resolve(true);
    for (const waiter of this.#waiters.splice(0)) waiter.reject(new EOFError());
  };

  #listen(): void {
    if (this.#listening || this.#port === null) return;
    this.#listening = true;
    this.#port.on('message', this.#onMessage);
  }

  #unlisten(port: MessagePort | null): void {
    if (!this.#listening || port === null) return;
    this.#listening = false;
    port.off('message', this.#onMessage);
  }

  #forget<W>(list: W[], waiter: W): void {
    const i = list.indexOf(waiter);
    if (i !== -1) list.splice(i, 1);
    if (this.#waiters.length === 0 && this.#pollers.length === 0) this.#unlisten(this.#port);
    this.#ask();
  }

  /** A relayed end: a message came from the relay, for one of the requests. */
  #received(): void {
    if (this.#asked > 0) this.#asked--;
  }

  /**
   * A relayed end: asks the relay for as many messages as wait here (`blocked`: a blocking receive), or takes
   * back what it asked for and no longer waits for, as far as the relay has not taken it.
   */
  #ask(blocked = 0): void {
    if (!this.#relayed || this.#port === null) return;
    const want = this.#waiters.length + (this.#pollers.length > 0 ? 1 : 0) + blocked;
    if (want > this.#asked) {
      Atomics.add(this.#sync, kAsked, want - this.#asked);
      this.#port.postMessage({ [DEMAND]: want - this.#asked });
      this.#asked = want;
    }
    let takenBack = 0;
    while (want < this.#asked && this.#takeBack()) takenBack++;
    this.#toldTakenBack(takenBack);
  }

  /** Tells the relay of requests taken back, so that it stops reading for them (and forgets them). */
  #toldTakenBack(n: number): void {
    if (n > 0) this.#port?.postMessage({ [DEMAND]: -n });
  }

  /** Takes back one request the relay has not taken yet: false if it took them all. */
  #takeBack(): boolean {
    if (!takeRequest(this.#sync)) return false;
    this.#asked--;
    return true;
  }

  /**
   * A relayed end's `waiter` times out or is aborted: true if the relay took its request already, so that its
   * message is on its way; the waiter then waits for it, first in line, rather than leave it to a later receive.
   */
  #onItsWay<W>(list: W[], waiter: W): boolean {
    const want =
      this.#waiters.length +
      (this.#pollers.length > 0 ? 1 : 0) -
      (list === this.#waiters || this.#pollers.length === 1 ? 1 : 0);
    let takenBack = 0;
    while (want < this.#asked) {
      if (this.#takeBack()) {
        takenBack++;
        continue;
      }
      this.#toldTakenBack(takenBack);
      const i = list.indexOf(waiter);
      if (i > 0) list.unshift(...list.splice(i, 1));
      return true;
    }
    this.#toldTakenBack(takenBack);
    return false;
  }

  #rejectAll(error: Error): void {
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
    for (const poller of this.#pollers.splice(0)) poller.reject(error);
  }

  #checkOpen(): MessagePort {
    if (this.#movedTo !== undefined)
      throw new ClosedError(`connection was sent to ${this.#movedTo} and cannot be used here`);
    if (this.#closed) throw new ClosedError('connection is closed');
    if (this.#sending) {
      throw new ClosedError(
        'connection is on its way to another thread (in a pool task not yet started, or a queue item not yet handed over) and cannot be used here',
      );
    }
    return this.#port ?? deadPort;
  }

  #checkReadable(): void {
    if (!this.#readable) throw new ProcessError('connection is write-only', ErrorCode.ConnectionWriteOnly);
  }

  #checkWritable(): void {
    if (!this.#writable) throw new ProcessError('connection is read-only', ErrorCode.ConnectionReadOnly);
  }
}

class PollTimeout extends Error {}

/** The key of a message whose value must be revived (wire/clone.ts), or merely looks like such a message. */
const ENVELOPE = '\u0000mpthreads.message';

/** The key of a relayed end's request for messages (see Connection's #relayed); a value with it goes in an envelope. */
const DEMAND = '\u0000mpthreads.demand';
/** The key of a message a relayed end sent: the message as it would be posted, and what it moves (its relay posts it on). */
const FORWARD = '\u0000mpthreads.forward';
/** The key of what a relay posts instead of a message it could not pass on (its error, as text). */
const UNDELIVERABLE = '\u0000mpthreads.undeliverable';

/**
 * Posts a copy of `obj` to `port`, made now, as send() does: a copy that holds handles or registered instances
 * goes in an envelope, for the receiver to revive; so does one that happens to look like an envelope or a
 * request for messages. Anything else goes as it is: the receiver's copy is it. Throws, posting nothing and
 * leaving every handle where it was, if it cannot (`check` sees the handles first).
 */
function postCopy(
  port: MessagePort,
  obj: unknown,
  transfer: readonly TransferItem[] | undefined,
  relayed: boolean,
  check?: (handles: Handle[]) => void,
): void {
  // A primitive has no properties, handles or depth: the platform's copy is the capture.
  if (
    transfer === undefined &&
    (typeof obj !== 'object' || obj === null) &&
    typeof obj !== 'function' &&
    typeof obj !== 'symbol'
  ) {
    port.postMessage(obj);
    return;
  }
  const cloned = cloneForPost(obj, transfer, isHandle);
  const captured = { handles: cloned.handles as Handle[] };
  try {
    check?.(captured.handles);
    const value = cloned.value;
    const wrap =
      cloned.revive ||
      (typeof value === 'object' &&
        value !== null &&
        (Object.hasOwn(value, ENVELOPE) ||
          Object.hasOwn(value, DEMAND) ||
          Object.hasOwn(value, FORWARD) ||
          Object.hasOwn(value, UNDELIVERABLE)));
    const message = wrap ? { [ENVELOPE]: value, revive: cloned.revive } : value;
    const moved = cloned.transfer as TransferListItem[];
    // A relayed end's relay posts the message on as it came: it needs the list of what moves with it.
    port.postMessage(relayed ? { [FORWARD]: message, transfer: moved } : message, moved);
  } catch (error) {
    abort(captured);
    throw error;
  }
  commit(captured, 'another thread through a Connection');
}

/** The value a message carries: most travel as they are; one in an envelope is unwrapped (and revived). */
function unwrap(message: unknown): unknown {
  if (typeof message !== 'object' || message === null) return message;
  // In FORWARD form: sent while this end was shared (kShare), received after kUnshare gave it back.
  if (Object.hasOwn(message, FORWARD)) message = (message as Record<string, unknown>)[FORWARD];
  // A message its relay could not pass on to this end: the receive it was for fails.
  if (typeof message === 'object' && message !== null && Object.hasOwn(message, UNDELIVERABLE)) {
    throw new ProcessError(
      `a message for this end could not be passed on by its pool's relay: ${(message as Record<string, string>)[UNDELIVERABLE]}`,
    );
  }
  if (typeof message === 'object' && message !== null && Object.hasOwn(message, ENVELOPE)) {
    const { [ENVELOPE]: value, revive: needed } = message as Record<string, unknown>;
    return needed === true ? revive(value, reviveRecord) : value;
  }
  return message;
}

/** A message a shared end's relay side received before it was shared, rebuilt already (kShare). */
class Rebuilt {
  constructor(readonly value: unknown) {}
}

/** Stands in the inbox for a message that arrived but could not be deserialized in this thread. */
function isBytes(message: unknown): message is ArrayBuffer | ArrayBufferView {
  return message instanceof ArrayBuffer || ArrayBuffer.isView(message);
}

function bytesOf(message: ArrayBuffer | ArrayBufferView): Uint8Array {
  return message instanceof ArrayBuffer
    ? new Uint8Array(message)
    : new Uint8Array(message.buffer, message.byteOffset, message.byteLength);
}

function notBytes(message: unknown): ProcessError {
  return new ProcessError(
    `the next message is not bytes but ${describe(message)}; receive it with recv()`,
    ErrorCode.NotBytes,
  );
}

class Undeliverable {
  constructor(readonly error: unknown) {}
}

// A connection whose peer was already gone when it arrived has no port; sends to it vanish, as sends to a
// port whose peer exited do.
const deadPort = (() => {
  const { port1, port2 } = new MessageChannel();
  port2.close();
  port1.unref();
  return port1;
})();

function toBytes(buf: unknown, name: string): Uint8Array {
  if (isBytes(buf)) return bytesOf(buf);
  throw new TypeError(`${name} must be an ArrayBuffer or an ArrayBufferView, got ${describe(buf)}`);
}

/**
 * A pair of connected ends. With `duplex = false` the first end only receives and the second only sends.
 *
 * @example
 * const [reader, writer] = Pipe<string>(false);
 * writer.send('hi');
 * await reader.recv(); // 'hi'
 */
export function Pipe<T = unknown>(duplex: boolean = true): [Connection<T>, Connection<T>] {
  if (typeof duplex !== 'boolean') throw new TypeError(`duplex must be a boolean, got ${describe(duplex)}`);
  const { port1, port2 } = new MessageChannel();
  // The Web Crypto global, not node:crypto: loading that module would add ~2.5 ms to every worker's start.
  const channel = crypto.randomUUID();
  const sync = new Int32Array(new SharedArrayBuffer(kSyncCells * Int32Array.BYTES_PER_ELEMENT));
  return [
    new Connection<T>(port1, true, duplex, [], false, channel, sync, 0),
    new Connection<T>(port2, duplex, true, [], false, channel, sync, 1),
  ];
}

/** @internal The relay's side of an end it made for a pool's worker (pool/shared-end.ts). */
export interface RelayLink {
  /** The worker's end, to send to it. */
  end: Connection;
  /** What the end sends comes out here, raw: read each with unwrapMessage(), or as a request (demandOf()). */
  port: MessagePort;
  /** Whether the end asks for a message the relay has not taken yet. */
  asking(): boolean;
  /** Takes one of the end's requests for a message, before delivering one: false if none is left. */
  take(): boolean;
  /** Its worker is being stopped: no request of it is taken any more (a message taken for it would be lost). */
  retire(): void;
  /** Delivers `value` for a request take() took; one that cannot be sent fails the receive it was for instead. */
  deliver(value: unknown): void;
  /** Closes the relay's side: the end sees EOF once it received everything delivered before. */
  close(): void;
}

/**
 * @internal A relayed end for a pool's worker, readable and writable as `readable` and `writable` say, of the
 * shared end's `channel` (so that sending the pipe's other end through it is refused, as through the shared end).
 */
export function relayedEnd(readable: boolean, writable: boolean, channel: string | undefined): RelayLink {
  const { port1, port2 } = new MessageChannel();
  const sync = new Int32Array(new SharedArrayBuffer((kAsked + 1) * Int32Array.BYTES_PER_ELEMENT));
  Atomics.store(sync, kHolder(0), me);
  return {
    end: new Connection(port2, readable, writable, [], false, channel, sync, 1, true),
    port: port1,
    asking: () => Atomics.load(sync, kAsked) > 0,
    take: () => takeRequest(sync),
    retire() {
      Atomics.store(sync, kAsked, kRetired);
    },
    deliver(value) {
      // The worker shared its own end again (a pool of its own): that relay needs the list of what moves too.
      const forward = Atomics.load(sync, kSharedEnd(1)) === 1;
      try {
        if (value instanceof Rebuilt) postCopy(port1, value.value, undefined, forward);
        else {
          const { data, transfer } = forwardOf(value);
          try {
            port1.postMessage(forward ? { [FORWARD]: data, transfer } : data, transfer as TransferListItem[]);
          } catch {
            // Sent before the end was shared, not in FORWARD form: the ports it carries are not listed, so it
            // is rebuilt here and sent as a copy.
            postCopy(port1, unwrap(value), undefined, forward);
          }
        }
      } catch (error) {
        // Its request was taken (a receive whose time ran out waits for this message): it fails that receive.
        port1.postMessage({
          [UNDELIVERABLE]: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
        });
      }
      countSent(sync, 1);
    },
    close() {
      port1.close();
      markGone(sync, 0);
    },
  };
}

/** @internal A relayed end's word that it asked for `n` more messages, or undefined for a message. */
export function demandOf(data: unknown): number | undefined {
  if (typeof data !== 'object' || data === null || !Object.hasOwn(data, DEMAND)) return undefined;
  return (data as Record<string, number>)[DEMAND];
}

/** @internal A relayed end's message as it came to the relay: what to post on, and what moves with it. */
export function forwardOf(data: unknown): { data: unknown; transfer: readonly unknown[] } {
  if (typeof data === 'object' && data !== null && Object.hasOwn(data, FORWARD)) {
    const { [FORWARD]: message, transfer } = data as Record<string, unknown>;
    return { data: message, transfer: transfer as unknown[] };
  }
  return { data, transfer: [] }; // a primitive, or bytes (sendBytes), posted as they are
}

registerHandle('Connection', (wire) => {
  const entries = wire.inbox === null ? [] : (decodeItem(wire.inbox as Batch, 0) as [0 | 1, unknown][]);
  return new Connection(
    wire.port as MessagePort | null,
    wire.readable as boolean,
    wire.writable as boolean,
    entries.map(([kind, value]) => (kind === 1 ? new Undeliverable(value) : value)),
    wire.peerGone as boolean,
    wire.channel as string | undefined,
    new Int32Array(wire.sync as SharedArrayBuffer),
    wire.side as number,
    wire.relayed === true,
  );
});

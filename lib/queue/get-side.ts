// The get side of a queue holder: the items the hub pushed to this holder (segments), the window that says
// which the hub should push, claims, fetching deferred items, and getNowait's synchronous requests.
//
// The hub numbers items in arrival order and pushes the batches that fall in this holder's window. A get claims
// the next index, kClaimed, by compare-and-swap (cells.ts), but only when this holder already has that item: so
// the claim and the taking are one step, and a thread that stops calling get (or dies between gets) holds
// nothing anyone else needs. A deferred item is pushed as a placeholder; the claimer fetches the real one. In
// a JoinableQueue every claim is also a lease (cells.ts: claimLeased), which taskDone() acknowledges.
//
// Invariants:
//   #segments are in index order, each one a batch (or placeholder) the hub pushed; a segment leaves once
//     kClaimed passed its end. Only an index this holder has in #segments is ever claimed here.
//   The window (#windowTo) is extended by at least half its size before the claims reach its end, and after a
//     claim finds nothing: so a waiting get is always inside it and wakes when the next item is pushed.
//   #waiters are served oldest first; one of them at most (#fetching) has claimed an item it is fetching: it is
//     committed (no timeout or abort settles it) and the others wait behind it.
//   #kept holds items this holder claimed for a getNowait() that stopped waiting for them: the next gets take
//     them first, before claiming anything new (so this holder's gets still see increasing indexes).
import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { bug, describe, Empty } from '../errors.ts';
import { checkWaitOptions, type WaitOptions } from '../options.ts';
import { wait, type Waiter } from '../wait.ts';
import { releaseAwaitingCompile } from '../compile.ts';
import { batchByteLength } from '../wire/batch.ts';
import { BatchReader, decodeLone } from '../wire/decode.ts';
import type { Batch } from '../wire/format.ts';
import {
  claim,
  claimLeased,
  claimPinned,
  diff,
  growLeaseRing,
  kClaimed,
  kReply,
  kRefsFlag,
  kRingHead,
  kRingTail,
  unwatchRing,
  watchRing,
  kSlotBytes,
  kWaiting,
  leaseRoom,
  size,
  takeHandedOff,
  unpin,
} from './cells.ts';
import { hubStarted } from './hub-client.ts';
import { Op, type HolderMessage, type HubMessage, type WantMessage } from './protocol.ts';

/** What #takeHandedOff() returns when the ring is empty. */
const kNoItem: unique symbol = Symbol('no item');

/** The window: how many items past the claims a holder asks the hub to push, at most and at first. */
const kWindowItems = 4096;
const kFirstWindow = 64;
/** ... and about how many bytes (the window shrinks for big items). */
const kWindowBytes = 4 << 20;
/** How long getNowait() may block its thread for the hub's answer. */
const kNowaitReplyMs = 5_000;

/** What the get side needs of its queue holder. */
export interface GetHolder {
  readonly queueCells: Int32Array;
  /** The queue's whole shared buffer as bytes (the hand-off ring's slots). */
  readonly queueBytes: Uint8Array;
  readonly holderCells: Int32Array;
  readonly maxsize: number;
  readonly port: MessagePort;
  /** JoinableQueue: this holder's lease ring (replaced when it grows); null for other queues. */
  ring: Int32Array | null;
  /** Gets may take items handed straight over by a put (cells.ts, "The hand-off"): not a JoinableQueue. */
  readonly handsOff: boolean;
  readonly closed: boolean;
  post(message: HolderMessage, transfer?: readonly unknown[]): void;
  /** Hands this holder's own buffered items over (they must reach the hub to come back to anyone). */
  flushPuts(): void;
  updateRef(): void;
  checkOpen(): void;
}

/** Items the hub pushed: indexes [base, base + n) (base modulo 2^32), decoded at the first claim among them. */
interface Segment {
  base: number;
  n: number;
  batch: Batch | null;
  reader: BatchReader | undefined;
  /** A placeholder for a deferred item: whoever claims it fetches it from the hub. */
  deferred: boolean;
}

/** What a claim found. */
type Claim =
  | { kind: 'item'; value: unknown }
  | { kind: 'miss' } // this holder does not have the next index (yet)
  | { kind: 'fetching'; index: number }; // claimed a deferred item: it comes on Fetch

const kMiss: Claim = { kind: 'miss' };

export class GetSide {
  readonly #holder: GetHolder;
  #segments: Segment[] = [];
  /** One past the last index pushed to us (valid once #heard). */
  #heardTo = 0;
  #heard = false;
  /** The hub pushes us indexes below this; how far ahead of the claims we ask for (grows to kWindowItems). */
  #windowTo = 0;
  #window = kFirstWindow;
  /** A Want was ever posted (before that, the window covers nothing). */
  #asked = false;
  #waiters: Waiter<unknown>[] = [];
  #fetching: Waiter<unknown> | undefined;
  #fetchIndex = 0;
  #kept: unknown[] = [];
  /** A waitAsync on kRingTail is pending (at most one). */
  #watching = false;
  /** What this holder last told the hub in kWaiting. */
  #waitingSet = false;
  /** serve() is running (it does not run again inside itself). */
  #serving = false;
  /** Where items taken from the hand-off ring are copied to and decoded from (made at the first one). */
  #scratch: Uint8Array | undefined;
  #scratchBuffer: Buffer | undefined;
  #scratchBusy = false;

  constructor(holder: GetHolder) {
    this.#holder = holder;
  }

  /** Gets wait: the holder's port must keep the program alive. */
  get waiting(): boolean {
    return this.#waiters.length > 0 || this.#fetching !== undefined;
  }

  /** A get claimed an item the hub sends it alone: its answer is on its way. */
  get fetching(): boolean {
    return this.#fetching !== undefined;
  }

  /** Gets waiting with neither a timeout nor a signal: nothing but an item ends them. */
  readonly #unbounded = new WeakSet<Waiter<unknown>>();

  /** Every get that waits waits for good (no timeout, no signal), and none is fetching its item. */
  get waitingForGood(): boolean {
    return (
      this.#fetching === undefined && this.#waiters.length > 0 && this.#waiters.every((w) => this.#unbounded.has(w))
    );
  }

  /** The waiting gets (not one fetching its item) reject with `error`: nothing could ever end them. */
  failWaiting(error: unknown): void {
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
    this.#stopWaiting();
    this.#holder.updateRef();
  }

  get(options: WaitOptions | undefined): Promise<unknown> {
    if (options === undefined && this.#waiters.length === 0 && this.#fetching === undefined) {
      try {
        this.#holder.checkOpen();
        const found = this.#claim(false);
        if (found.kind === 'item') return Promise.resolve(found.value);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    let timeout: number, signal: AbortSignal | undefined;
    try {
      ({ timeout, signal } = checkWaitOptions(options));
      this.#holder.checkOpen();
    } catch (error) {
      return Promise.reject(error);
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (timeout === 0 && this.#waiters.length === 0) {
      try {
        return Promise.resolve(this.getNowait());
      } catch (error) {
        return Promise.reject(error);
      }
    }
    this.#holder.flushPuts();
    return wait<unknown>(
      (waiter) => {
        // A timeout or abort that finds an item in the hand-off ring loses the race: the get takes it.
        if (this.#holder.handsOff) waiter.decided = () => this.#takeHandedOffFor(waiter);
        if (timeout === Infinity && signal === undefined) this.#unbounded.add(waiter);
        this.#waiters.push(waiter);
        this.serve();
        return () => {
          const i = this.#waiters.indexOf(waiter);
          if (i !== -1) this.#waiters.splice(i, 1);
          // The last get stopped waiting (timeout, abort): its watch on the ring ends.
          if (this.#waiters.length === 0) this.#stopWaiting();
          this.#holder.updateRef();
        };
      },
      timeout,
      signal,
      () => new Empty(`queue is empty: get() timed out after ${timeout} ms`),
      timeout === Infinity ? undefined : hubStarted(),
    );
  }

  /**
   * An item available now, or Empty. It sees what the hub already pushed to this holder, and otherwise hands
   * this holder's unsent items over and asks the hub synchronously (a few ms at most).
   */
  getNowait(): unknown {
    this.#holder.checkOpen();
    if (this.#waiters.length > 0 || this.#fetching !== undefined) throw new Empty(); // others are ahead
    let found = this.#claimHere();
    if (found.kind === 'miss' && size(this.#holder.queueCells) > 0) {
      // Maybe in the hub, or still in our own buffer: hand ours over, then ask for the window and wait for it.
      this.#holder.flushPuts();
      const next = Atomics.load(this.#holder.queueCells, kClaimed);
      this.#askNow({
        op: Op.Want,
        from: this.#from(),
        until: (next + this.#window) | 0,
        width: this.#window,
        now: true,
      });
      found = this.#claim(true);
    }
    if (found.kind === 'miss') throw new Empty();
    return this.#taken(found);
  }

  /**
   * For getSync(), whose thread blocks between looks: an item this holder has now (or Empty), without asking
   * the hub for anything but a deferred item's bytes.
   */
  takeNow(): unknown {
    const found = this.#claimHere();
    if (found.kind === 'miss') throw new Empty();
    return this.#taken(found);
  }

  /**
   * For getSync(): makes sure the hub pushes this holder the next item when it comes. The holder's own buffered
   * puts go first; the window is asked for only when the claims passed it (while the holder is in getSync()
   * the hub slides it along with the claims, and rings the queue's kBell after each push).
   */
  coverNext(): void {
    this.#holder.flushPuts();
    const next = Atomics.load(this.#holder.queueCells, kClaimed);
    if (!this.#asked || diff(this.#windowTo, next) <= 0) this.#want(next);
  }

  /** Claims from what this holder has, taking what waits on its port first if that finds nothing. */
  #claimHere(): Claim {
    const found = this.#claim(true);
    if (found.kind !== 'miss') return found;
    this.#drain();
    return this.#claim(true);
  }

  /** The value of a claim made synchronously; a deferred item is fetched, blocking for the hub (bounded). */
  #taken(found: Claim): unknown {
    if (found.kind === 'item') return found.value;
    if (found.kind === 'miss') throw bug('queue: #taken() of a miss');
    const outcome: { done: boolean; value?: unknown; error?: unknown } = { done: false };
    this.#fetching = syncWaiter(outcome);
    this.#askNow({ op: Op.Fetch, index: found.index, now: true });
    if (!outcome.done) {
      // The hub did not answer in time. The claim stands: the item, when it comes, goes to the next get.
      this.#fetching = syncWaiter(undefined, this.#kept);
      throw new Empty(`queue: the hub did not answer within ${kNowaitReplyMs} ms`);
    }
    if (outcome.error !== undefined) throw outcome.error;
    return outcome.value;
  }

  /** Takes items off the port and serves waiting gets from what this holder has. */
  onMessage = (message: HubMessage): void => {
    try {
      this.#receive(message);
    } catch (error) {
      // Nothing thrown here may escape (it would crash the thread): the oldest waiting get hears of it.
      const waiter = this.#fetching ?? this.#waiters.shift();
      if (waiter === this.#fetching) this.#fetching = undefined;
      if (waiter !== undefined) waiter.reject(error);
      else process.emitWarning(`mpthreads: a queue message could not be handled: ${String(error)}`);
    }
    this.serve();
  };

  /** Serves waiting gets from what this holder has; with nothing here, makes sure the window covers the next index. */
  serve(): void {
    // Decoding an item can run user code (a registered class's revival) that gets from this queue: that get
    // waits in line, and this loop serves it in its turn, after the get whose item is being decoded.
    if (this.#serving) return;
    this.#serving = true;
    try {
      this.#serveWaiters();
    } finally {
      this.#serving = false;
    }
  }

  #serveWaiters(): void {
    let drained = false;
    while (this.#waiters.length > 0 && this.#fetching === undefined) {
      let found: Claim;
      try {
        found = this.#claim(true);
      } catch (error) {
        // The item could not be rebuilt here (it was claimed): its get rejects, the others go on.
        this.#waiters.shift()!.reject(error);
        continue;
      }
      if (found.kind === 'fetching') {
        const waiter = this.#waiters.shift()!;
        waiter.committed = true;
        this.#fetching = waiter;
        this.#holder.post({ op: Op.Fetch, index: found.index });
      } else if (found.kind === 'item') {
        this.#waiters.shift()!.resolve(found.value);
      } else if (!drained) {
        // Items may be queued on the port while this thread was busy: take them now, not a turn later.
        drained = true;
        this.#drain();
      } else {
        // Told before the look at the window: from here on the hub slides it along with the claims.
        this.#setWaiting(true);
        const next = Atomics.load(this.#holder.queueCells, kClaimed);
        if (!this.#asked || diff(this.#windowTo, next) <= 0) this.#want(next);
        if (this.#holder.handsOff) this.#watchRing();
        break;
      }
    }
    if (this.#waiters.length === 0) this.#stopWaiting();
    this.#holder.updateRef();
  }

  /** Tells the hub whether a get of this holder waits (cells.ts: kWaiting). */
  #setWaiting(waiting: boolean): void {
    if (this.#waitingSet === waiting) return;
    this.#waitingSet = waiting;
    Atomics.store(this.#holder.holderCells, kWaiting, waiting ? 1 : 0);
  }

  /** No get waits any more (a fetch may): the window stops sliding, and the watch on the ring ends. */
  #stopWaiting(): void {
    this.#setWaiting(false);
    if (this.#fetching === undefined) this.#unwatch();
  }

  /** No get waits any more: a pending watch ends now (a notify), so that it holds nothing alive. */
  #unwatch(): void {
    if (this.#watching) Atomics.notify(this.#holder.queueCells, kRingTail);
  }

  /** The oldest waiting get takes the ring's oldest item now, if there is one (its timeout or abort came). */
  #takeHandedOffFor(waiter: Waiter<unknown>): boolean {
    if (this.#serving || this.#waiters[0] !== waiter || this.#fetching !== undefined || this.#kept.length > 0)
      return false;
    // As in serve(): a get made while the item is decoded (a registered class's revival) waits in line behind
    // this one, and is served after it.
    this.#serving = true;
    let value: unknown;
    let failure: { error: unknown } | undefined;
    try {
      value = this.#takeHandedOff();
    } catch (error) {
      failure = { error };
    } finally {
      this.#serving = false;
    }
    if (failure === undefined && value === kNoItem) return false;
    const i = this.#waiters.indexOf(waiter);
    if (i !== -1) this.#waiters.splice(i, 1);
    if (failure !== undefined) waiter.reject(failure.error);
    else waiter.resolve(value);
    if (this.#waiters.length > 0) this.serve();
    return true;
  }

  /**
   * The hand-off ring's oldest item, taken and decoded here; kNoItem when the ring is empty. Throws (the item
   * taken) when this thread cannot rebuild it. Copied into this holder's scratch bytes, unless a decode in
   * progress uses them (a registered class whose revival gets from this queue).
   */
  #takeHandedOff(): unknown {
    const holder = this.#holder;
    const own = !this.#scratchBusy;
    const u8 = own ? (this.#scratch ??= new Uint8Array(kSlotBytes)) : new Uint8Array(kSlotBytes);
    const meta = takeHandedOff(holder.queueCells, holder.queueBytes, u8);
    if (meta < 0) return kNoItem;
    if (!own) return decodeLone(u8, Buffer.from(u8.buffer), (meta & kRefsFlag) !== 0);
    this.#scratchBuffer ??= Buffer.from(u8.buffer);
    this.#scratchBusy = true;
    try {
      return decodeLone(u8, this.#scratchBuffer, (meta & kRefsFlag) !== 0);
    } finally {
      this.#scratchBusy = false;
    }
  }

  /**
   * Serves again when kRingTail moves: whatever the hub holds now, the next put may go into the ring once it is
   * all claimed, by others perhaps, with nothing pushed here. At most one watch per holder; #unwatch() ends it
   * when no get waits.
   */
  #watchRing(): void {
    if (this.#watching) return;
    const q = this.#holder.queueCells;
    this.#watching = true;
    watchRing(q, this.#holder.holderCells);
    const tail = Atomics.load(q, kRingTail);
    // No timeout: V8 keeps a timed waitAsync's timer task until it expires, even once notified (20,000 waits a
    // second left 20,000 timers a second firing later, and round trips stalled on them). #unwatch() ends it.
    const result = tail !== Atomics.load(q, kRingHead) ? undefined : Atomics.waitAsync(q, kRingTail, tail);
    if (result === undefined || !result.async) queueMicrotask(this.#onRing);
    else void result.value.then(this.#onRing);
  }

  #onRing = (): void => {
    this.#watching = false;
    unwatchRing(this.#holder.queueCells, this.#holder.holderCells);
    if (!this.#holder.closed) this.serve();
  };

  /** The holder closed: waiting gets reject with `error`. An item being fetched goes back to the queue (the hub sees the claim when the port closes). */
  close(error: unknown): void {
    this.#unwatch();
    this.#setWaiting(false);
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
    this.#fetching?.reject(error);
    this.#fetching = undefined;
  }

  /**
   * Takes the item at the next index if this holder has it. `fetch` false: a deferred item counts as a miss (the
   * caller cannot wait for it); true: it is claimed, and the caller fetches it.
   */
  #claim(fetch: boolean): Claim {
    if (this.#kept.length > 0) return { kind: 'item', value: this.#kept.shift() };
    const holder = this.#holder;
    const q = holder.queueCells;
    // The ring's items come before anything counted (cells.ts, "The hand-off").
    if (holder.handsOff) {
      const handed = this.#takeHandedOff();
      if (handed !== kNoItem) return { kind: 'item', value: handed };
    }
    const segments = this.#segments;
    for (;;) {
      const next = Atomics.load(q, kClaimed);
      let segment = segments[0];
      while (segment !== undefined && diff(next, segment.base) >= segment.n) {
        segments.shift();
        segment = segments[0];
      }
      if (segment === undefined || diff(next, segment.base) < 0) return kMiss;
      if (segment.deferred) {
        if (!fetch) return kMiss;
        if (!this.#take(next, () => claimPinned(q, holder.holderCells, next, holder.maxsize))) continue;
        this.#fetchIndex = next;
        this.#claimed(next);
        return { kind: 'fetching', index: next };
      }
      if (!this.#take(next, () => claim(q, next, holder.maxsize))) continue;
      this.#claimed(next);
      // Decoded after the claim: an item this thread cannot rebuild fails the get that took it, not the queue.
      return {
        kind: 'item',
        value: (segment.reader ??= new BatchReader(segment.batch!)).item(diff(next, segment.base)),
      };
    }
  }

  /** Claims `next` with `claimOne`; in a JoinableQueue, as a lease. */
  #take(next: number, claimOne: () => boolean): boolean {
    const holder = this.#holder;
    let ring = holder.ring;
    if (ring === null) return claimOne();
    if (!leaseRoom(holder.holderCells, ring)) {
      ring = holder.ring = growLeaseRing(holder.holderCells, ring);
      holder.post({ op: Op.Leases, ring });
    }
    return claimLeased(holder.holderCells, ring, next, claimOne);
  }

  /** After claiming `index`: keep the window ahead of the claims. */
  #claimed(index: number): void {
    if (diff(this.#windowTo, index) < this.#window >> 1) this.#want(index);
  }

  /** Asks the hub to push the items up to `index` + window. */
  #want(index: number): void {
    this.#asked = true;
    this.#windowTo = (index + this.#window) | 0;
    this.#holder.post({ op: Op.Want, from: this.#from(), until: this.#windowTo, width: this.#window });
  }

  /** Where the hub should start pushing: after what we heard, or at the claims if we are behind them. */
  #from(): number {
    const next = Atomics.load(this.#holder.queueCells, kClaimed);
    return this.#heard && diff(this.#heardTo, next) > 0 ? this.#heardTo : next;
  }

  #drain(): void {
    const port = this.#holder.port;
    for (let entry = receiveMessageOnPort(port); entry !== undefined; entry = receiveMessageOnPort(port)) {
      // Node gives `{ message: undefined }` when it could not rebuild a message (seen 3 times in about 500 runs
      // of a review's chaos probe, cause unknown): say so, and go on with the next, rather than fail this get
      // with a TypeError that is no fault of its caller.
      if (entry.message === undefined) {
        process.emitWarning(bug('queue: a message from the hub arrived empty (Node could not rebuild it)'));
        continue;
      }
      this.#receive(entry.message as HubMessage);
    }
  }

  #receive(message: HubMessage): void {
    if (message.op !== Op.Items) throw bug(`queue: unknown message from the hub ${describe(message)}`);
    const { base, batch, n } = message;
    if (message.fetched === true) {
      this.#fetchArrived(base, batch);
      return;
    }
    // A push: the hub sends each index once, but a Want may restart it where an earlier push already reached.
    if (this.#heard && diff((base + n) | 0, this.#heardTo) <= 0) return;
    this.#heard = true;
    this.#heardTo = (base + n) | 0;
    this.#segments.push({ base, n, batch, reader: undefined, deferred: message.deferred === true });
    if (batch !== null) {
      const perItem = batchByteLength(batch) / n;
      this.#window = Math.max(4, Math.min(kWindowItems, Math.floor(kWindowBytes / perItem)));
    }
  }

  /** The item we claimed and fetched (or word that the hub lost it: a bug, reported rather than waited on). */
  #fetchArrived(base: number, batch: Batch | null): void {
    const waiter = this.#fetching;
    if (waiter === undefined || base !== this.#fetchIndex) {
      throw bug(`queue: the hub sent item ${base}, which this holder did not fetch`);
    }
    this.#fetching = undefined;
    unpin(this.#holder.holderCells);
    this.#holder.post({ op: Op.Release });
    if (batch === null) waiter.reject(bug(`queue: the hub lost item ${base}`));
    else {
      let value: unknown;
      try {
        value = new BatchReader(batch).item(0);
      } catch (error) {
        waiter.reject(error);
        return;
      }
      waiter.resolve(value);
    }
  }

  /** Posts a request and blocks this thread until the hub answers it (bounded), then takes what it sent. */
  #askNow(message: WantMessage | HolderMessage): void {
    // A hub still waiting for its compiled code from this thread would wait for this block to end: not the other
    // blocking hooks, though (flushAll's Sync would bump kReply too, ending the wait below before the answer).
    releaseAwaitingCompile();
    const cells = this.#holder.holderCells;
    const before = Atomics.load(cells, kReply);
    this.#holder.post(message);
    if (message.op === Op.Want) {
      this.#asked = true;
      this.#windowTo = message.until;
    }
    if (Atomics.wait(cells, kReply, before, kNowaitReplyMs) === 'timed-out') return;
    this.#drain();
  }
}

/**
 * A stand-in waiter for getNowait()'s fetch, settled synchronously by #drain(): it records the outcome, or
 * (once getNowait gave up waiting) keeps the item for the next get.
 */
function syncWaiter(
  outcome: { done: boolean; value?: unknown; error?: unknown } | undefined,
  kept?: unknown[],
): Waiter<unknown> {
  return {
    settled: false,
    committed: true,
    resolve(value) {
      if (outcome !== undefined) {
        outcome.done = true;
        outcome.value = value;
      } else kept!.push(value);
    },
    reject(error) {
      if (outcome !== undefined) {
        outcome.done = true;
        outcome.error = error;
      }
    },
  };
}

// One holder of a queue: what its put side and get side share (its cells, its port to the hub, whether it is
// closed) and the rule for when its port keeps the program alive. The public classes (lib/queue.ts and the
// others) are facades over a Holder.
//
// Invariants:
//   The port has the get side's 'message' listener for the holder's lifetime, but is ref'd only while a get, a
//     blocked put or a join waits, so an idle queue never keeps the program alive; not for gets on an empty
//     queue that no other thread holds (only this thread's own code could put): those fail with ERR_DEADLOCK
//     once the thread's event loop runs dry ('beforeExit'). While something waits the holder is also strongly
//     held (`waiting`), so that it cannot be collected under a pending call.
//   The listener reaches the holder through a WeakRef, and the holder is registered with `dropped`: a holder
//     no code can reach any more (its facade dropped, no flush pending, nothing waiting) is collected and its
//     port closed (the hub sees a departure), so a queue dropped without close() costs nothing for good.
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { postAllPuts } from '../context.ts';
import { ClosedError, Empty, ErrorCode, ProcessError } from '../errors.ts';
import { WIRE_TAG, type WireHandle } from '../handles.ts';
import type { WaitOptions } from '../options.ts';
import { blockUntil, waitForCell, waitUntil } from '../shared-wait.ts';
import { watchForStall } from '../stall.ts';
import type { QueueBackend, QueueKind } from './backend.ts';
import {
  diff,
  FetchState,
  kAttaching,
  kBell,
  kFetching,
  kJoinWake,
  kLeaseHead,
  kLeaseTail,
  kPostSeq,
  kReply,
  unwatchRing,
  watchRing,
  kSyncGetting,
  newHolderCells,
  newLeaseRing,
  counted,
  size,
  taskDone,
  unfinished,
} from './cells.ts';
import { ownsHub } from './hub-client.ts';
import { GetSide, type GetHolder } from './get-side.ts';
import { Op, type HolderMessage, type HubMessage } from './protocol.ts';
import { PutSide, type PutHolder, type PutOptions } from './put-side.ts';

export type { QueueKind };

/** How a holder travels to another thread (its handle's wire record). */
export interface HolderRecord extends WireHandle {
  kind: QueueKind;
  port: MessagePort;
  queueCells: Int32Array;
  holderCells: Int32Array;
  ring: Int32Array | null;
  maxsize: number;
}

/** Longest sleep (ms) of a getSync() that sees an item counted but not pushed to it, between two looks. */
const kGetSyncPoll = 16;
/** A taskDone() with at most this many tasks unfinished is at the tail of the work (see taskDone()). */
const kTailTasks = 8;

/** How long a thread's exit waits for the hub to have numbered what each of its holders sent. */
const kExitSyncMs = 5_000;

/** Holders something waits on: kept alive while it does. */
const waiting = new Set<Holder>();

/**
 * Holders with a get or join that only this thread's own code could end. While there are any, one stall watch
 * (stall.ts, as the primitives' lonely waits use) fails them once the thread's event loop runs dry.
 */
const lonelyHolders = new Set<Holder>();
let unwatchLonely: (() => void) | undefined;
function watchLonely(holder: Holder, lonely: boolean): void {
  if (lonely) lonelyHolders.add(holder);
  else lonelyHolders.delete(holder);
  if (lonelyHolders.size > 0) {
    unwatchLonely ??= watchForStall(() => {
      for (const each of [...lonelyHolders]) each.failLonelyWaits();
    });
  } else if (unwatchLonely !== undefined) {
    unwatchLonely();
    unwatchLonely = undefined;
  }
}
/** Closes the port of a facade that was collected without close(). */
const dropped = new FinalizationRegistry<MessagePort>((port) => port.close());

export class Holder implements QueueBackend, PutHolder, GetHolder {
  readonly kind: QueueKind;
  readonly joinable: boolean;
  /** Puts may hand items straight to a waiting get (cells.ts, "The hand-off"): every kind but JoinableQueue. */
  readonly handsOff: boolean;
  readonly maxsize: number;
  readonly queueCells: Int32Array;
  /** The queue's whole shared buffer as bytes: the hand-off ring's slots are in it. */
  readonly queueBytes: Uint8Array;
  readonly holderCells: Int32Array;
  readonly port: MessagePort;
  /** JoinableQueue: the lease ring (the get side replaces it when it grows); null for other kinds. */
  ring: Int32Array | null;
  readonly puts: PutSide;
  readonly gets: GetSide;
  closed = false;
  /**
   * Another thread may hold this queue: it came from another thread, or was handed to one. Until then only
   * this thread can put or get, so a blocking call that waits forever would wait for itself.
   */
  shared = false;
  /** cancelJoinThread() was called: this thread's exit does not flush. */
  joinCancelled = false;
  /** join() calls waiting on this holder; close() rejects them. */
  readonly #joins = new Set<AbortController>();
  /** Those of them with no timeout and no signal: only this thread's taskDone() may end them while not shared. */
  readonly #joinsForGood = new Set<AbortController>();

  constructor(
    kind: QueueKind,
    maxsize: number,
    queueCells: Int32Array,
    holderCells: Int32Array,
    ring: Int32Array | null,
    port: MessagePort,
  ) {
    this.kind = kind;
    this.joinable = kind === 'JoinableQueue';
    this.handsOff = !this.joinable;
    this.maxsize = maxsize;
    this.queueCells = queueCells;
    this.queueBytes = new Uint8Array(queueCells.buffer);
    this.holderCells = holderCells;
    this.ring = ring;
    this.port = port;
    this.puts = new PutSide(this);
    this.gets = new GetSide(this);
    const self = new WeakRef(this);
    port.on('message', (message: HubMessage) => self.deref()?.gets.onMessage(message));
    port.unref();
    dropped.register(this, port, this);
  }

  // --- QueueBackend -----------------------------------------------------------------------------------

  put(item: unknown, options: PutOptions | undefined): Promise<void> {
    const put = this.puts.put(item, options);
    this.#keepAliveForOwnItem();
    return put;
  }

  putNowait(item: unknown): void {
    this.puts.putNowait(item);
    this.#keepAliveForOwnItem();
  }

  get(options: WaitOptions | undefined): Promise<unknown> {
    return this.gets.get(options);
  }

  getNowait(): unknown {
    return this.gets.getNowait();
  }

  putSync(item: unknown, timeout: number, transfer: unknown[] | undefined): void {
    this.checkOpen();
    if (timeout === Infinity && !this.shared && this.maxsize > 0 && size(this.queueCells) >= this.maxsize) {
      throw this.#wouldDeadlock('putSync() on a full queue');
    }
    this.puts.putSync(item, timeout, transfer);
    this.#keepAliveForOwnItem();
  }

  #wouldDeadlock(what: string): ProcessError {
    return new ProcessError(
      `${what} that no other thread holds would block forever: pass it to a Process first, or give a timeout`,
      ErrorCode.Deadlock,
    );
  }

  getSync(timeout: number): unknown {
    this.checkOpen();
    if (this.gets.waiting) {
      throw new ProcessError('getSync() while a get() of this thread waits on this queue', ErrorCode.QueueBusy);
    }
    // One look, as get({ timeout: 0 }) and getNowait() take: it waits for an item the count says is on its way.
    if (timeout === 0) return this.gets.getNowait();
    const cells = this.queueCells;
    const mine = this.holderCells;
    if (timeout === Infinity && !this.shared && size(cells) <= 0)
      throw this.#wouldDeadlock('getSync() on an empty queue');
    const deadline = timeout === Infinity ? Infinity : performance.now() + timeout;
    // While kSyncGetting is 1 the hub slides this holder's window along with the claims and rings the queue's
    // kBell after every push to it; a put into the hand-off ring rings it too. So we sleep on kBell, read before each
    // look: a ring after the look changes it, none is missed.
    Atomics.store(mine, kSyncGetting, 1);
    watchRing(cells, mine);
    try {
      for (;;) {
        const bell = Atomics.load(cells, kBell);
        try {
          return this.gets.takeNow();
        } catch (error) {
          if (!(error instanceof Empty)) throw error;
        }
        const left = deadline - performance.now();
        if (left <= 0) throw new Empty(`queue is empty: getSync() timed out after ${timeout} ms`);
        this.gets.coverNext();
        // A slice, to look again at a window that other consumers' claims left behind (the hub slides it only
        // when it pushes).
        blockUntil(cells, kBell, () => Atomics.load(cells, kBell) !== bell, { timeout: Math.min(left, kGetSyncPoll) });
      }
    } finally {
      unwatchRing(cells, mine);
      Atomics.store(mine, kSyncGetting, 0);
    }
  }

  joinSync(timeout: number): boolean {
    // After this handle's close() too, as join() (Python's put, close(), join()).
    const cells = this.queueCells;
    // Only this thread could mark the tasks done, and it would be blocked here.
    if (timeout === Infinity && !this.shared && unfinished(cells) > 0)
      throw this.#wouldDeadlock('joinSync() on a queue with unfinished tasks');
    return blockUntil(cells, kJoinWake, () => unfinished(cells) <= 0, { timeout });
  }

  size(): number {
    return size(this.queueCells);
  }

  flush(): void {
    this.puts.flush();
  }

  unfinished(): number {
    return unfinished(this.queueCells);
  }

  taskDone(): boolean {
    // At the tail of the work (every task put has been taken, or few are unfinished: join() may resolve once
    // those are done), what this thread put before is posted first, so that a join() these taskDone()s end
    // finds it on the queues (a getNowait() right after it), though this thread stays busy after its last
    // taskDone() while others finish. Not while many tasks wait: a consumer loop would post an item at a time
    // instead of a batch per turn of its event loop (2-4x slower).
    const q = this.queueCells;
    if (counted(q) === 0 || unfinished(q) <= kTailTasks) postAllPuts();
    const done = taskDone(this.queueCells, this.holderCells);
    if (this.closed && this.#openLeases() === 0) this.#closePort();
    return done;
  }

  /** JoinableQueue: items this holder got whose taskDone() has not come (0 for other queues). */
  #openLeases(): number {
    return this.joinable
      ? diff(Atomics.load(this.holderCells, kLeaseTail), Atomics.load(this.holderCells, kLeaseHead))
      : 0;
  }

  async join(timeout: number, signal: AbortSignal | undefined): Promise<boolean> {
    const cells = this.queueCells;
    signal?.throwIfAborted();
    if (unfinished(cells) <= 0) return true;
    if (this.closed) {
      // After this handle's close(), as in Python (put, close(), join()): it waits on the queue's count, which
      // the other holders' taskDone() change; with none, nothing could.
      if (timeout === Infinity && !this.shared)
        throw this.#wouldDeadlock('join() after close() on a queue with unfinished tasks');
      return await waitForCell(cells, kJoinWake, () => unfinished(cells) <= 0, timeout, signal);
    }
    const closing = new AbortController();
    this.#joins.add(closing);
    if (timeout === Infinity && signal === undefined) this.#joinsForGood.add(closing);
    this.updateRef();
    try {
      // The unfinished count spans two cells, so wait on kJoinWake, bumped whenever it may have reached 0.
      const both = signal === undefined ? closing.signal : AbortSignal.any([signal, closing.signal]);
      // The port keeps the program alive meanwhile (updateRef), unless only this thread could end the wait.
      return await waitUntil(cells, kJoinWake, () => unfinished(cells) <= 0, { timeout, keepAlive: false }, both);
    } finally {
      this.#joins.delete(closing);
      this.#joinsForGood.delete(closing);
      this.updateRef();
    }
  }

  cancelJoinThread(): void {
    this.joinCancelled = true;
  }

  handOver(transfer: unknown[]): { record: HolderRecord; commit(): void; abort(): void } {
    this.checkOpen();
    this.shared = true;
    this.updateRef(); // a get that waited as the only holder's now waits for the receiver too
    this.puts.flush(); // what we put before the handover comes before what the receiver puts
    const { port1, port2 } = new MessageChannel();
    const holderCells = newHolderCells(this.queueCells);
    const ring = this.joinable ? newLeaseRing() : null;
    // Until the hub has handled this Attach, the new holder's puts count in kReserved and in cells the hub
    // cannot see yet: it must not settle meanwhile (see protocol.ts).
    Atomics.add(this.holderCells, kAttaching, 1);
    try {
      this.post({ op: Op.Attach, holder: { port: port1, cells: holderCells, ring } }, [port1]);
    } catch (error) {
      Atomics.sub(this.holderCells, kAttaching, 1);
      throw error;
    }
    transfer.push(port2);
    const record: HolderRecord = {
      [WIRE_TAG]: 'Queue',
      kind: this.kind,
      port: port2,
      queueCells: this.queueCells,
      holderCells,
      ring,
      maxsize: this.maxsize,
    };
    return {
      record,
      commit: () => {},
      // The message carrying the new holder's port was not sent: the hub sees that holder leave at once.
      abort: () => port2.close(),
    };
  }

  // --- for the sides ----------------------------------------------------------------------------------

  post(message: HolderMessage, transfer?: readonly unknown[]): void {
    // Numbered just before it leaves: a put posted before another thread's (which it happened before, through
    // a lock, an event, a message) has the lower number, and the hub numbers its items first.
    if (message.op !== Op.Put) {
      this.port.postMessage(message, transfer as never[] | undefined);
      return;
    }
    message.seq = Atomics.add(this.queueCells, kPostSeq, 1);
    try {
      this.port.postMessage(message, transfer as never[] | undefined);
    } catch (error) {
      // Refused (what it moves cannot move): the hub must not hold later puts back waiting for this number.
      this.port.postMessage({ op: Op.Skip, seq: message.seq });
      throw error;
    }
  }

  checkOpen(): void {
    if (this.closed) throw new ClosedError('queue is closed');
  }

  flushPuts(): void {
    this.puts.flush();
  }

  /**
   * This thread exits (process.exit(), a return, an uncaught exception): hand over what is buffered, and wait
   * (kExitSyncMs at most) until the hub has numbered everything this holder sent. Otherwise a thread that
   * join()ed this one and then puts could come first: the hub reads its holders' ports in no set order. So,
   * as in Python, whose exiting process joins its feeder thread, an item put after a join() comes after the
   * joined thread's items.
   */
  flushOnExit(): void {
    if (this.closed || this.joinCancelled) return;
    this.puts.flush();
    if (!this.puts.posted || ownsHub()) return;
    this.puts.posted = false;
    const cells = this.holderCells;
    const before = Atomics.load(cells, kReply);
    this.post({ op: Op.Sync });
    const deadline = performance.now() + kExitSyncMs;
    for (let left = kExitSyncMs; Atomics.load(cells, kReply) === before && left > 0; ) {
      Atomics.wait(cells, kReply, before, left);
      left = deadline - performance.now();
    }
  }

  /**
   * The port keeps the program alive exactly while something waits on this holder that something else can end:
   * not a get on an empty queue no other thread holds (only this thread's own code could put; see lonely()).
   */
  updateRef(): void {
    if (this.closed) return;
    const gets = this.gets.waiting && !this.#lonely();
    const joins = this.#joins.size > 0 && !this.#lonelyJoins();
    const puts = this.puts.waiting && !this.#lonelyPuts();
    if (gets || puts || joins) this.port.ref();
    else this.port.unref();
    if (this.gets.waiting || this.puts.waiting || this.#joins.size > 0) waiting.add(this);
    else waiting.delete(this);
    watchLonely(this, (this.gets.waiting && !gets) || (this.puts.waiting && !puts) || (this.#joins.size > 0 && !joins));
  }

  /** Every put waits for good for a slot of a full queue no other thread holds: only this thread's get could free one. */
  #lonelyPuts(): boolean {
    return !this.shared && this.puts.waitingForGood && size(this.queueCells) >= this.maxsize;
  }

  /** Every join() waits for good on a queue no other thread holds: only this thread's taskDone() could end them. */
  #lonelyJoins(): boolean {
    return !this.shared && this.#joins.size > 0 && this.#joinsForGood.size === this.#joins.size;
  }

  /** This thread put an item while a get of its lonely queue waits: the port keeps the program alive for it. */
  #keepAliveForOwnItem(): void {
    if (!this.shared && this.gets.waiting) this.updateRef();
  }

  /**
   * Gets wait for good (no timeout, no signal: a bounded one's timer may not run yet while the hub starts) on
   * an empty queue that no other thread holds, and none fetches an item already claimed.
   */
  #lonely(): boolean {
    return !this.shared && size(this.queueCells) <= 0 && this.gets.waitingForGood;
  }

  /**
   * The thread has nothing left to do (its event loop ran dry): gets, puts and joins that only it could end
   * fail now. One that is no longer lonely (the queue was shared since, an item or a slot came, the tasks were
   * done) keeps the thread alive for it again.
   */
  failLonelyWaits(): void {
    if (this.closed) return;
    if (this.#lonelyJoins() && unfinished(this.queueCells) > 0) {
      const error = new ProcessError(
        'join() on a queue with unfinished tasks that no other thread holds would wait forever: this thread has nothing left that could call taskDone() (pass the queue to a Process first, or give a timeout)',
        ErrorCode.Deadlock,
      );
      for (const join of this.#joinsForGood) join.abort(error);
    } else if (this.#joins.size > 0) this.updateRef();
    if (this.#lonelyPuts()) {
      this.puts.failWaiting(
        new ProcessError(
          'put() on a full queue that no other thread holds would wait forever: this thread has nothing left that could get (pass the queue to a Process first, or give a timeout)',
          ErrorCode.Deadlock,
        ),
      );
    } else if (this.puts.waiting) this.updateRef();
    if (!this.gets.waiting) return;
    if (!this.#lonely()) {
      this.updateRef();
      return;
    }
    this.gets.failWaiting(
      new ProcessError(
        'get() on an empty queue that no other thread holds would wait forever: this thread has nothing left that could put (pass the queue to a Process first, or give a timeout)',
        ErrorCode.Deadlock,
      ),
    );
  }

  /**
   * Closes for good: waiting calls (gets, puts, joins) reject with `error`. A JoinableQueue holder that still
   * leases items keeps its port (unref'd), whose closing gives them back, until its taskDone() calls have
   * acknowledged them: Python's task_done() works after close(). Dropped or its thread gone, it gives them back.
   */
  close(error: unknown): void {
    if (this.closed) return;
    this.puts.close(error); // flushes first
    this.closed = true;
    watchLonely(this, false);
    this.gets.close(error);
    for (const join of this.#joins) join.abort(error);
    waiting.delete(this);
    this.port.removeAllListeners('message');
    this.port.unref();
    // Kept only for leases of items its gets returned. A get this close() rejected while it fetched an item it
    // had claimed holds a lease nobody can acknowledge: the port closes, and the hub deals with it as before.
    if (this.#openLeases() === 0 || Atomics.load(this.holderCells, kFetching) !== FetchState.Idle) this.#closePort();
  }

  #closePort(): void {
    dropped.unregister(this);
    this.port.close();
  }
}
